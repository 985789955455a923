"""Access-token verification: strict, local, and close to the cost of the signature math itself.

Three steps: read the token (size, shape, header), check the signature with the key its ``kid``
names (and only with that key's own algorithm), then validate the claims. The token is parsed
once, with no PyJWT round trip (``get_unverified_header`` followed by ``decode`` parses twice). Two
caches, both filled only by accepted tokens: the validated headers (every token signed by one key
carries the same header, so its parse and checks are done once per key), and the verified tokens
(:mod:`gatepass.core.tokencache`), which let a hot token skip all three steps. Every accepted
token, cache hits included, then meets the revocation deny-set (:mod:`gatepass.core.revocations`):
a few dict lookups, so a revoked token is refused on its next request even when it was cached.

What is refused, and why (RFC 8725, RFC 9068):

- ``alg`` outside the allow-list (so ``none`` and every HMAC algorithm, always), and an ``alg``
  other than the key's own: no algorithm confusion (``Ed25519`` and ``EdDSA``, one algorithm's
  two names, are both the own of an Ed25519 key that states neither: :mod:`gatepass.core.jwks`);
- ``jku``, ``x5u``, ``x5c``, ``jwk`` (the token naming its own key) and any ``crit``;
- ``typ`` other than ``at+jwt``: an ID token or another JWT is not an access token;
- a missing ``kid``, ``iss``, ``aud``, ``exp``, ``iat`` or ``sub``; the wrong issuer or audience;
  an expired token, or one not valid yet (``nbf``/``iat``), beyond the leeway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn, TypeGuard

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
from gatepass.core.revocations import RevocationCheck
from gatepass.core.stats import AuthStats
from gatepass.core.tokencache import Entry, TokenCache, token_digest

Check = Callable[[AccessPrincipal], None]
"""An extra rule run on every freshly verified token; raises a ``TokenError`` to refuse. Cached
tokens skip it (a rule that can change its mind about a token belongs in ``revocations``)."""

_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "x5c", "jwk", "crit"})
_MAX_HEADERS_REMEMBERED = 64
_MAX_SAFE_INT = 2**53
_NUMBERS = (int, float)


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
        algorithms: Iterable[str] = ("ES256", "RS256", "Ed25519", "EdDSA"),
        leeway: float = 60.0,
        max_token_bytes: int = 8 * 1024,
        cache: TokenCache | None = None,
        stats: AuthStats | None = None,
        clock: Clock = system_clock,
        checks: Iterable[Check] = (),
        revocations: RevocationCheck | None = None,
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
        self.revocations = revocations
        self._known_headers: dict[bytes, _Header] = {}
        if cache is not None:
            keys.add_listener(cache.drop_kids)

    async def verify(self, token: str | bytes) -> AccessPrincipal:
        """The caller of a valid token; raise a ``TokenError`` or ``KeysUnavailableError``.

        A token verified before and still good comes from the cache (one digest, one lookup, no
        parsing); any other goes through the three steps, and is remembered once accepted. Both
        then meet the revocations, if any.
        """
        if isinstance(token, str):
            # One-to-one for any string; a non-ASCII byte then fails the base64 decoding.
            token = token.encode("utf-8", "surrogatepass")
        cache, digest, entry, now = self.cache, b"", None, 0.0
        if cache is not None:
            now = self._clock()
            digest = token_digest(token)
            entry = self._cached(cache, digest, now)
        if entry is not None:
            principal = entry.principal
            if self.revocations is not None:
                try:
                    self.revocations.check(principal, entry.kid, now)
                except GatepassError as exc:
                    self.stats.rejected(exc.reason)
                    raise
            self.stats.cache_hits += 1
        else:
            try:
                signed, head, payload, signature = self._read(token)
                header = self._known_headers.get(head) or self._parse_header(head)
                # The only await, and only for a kid not seen yet or keys gone stale.
                key = self._keys.peek(header.kid, self._clock()) or await self._keys.get(header.kid)
                _check_signature(key, header.alg, signed, signature)
                now = self._clock()
                principal = self._principal(_json_object(payload), now)
                if self.revocations is not None:
                    self.revocations.check(principal, key.kid, now)
            except GatepassError as exc:  # a bad token, or no usable keys: both worth counting
                self.stats.rejected(exc.reason)
                raise
            self._remember_header(head, header)
            if cache is not None:
                cache.put(digest, principal, key.kid, principal.exp + self.leeway)
        self.stats.verified += 1
        return principal

    def _cached(self, cache: TokenCache, digest: bytes, now: float) -> Entry | None:
        """A hit counts only while its key does: past the maximum staleness it is a miss, and
        the full verification then answers "no usable keys" like for any other token."""
        entry = cache.lookup(digest, now)
        if entry is None or self._keys.peek(entry.kid, now) is None:
            return None
        return entry

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

    def _remember_header(self, segment: bytes, header: _Header) -> None:
        """Only accepted tokens reach here, so nobody can fill this with garbage."""
        if segment not in self._known_headers:
            if len(self._known_headers) >= _MAX_HEADERS_REMEMBERED:
                self._known_headers.clear()
            self._known_headers[segment] = header

    # -- step 3: claims ---------------------------------------------------------------------

    def _principal(self, claims: dict[str, Any], now: float) -> AccessPrincipal:
        """Validate the claims and build the principal; then run the extra checks on it.

        The one claims validator. The claims are checked in a fixed order (``iss``, ``aud``,
        ``exp``, ``iat``, ``nbf`` if present, ``sub``, ``scope``, ``sid``, ``jti``,
        ``client_id``, ``act`` if present), so a refusal names the first one that is wrong.
        """
        get: Callable[..., Any] = claims.get  # Any, not "Any | None": each value is checked
        iss = get("iss")
        if iss != self.issuer:
            if iss is None:
                raise MissingClaimError("The access token has no issuer.")
            raise WrongIssuerError
        aud = _audience(get("aud"))
        if self.audience not in aud:
            raise WrongAudienceError
        exp, iat = self._times(claims, now)
        sub, scope = get("sub"), get("scope", "")
        sid, jti, client_id = get("sid"), get("jti"), get("client_id")
        _check_strings(sub, scope, sid, jti, client_id)
        if "act" in claims:
            _check_actor(claims["act"])
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

    def _times(self, claims: dict[str, Any], now: float) -> tuple[float, float]:
        """``exp`` and ``iat``, checked against ``now`` with the leeway, and ``nbf`` if present."""
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _is_numeric_date(exp):
            _refuse(exp, "exp", "a time")
        if now >= exp + self.leeway:
            raise ExpiredTokenError
        if not _is_numeric_date(iat):
            _refuse(iat, "iat", "a time")
        if iat > now + self.leeway:
            raise NotYetValidError("The access token was issued in the future.")
        if "nbf" in claims:
            nbf = claims["nbf"]
            if not _is_numeric_date(nbf):
                _refuse(nbf, "nbf", "a time")
            if nbf > now + self.leeway:
                raise NotYetValidError
        return exp, iat


# -- step 2: signature ----------------------------------------------------------------------


def _check_signature(key: VerificationKey, alg: str, signed: bytes, signature: bytes) -> None:
    if alg not in key.algs:
        raise KeyAlgorithmMismatchError  # the key's own algorithm, never the token's choice
    if not key.verify(signed, signature):
        raise BadSignatureError


# -- helpers --------------------------------------------------------------------------------


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


def _audience(aud: object) -> tuple[str, ...]:
    """``aud`` as a tuple: one string, or a list of strings (RFC 7519 section 4.1.3)."""
    if type(aud) is str:
        return (aud,)
    if type(aud) is list and all(type(item) is str for item in aud):
        return tuple(aud)
    if aud is None:
        raise MissingClaimError("The access token has no audience.")
    raise ClaimError("The access token's audience is not a string or a list of strings.")


def _is_numeric_date(value: Any) -> TypeGuard[float]:
    """A NumericDate: a number (exactly int or float: a bool is no time), neither huge nor NaN."""
    return type(value) in _NUMBERS and -_MAX_SAFE_INT < value < _MAX_SAFE_INT


def _check_strings(sub: object, scope: object, sid: object, jti: object, client_id: object) -> None:
    """``sub`` a non-empty string, ``scope`` a string, the other three strings or absent."""
    if type(sub) is not str or not sub:
        _refuse(sub, "sub", "a string")
    if type(scope) is not str:
        raise ClaimError("The access token's 'scope' claim is not a string.")
    for name, value in (("sid", sid), ("jti", jti), ("client_id", client_id)):
        if value is not None and type(value) is not str:
            _refuse(value, name, "a string")


def _check_actor(act: object) -> None:
    """``act`` (RFC 8693 section 4.1): an object naming its actor's ``sub``; nested actors are
    the issuer's record and are not looked into."""
    if type(act) is not dict or type(act.get("sub")) is not str or not act["sub"]:
        raise ClaimError("The access token's 'act' claim is not an object with a 'sub'.")


def _refuse(value: object, name: str, kind: str) -> NoReturn:
    """The error for a claim that is not what it must be: missing is its own error."""
    if value is None:
        raise MissingClaimError(f"The access token has no '{name}' claim.")
    raise ClaimError(f"The access token's '{name}' claim is not {kind}.")
