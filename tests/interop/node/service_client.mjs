// An independent OAuth 2.0 client (panva's oauth4webapi) against a gatepass auth service:
// discovery, a client-credentials grant and a token exchange (RFC 8693), both authenticated
// with private_key_jwt (RFC 7523). Driven by tests/interop/test_independent_clients.py.
//
// Input (environment): ISSUER, CLIENT_ID, CLIENT_JWK (the private JWK, JSON), CC_RESOURCE,
// CC_SCOPE, SUBJECT_TOKEN, EXCHANGE_AUDIENCE, EXCHANGE_SCOPE.
// Output: one JSON line {"client_credentials": {...}, "exchange": {...}} on stdout; on an error,
// {"error": "<code or message>"} and exit status 1.
import { webcrypto } from 'node:crypto'
import * as oauth from 'oauth4webapi'

// Node 18 (Debian's) has WebCrypto but not yet as a global; oauth4webapi expects the global.
globalThis.crypto ??= webcrypto

const env = process.env
const insecure = { [oauth.allowInsecureRequests]: true } // the tests run on http://127.0.0.1

async function main() {
  const issuer = new URL(env.ISSUER)
  const discovered = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure })
  const as = await oauth.processDiscoveryResponse(issuer, discovered)
  const jwk = JSON.parse(env.CLIENT_JWK)
  const key = await crypto.subtle.importKey(
    'jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
  const client = { client_id: env.CLIENT_ID }
  const clientAuth = oauth.PrivateKeyJwt({ key, kid: jwk.kid })

  const ccResponse = await oauth.clientCredentialsGrantRequest(
    as, client, clientAuth,
    new URLSearchParams({ resource: env.CC_RESOURCE, scope: env.CC_SCOPE }), insecure)
  const cc = await oauth.processClientCredentialsResponse(as, client, ccResponse)

  const exchangeResponse = await oauth.genericTokenEndpointRequest(
    as, client, clientAuth, 'urn:ietf:params:oauth:grant-type:token-exchange',
    new URLSearchParams({
      subject_token: env.SUBJECT_TOKEN,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      audience: env.EXCHANGE_AUDIENCE,
      scope: env.EXCHANGE_SCOPE,
    }), insecure)
  const exchanged = await oauth.processGenericTokenEndpointResponse(as, client, exchangeResponse)

  const summary = (t) => ({
    access_token: t.access_token, token_type: t.token_type, expires_in: t.expires_in,
    scope: t.scope, issued_token_type: t.issued_token_type,
  })
  console.log(JSON.stringify({ client_credentials: summary(cc), exchange: summary(exchanged) }))
}

main().catch((err) => {
  const code = err?.error ?? err?.code ?? String(err?.message ?? err)
  console.log(JSON.stringify({ error: code }))
  process.exit(1)
})
