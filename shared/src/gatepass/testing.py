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
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


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
    """

    def __init__(
        self,
        issuer: str = "https://auth.example.test",
        *,
        clock: Callable[[], float] | None = None,
        algorithms: tuple[str, ...] = ("ES256",),
        jwks_path: str = "/.well-known/jwks.json",
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
        return httpx.Response(404)

    def _discovery(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "jwks_uri": self.jwks_url}

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
