"""JWKS parsing: from an issuer's document to ready-to-use verification keys.

Each accepted key becomes a :class:`VerificationKey` holding a prepared ``cryptography`` public key
and exactly one algorithm, so the per-request cost is the signature math and nothing else, and a
key can never be used with another algorithm than its own (no RS256/HS256 or ES256/RS256
confusion).

Ed25519 has two names: ``Ed25519`` (RFC 9864, fully specified) and ``EdDSA`` (RFC 8037, now
deprecated), one signature algorithm over one key type. A key that states its ``alg`` is used
under that name only; an OKP Ed25519 key that states none accepts both names, since they verify
exactly the same signature with exactly the same key, so no token can gain anything by choosing
one name over the other.

A bad entry is skipped and counted by reason, never fatal: one odd key must not take the whole key
set down. Entries that carry private parameters (``d``, ...) are skipped too; an issuer leaking its
private keys is a bug that shows up in the stats as ``private_key``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from gatepass.core._b64 import b64url_decode

Algorithm = Literal["ES256", "RS256", "Ed25519", "EdDSA"]
SUPPORTED_ALGORITHMS: Final = frozenset({"ES256", "RS256", "Ed25519", "EdDSA"})
MIN_RSA_BITS: Final = 2048

_KID_RE = re.compile(r"[A-Za-z0-9._~+/=:-]{1,128}")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# The names a key type signs under; the first is the key's own name when it states no ``alg``.
_KEY_ALGORITHMS: dict[tuple[str | None, str | None], tuple[str, ...]] = {
    ("EC", "P-256"): ("ES256",),
    ("OKP", "Ed25519"): ("Ed25519", "EdDSA"),
    ("RSA", None): ("RS256",),
}
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _uint(data: bytes) -> int:
    return int.from_bytes(data, "big")


def is_wellformed_kid(kid: object) -> bool:
    """The cheap check done before an unknown ``kid`` may cost the issuer anything."""
    return isinstance(kid, str) and _KID_RE.fullmatch(kid) is not None


class JwksError(ValueError):
    """The document as a whole is not a JWKS (not JSON, no ``keys`` list)."""


class SkippedKey(ValueError):
    """One entry was refused; ``reason`` is its stats label."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class VerificationKey:
    """A public key bound to one ``kid`` and one algorithm.

    ``algs`` are the names a token's header may give that algorithm: ``alg`` alone, except for an
    Ed25519 key that states no ``alg`` (both ``Ed25519`` and ``EdDSA``, see the module's text).
    """

    __slots__ = ("alg", "algs", "jwk", "kid")

    def __init__(
        self, kid: str, alg: str, jwk: Mapping[str, Any], algs: frozenset[str] | None = None
    ) -> None:
        self.kid = kid
        self.alg = alg
        self.algs = algs or frozenset({alg})
        self.jwk = jwk

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's signature of ``signing_input``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kid={self.kid!r} alg={self.alg}>"


class Es256Key(VerificationKey):
    __slots__ = ("public_key",)

    def __init__(self, kid: str, jwk: Mapping[str, Any], key: ec.EllipticCurvePublicKey) -> None:
        super().__init__(kid, "ES256", jwk)
        self.public_key = key

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        # JWS ES256 signatures are r || s (RFC 7518 section 3.4); OpenSSL takes DER.
        der = encode_dss_signature(_uint(signature[:32]), _uint(signature[32:]))
        try:
            self.public_key.verify(der, signing_input, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True


class Rs256Key(VerificationKey):
    __slots__ = ("public_key",)

    def __init__(self, kid: str, jwk: Mapping[str, Any], key: rsa.RSAPublicKey) -> None:
        super().__init__(kid, "RS256", jwk)
        self.public_key = key

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, signing_input, _PKCS1, _SHA256)
        except InvalidSignature:
            return False
        return True


class Ed25519Key(VerificationKey):
    __slots__ = ("public_key",)

    def __init__(
        self, kid: str, jwk: Mapping[str, Any], key: Ed25519PublicKey, algs: frozenset[str]
    ) -> None:
        # Named by the name it states ("Ed25519" or "EdDSA"), else by RFC 9864's.
        alg = next(iter(algs)) if len(algs) == 1 else "Ed25519"
        super().__init__(kid, alg, jwk, algs)
        self.public_key = key

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, signing_input)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class ParsedJwks:
    """The usable keys of one document, and how many entries were skipped, by reason."""

    keys: Mapping[str, VerificationKey]
    skipped: Mapping[str, int] = field(default_factory=dict)


def parse_jwks(document: bytes | Mapping[str, Any]) -> ParsedJwks:
    """Parse a JWKS document; raise :class:`JwksError` only if it is not a JWKS at all."""
    entries = _entries(document)
    keys: dict[str, VerificationKey] = {}
    skipped: Counter[str] = Counter()
    duplicates: set[str] = set()
    for entry in entries:
        try:
            key = parse_jwk(entry)
        except SkippedKey as exc:
            skipped[exc.reason] += 1
            continue
        if key.kid in keys or key.kid in duplicates:
            duplicates.add(key.kid)
        keys[key.kid] = key
    _drop_duplicates(keys, duplicates, skipped)
    return ParsedJwks(keys=keys, skipped=dict(skipped))


def _entries(document: bytes | Mapping[str, Any]) -> Iterable[Any]:
    if isinstance(document, bytes):
        try:
            document = orjson.loads(document)
        except ValueError as exc:  # not UTF-8, not JSON, or nested over 1,024 deep
            raise JwksError("the JWKS is not JSON") from exc
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JwksError("the JWKS has no 'keys' list")
    keys: list[Any] = document["keys"]
    return keys


def _drop_duplicates(
    keys: dict[str, VerificationKey], duplicates: set[str], skipped: Counter[str]
) -> None:
    """Two entries with one ``kid`` make the ``kid`` ambiguous: use neither."""
    for kid in duplicates:
        del keys[kid]
        skipped["duplicate_kid"] += 1


def parse_jwk(jwk: object) -> VerificationKey:
    """One JWK to a key, or :class:`SkippedKey` saying why not."""
    if not isinstance(jwk, Mapping):
        raise SkippedKey("not_an_object")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise SkippedKey("private_key")
    _check_use(jwk)
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not is_wellformed_kid(kid):
        raise SkippedKey("bad_kid")
    algs = _algorithms(jwk)
    try:
        return _BUILDERS[str(jwk["kty"])](kid, jwk, algs)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, SkippedKey):
            raise
        raise SkippedKey("invalid_key") from exc


def _check_use(jwk: Mapping[str, Any]) -> None:
    use = jwk.get("use", "sig")
    ops = jwk.get("key_ops", ["verify"])
    if use != "sig" or not isinstance(ops, list) or "verify" not in ops:
        raise SkippedKey("wrong_use")


def _algorithms(jwk: Mapping[str, Any]) -> frozenset[str]:
    """The key's own algorithm, under the name it states, or under every name of the one
    algorithm its type implies (derivable without guessing); else skip."""
    kty, crv, alg = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    if not all(value is None or isinstance(value, str) for value in (kty, crv, alg)):
        raise SkippedKey("unsupported")
    names = _KEY_ALGORITHMS.get((kty, crv))
    if names is None:
        raise SkippedKey("unsupported")
    if alg is None and kty == "RSA":
        raise SkippedKey("missing_alg")  # RS256, PS256, RS512...: an RSA key does not say
    if alg is None:
        return frozenset(names)
    if alg not in names:
        raise SkippedKey("unsupported")
    return frozenset({alg})


def _member(jwk: Mapping[str, Any], name: str, size: int | None = None) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise SkippedKey("invalid_key")
    raw = b64url_decode(value.encode("ascii"))
    if size is not None and len(raw) != size:
        raise SkippedKey("invalid_key")
    return raw


def _ec_key(kid: str, jwk: Mapping[str, Any], algs: frozenset[str]) -> VerificationKey:
    x = int.from_bytes(_member(jwk, "x", 32), "big")
    y = int.from_bytes(_member(jwk, "y", 32), "big")
    key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    return Es256Key(kid, _public_jwk(jwk, ("kty", "crv", "x", "y")), key)


def _rsa_key(kid: str, jwk: Mapping[str, Any], algs: frozenset[str]) -> VerificationKey:
    n = int.from_bytes(_member(jwk, "n"), "big")
    e = int.from_bytes(_member(jwk, "e"), "big")
    if n.bit_length() < MIN_RSA_BITS:
        raise SkippedKey("weak_key")
    key = rsa.RSAPublicNumbers(e, n).public_key()
    return Rs256Key(kid, _public_jwk(jwk, ("kty", "n", "e")), key)


def _okp_key(kid: str, jwk: Mapping[str, Any], algs: frozenset[str]) -> VerificationKey:
    key = Ed25519PublicKey.from_public_bytes(_member(jwk, "x", 32))
    return Ed25519Key(kid, _public_jwk(jwk, ("kty", "crv", "x")), key, algs)


def _public_jwk(jwk: Mapping[str, Any], members: tuple[str, ...]) -> dict[str, Any]:
    """The canonical public form kept for the last-known-good copy: nothing else survives. Its
    ``alg`` is the key's one algorithm; an Ed25519 key that stated none still states none, so
    it accepts the same names when read back."""
    kept = {name: jwk[name] for name in members}
    algs = _algorithms(jwk)
    kept.update(kid=jwk["kid"], use="sig")
    if len(algs) == 1:
        kept["alg"] = next(iter(algs))
    return kept


_Builder = Callable[[str, Mapping[str, Any], frozenset[str]], VerificationKey]
_BUILDERS: Final[Mapping[str, _Builder]] = {
    "EC": _ec_key,
    "RSA": _rsa_key,
    "OKP": _okp_key,
}
