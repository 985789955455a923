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
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

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
    """A fresh private key for ``ES256``, ``RS256`` or ``EdDSA``."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {alg!r}")


def public_jwk(key: PrivateKey, kid: str, alg: str) -> dict[str, Any]:
    """The public JWK of ``key``, with ``kid``, ``alg`` and ``use: sig``."""
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        members = {"kty": "EC", "crv": "P-256", "x": _b64(numbers.x, 32), "y": _b64(numbers.y, 32)}
    elif isinstance(public, rsa.RSAPublicKey):
        rsa_numbers = public.public_numbers()
        members = {"kty": "RSA", "n": _b64(rsa_numbers.n), "e": _b64(rsa_numbers.e)}
    else:
        members = {"kty": "OKP", "crv": "Ed25519", "x": _b64url(public.public_bytes_raw())}
    return {**members, "kid": kid, "alg": alg, "use": "sig"}


def _b64(number: int, size: int | None = None) -> str:
    length = size or (number.bit_length() + 7) // 8
    return _b64url(number.to_bytes(length, "big"))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeIssuer:
    """An auth service in a box: signing keys, tokens, discovery and a JWKS over a mock transport.

    Knobs a test may turn: ``max_age`` (``Cache-Control``; ``None`` sends none), ``fail_with``
    (an HTTP status, or an exception the transport raises), ``gate`` (an ``asyncio.Event`` the
    JWKS answer waits for, to hold a fetch in flight) and ``extra_entries`` (raw JWKS entries).
    And for the revocation feed: ``feed_listed`` (discovery lists it), ``feed_tokens`` (bearer
    tokens it accepts; empty: anonymous), ``feed_page_size``, ``feed_fail_with`` (like
    ``fail_with``, for the feed alone).
    """

    def __init__(
        self,
        issuer: str = "https://auth.example.test",
        *,
        clock: Callable[[], float] | None = None,
        algorithms: tuple[str, ...] = ("ES256",),
        jwks_path: str = "/.well-known/jwks.json",
        feed: bool = False,
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
        return jwt.encode(self.claims(ttl=ttl, **claims), key, algorithm=alg, headers=header)

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
        if accepted and request.headers.get("authorization") not in accepted:
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
        return httpx.Response(404)

    def _discovery(self) -> dict[str, Any]:
        document = {"issuer": self.issuer, "jwks_uri": self.jwks_url}
        if self.feed_listed:
            document["gatepass_revocation_feed_endpoint"] = self.feed_url
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


class HangingEngine:
    """An engine whose connections never come: a database that accepts and never answers."""

    def connect(self) -> HangingEngine:
        return self

    async def __aenter__(self) -> NoReturn:
        await asyncio.Event().wait()
        raise AssertionError("an event nobody sets was set")

    async def __aexit__(self, *exc_info: object) -> None:
        return None
