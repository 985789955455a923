"""Access-token verification: strict, local, and about as cheap as the signature math itself.

Three steps, each its own method: read the token (size, shape, header), check the signature with
the key its ``kid`` names (and only with that key's own algorithm), then validate the claims. The
token is parsed once, with no PyJWT round trip (``get_unverified_header`` followed by ``decode``
parses twice), and validated headers of accepted tokens are remembered, since every token signed by
one key carries the same header. A cache of verified tokens (:mod:`gatepass.core.tokencache`) lets a
hot token skip all of it.

What is refused, and why (RFC 8725, RFC 9068):

- ``alg`` outside the allow-list (so ``none`` and every HMAC algorithm, always), and an ``alg``
  other than the key's own: no algorithm confusion;
- ``jku``, ``x5u``, ``x5c``, ``jwk`` (the token naming its own key) and any ``crit``;
- ``typ`` other than ``at+jwt``: an ID token or another JWT is not an access token;
- a missing ``kid``, ``iss``, ``aud``, ``exp``, ``iat`` or ``sub``; the wrong issuer or audience;
  an expired token, or one not valid yet (``nbf``/``iat``), beyond the leeway.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn

import orjson

from gatepass.core._b64 import b64url_decode
from gatepass.core.clock import Clock, system_clock
from gatepass.core.errors import (
    BadSignatureError,
    ClaimError,
    DisallowedAlgorithmError,
    ExpiredTokenError,
    ForbiddenHeaderError,
    GatepassError,
    KeyAlgorithmMismatchError,
    MalformedTokenError,
    MissingClaimError,
    NotYetValidError,
    TokenTooLargeError,
    WrongAudienceError,
    WrongIssuerError,
    WrongTypeError,
)
from gatepass.core.jwks import SUPPORTED_ALGORITHMS, VerificationKey
from gatepass.core.keyset import KeySource
from gatepass.core.principal import AccessPrincipal
from gatepass.core.stats import AuthStats
from gatepass.core.tokencache import KEY_HASH as _digest
from gatepass.core.tokencache import TokenCache

Check = Callable[[AccessPrincipal], None]
"""An extra rule run on every freshly verified token (e.g. the revocation deny-set); raises a
``TokenError`` to refuse. Cached tokens skip it: whoever revokes also drops them from the cache."""

_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "x5c", "jwk", "crit"})
_MAX_HEADERS_REMEMBERED = 64
_MAX_SAFE_INT = 2**53
_OPTIONAL_STR = frozenset({str, type(None)})
_STR = itertools.repeat(str)  # all(map(isinstance, values, _STR)): every value is a str


class _Header(NamedTuple):
    alg: str
    kid: str


class Verifier:
    """Verifies access tokens from one issuer for one audience."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        algorithms: Iterable[str] = ("ES256", "RS256", "EdDSA"),
        leeway: float = 60.0,
        max_token_bytes: int = 8 * 1024,
        cache: TokenCache | None = None,
        stats: AuthStats | None = None,
        clock: Clock = system_clock,
        checks: Iterable[Check] = (),
    ) -> None:
        self._algorithms = _allow_list(algorithms)
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.max_token_bytes = max_token_bytes
        self.cache = cache
        self.stats = stats or AuthStats()
        self._clock = clock
        self._checks = tuple(checks)
        self._headers: dict[bytes, _Header] = {}
        if cache is not None:
            keys.add_listener(cache.drop_kids)

    def cached(self, token: bytes) -> AccessPrincipal | None:
        """The principal of a token verified before and still good, else ``None``: no await, no
        parsing, one digest and one dictionary lookup (the hot path of every request).

        A hit counts only while its key does: past the maximum staleness it is a miss, and
        :meth:`verify` answers "no usable keys" like for any other token.
        """
        cache = self.cache
        return None if cache is None else self._hit(cache, _digest(token).digest())

    def _hit(self, cache: TokenCache, digest: bytes) -> AccessPrincipal | None:
        now = self._clock()
        entry = cache.lookup(digest, now)
        if entry is None or self._keys.peek(entry[2], now) is None:
            return None
        stats = self.stats
        stats.cache_hits += 1
        stats.verified += 1
        return entry[0]

    async def verify(self, token: str | bytes, *, missed: bool = False) -> AccessPrincipal:
        """The caller of a valid token; raise a ``TokenError`` or ``KeysUnavailableError``.

        ``missed``: the caller has just looked ``token`` up with :meth:`cached` and missed, so
        the cache is not asked again (its digest is still computed once, for the insert).

        One coroutine, with the three steps inline: this is the per-request path, and every
        extra frame shows next to a 70 us signature check.
        """
        if isinstance(token, str):
            # One-to-one for any string; a non-ASCII byte then fails the base64 decoding.
            token = token.encode("utf-8", "surrogatepass")
        digest = None
        cache = self.cache
        if cache is not None:
            digest = _digest(token).digest()  # the lookup's key, and the insert's
            principal = None if missed else self._hit(cache, digest)
            if principal is not None:
                return principal
        now = self._clock()
        try:
            signed, head, payload, signature = self._read(token)
            header = self._headers.get(head) or self._parse_header(head)
            key = self._keys.peek(header.kid, now)
            if key is None:
                key = await self._keys.get(header.kid)  # the only await, and only for a new kid
                now = self._clock()
            self._check_signature(key, header.alg, signed, signature)
            principal = self._principal(_json_object(payload), now)
        except GatepassError as exc:  # a bad token, or no usable keys: both worth counting
            self.stats.rejected(exc.reason)
            raise
        self._remember(head, header, digest, principal, key.kid)
        self.stats.verified += 1
        return principal

    # -- step 1: read -----------------------------------------------------------------------

    def _read(self, token: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        """Split a JWS compact token: signing input, header, payload, decoded signature."""
        if len(token) > self.max_token_bytes:
            raise TokenTooLargeError
        signed, _, signature = token.rpartition(b".")
        head, dot, payload = signed.partition(b".")
        if not dot or b"." in payload:
            raise MalformedTokenError
        return signed, head, payload, _b64(signature)

    def _parse_header(self, segment: bytes) -> _Header:
        fields = _json_object(segment)
        alg = fields.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise DisallowedAlgorithmError
        if not _FORBIDDEN_HEADERS.isdisjoint(fields):
            raise ForbiddenHeaderError
        typ = fields.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES:
            raise WrongTypeError
        kid = fields.get("kid")
        if not isinstance(kid, str) or not kid:
            raise MalformedTokenError("The access token has no key id (kid).")
        return _Header(alg, kid)

    # -- step 2: signature ------------------------------------------------------------------

    @staticmethod
    def _check_signature(key: VerificationKey, alg: str, signed: bytes, signature: bytes) -> None:
        if key.alg != alg:
            raise KeyAlgorithmMismatchError  # the key's own algorithm, never the token's choice
        if not key.verify(signed, signature):
            raise BadSignatureError

    # -- step 3: claims ---------------------------------------------------------------------

    def _principal(self, claims: dict[str, Any], now: float) -> AccessPrincipal:
        """Validate the claims and build the principal.

        This runs once per fresh token, right after the signature math. Measured there, each
        step costs two to three times what it costs in a warm loop (the math leaves the
        interpreter's code and data cold in the CPU caches), so this is one flat test for the
        shape a well-behaved issuer always sends (integer times, no ``nbf``), and
        :meth:`_check_claims` for anything else: it accepts and refuses exactly the same tokens,
        and names the claim that is wrong.
        """
        get: Callable[..., Any] = claims.get  # Any, not "Any | None": each value is checked below
        aud, exp, iat, sub = get("aud"), get("exp"), get("iat"), get("sub")
        scope, sid, jti, client_id = get("scope", ""), get("sid"), get("jti"), get("client_id")
        aud = (aud,) if type(aud) is str else tuple(aud) if type(aud) is list else ()
        leeway = self.leeway
        if not (
            get("iss") == self.issuer
            and self.audience in aud
            and all(map(isinstance, aud, _STR))
            and type(exp) is int
            and now < exp + leeway
            and exp < _MAX_SAFE_INT
            and type(iat) is int
            and 0 <= iat <= now + leeway
            and "nbf" not in claims
            and type(sub) is str
            and sub
            and type(scope) is str
            and type(sid) in _OPTIONAL_STR
            and type(jti) in _OPTIONAL_STR
            and type(client_id) in _OPTIONAL_STR
        ):
            aud, exp, iat = self._check_claims(claims, now)
        principal = AccessPrincipal(
            sub,
            frozenset(scope.split()),
            aud,
            exp,
            iat,
            sid,
            jti,
            client_id,
            MappingProxyType(claims),
        )
        for check in self._checks:
            check(principal)
        return principal

    def _check_claims(
        self, claims: dict[str, Any], now: float
    ) -> tuple[tuple[str, ...], float, float]:
        """Every claim checked in turn, so that a refusal names the first one that is wrong;
        return the audience, expiry and issue time of a token that passes."""
        self._check_issuer(claims)
        aud = self._check_audience(claims)
        exp = self._check_expiry(claims, now)
        iat = self._check_issued_at(claims, now)
        if "nbf" in claims:
            self._check_not_before(claims, now)
        if type(claims.get("sub")) is not str or not claims["sub"]:
            _raise_for_strings(claims)
        if type(claims.get("scope", "")) is not str:
            _raise_for_strings(claims)
        for name in ("sid", "jti", "client_id"):
            if type(claims.get(name)) not in _OPTIONAL_STR:
                _raise_for_strings(claims)
        return aud, exp, iat

    def _check_issuer(self, claims: dict[str, Any]) -> None:
        issuer = claims.get("iss")
        if issuer is None:
            raise MissingClaimError("The access token has no issuer.")
        if issuer != self.issuer:
            raise WrongIssuerError

    def _check_audience(self, claims: dict[str, Any]) -> tuple[str, ...]:
        aud = claims.get("aud")
        if type(aud) is str:
            aud = (aud,)
        elif type(aud) is list and not [a for a in aud if type(a) is not str]:
            aud = tuple(aud)
        else:
            _raise_for_audience(aud)
        if self.audience not in aud:
            raise WrongAudienceError
        return aud

    def _check_expiry(self, claims: dict[str, Any], now: float) -> float:
        exp = claims.get("exp")
        if type(exp) is not int or not 0 <= exp < _MAX_SAFE_INT:
            exp = _time(claims, "exp")  # the slow path: floats, and the errors
        if now >= exp + self.leeway:
            raise ExpiredTokenError
        return exp

    def _check_issued_at(self, claims: dict[str, Any], now: float) -> float:
        iat = claims.get("iat")
        if type(iat) is not int or not 0 <= iat < _MAX_SAFE_INT:
            iat = _time(claims, "iat")
        if iat > now + self.leeway:
            raise NotYetValidError("The access token was issued in the future.")
        return iat

    def _check_not_before(self, claims: dict[str, Any], now: float) -> None:
        if _time(claims, "nbf") > now + self.leeway:
            raise NotYetValidError

    # -- remembering what was accepted ------------------------------------------------------

    def _remember(
        self,
        head: bytes,
        header: _Header,
        digest: bytes | None,
        principal: AccessPrincipal,
        kid: str,
    ) -> None:
        """Only accepted tokens reach here, so nobody can fill these caches with garbage."""
        if head not in self._headers:
            if len(self._headers) >= _MAX_HEADERS_REMEMBERED:
                self._headers.clear()
            self._headers[head] = header
        if digest is not None and self.cache is not None:
            self.cache.put(digest, principal, kid, principal.exp + self.leeway)


def _allow_list(algorithms: Iterable[str]) -> frozenset[str]:
    allowed = frozenset(algorithms)
    if not allowed or not allowed <= SUPPORTED_ALGORITHMS:
        supported = ", ".join(sorted(SUPPORTED_ALGORITHMS))
        raise ValueError(f"algorithms must be a non-empty subset of {supported}")
    return allowed


def _b64(segment: bytes) -> bytes:
    try:
        return b64url_decode(segment)
    except ValueError:
        raise MalformedTokenError from None


def _json_object(segment: bytes) -> dict[str, Any]:
    """A base64url JSON object, parsed strictly: RFC 8259 only (no NaN or Infinity, no trailing
    data, UTF-8 without lone surrogates), nested at most 1,024 deep (a deeper document is refused,
    not a ``RecursionError``)."""
    try:
        value = orjson.loads(b64url_decode(segment))
    except ValueError:  # binascii.Error and orjson.JSONDecodeError are both ValueErrors
        raise MalformedTokenError from None
    if type(value) is not dict:
        raise MalformedTokenError
    return value


def _raise_for_audience(aud: object) -> NoReturn:
    if aud is None:
        raise MissingClaimError("The access token has no audience.")
    raise ClaimError("The access token's audience is not a string or a list of strings.")


def _raise_for_strings(claims: dict[str, Any]) -> NoReturn:
    """The slow path of :meth:`Verifier._principal`: say which string claim is wrong."""
    _required_string(claims, "sub")
    if not isinstance(claims.get("scope", ""), str):
        raise ClaimError("The access token's 'scope' claim is not a string.")
    for name in ("sid", "jti", "client_id"):
        _optional_string(claims, name)
    raise AssertionError("unreachable: a string claim was wrong")  # pragma: no cover


def _time(claims: dict[str, Any], name: str) -> float:
    """A NumericDate: a number (not a bool, not huge, not NaN); missing is its own error."""
    value = claims.get(name)
    if value is None:
        raise MissingClaimError(f"The access token has no '{name}' claim.")
    if type(value) is int and -_MAX_SAFE_INT < value < _MAX_SAFE_INT:
        return float(value)
    if type(value) is float and -_MAX_SAFE_INT < value < _MAX_SAFE_INT:  # also refuses NaN
        return value
    raise ClaimError(f"The access token's '{name}' claim is not a time.")


def _required_string(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        raise MissingClaimError(f"The access token has no '{name}' claim.")
    if not isinstance(value, str) or not value:
        raise ClaimError(f"The access token's '{name}' claim is not a string.")
    return value


def _optional_string(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise ClaimError(f"The access token's '{name}' claim is not a string.")
    return value
