// A relying party nobody here wrote the protocol of: panva's openid-client (v6, built on
// oauth4webapi) behind a bare node:http server. It signs a browser in with the authorization code
// flow (PKCE S256, state, nonce), knowing only the issuer's URL: endpoints, the ID token's
// algorithm and the keys that verify it all come from discovery. Driven by
// tests/browser/test_relying_parties.py in Chromium.
//
// Input (environment): ISSUER, CLIENT_ID (a public client), PORT, SCOPE.
// Routes: / (the claims when signed in, else a sign-in link), /login (to the issuer's
// /authorize), /callback (code -> tokens, the ID token validated, /userinfo read), /logout
// (RP-initiated logout at the end_session_endpoint), /signed-out (where that comes back),
// /ready, and /last-tokens (a test hook: the last tokens issued, so the test can see that they
// stop working). It logs no token.
import { randomBytes, webcrypto } from 'node:crypto'
import http from 'node:http'

// Node 18 (Debian's) has WebCrypto but not yet as a global; openid-client expects the global,
// so the library is imported only once it is there.
globalThis.crypto ??= webcrypto
const client = await import('openid-client')

const env = process.env
const base = `http://127.0.0.1:${env.PORT}`
const redirectUri = `${base}/callback`
const signedOutUri = `${base}/signed-out`
const COOKIE = 'node_rp'

// Discovery alone: the issuer's metadata names every endpoint and the JWKS; plain http is
// allowed only because the tests run on loopback.
const config = await client.discovery(
  new URL(env.ISSUER), env.CLIENT_ID, undefined, client.None(),
  { execute: [client.allowInsecureRequests] })
// Verify the ID token's signature with the keys of the discovered jwks_uri (a code-flow RP may
// skip that over TLS; this one checks).
client.enableNonRepudiationChecks(config)

const sessions = new Map()
let lastTokens = null

const escape = (value) => String(value).replace(/[&<>"']/g,
  (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c])

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
</head><body><main><h1>${escape(title)}</h1>${body}</main></body></html>`)
}

function redirect(res, location, cookie) {
  const headers = { location: String(location), 'cache-control': 'no-store' }
  if (cookie) headers['set-cookie'] = cookie
  res.writeHead(302, headers)
  res.end()
}

function sessionOf(req) {
  const match = (req.headers.cookie || '').match(new RegExp(`(?:^|; )${COOKIE}=([A-Za-z0-9_-]+)`))
  return match && sessions.has(match[1]) ? [match[1], sessions.get(match[1])] : [null, null]
}

function newSession() {
  const id = randomBytes(24).toString('base64url')
  const session = {}
  sessions.set(id, session)
  return [id, session, `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax`]
}

function home(res, session) {
  const claims = session?.claims
  if (!claims) {
    page(res, 200, 'Not signed in', '<p><a id="login" href="/login">Sign in with gatepass</a></p>')
    return
  }
  const rows = ['iss', 'sub', 'aud', 'sid', 'nonce', 'auth_time']
    .map((name) => `<dt>${name}</dt><dd id="claim-${name}">${escape(claims[name])}</dd>`)
  page(res, 200, 'Signed in', `<dl>${rows.join('')}
<dt>userinfo email</dt><dd id="userinfo-email">${escape(session.userinfo?.email ?? '')}</dd>
<dt>ID token alg</dt><dd id="id-token-alg">${escape(session.alg)}</dd></dl>
<p><a id="logout" href="/logout">Sign out</a></p>`)
}

async function login(res) {
  const [id, session, cookie] = newSession()
  session.verifier = client.randomPKCECodeVerifier()
  session.state = client.randomState()
  session.nonce = client.randomNonce()
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: env.SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(session.verifier),
    code_challenge_method: 'S256',
    state: session.state,
    nonce: session.nonce,
  })
  redirect(res, url, cookie)
  return id
}

async function callback(req, res, session) {
  if (!session?.verifier) {
    page(res, 400, 'Sign-in failed', '<p id="error">no sign-in in progress</p>')
    return
  }
  const tokens = await client.authorizationCodeGrant(config, new URL(req.url, base), {
    pkceCodeVerifier: session.verifier,
    expectedState: session.state,
    expectedNonce: session.nonce,
    idTokenExpected: true,
  })
  delete session.verifier
  session.claims = tokens.claims()
  session.alg = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url')).alg
  session.idToken = tokens.id_token
  session.userinfo = await client.fetchUserInfo(config, tokens.access_token, session.claims.sub)
  lastTokens = {
    access_token: tokens.access_token,
    id_token: tokens.id_token,
    refresh_token: tokens.refresh_token,
  }
  redirect(res, '/')
}

function logout(res, session) {
  if (!session?.idToken) {
    redirect(res, '/')
    return
  }
  session.logoutState = client.randomState()
  const url = client.buildEndSessionUrl(config, {
    id_token_hint: session.idToken,
    post_logout_redirect_uri: signedOutUri,
    state: session.logoutState,
  })
  delete session.claims
  delete session.idToken
  redirect(res, url)
}

function signedOut(req, res, session) {
  const state = new URL(req.url, base).searchParams.get('state')
  const ok = Boolean(session?.logoutState) && state === session.logoutState
  page(res, ok ? 200 : 400, 'Signed out', `<p id="state-ok">${ok}</p>`)
}

async function handle(req, res) {
  const path = new URL(req.url, base).pathname
  const [, session] = sessionOf(req)
  switch (path) {
    case '/': return home(res, session)
    case '/login': return login(res)
    case '/callback': return callback(req, res, session)
    case '/logout': return logout(res, session)
    case '/signed-out': return signedOut(req, res, session)
    case '/ready': return page(res, 200, 'ready', '')
    case '/last-tokens':
      res.writeHead(200, { 'content-type': 'application/json' })
      return res.end(JSON.stringify(lastTokens))
    default: return page(res, 404, 'Not found', '')
  }
}

http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    // The standard's error code when there is one (oauth4webapi's ResponseBodyError carries it),
    // else the library's own code: never the token or the response body.
    const code = err?.error ?? err?.code ?? err?.name ?? 'error'
    console.error(`sign-in failed: ${code}`)
    page(res, 400, 'Sign-in failed', `<p id="error">${escape(code)}</p>`)
  })
}).listen(Number(env.PORT), '127.0.0.1', () => {
  console.log(`relying party listening on ${base}`)
})
