"""JWKS parsing: only public signing keys with one unambiguous algorithm get through."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gatepass.core.jwks import (
    Ed25519Key,
    Es256Key,
    JwksError,
    Rs256Key,
    parse_jwk,
    parse_jwks,
)
from gatepass.testing import generate_key, public_jwk


def es256_jwk(kid: str = "k1") -> dict[str, Any]:
    return public_jwk(generate_key("ES256"), kid, "ES256")


def test_accepts_the_three_supported_key_types(rsa_key: rsa.RSAPrivateKey) -> None:
    document = {
        "keys": [
            es256_jwk("ec"),
            public_jwk(rsa_key, "rsa", "RS256"),
            public_jwk(generate_key("Ed25519"), "ed", "Ed25519"),
            public_jwk(generate_key("Ed25519"), "ed-old", "EdDSA"),
        ]
    }
    parsed = parse_jwks(json.dumps(document).encode())
    assert isinstance(parsed.keys["ec"], Es256Key)
    assert isinstance(parsed.keys["rsa"], Rs256Key)
    assert isinstance(parsed.keys["ed"], Ed25519Key)
    assert isinstance(parsed.keys["ed-old"], Ed25519Key)
    assert parsed.skipped == {}


@pytest.mark.parametrize(
    ("alg", "algs"),
    [("ES256", {"ES256"}), ("Ed25519", {"Ed25519", "EdDSA"}), ("EdDSA", {"Ed25519", "EdDSA"})],
)
def test_alg_is_derived_when_unambiguous(alg: str, algs: set[str]) -> None:
    """Ed25519 has two names for one algorithm (RFC 9864): a key stating neither takes both."""
    jwk = public_jwk(generate_key(alg), "k", alg)
    del jwk["alg"]
    key = parse_jwk(jwk)
    assert key.algs == algs
    assert key.alg == sorted(algs)[0]  # ES256, or Ed25519 (RFC 9864's name) for an OKP key
    # The last-known-good copy keeps it that way: no alg is made up for it.
    assert parse_jwk({**key.jwk}).algs == algs


@pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
def test_an_ed25519_key_stating_its_alg_is_bound_to_that_name(alg: str) -> None:
    key = parse_jwk(public_jwk(generate_key("Ed25519"), "k", alg))
    assert (key.alg, key.algs) == (alg, frozenset({alg}))
    assert key.jwk["alg"] == alg


def test_rsa_without_alg_is_skipped(rsa_key: rsa.RSAPrivateKey) -> None:
    jwk = public_jwk(rsa_key, "k", "RS256")
    del jwk["alg"]
    assert parse_jwks({"keys": [jwk]}).skipped == {"missing_alg": 1}


def _variant(**changes: Any) -> dict[str, Any]:
    jwk = es256_jwk()
    for name, value in changes.items():
        if value is None:
            jwk.pop(name, None)
        else:
            jwk[name] = value
    return jwk


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        pytest.param(_variant(use="enc"), "wrong_use", id="use-enc"),
        pytest.param(_variant(key_ops=["encrypt"]), "wrong_use", id="key_ops-without-verify"),
        pytest.param(_variant(kid=None), "bad_kid", id="no-kid"),
        pytest.param(_variant(kid=""), "bad_kid", id="empty-kid"),
        pytest.param(_variant(kid="a b"), "bad_kid", id="kid-with-space"),
        pytest.param(_variant(kid="k" * 200), "bad_kid", id="kid-too-long"),
        pytest.param(_variant(d="AAAA"), "private_key", id="private-d"),
        pytest.param(_variant(alg="RS256"), "unsupported", id="ec-key-claiming-rs256"),
        pytest.param(_variant(alg="ES384"), "unsupported", id="es384"),
        pytest.param(_variant(alg="Ed25519"), "unsupported", id="ec-key-claiming-ed25519"),
        pytest.param(_variant(alg="EdDSA"), "unsupported", id="ec-key-claiming-eddsa"),
        pytest.param(_variant(crv="P-384"), "unsupported", id="p-384"),
        pytest.param({"kty": "oct", "k": "c2VjcmV0", "kid": "h"}, "private_key", id="oct-secret"),
        pytest.param({"kty": "oct", "kid": "h", "alg": "HS256"}, "unsupported", id="oct"),
        pytest.param(_variant(x="AAAA"), "invalid_key", id="short-x"),
        pytest.param(_variant(x="not base64!"), "invalid_key", id="x-not-base64url"),
        pytest.param(_variant(y=None), "invalid_key", id="no-y"),
        pytest.param("a string", "not_an_object", id="not-an-object"),
    ],
)
def test_bad_entries_are_skipped_and_counted(entry: Any, reason: str) -> None:
    parsed = parse_jwks({"keys": [entry, es256_jwk("good")]})
    assert list(parsed.keys) == ["good"]
    assert parsed.skipped == {reason: 1}


def test_point_not_on_the_curve_is_skipped() -> None:
    jwk = es256_jwk()
    jwk["y"] = jwk["x"]
    assert parse_jwks({"keys": [jwk]}).skipped == {"invalid_key": 1}


def test_weak_rsa_is_skipped() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point)
    assert parse_jwks({"keys": [public_jwk(weak, "w", "RS256")]}).skipped == {"weak_key": 1}


def test_duplicate_kid_drops_every_copy() -> None:
    parsed = parse_jwks({"keys": [es256_jwk("dup"), es256_jwk("dup"), es256_jwk("ok")]})
    assert list(parsed.keys) == ["ok"]
    assert parsed.skipped == {"duplicate_kid": 1}


@pytest.mark.parametrize(
    "document",
    [b"not json", b"[]", b'{"keys": {}}', b"{}", b"\xff\xfe", b'{"keys": ' + b"[" * 5000],
    ids=["not-json", "list", "keys-not-a-list", "empty", "binary", "nested-deep"],
)
def test_a_document_that_is_not_a_jwks_is_an_error(document: bytes) -> None:
    with pytest.raises(JwksError):
        parse_jwks(document)


def test_kept_jwk_is_canonical_and_public() -> None:
    jwk = {**es256_jwk("k"), "x5c": ["MIIB..."], "note": "extra"}
    kept = parse_jwk(jwk).jwk
    assert set(kept) == {"kty", "crv", "x", "y", "kid", "alg", "use"}


def test_es256_key_verifies_its_own_signatures_only() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    key = parse_jwk(public_jwk(private, "k", "ES256"))
    assert not key.verify(b"data", b"\x00" * 64)
    assert not key.verify(b"data", b"short")
    assert "k" in repr(key)


ODD_VALUES: list[Any] = [None, [], {}, [1], "", 0, -1, 1.5, True, "x", "AAAA", {"a": 1}]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_odd_member_values_are_skipped_never_crashes(
    value: Any, rsa_key: rsa.RSAPrivateKey
) -> None:
    for jwk in (es256_jwk(), public_jwk(rsa_key, "r", "RS256")):
        for name in [*jwk, "d", "key_ops"]:
            parsed = parse_jwks({"keys": [{**jwk, name: value}]})
            assert len(parsed.keys) + sum(parsed.skipped.values()) == 1
