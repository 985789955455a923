"""The verifier: every forged or tampered token gets the right error code, good ones a principal."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gatepass import (
    AccessPrincipal,
    GatepassError,
    KeyAlgorithmMismatchError,
    RevokedTokenError,
    StaticKeySet,
    TokenError,
    Verifier,
)
from gatepass.testing import FakeIssuer, ManualClock

AUDIENCE = "mail"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(json.dumps(value).encode())


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{segment(header)}.{segment(claims)}.{b64(signature)}"


def es256_sign(issuer: FakeIssuer, header: dict[str, Any], claims: dict[str, Any] | str) -> str:
    """Sign by hand, so the header (and the payload, given as JSON text) can say anything PyJWT
    would refuse to write."""
    _, key = issuer.keys[issuer.default_kid]
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    payload = b64(claims.encode()) if isinstance(claims, str) else segment(claims)
    signing_input = f"{segment(header)}.{payload}"
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def make_verifier(issuer: FakeIssuer, clock: ManualClock, **options: Any) -> Verifier:
    keys = StaticKeySet.from_jwks(issuer.jwks())
    return Verifier(keys, issuer=issuer.issuer, audience=AUDIENCE, clock=clock, **options)


@pytest.fixture
def verifier(issuer: FakeIssuer, clock: ManualClock) -> Verifier:
    return make_verifier(issuer, clock)


def header_for(issuer: FakeIssuer, **changes: Any) -> dict[str, Any]:
    header = {"alg": "ES256", "typ": "at+jwt", "kid": issuer.default_kid, **changes}
    return {name: value for name, value in header.items() if value is not None}


async def reason_of(verifier: Verifier, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token)
    assert caught.value.error == "invalid_token"
    return caught.value.reason


# -- good tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256", "Ed25519", "EdDSA"])
async def test_each_algorithm_verifies(
    alg: str, clock: ManualClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    issuer = FakeIssuer(clock=clock, algorithms=())
    kid = issuer.add_key(alg, key=rsa_key if alg == "RS256" else None)
    verifier = make_verifier(issuer, clock)
    principal = await verifier.verify(issuer.token(kid=kid, scope="mail:read mail:send"))
    assert principal.sub == "user-1"
    assert principal.scopes == frozenset({"mail:read", "mail:send"})
    assert principal.aud == ("mail",)
    assert principal.sid == "session-1"
    assert principal.client_id == "gatepass-app"
    assert principal.exp == clock() + 300


@pytest.mark.parametrize(("published", "signed"), [("Ed25519", "EdDSA"), ("EdDSA", "Ed25519")])
async def test_an_ed25519_key_verifies_only_under_the_name_it_states(
    published: str, signed: str, clock: ManualClock
) -> None:
    """RFC 9864: ``Ed25519`` is the name now, ``EdDSA`` the one older issuers use; a key that
    states either is used under it alone, like any other key and its one algorithm."""
    issuer = FakeIssuer(clock=clock, algorithms=())
    kid = issuer.add_key(published)
    verifier = make_verifier(issuer, clock)
    assert await verifier.verify(issuer.token(kid=kid))
    assert await reason_of(verifier, issuer.token(kid=kid, headers={"alg": signed})) == (
        "alg_mismatch"
    )


async def test_an_ed25519_key_stating_no_alg_verifies_under_both_names(clock: ManualClock) -> None:
    """Both names verify exactly the same signature with the same key: nothing to confuse."""
    issuer = FakeIssuer(clock=clock, algorithms=())
    kid = issuer.add_key("Ed25519")
    document = issuer.jwks()
    for entry in document["keys"]:
        del entry["alg"]
    verifier = Verifier(
        StaticKeySet.from_jwks(document), issuer=issuer.issuer, audience=AUDIENCE, clock=clock
    )
    for alg in ("Ed25519", "EdDSA"):
        assert await verifier.verify(issuer.token(kid=kid, headers={"alg": alg}))
    only_new = Verifier(
        StaticKeySet.from_jwks(document),
        issuer=issuer.issuer,
        audience=AUDIENCE,
        clock=clock,
        algorithms=["Ed25519"],
    )
    assert await reason_of(only_new, issuer.token(kid=kid, headers={"alg": "EdDSA"})) == (
        "bad_algorithm"
    )


async def test_principal_is_frozen_and_its_claims_read_only(
    issuer: FakeIssuer, verifier: Verifier
) -> None:
    principal = await verifier.verify(issuer.token(extra="x"))
    assert isinstance(principal, AccessPrincipal)
    assert principal.claims["extra"] == "x"
    assert principal.jti is not None
    assert principal.has_scopes("mail:read")
    assert not principal.has_scopes("mail:read", "mail:send")
    with pytest.raises(TypeError):
        principal.claims["sub"] = "someone else"  # type: ignore[index]
    with pytest.raises(AttributeError):
        principal.sub = "someone else"  # type: ignore[misc]


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
async def test_typ_is_compared_case_insensitively(
    typ: str, issuer: FakeIssuer, verifier: Verifier
) -> None:
    assert await verifier.verify(issuer.token(headers={"typ": typ}))


async def test_audience_may_be_a_string_or_a_list(issuer: FakeIssuer, verifier: Verifier) -> None:
    assert (await verifier.verify(issuer.token(aud="mail"))).aud == ("mail",)
    assert (await verifier.verify(issuer.token(aud=["video", "mail"]))).aud == ("video", "mail")


async def test_optional_claims_may_be_absent(issuer: FakeIssuer, verifier: Verifier) -> None:
    token = issuer.token(sid=None, jti=None, client_id=None, scope=None)
    principal = await verifier.verify(token)
    assert (principal.sid, principal.jti, principal.client_id) == (None, None, None)
    assert principal.scopes == frozenset()


async def test_leeway_accepts_small_clock_skew(
    issuer: FakeIssuer, verifier: Verifier, clock: ManualClock
) -> None:
    now = int(clock())
    assert await verifier.verify(issuer.token(exp=now - 59, iat=now + 59, nbf=now + 59))
    assert await verifier.verify(issuer.token(exp=now + 0.5, iat=float(now)))


# -- forged and tampered tokens -------------------------------------------------------------


def _tamper_payload(token: str) -> str:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "admin"
    return f"{head}.{segment(claims)}.{signature}"


def _tamper_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 1
    return f"{head}.{payload}.{b64(bytes(raw))}"


Forgery = Callable[[FakeIssuer, ManualClock], str]

FORGERIES: dict[str, tuple[Forgery, str]] = {
    "alg-none": (
        lambda i, c: forge(header_for(i, alg="none"), i.claims()),
        "bad_algorithm",
    ),
    "alg-none-capitalised": (
        lambda i, c: forge(header_for(i, alg="None"), i.claims()),
        "bad_algorithm",
    ),
    "alg-missing": (lambda i, c: forge(header_for(i, alg=None), i.claims()), "bad_algorithm"),
    "alg-not-a-string": (
        lambda i, c: forge(header_for(i, alg=["ES256"]), i.claims()),
        "bad_algorithm",
    ),
    "embedded-jwk": (
        lambda i, c: es256_sign(i, header_for(i, jwk=i.jwks()["keys"][0]), i.claims()),
        "forbidden_header",
    ),
    "jku": (
        lambda i, c: es256_sign(i, header_for(i, jku="https://evil.test/jwks"), i.claims()),
        "forbidden_header",
    ),
    "x5u": (
        lambda i, c: es256_sign(i, header_for(i, x5u="https://evil.test/cert"), i.claims()),
        "forbidden_header",
    ),
    "x5c": (
        lambda i, c: es256_sign(i, header_for(i, x5c=["MIIB"]), i.claims()),
        "forbidden_header",
    ),
    "crit": (
        lambda i, c: es256_sign(i, header_for(i, crit=["exp"]), i.claims()),
        "forbidden_header",
    ),
    "wrong-typ": (lambda i, c: i.token(headers={"typ": "JWT"}), "wrong_typ"),
    "no-typ": (lambda i, c: es256_sign(i, header_for(i, typ=None), i.claims()), "wrong_typ"),
    "id-token-typ": (lambda i, c: i.token(headers={"typ": "id_token+jwt"}), "wrong_typ"),
    "no-kid": (lambda i, c: es256_sign(i, header_for(i, kid=None), i.claims()), "malformed"),
    "unknown-kid": (
        lambda i, c: es256_sign(i, header_for(i, kid="nope"), i.claims()),
        "unknown_kid",
    ),
    "wrong-issuer": (lambda i, c: i.token(iss="https://evil.test"), "wrong_issuer"),
    "wrong-audience": (lambda i, c: i.token(aud=["video"]), "wrong_audience"),
    "empty-audience": (lambda i, c: i.token(aud=[]), "wrong_audience"),
    "audience-not-strings": (lambda i, c: i.token(aud=[1]), "invalid_claim"),
    "expired": (lambda i, c: i.token(exp=int(c()) - 60), "expired"),
    "long-expired": (lambda i, c: i.token(exp=int(c()) - 86400), "expired"),
    "nbf-in-future": (lambda i, c: i.token(nbf=int(c()) + 61), "not_yet_valid"),
    "iat-in-future": (lambda i, c: i.token(iat=int(c()) + 61), "not_yet_valid"),
    "no-iss": (lambda i, c: i.token(iss=None), "missing_claim"),
    "no-aud": (lambda i, c: i.token(aud=None), "missing_claim"),
    "no-exp": (lambda i, c: i.token(exp=None), "missing_claim"),
    "no-iat": (lambda i, c: i.token(iat=None), "missing_claim"),
    "no-sub": (lambda i, c: i.token(sub=None), "missing_claim"),
    "empty-sub": (lambda i, c: i.token(sub=""), "invalid_claim"),
    "exp-as-string": (lambda i, c: i.token(exp=str(int(c()) + 300)), "invalid_claim"),
    "exp-as-bool": (lambda i, c: i.token(exp=True), "invalid_claim"),
    "exp-huge": (lambda i, c: i.token(exp=10**30), "invalid_claim"),
    "exp-huge-float": (lambda i, c: i.token(exp=1e30), "invalid_claim"),
    "exp-beyond-double": (
        lambda i, c: es256_sign(i, header_for(i), json.dumps(i.claims())[:-1] + ', "x": 1e400}'),
        "malformed",
    ),
    "exp-nan": (
        lambda i, c: es256_sign(i, header_for(i), {**i.claims(), "exp": float("nan")}),
        "malformed",
    ),
    "scope-as-list": (lambda i, c: i.token(scope=["mail:read"]), "invalid_claim"),
    "sid-as-number": (lambda i, c: i.token(sid=7), "invalid_claim"),
    "tampered-payload": (lambda i, c: _tamper_payload(i.token()), "bad_signature"),
    "tampered-signature": (lambda i, c: _tamper_signature(i.token()), "bad_signature"),
    "signature-stripped": (lambda i, c: i.token().rsplit(".", 1)[0] + ".", "bad_signature"),
    "signature-too-long": (lambda i, c: i.token() + "AAAA", "bad_signature"),
    "empty": (lambda i, c: "", "malformed"),
    "garbage": (lambda i, c: "garbage", "malformed"),
    "two-parts": (lambda i, c: "a.b", "malformed"),
    "four-parts": (lambda i, c: i.token() + ".x", "malformed"),
    "jwe-like": (lambda i, c: "a.b.c.d.e", "malformed"),
    "non-ascii": (lambda i, c: i.token() + "é", "malformed"),
    "bad-base64": (lambda i, c: "!!!." + i.token().split(".", 1)[1], "malformed"),
    "padded-base64": (lambda i, c: i.token().replace(".", "=.", 1), "malformed"),
    "header-not-json": (lambda i, c: b64(b"{not json") + ".e30.AA", "malformed"),
    "header-is-a-list": (lambda i, c: segment(["ES256"]) + ".e30.AA", "malformed"),
    # Nested past any parser's depth limit: refused as malformed, never a RecursionError (a 500).
    "header-nested-deep": (lambda i, c: b64(b"[" * 3000) + ".e30.AA", "malformed"),
    "payload-nested-deep": (
        lambda i, c: es256_sign(
            i,
            header_for(i),
            json.dumps(i.claims())[:-1] + ', "x": ' + "[" * 1100 + "]" * 1100 + "}",
        ),
        "malformed",
    ),
    "payload-is-a-list": (lambda i, c: es256_sign(i, header_for(i), []), "malformed"),  # type: ignore[arg-type]
    "oversize": (lambda i, c: i.token(padding="x" * 9000), "oversize"),
}


@pytest.mark.parametrize(("forgery", "reason"), FORGERIES.values(), ids=FORGERIES.keys())
async def test_forged_tokens_are_refused_with_their_reason(
    forgery: Forgery, reason: str, issuer: FakeIssuer, clock: ManualClock, verifier: Verifier
) -> None:
    assert await reason_of(verifier, forgery(issuer, clock)) == reason
    assert verifier.stats.rejections == {reason: 1}


# Two or more claims wrong at once: the refusal names the first, in the documented order
# (iss, aud, exp, iat, nbf, sub, scope, sid, jti, client_id), whatever the token looks like.
CLAIM_ORDER: dict[str, tuple[Callable[[int], dict[str, Any]], str]] = {
    "issuer-before-audience": (lambda now: {"iss": "https://evil.test", "aud": []}, "wrong_issuer"),
    "no-issuer-before-expiry": (lambda now: {"iss": None, "exp": now - 3600}, "missing_claim"),
    "audience-before-expiry": (lambda now: {"aud": ["video"], "exp": now - 3600}, "wrong_audience"),
    "expiry-before-issued-at": (lambda now: {"exp": now - 3600, "iat": now + 3600}, "expired"),
    "float-expiry-still-checked": (lambda now: {"exp": now - 3600.5}, "expired"),
    "issued-at-before-sub": (lambda now: {"iat": now + 3600, "sub": None}, "not_yet_valid"),
    "not-before-before-sub": (lambda now: {"nbf": now + 3600, "sub": ""}, "not_yet_valid"),
    "null-not-before": (lambda now: {"nbf": None}, "missing_claim"),
    "sub-before-scope": (lambda now: {"sub": 7, "scope": ["mail:read"]}, "invalid_claim"),
    "null-scope": (lambda now: {"scope": None}, "invalid_claim"),
    "null-issued-at": (lambda now: {"iat": None}, "missing_claim"),
}


@pytest.mark.parametrize(("claims", "reason"), CLAIM_ORDER.values(), ids=CLAIM_ORDER.keys())
async def test_the_first_wrong_claim_is_the_one_named(
    claims: Callable[[int], dict[str, Any]],
    reason: str,
    issuer: FakeIssuer,
    clock: ManualClock,
    verifier: Verifier,
) -> None:
    # Signed by hand: PyJWT would drop the explicit nulls FakeIssuer.token() treats as "remove".
    token = es256_sign(issuer, header_for(issuer), {**issuer.claims(), **claims(int(clock()))})
    assert await reason_of(verifier, token) == reason


async def test_times_may_be_floats_or_negative(
    issuer: FakeIssuer, clock: ManualClock, verifier: Verifier
) -> None:
    now = int(clock())
    principal = await verifier.verify(issuer.token(exp=now + 300.5, iat=-1))
    assert (principal.exp, principal.iat) == (now + 300.5, -1)


async def test_hs256_signed_with_the_public_key_pem_is_refused(
    issuer: FakeIssuer, verifier: Verifier
) -> None:
    """The classic RS/ES-to-HS confusion: the attacker signs with the public key as HMAC secret."""
    _, key = issuer.keys[issuer.default_kid]
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{segment(header_for(issuer, alg='HS256'))}.{segment(issuer.claims())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert await reason_of(verifier, f"{signing_input}.{b64(mac)}") == "bad_algorithm"


async def test_a_key_is_used_only_with_its_own_algorithm(
    clock: ManualClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    """An RS256 token whose kid names an ES256 key is refused before any signature math."""
    issuer = FakeIssuer(clock=clock, algorithms=("ES256",))
    es_kid = issuer.default_kid
    verifier = make_verifier(issuer, clock)
    token = jwt.encode(
        issuer.claims(), rsa_key, algorithm="RS256", headers={"kid": es_kid, "typ": "at+jwt"}
    )
    with pytest.raises(KeyAlgorithmMismatchError):
        await verifier.verify(token)


async def test_algorithm_allow_list(
    clock: ManualClock, issuer: FakeIssuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    rs_kid = issuer.add_key("RS256", key=rsa_key)
    verifier = make_verifier(issuer, clock, algorithms=["ES256"])
    assert await verifier.verify(issuer.token())
    assert await reason_of(verifier, issuer.token(kid=rs_kid)) == "bad_algorithm"


@pytest.mark.parametrize("algorithms", [[], ["HS256"], ["none"], ["ES256", "RS512"]])
def test_unsafe_or_unknown_algorithms_cannot_be_configured(
    algorithms: list[str], issuer: FakeIssuer, clock: ManualClock
) -> None:
    with pytest.raises(ValueError, match="algorithms"):
        make_verifier(issuer, clock, algorithms=algorithms)


async def test_extra_checks_run_on_fresh_tokens(issuer: FakeIssuer, clock: ManualClock) -> None:
    def deny_session_2(principal: AccessPrincipal) -> None:
        if principal.sid == "session-2":
            raise RevokedTokenError

    verifier = make_verifier(issuer, clock, checks=[deny_session_2])
    assert await verifier.verify(issuer.token(sid="session-1"))
    assert await reason_of(verifier, issuer.token(sid="session-2")) == "revoked"


async def test_headers_are_remembered_only_for_accepted_tokens(
    issuer: FakeIssuer, verifier: Verifier
) -> None:
    await reason_of(verifier, _tamper_signature(issuer.token()))
    assert verifier._known_headers == {}
    await verifier.verify(issuer.token())
    assert len(verifier._known_headers) == 1
    assert await reason_of(verifier, issuer.token(aud=["video"])) == "wrong_audience"


def test_every_error_has_codes() -> None:
    def walk(cls: type[GatepassError]) -> list[type[GatepassError]]:
        return [cls, *(c for sub in cls.__subclasses__() for c in walk(sub))]

    for cls in walk(GatepassError):
        assert cls.error
        assert cls.reason
        assert cls.description
        if issubclass(cls, TokenError):
            assert cls.error == "invalid_token"


ODD_VALUES: list[Any] = [None, [], {}, [1], [None], "", 0, -1, 1.5, True, 10**30, {"a": 1}, "x"]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
async def test_odd_values_anywhere_are_token_errors_never_crashes(
    value: Any, issuer: FakeIssuer, verifier: Verifier
) -> None:
    """Every header and claim member set to an odd JSON value: a 401 reason, never a 500."""
    claims = issuer.claims(nbf=int(issuer.clock()))
    for name in list(claims):
        token = es256_sign(issuer, header_for(issuer), {**claims, name: value})
        await _accepts_or_refuses(verifier, token)
    for name in ("alg", "typ", "kid", "crit"):
        token = es256_sign(issuer, {**header_for(issuer), name: value}, claims)
        await _accepts_or_refuses(verifier, token)


async def _accepts_or_refuses(verifier: Verifier, token: str) -> None:
    with contextlib.suppress(TokenError):
        await verifier.verify(token)
