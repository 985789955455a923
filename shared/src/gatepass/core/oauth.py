"""A service's own tokens: client authentication, client credentials, token exchange.

An edge that calls another service needs a token for it: its own (``client_credentials``, RFC 6749
section 4.4: ``sub`` = its client id) or one that acts for the user who called it (token
exchange, RFC 8693: the user's ``sub``, ``act`` = the service). Both come from the issuer's token
endpoint, found in its discovery document by the reader the key set uses
(:func:`gatepass.core.fetch.read_discovery`).

- :class:`ClientIdentity`: how the service proves who it is: a private JWK (``private_key_jwt``,
  RFC 7523: a short assertion signed here with ``cryptography``, a new ``jti`` each request) or
  a secret (``client_secret_basic``, RFC 6749 section 2.3.1).
- :class:`TokenEndpoint`: one request per token, with bounded retries and a short jittered
  backoff on network errors and 5xx; an RFC 6749 error answer is a
  :class:`~gatepass.core.errors.TokenRequestError` carrying its code.
- :class:`ServiceTokens`: one client-credentials token, cached and renewed before it expires
  (once 70 to 80 % of its life has passed), one renewal in flight shared by every caller; while
  the endpoint fails, the old token serves as long as it is valid, and the renewal is retried
  with a backoff.
- :class:`Exchanger`: exchanged tokens, cached per (subject token, audience, scopes), keyed by a
  SHA-256 digest (the user's token is not kept), bounded LRU, one exchange in flight per key; a
  short-lived one (the user's token ends soon) is kept too, for the first half of its life.
- :class:`TokenAuth`: an ``httpx.Auth`` that attaches either (``Authorization: Bearer``).
- A token its audience refused (a 401: revoked since it was issued, its client disabled and
  enabled again, its key revoked) can be handed back (``refused``): the cache forgets it, so
  the next call gets a new one, instead of presenting a dead token until it expires. Only a
  token older than ``REFUSAL_MIN_AGE`` is forgotten, so a peer that refuses every token (a
  misconfiguration) does not turn each call into a token request.

No token, secret or key ever appears in an error message, a log line or a ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
import random as _random
import secrets
import string
import urllib.parse
from collections import OrderedDict
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gatepass.core._b64 import b64url_decode
from gatepass.core.clock import Clock, Sleep, system_clock
from gatepass.core.errors import (
    TokenEndpointError,
    TokenEndpointUnavailableError,
    TokenRequestError,
)
from gatepass.core.fetch import FetchFailed, _check_url, read_discovery, request_limited
from gatepass.core.jwks import MIN_RSA_BITS, is_wellformed_kid

__all__ = [
    "ClientIdentity",
    "Exchanger",
    "IssuedToken",
    "ServiceTokens",
    "TokenAuth",
    "TokenEndpoint",
]

log = logging.getLogger("gatepass.core.oauth")

CLIENT_CREDENTIALS: Final = "client_credentials"
TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a URN
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME: Final = 60
"""Seconds an RFC 7523 assertion is valid: it is made for one request, sent at once."""

DEFAULT_EXPIRES_IN: Final = 60.0
"""The life assumed of a token whose answer has no ``expires_in`` (RFC 6749 only recommends it)."""

_MAX_ANSWER_BYTES = 64 * 1024
_BACKOFF_BASE = 0.1  # seconds before the first retry of a token request (then 0.2, 0.4...)
_RENEW_AT = 0.8  # a service token is renewed once this share of its life has passed...
_RENEW_JITTER = 0.1  # ... minus up to this share, so that replicas do not renew together
_RENEW_RETRY_MIN, _RENEW_RETRY_MAX = 1.0, 30.0
_STILL_VALID_MARGIN = 5.0  # an old token within this of its expiry is not used any more
REFUSAL_MIN_AGE = 10.0
"""Seconds a token must have been held before a refusal by its audience makes the cache forget
it (a younger one was issued after any revocation that could explain the refusal)."""
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-._~+/=")
_ERROR_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}  # RFC 6749 5.2
_MAX_SAFE_INT = 2**53


# -- who the service is -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signer:
    """A private key bound to its ``kid`` and one algorithm, as RFC 7515 signs with it."""

    kid: str
    alg: str
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = field(
        repr=False
    )

    def sign(self, data: bytes) -> bytes:
        key = self.key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS: raw r||s, not DER
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return key.sign(data)


class ClientIdentity:
    """How a service proves who it is at the token endpoint: a private JWK or a secret.

    Build it with :meth:`from_jwk`, :meth:`from_key_file` or :meth:`from_secret`. Its ``repr``
    names the client and the method, never the key or the secret.
    """

    __slots__ = ("_secret", "_signer", "client_id")

    def __init__(
        self, client_id: str, *, signer: _Signer | None = None, secret: str | None = None
    ) -> None:
        if not isinstance(client_id, str) or not client_id:
            raise ValueError("the client id must be a non-empty string")
        if (signer is None) == (secret is None):
            raise ValueError("a client identity has a key or a secret: exactly one")
        self.client_id = client_id
        self._signer = signer
        self._secret = secret

    @classmethod
    def from_jwk(cls, client_id: str, private_jwk: Mapping[str, Any]) -> ClientIdentity:
        """``private_key_jwt`` (RFC 7523) with this private JWK, which names its ``kid`` and its
        ``alg`` (``ES256`` on P-256, ``RS256`` of 2048 bits or more, or ``Ed25519`` on Ed25519;
        a key made under RFC 9864's deprecated name ``EdDSA`` keeps signing under that name, the
        one it was registered with). ``ValueError`` saying what is wrong with it (never a value
        of it) otherwise."""
        return cls(client_id, signer=_signer(private_jwk))

    @classmethod
    def from_key_file(cls, client_id: str, path: Path) -> ClientIdentity:
        """:meth:`from_jwk` with the JSON file at ``path`` (the JWK, or a JWK Set of that one
        key). ``OSError`` if it cannot be read; ``ValueError`` if it is no usable private JWK."""
        raw = Path(path).read_bytes()
        try:
            document = orjson.loads(raw)
        except ValueError:
            raise ValueError("the key file is not JSON") from None
        if isinstance(document, dict) and isinstance(document.get("keys"), list):
            keys = document["keys"]
            if len(keys) != 1:
                raise ValueError("a key file holding a JWK Set must hold exactly one key")
            document = keys[0]
        if not isinstance(document, dict):
            raise ValueError("the key file does not hold a JSON object")
        return cls.from_jwk(client_id, document)

    @classmethod
    def from_secret(cls, client_id: str, secret: str) -> ClientIdentity:
        """``client_secret_basic``: the id and secret, each form-encoded, in HTTP Basic."""
        if not isinstance(secret, str) or not secret:
            raise ValueError("the client secret must be a non-empty string")
        return cls(client_id, secret=secret)

    @property
    def method(self) -> str:
        """The token endpoint authentication method (RFC 7591 names)."""
        return "private_key_jwt" if self._signer is not None else "client_secret_basic"

    def assertion(self, audience: str, now: float) -> str:
        """A signed RFC 7523 client assertion for ``audience`` (the token endpoint's URL):
        ``iss`` = ``sub`` = the client id, ``iat``, ``exp`` a minute later, a random ``jti``."""
        if self._signer is None:
            raise ValueError("a client with a secret signs no assertion")
        header = {"alg": self._signer.alg, "kid": self._signer.kid, "typ": "JWT"}
        issued = int(now)
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
            "jti": secrets.token_urlsafe(24),
        }
        signing_input = _b64url(orjson.dumps(header)) + b"." + _b64url(orjson.dumps(claims))
        signature = _b64url(self._signer.sign(signing_input))
        return (signing_input + b"." + signature).decode("ascii")

    def authenticate(self, token_url: str, now: float) -> tuple[dict[str, str], dict[str, str]]:
        """What one request to ``token_url`` carries to authenticate: form fields and headers."""
        if self._signer is not None:
            fields = {
                "client_id": self.client_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(token_url, now),
            }
            return fields, {}
        assert self._secret is not None
        pair = f"{_form_encode(self.client_id)}:{_form_encode(self._secret)}"
        basic = base64.b64encode(pair.encode("utf-8")).decode("ascii")
        return {}, {"authorization": f"Basic {basic}"}

    def __repr__(self) -> str:
        return f"ClientIdentity(client_id={self.client_id!r}, method={self.method!r})"


def _form_encode(value: str) -> str:
    """RFC 6749 section 2.3.1: ``application/x-www-form-urlencoded`` before Basic."""
    return urllib.parse.quote_plus(value, safe="")


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _signer(jwk: Mapping[str, Any]) -> _Signer:
    """The private key of ``jwk``, checked. Errors name members, never their values."""
    if not isinstance(jwk, Mapping):
        raise ValueError("the private JWK is not a JSON object")
    kid, alg, kty = jwk.get("kid"), jwk.get("alg"), jwk.get("kty")
    if not isinstance(kid, str) or not is_wellformed_kid(kid):
        raise ValueError("the private JWK needs a 'kid' (1-128 characters of A-Z a-z 0-9 ._~+/=:-)")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("the private JWK is not for signatures ('use' is not 'sig')")
    expected = {
        "ES256": ("EC", "P-256"),
        "RS256": ("RSA", None),
        "Ed25519": ("OKP", "Ed25519"),
        "EdDSA": ("OKP", "Ed25519"),
    }
    if alg not in expected:
        raise ValueError("the private JWK's 'alg' must be ES256, RS256, Ed25519 or EdDSA")
    if (kty, jwk.get("crv") if kty != "RSA" else None) != expected[alg]:
        raise ValueError(f"the private JWK's 'kty' (and 'crv') do not fit its alg {alg}")
    if "d" not in jwk:
        raise ValueError("the JWK is a public key: a private one (with 'd') is needed")
    try:
        key = _PRIVATE_BUILDERS[alg](jwk)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ValueError(f"the private JWK is not a valid {alg} key") from None
    return _Signer(kid, alg, key)


def _int(jwk: Mapping[str, Any], name: str, size: int | None = None) -> int:
    return int.from_bytes(_bytes(jwk, name, size), "big")


def _bytes(jwk: Mapping[str, Any], name: str, size: int | None = None) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise ValueError(name)
    raw = b64url_decode(value.encode("ascii"))
    if size is not None and len(raw) != size:
        raise ValueError(name)
    return raw


def _ec_private(jwk: Mapping[str, Any]) -> ec.EllipticCurvePrivateKey:
    public = ec.EllipticCurvePublicNumbers(_int(jwk, "x", 32), _int(jwk, "y", 32), ec.SECP256R1())
    return ec.EllipticCurvePrivateNumbers(_int(jwk, "d", 32), public).private_key()


def _rsa_private(jwk: Mapping[str, Any]) -> rsa.RSAPrivateKey:
    n, e, d = _int(jwk, "n"), _int(jwk, "e"), _int(jwk, "d")
    if n.bit_length() < MIN_RSA_BITS:
        raise ValueError("n")
    if all(name in jwk for name in ("p", "q")):
        p, q = _int(jwk, "p"), _int(jwk, "q")
    else:  # the primes may be left out (RFC 7518 section 6.3.2): recover them
        p, q = rsa.rsa_recover_prime_factors(n, e, d)
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, n),
    )
    return numbers.private_key()  # checks that the numbers make one key


def _okp_private(jwk: Mapping[str, Any]) -> ed25519.Ed25519PrivateKey:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(_bytes(jwk, "d", 32))
    if "x" in jwk and key.public_key().public_bytes_raw() != _bytes(jwk, "x", 32):
        raise ValueError("x")
    return key


_PRIVATE_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "ES256": _ec_private,
    "RS256": _rsa_private,
    "Ed25519": _okp_private,
    "EdDSA": _okp_private,
}


# -- the token endpoint ---------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    """An access token the token endpoint issued, and until when it is good."""

    access_token: str = field(repr=False)
    expires_at: float  # epoch seconds, from expires_in (counted from when it was asked)
    scope: frozenset[str]


class _Retry(Exception):
    """Internal: an attempt that may be repeated (network error, timeout, 5xx)."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome
        super().__init__(outcome)


class TokenEndpoint:
    """One issuer's token endpoint, for one client identity.

    ``token_url``: where it is (default: the ``token_endpoint`` of the issuer's discovery
    document, read once). ``timeout``: bound on one attempt (discovery included);
    ``retries``: how many more attempts a network error, a timeout or a 5xx gets, after a
    short jittered backoff (0.1 s, 0.2 s, ... each between half and all of it).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        issuer: str,
        identity: ClientIdentity,
        token_url: str | None = None,
        clock: Clock = system_clock,
        timeout: float = 5.0,
        retries: int = 2,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        _check_url(issuer)
        if token_url is not None:
            _check_url(token_url)
        if timeout <= 0 or retries < 0:
            raise ValueError("the timeout must be positive and the retries not negative")
        self.client = client
        self.issuer = issuer
        self.identity = identity
        self.timeout = timeout
        self.retries = retries
        self._token_url = token_url
        # An address given here may be one the issuer does not know itself by (a private
        # network's): assertions then name the issuer, which RFC 7523 section 3 allows.
        self._assertion_audience = None if token_url is None else issuer
        self._clock, self._sleep, self._random = clock, sleep, random

    async def client_credentials(
        self, *, audience: Sequence[str], scope: Sequence[str]
    ) -> IssuedToken:
        """A token of the service's own (RFC 6749 section 4.4) for ``audience`` (each an
        RFC 8707 ``resource``), with ``scope``."""
        form: dict[str, str | list[str]] = {"grant_type": CLIENT_CREDENTIALS}
        if scope:
            form["scope"] = " ".join(scope)
        if audience:
            form["resource"] = list(audience)
        return await self._request(form, scope)

    async def exchange(
        self, subject_token: str, *, audience: str, scope: Sequence[str]
    ) -> IssuedToken:
        """A token acting for the user of ``subject_token`` (RFC 8693), for ``audience``."""
        form: dict[str, str | list[str]] = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "audience": audience,
        }
        if scope:
            form["scope"] = " ".join(scope)
        return await self._request(form, scope)

    async def token_url(self) -> str:
        """The token endpoint's URL: given, or read from discovery (once it succeeded)."""
        if self._token_url is None:
            try:
                discovery = await read_discovery(self.client, self.issuer, _MAX_ANSWER_BYTES)
            except FetchFailed as exc:
                raise _Retry("discovery_error") from exc
            if discovery.token_endpoint is None:
                raise TokenEndpointUnavailableError(
                    "discovery_error", "The issuer's discovery document lists no token endpoint."
                )
            self._token_url = discovery.token_endpoint
        return self._token_url

    async def _request(
        self, form: Mapping[str, str | list[str]], scope: Sequence[str]
    ) -> IssuedToken:
        grant = form["grant_type"]
        for attempt in range(self.retries + 1):
            try:
                return await self._attempt(form, scope)
            except _Retry as exc:
                outcome = exc.outcome
            log.warning(
                "token request failed",
                extra={"grant": grant, "outcome": outcome, "attempt": attempt + 1},
            )
            if attempt < self.retries:
                backoff = _BACKOFF_BASE * 2.0**attempt
                await self._sleep(backoff * (0.5 + 0.5 * self._random()))
        raise TokenEndpointUnavailableError(outcome)

    async def _attempt(
        self, form: Mapping[str, str | list[str]], scope: Sequence[str]
    ) -> IssuedToken:
        asked_at = self._clock()
        try:
            async with asyncio.timeout(self.timeout):
                url = await self.token_url()
                audience = self._assertion_audience or url
                fields, headers = self.identity.authenticate(audience, asked_at)
                headers["accept"] = "application/json"
                response, body = await request_limited(
                    self.client,
                    "POST",
                    url,
                    headers,
                    _MAX_ANSWER_BYTES,
                    data={**form, **fields},
                    client_timeout=self.timeout,
                )
        except TimeoutError:
            raise _Retry("timeout") from None
        except FetchFailed as exc:
            if exc.outcome in ("network_error", "timeout"):
                raise _Retry(exc.outcome) from None
            raise TokenEndpointUnavailableError(exc.outcome) from None
        return _answer(response.status_code, body, asked_at, scope)


def _answer(status: int, body: bytes, asked_at: float, scope: Sequence[str]) -> IssuedToken:
    """The token of a 200; the RFC 6749 error of a 4xx; a retry for a 5xx."""
    if status >= 500:
        raise _Retry("http_error")
    document = _json_object(body)
    if status != 200:
        error = None if document is None else document.get("error")
        if status in (400, 401, 403) and _is_error_code(error):
            assert isinstance(error, str)
            description = None if document is None else document.get("error_description")
            raise TokenRequestError(error, status=status, error_description=_clean(description))
        raise TokenEndpointUnavailableError(
            "http_error", f"The token endpoint answered with status {status}."
        )
    if document is None:
        raise _invalid("the answer is not a JSON object")
    return _issued(document, asked_at, scope)


def _issued(document: Mapping[str, Any], asked_at: float, scope: Sequence[str]) -> IssuedToken:
    token, token_type = document.get("access_token"), document.get("token_type")
    if not isinstance(token, str) or not token or not _TOKEN_CHARS.issuperset(token):
        raise _invalid("no usable access_token")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise _invalid("the token is not a bearer token")
    expires_in = document.get("expires_in", DEFAULT_EXPIRES_IN)
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int | float)
        or not 0 < expires_in < _MAX_SAFE_INT
    ):
        raise _invalid("expires_in is not a positive number")
    granted = document.get("scope")
    if granted is not None and not isinstance(granted, str):
        raise _invalid("scope is not a string")
    # RFC 6749 section 5.1: no scope in the answer means the scope asked for.
    scopes = frozenset(scope) if granted is None else frozenset(granted.split())
    return IssuedToken(token, asked_at + float(expires_in), scopes)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = orjson.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _is_error_code(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and _ERROR_CHARS.issuperset(value)


def _clean(description: object) -> str | None:
    """The server's ``error_description``: printable ASCII, 200 characters at most."""
    if not isinstance(description, str):
        return None
    return "".join(c for c in description if " " <= c <= "~")[:200] or None


def _invalid(detail: str) -> TokenEndpointUnavailableError:
    return TokenEndpointUnavailableError(
        "invalid_answer", f"The token endpoint's answer is not usable: {detail}."
    )


# -- cached tokens --------------------------------------------------------------------------


class TokenAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` on each request, the token from ``token`` (a cache).

    For ``httpx.AsyncClient`` only: the token may have to be fetched first. ``audience`` names
    the service the token is for (the peer a failed call is blamed on). Used on its own, each
    request asks ``token`` (an answer from the cache, mostly); :class:`gatepass.calls.ServiceCalls`
    asks it once per call instead, and sends every attempt of the call with that token.
    """

    def __init__(
        self,
        token: Callable[[], Awaitable[str]],
        audience: str,
        refused: Callable[[str], bool] | None = None,
    ) -> None:
        self.token = token
        self.audience = audience
        self._refused = refused

    def refused(self, token: str) -> bool:
        """``token`` was refused by its audience (a 401): True if the cache behind it forgot it,
        so that asking again gets a new one (see the module's documentation)."""
        return self._refused is not None and self._refused(token)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["authorization"] = f"Bearer {await self.token()}"
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("gatepass tokens are fetched asynchronously: use httpx.AsyncClient")

    def __repr__(self) -> str:
        return f"TokenAuth(audience={self.audience!r})"


class ServiceTokens:
    """A client-credentials token for ``audience`` and ``scope``, kept and renewed ahead.

    :meth:`get` answers from the cache until 70 to 80 % of the token's life has passed (the
    jitter spreads replicas apart), then renews it: one request in flight, which every caller
    shares and none can cancel. If the renewal fails while the old token is still valid, the old
    token is used, and the renewal is tried again after a backoff (1 s, doubling up to 30 s);
    without a valid token the error is raised.
    """

    def __init__(
        self,
        endpoint: TokenEndpoint,
        *,
        audience: Sequence[str],
        scope: Sequence[str],
        clock: Clock = system_clock,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.endpoint = endpoint
        self.audience = tuple(audience)
        self.scope = tuple(scope)
        self._clock, self._random = clock, random
        self._token: IssuedToken | None = None
        self._obtained_at = -math.inf
        self._renew_at = -math.inf
        self._retry_at = -math.inf
        self._failures = 0
        self._inflight: asyncio.Task[IssuedToken] | None = None

    async def get(self) -> str:
        """The token (an ``access_token`` string), from the cache or renewed."""
        now = self._clock()
        token = self._token
        if token is not None and now < self._renew_at:
            return token.access_token
        if token is not None and now < self._retry_at and self._still_valid(token, now):
            return token.access_token  # the last renewal failed: keep this one for now
        try:
            return (await self._renewed()).access_token
        except TokenEndpointError:
            if token is not None and self._still_valid(token, self._clock()):
                return token.access_token
            raise

    def auth(self) -> httpx.Auth:
        """An ``httpx.Auth`` that attaches the token."""
        return TokenAuth(self.get, " ".join(self.audience), self.refused)

    def refused(self, token: str) -> bool:
        """Forget ``token``, refused by its audience, if it is the one held and not younger
        than ``REFUSAL_MIN_AGE``; True if forgotten (the next :meth:`get` asks for a new one)."""
        held = self._token
        if held is None or held.access_token != token:
            return False
        if self._clock() - self._obtained_at < REFUSAL_MIN_AGE:
            return False
        self._token, self._renew_at, self._retry_at = None, -math.inf, -math.inf
        return True

    async def aclose(self) -> None:
        """Cancel a renewal in flight."""
        await _cancel(self._inflight)

    @staticmethod
    def _still_valid(token: IssuedToken, now: float) -> bool:
        return now < token.expires_at - _STILL_VALID_MARGIN

    async def _renewed(self) -> IssuedToken:
        if self._inflight is None:
            self._inflight = _shared_task(self._renew(), "gatepass-service-token")
        return await asyncio.shield(self._inflight)

    async def _renew(self) -> IssuedToken:
        try:
            started = self._clock()
            try:
                issued = await self.endpoint.client_credentials(
                    audience=self.audience, scope=self.scope
                )
            except TokenEndpointError:
                self._failures += 1
                backoff = min(
                    _RENEW_RETRY_MIN * 2.0 ** min(self._failures - 1, 16), _RENEW_RETRY_MAX
                )
                self._retry_at = self._clock() + backoff * (0.5 + 0.5 * self._random())
                raise
            life = max(issued.expires_at - started, 0.0)
            self._token, self._failures, self._retry_at = issued, 0, -math.inf
            self._obtained_at = started
            self._renew_at = started + life * (_RENEW_AT - _RENEW_JITTER * self._random())
            return issued
        finally:
            self._inflight = None


_ExchangeKey = tuple[bytes, str, tuple[str, ...]]
_ExchangeEntry = tuple[IssuedToken, float, float]  # the token, until when it is handed out,
# and when it was asked for


class Exchanger:
    """Tokens that act for a user (RFC 8693), cached per (user token, audience, scopes).

    The key holds a SHA-256 digest of the user's token, not the token. An entry serves until
    ``margin`` seconds before it expires, or, for a token whose whole life is shorter than
    twice the margin, until half of its life has passed: an exchanged token never outlives the
    user's, so in each user token's last half-minute every call would otherwise cost an
    exchange. At most ``capacity`` entries (the least recently used leave first); one exchange
    in flight per key, shared by its callers. A failed exchange is not remembered: the next
    call asks again.
    """

    def __init__(
        self,
        endpoint: TokenEndpoint,
        *,
        capacity: int = 10_000,
        clock: Clock = system_clock,
        margin: float = 30.0,
    ) -> None:
        if capacity < 1 or margin < 0:
            raise ValueError("the capacity must be positive and the margin not negative")
        self.endpoint = endpoint
        self.capacity = capacity
        self.margin = margin
        self._clock = clock
        self._cache: OrderedDict[_ExchangeKey, _ExchangeEntry] = OrderedDict()
        self._inflight: dict[_ExchangeKey, asyncio.Task[IssuedToken]] = {}

    def __len__(self) -> int:
        return len(self._cache)

    async def get(self, subject_token: str, *, audience: str, scope: Sequence[str]) -> str:
        """A token for ``audience`` with ``scope``, acting for the user of ``subject_token``."""
        key = _exchange_key(subject_token, audience, scope)
        scopes = key[2]
        cached = self._cache.get(key)
        if cached is not None:
            issued, use_until, _ = cached
            if self._clock() < use_until:
                self._cache.move_to_end(key)
                return issued.access_token
            del self._cache[key]
        task = self._inflight.get(key)
        if task is None:
            exchange = self._exchange(key, subject_token, audience, scopes)
            task = self._inflight[key] = _shared_task(exchange, "gatepass-token-exchange")
        return (await asyncio.shield(task)).access_token

    def auth(self, subject_token: str, *, audience: str, scope: Sequence[str]) -> httpx.Auth:
        """An ``httpx.Auth`` that attaches the exchanged token."""

        async def token() -> str:
            return await self.get(subject_token, audience=audience, scope=scope)

        def refused(token: str) -> bool:
            return self.refused(subject_token, audience=audience, scope=scope, token=token)

        return TokenAuth(token, audience, refused)

    def refused(
        self, subject_token: str, *, audience: str, scope: Sequence[str], token: str
    ) -> bool:
        """Forget the exchanged ``token``, refused by its audience, if it is the one cached for
        these and not younger than ``REFUSAL_MIN_AGE``; True if forgotten (the next
        :meth:`get` exchanges again, and the issuer decides anew)."""
        key = _exchange_key(subject_token, audience, scope)
        cached = self._cache.get(key)
        if cached is None or cached[0].access_token != token:
            return False
        if self._clock() - cached[2] < REFUSAL_MIN_AGE:
            return False
        del self._cache[key]
        return True

    async def aclose(self) -> None:
        """Cancel the exchanges in flight."""
        for task in list(self._inflight.values()):
            await _cancel(task)

    async def _exchange(
        self, key: _ExchangeKey, subject_token: str, audience: str, scope: tuple[str, ...]
    ) -> IssuedToken:
        try:
            asked_at = self._clock()
            issued = await self.endpoint.exchange(subject_token, audience=audience, scope=scope)
            life = issued.expires_at - asked_at
            use_until = issued.expires_at - min(self.margin, life / 2)
            if self._clock() < use_until:
                self._cache[key] = (issued, use_until, asked_at)
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
            return issued
        finally:
            self._inflight.pop(key, None)


def _exchange_key(subject_token: str, audience: str, scope: Sequence[str]) -> _ExchangeKey:
    """The cache key: a digest of the user's token (not the token), the audience, the scopes in
    one order."""
    digest = hashlib.sha256(subject_token.encode()).digest()
    return (digest, audience, tuple(sorted(set(scope))))


def _shared_task(
    coroutine: Coroutine[Any, Any, IssuedToken], name: str
) -> asyncio.Task[IssuedToken]:
    """A task its callers await through ``asyncio.shield``: a caller cancelled (its request
    timed out) does not cancel it for the others. Its error is marked seen even if every
    caller has gone."""
    task = asyncio.create_task(coroutine, name=name)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return task


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait([task])
