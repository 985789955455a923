"""Test helpers for anyone who verifies gatepass tokens: an issuer in a box and a manual clock.

An edge's tests need real tokens and a JWKS without running the auth service::

    clock = ManualClock()
    issuer = FakeIssuer(clock=clock)
    async with issuer.client() as client:
        auth = EdgeAuth.from_settings(settings, client=client, clock=clock)
        token = issuer.token(scope="mail:read")

Keys are generated when the issuer is built and live only in memory. The issuer serves discovery and
the JWKS through ``httpx.MockTransport``, with ``ETag``/``If-None-Match`` and ``Cache-Control``, and
counts what it was asked, so a test can assert how often the edge called it.

It also serves a revocation feed (``/revocations``, the auth service's contract: cursor, snapshot,
``more`` paging, long poll), fed by :meth:`FakeIssuer.revoke_session` and its siblings. Discovery
lists the feed only for ``FakeIssuer(feed=True)``: by default an edge under test runs as with an
issuer that has none, so tests written before the feed existed see the same requests as before.

And, with ``FakeIssuer(token_endpoint=True)``, a token endpoint (``POST /token``, listed in
discovery): ``client_credentials`` (a service token: ``sub`` = ``client_id``, no ``sid``, the
audiences and scope asked for) and token exchange (the subject token verified against the fake's
own keys and clock; the user's ``sub`` and ``sid``, ``act`` naming the client, the audience
asked for, the scope asked for if the subject token has it). Clients are not authenticated:
their id is taken from the assertion, the Basic header or the form, and each request is recorded
(:attr:`FakeIssuer.token_grants`) and counted (``count("/token")``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import httpx
import jwt
from jwt.algorithms import OKPAlgorithm

from gatepass.core import jwk
from gatepass.core.jwk import PrivateKey
from gatepass.core.oauth import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE


def _jws() -> jwt.PyJWS:
    """PyJWT knows Ed25519 only as ``EdDSA``: a PyJWS of our own signs and checks it under RFC
    9864's name too (PyJWT's module-level objects are left alone)."""
    jws = jwt.PyJWS()
    jws.register_algorithm("Ed25519", OKPAlgorithm())
    return jws


_JWS = _jws()

REVOCATION_TTL = 360
"""Seconds a revocation stays live by default: the fake's token lifetime (300) plus the leeway."""


class ManualClock:
    """Epoch seconds that move only when told; :meth:`sleep` waits for :meth:`advance`."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._slept = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time on and wake every sleeper whose time has come."""
        self.now += seconds
        due = [entry for entry in self.sleepers if entry[0] <= self.now]
        self.sleepers = [entry for entry in self.sleepers if entry[0] > self.now]
        for _, future in due:
            if not future.done():
                future.set_result(None)

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.now + seconds, future))
        self._slept.set()
        await future

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Let the event loop run until ``count`` tasks sleep on this clock (wrap in a timeout)."""
        while self.pending < count:
            self._slept.clear()
            await self._slept.wait()

    @property
    def pending(self) -> int:
        return sum(1 for _, future in self.sleepers if not future.done())

    @property
    def next_wake(self) -> float | None:
        """Seconds from now to the earliest sleeper's wake-up."""
        pending = [deadline for deadline, future in self.sleepers if not future.done()]
        return min(pending) - self.now if pending else None


def generate_key(alg: str) -> PrivateKey:
    """A fresh private key for ``ES256``, ``RS256`` or ``Ed25519`` (or ``EdDSA``, its older
    name)."""
    return jwk.generate_private_key(alg)


def public_jwk(key: PrivateKey, kid: str, alg: str) -> dict[str, Any]:
    """The public JWK of ``key``, with ``kid``, ``alg`` and ``use: sig``."""
    return {**jwk.public_jwk(key.public_key()), "kid": kid, "alg": alg, "use": "sig"}


def private_jwk(key: PrivateKey, kid: str, alg: str) -> dict[str, Any]:
    """The private JWK of ``key`` (what a service's ``CLIENT_KEY_FILE`` holds), with ``kid``
    and ``alg``: :func:`public_jwk` plus the private members."""
    return {**jwk.private_jwk(key, alg), "kid": kid}


class FakeIssuer:
    """An auth service in a box: signing keys, tokens, discovery and a JWKS over a mock transport.

    Knobs a test may turn: ``max_age`` (``Cache-Control``; ``None`` sends none), ``fail_with``
    (an HTTP status, or an exception the transport raises), ``gate`` (an ``asyncio.Event`` the
    JWKS answer waits for, to hold a fetch in flight) and ``extra_entries`` (raw JWKS entries).
    And for the revocation feed: ``feed_listed`` (discovery lists it), ``feed_tokens`` (bearer
    tokens it accepts; empty: anonymous), ``feed_page_size``, ``feed_fail_with`` (like
    ``fail_with``, for the feed alone), ``feed_accepts`` (a check of the feed's bearer token,
    e.g. that it is a service token with ``revocations:read``). For the token endpoint:
    ``token_ttl``, ``token_fail_with`` (like ``fail_with``, for ``/token`` alone),
    ``token_error`` (answer every token request with this RFC 6749 error, a 400) and
    ``token_gate`` (an ``asyncio.Event`` the answer waits for).
    """

    def __init__(
        self,
        issuer: str = "https://auth.example.test",
        *,
        clock: Callable[[], float] | None = None,
        algorithms: tuple[str, ...] = ("ES256",),
        jwks_path: str = "/.well-known/jwks.json",
        feed: bool = False,
        token_endpoint: bool = False,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = issuer + jwks_path
        self.clock = clock or ManualClock()
        self.keys: dict[str, tuple[str, PrivateKey]] = {}
        self.max_age: int | None = 300
        self.fail_with: int | Exception | None = None
        self.gate: asyncio.Event | None = None
        self.extra_entries: list[Any] = []
        self.requests: list[httpx.Request] = []
        self.feed_url = issuer + "/revocations"
        self.feed_listed = feed
        self.feed_tokens: set[str] = set()
        self.feed_page_size = 1000
        self.feed_fail_with: int | Exception | None = None
        self.feed_events: list[dict[str, Any]] = []
        self.feed_waiting = 0  # long polls held right now
        self.feed_accepts: Callable[[str], bool] | None = None
        self.token_url = issuer + "/token"
        self.token_endpoint_listed = token_endpoint
        self.token_ttl = 300
        self.token_fail_with: int | Exception | None = None
        self.token_error: str | None = None
        self.token_gate: asyncio.Event | None = None
        self.token_grants: list[dict[str, Any]] = []
        self._feed_epoch = uuid.uuid4().hex[:8]
        self._last_event_id = 0
        self._feed_changed = asyncio.Event()
        for alg in algorithms:
            self.add_key(alg)

    # -- keys and tokens --------------------------------------------------------------------

    def add_key(
        self, alg: str = "ES256", kid: str | None = None, key: PrivateKey | None = None
    ) -> str:
        """Publish a new signing key (``key``: reuse one, e.g. a slow-to-make RSA key)."""
        kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:12]}"
        self.keys[kid] = (alg, key or generate_key(alg))
        return kid

    def remove_key(self, kid: str) -> None:
        del self.keys[kid]

    @property
    def default_kid(self) -> str:
        return next(iter(self.keys))

    def jwks(self) -> dict[str, Any]:
        entries = [public_jwk(key, kid, alg) for kid, (alg, key) in self.keys.items()]
        return {"keys": entries + self.extra_entries}

    def claims(self, *, ttl: float = 300, **overrides: Any) -> dict[str, Any]:
        """Typical access-token claims; ``None`` in ``overrides`` removes a claim."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "user-1",
            "aud": ["mail"],
            "exp": now + int(ttl),
            "iat": now,
            "jti": uuid.uuid4().hex,
            "sid": "session-1",
            "client_id": "gatepass-app",
            "scope": "mail:read",
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self,
        *,
        kid: str | None = None,
        headers: Mapping[str, Any] | None = None,
        ttl: float = 300,
        **claims: Any,
    ) -> str:
        """A signed access token (``typ: at+jwt``) with the key ``kid`` (default: the first)."""
        kid = kid or self.default_kid
        alg, key = self.keys[kid]
        header = {"kid": kid, "typ": "at+jwt", **(headers or {})}
        payload = json.dumps(self.claims(ttl=ttl, **claims), separators=(",", ":")).encode()
        return _JWS.encode(payload, key, algorithm=alg, headers=header)

    # -- the revocation feed ----------------------------------------------------------------

    def revoke_session(self, sid: str, *, expires_at: float | None = None) -> int:
        """Publish a ``session`` event (logout); returns its id."""
        return self._publish("session", sid=sid, expires_at=self._expiry(expires_at))

    def revoke_user(
        self, sub: str, *, not_before: float | None = None, expires_at: float | None = None
    ) -> int:
        """Publish a ``user`` event: tokens of ``sub`` issued before ``not_before`` (default:
        the next second, so every token issued until now) are refused."""
        not_before = int(self.clock()) + 1 if not_before is None else not_before
        return self._publish(
            "user", sub=sub, not_before=not_before, expires_at=self._expiry(expires_at)
        )

    def revoke_client(
        self, client_id: str, *, not_before: float | None = None, expires_at: float | None = None
    ) -> int:
        """Publish a ``client`` event (a registered client disabled or removed): tokens whose
        ``client_id`` is ``client_id`` issued before ``not_before`` (default: the next second)
        are refused: the client's own service tokens and those it got by token exchange."""
        not_before = int(self.clock()) + 1 if not_before is None else not_before
        return self._publish(
            "client",
            client_id=client_id,
            not_before=not_before,
            expires_at=self._expiry(expires_at),
        )

    def revoke_jti(self, jti: str, *, expires_at: float | None = None) -> int:
        """Publish a ``jti`` event (one token)."""
        return self._publish("jti", jti=jti, expires_at=self._expiry(expires_at))

    def revoke_key(self, kid: str, *, expires_at: float | None = None) -> int:
        """Publish a ``key`` event (the JWKS keeps listing the key unless removed)."""
        return self._publish("key", kid=kid, expires_at=self._expiry(expires_at))

    def publish(self, event: Mapping[str, Any]) -> int:
        """Publish a raw event (an unknown kind, a malformed one); it gets the next id."""
        return self._publish(**event)

    def new_feed_epoch(self) -> None:
        """As if the auth service's database were restored: every cursor now gets a snapshot."""
        self._feed_epoch = uuid.uuid4().hex[:8]
        self._wake_feed()

    @property
    def feed_cursor(self) -> str:
        """The cursor an edge holds once it has every event published so far."""
        return f"{self._feed_epoch}:{self._last_event_id}"

    @property
    def feed_requests(self) -> int:
        return self.count(httpx.URL(self.feed_url).path)

    def _expiry(self, expires_at: float | None) -> float:
        return int(self.clock()) + REVOCATION_TTL if expires_at is None else expires_at

    def _publish(self, kind: str, **fields: Any) -> int:
        self._last_event_id += 1
        self.feed_events.append({"id": self._last_event_id, "kind": kind, **fields})
        self._wake_feed()
        return self._last_event_id

    def _wake_feed(self) -> None:
        """Answer every waiting long poll (each waits on the event that was current)."""
        changed, self._feed_changed = self._feed_changed, asyncio.Event()
        changed.set()

    async def _feed_response(self, request: httpx.Request) -> httpx.Response:
        if isinstance(self.feed_fail_with, Exception):
            raise self.feed_fail_with
        if self.feed_fail_with is not None:
            return httpx.Response(self.feed_fail_with, text="unavailable")
        accepted = {f"Bearer {token}" for token in self.feed_tokens}
        authorization = request.headers.get("authorization", "")
        refused = (accepted and authorization not in accepted) or (
            self.feed_accepts is not None
            and not self.feed_accepts(authorization.removeprefix("Bearer "))
        )
        if refused:
            challenge = {"www-authenticate": 'Bearer realm="revocations"'}
            return httpx.Response(401, headers=challenge, json={"status": 401})
        try:
            after, wait = self._feed_query(request.url.params)
        except ValueError:
            return httpx.Response(400, json={"status": 400})
        if after is None:
            return self._feed_answer(self._live_events(0), snapshot=True)
        changed = self._feed_changed
        events = self._live_events(after)
        if not events and wait > 0:
            self.feed_waiting += 1
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await changed.wait()
            finally:
                self.feed_waiting -= 1
            after, _ = self._feed_query(request.url.params)
            if after is None:  # a new epoch while waiting
                return self._feed_answer(self._live_events(0), snapshot=True)
            events = self._live_events(after)
        etag = f'"{request.url.params["cursor"]}"'
        if not events and wait == 0 and request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"etag": etag})
        return self._feed_answer(events, snapshot=False)

    def _feed_query(self, params: httpx.QueryParams) -> tuple[int | None, float]:
        """The id after which to answer (``None``: a snapshot), and the wait; ``ValueError``
        for a malformed cursor or wait."""
        wait = float(params.get("wait", "0"))
        if not 0 <= wait <= 30:
            raise ValueError("wait out of range")
        cursor = params.get("cursor")
        if cursor is None:
            return None, wait
        epoch, colon, last = cursor.partition(":")
        if not colon or not last.isdigit():
            raise ValueError("malformed cursor")
        if epoch != self._feed_epoch or int(last) > self._last_event_id:
            return None, wait
        return int(last), wait

    def _live_events(self, after: int) -> list[dict[str, Any]]:
        now = self.clock()
        return [e for e in self.feed_events if e["id"] > after and e["expires_at"] > now]

    def _feed_answer(self, events: list[dict[str, Any]], *, snapshot: bool) -> httpx.Response:
        page = events[: self.feed_page_size]
        more = len(events) > len(page)
        last = page[-1]["id"] if more else self._last_event_id
        cursor = f"{self._feed_epoch}:{last}"
        body = {"cursor": cursor, "snapshot": snapshot, "more": more, "events": page}
        headers = {"etag": f'"{cursor}"', "cache-control": "no-store"}
        return httpx.Response(200, json=body, headers=headers)

    # -- the token endpoint -----------------------------------------------------------------

    def decode(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """The claims of a token this issuer signed (its keys, its clock); ``jwt.InvalidTokenError``
        if it did not sign it, or it expired."""
        kid = jwt.get_unverified_header(token).get("kid")
        if kid not in self.keys:
            raise jwt.InvalidTokenError("unknown kid")
        alg, key = self.keys[kid]
        signed = _JWS.decode_complete(token, key.public_key(), algorithms=[alg])
        claims: dict[str, Any] = json.loads(signed["payload"])
        if claims.get("iss") != self.issuer:
            raise jwt.InvalidIssuerError("not this issuer")
        if verify_exp and claims["exp"] <= self.clock():
            raise jwt.ExpiredSignatureError("expired")
        return claims

    async def _token_response(self, request: httpx.Request) -> httpx.Response:
        if isinstance(self.token_fail_with, Exception):
            raise self.token_fail_with
        if self.token_fail_with is not None:
            return httpx.Response(self.token_fail_with, text="unavailable")
        if self.token_gate is not None:
            await self.token_gate.wait()
        form = urllib.parse.parse_qs(request.content.decode(), keep_blank_values=True)
        client_id, method = _token_client(request, form)
        grant_type = _one(form, "grant_type")
        scope = _one(form, "scope")
        audiences = form.get("resource", []) + form.get("audience", [])
        self.token_grants.append(
            {
                "grant_type": grant_type,
                "client_id": client_id,
                "auth_method": method,
                "audience": audiences,
                "scope": scope,
                "client_assertion": _one(form, "client_assertion"),
            }
        )
        if self.token_error is not None:
            return _oauth_error(self.token_error)
        if client_id is None:
            return _oauth_error("invalid_client", status=401)
        if not audiences:
            return _oauth_error("invalid_target")
        if grant_type == "client_credentials":
            return self._service_token(client_id, audiences, scope or "")
        if grant_type == TOKEN_EXCHANGE:
            return self._exchanged_token(client_id, _one(form, "subject_token"), audiences, scope)
        return _oauth_error("unsupported_grant_type")

    def _service_token(self, client_id: str, audiences: list[str], scope: str) -> httpx.Response:
        token = self.token(
            sub=client_id,
            client_id=client_id,
            sid=None,
            aud=audiences,
            scope=scope,
            ttl=self.token_ttl,
        )
        return _token_answer(token, self.token_ttl, scope)

    def _exchanged_token(
        self, client_id: str, subject_token: str | None, audiences: list[str], scope: str | None
    ) -> httpx.Response:
        try:
            subject = self.decode(subject_token or "")
        except (jwt.InvalidTokenError, KeyError):
            return _oauth_error("invalid_grant")
        if not isinstance(subject.get("sid"), str):
            return _oauth_error("invalid_grant")  # a service's own token is no user's
        held = set(str(subject.get("scope", "")).split())
        asked = held if scope is None else set(scope.split())
        if not asked <= held:
            return _oauth_error("invalid_scope")
        act: dict[str, Any] = {"sub": client_id}
        if isinstance(subject.get("act"), dict):
            act["act"] = subject["act"]
        ttl = min(self.token_ttl, int(subject["exp"]) - int(self.clock()))
        granted = " ".join(sorted(asked))
        token = self.token(
            sub=subject["sub"],
            sid=subject["sid"],
            client_id=client_id,
            aud=audiences,
            scope=granted,
            act=act,
            ttl=ttl,
        )
        return _token_answer(token, ttl, granted, exchanged=True)

    # -- HTTP -------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport())

    def count(self, path: str) -> int:
        """How many requests reached ``path``."""
        return sum(1 for request in self.requests if request.url.path == path)

    @property
    def jwks_requests(self) -> int:
        return self.count(httpx.URL(self.jwks_url).path)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if isinstance(self.fail_with, Exception):
            raise self.fail_with
        if self.fail_with is not None:
            return httpx.Response(self.fail_with, text="unavailable")
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self._discovery())
        if str(request.url) == self.jwks_url:
            return await self._jwks_response(request)
        if str(request.url.copy_with(query=None)) == self.feed_url:
            return await self._feed_response(request)
        if self.token_endpoint_listed and str(request.url) == self.token_url:
            if request.method != "POST":
                return httpx.Response(405)
            return await self._token_response(request)
        return httpx.Response(404)

    def _discovery(self) -> dict[str, Any]:
        document = {"issuer": self.issuer, "jwks_uri": self.jwks_url}
        if self.feed_listed:
            document["gatepass_revocation_feed_endpoint"] = self.feed_url
        if self.token_endpoint_listed:
            document["token_endpoint"] = self.token_url
        return document

    async def _jwks_response(self, request: httpx.Request) -> httpx.Response:
        if self.gate is not None:
            await self.gate.wait()
        body = json.dumps(self.jwks()).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        headers = {"etag": etag, "content-type": "application/json"}
        if self.max_age is not None:
            headers["cache-control"] = f"public, max-age={self.max_age}"
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers=headers)
        return httpx.Response(200, content=body, headers=headers)


def _one(form: Mapping[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _token_client(request: httpx.Request, form: Mapping[str, list[str]]) -> tuple[str | None, str]:
    """Who a token request says it comes from (not checked: the fake authenticates nobody)."""
    assertion = _one(form, "client_assertion")
    if assertion is not None:
        claims = jwt.decode(assertion, options={"verify_signature": False})
        return claims.get("sub"), "private_key_jwt"
    authorization = request.headers.get("authorization", "")
    if authorization.startswith("Basic "):
        pair = base64.b64decode(authorization.removeprefix("Basic ")).decode()
        return urllib.parse.unquote_plus(pair.partition(":")[0]), "client_secret_basic"
    return _one(form, "client_id"), "none"


def _oauth_error(error: str, *, status: int = 400) -> httpx.Response:
    headers = {"cache-control": "no-store"}
    if status == 401:
        headers["www-authenticate"] = 'Basic realm="token"'
    return httpx.Response(status, json={"error": error}, headers=headers)


def _token_answer(token: str, ttl: int, scope: str, *, exchanged: bool = False) -> httpx.Response:
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": scope,
    }
    if exchanged:
        body["issued_token_type"] = ACCESS_TOKEN_TYPE
    return httpx.Response(200, json=body, headers={"cache-control": "no-store"})


class HangingEngine:
    """An engine whose connections never come: a database that accepts and never answers."""

    def connect(self) -> HangingEngine:
        return self

    async def __aenter__(self) -> NoReturn:
        await asyncio.Event().wait()
        raise AssertionError("an event nobody sets was set")

    async def __aexit__(self, *exc_info: object) -> None:
        return None
