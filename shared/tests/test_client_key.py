"""``gatepass-client-key``: a service's private JWK file and the public half to register."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jwt
import pytest

from gatepass.clientkey import main, write_private_jwk
from gatepass.core.jwk import PRIVATE_MEMBERS, jwk_thumbprint


@pytest.mark.parametrize("alg", ["ES256", "Ed25519", "RS256"])
def test_the_private_key_signs_what_its_public_half_verifies(tmp_path: Path, alg: str) -> None:
    """An Ed25519 key is made under RFC 9864's name; PyJWT, which knows the same algorithm only
    as ``EdDSA``, checks it under that one."""
    path = tmp_path / "client-key.json"
    public = write_private_jwk(path, alg)
    private = json.loads(path.read_text())
    assert not PRIVATE_MEMBERS & public.keys()
    assert private["kid"] == public["kid"] == jwk_thumbprint(public)
    assert private["alg"] == public["alg"] == alg
    pyjwt_alg = "EdDSA" if alg == "Ed25519" else alg
    signing = jwt.PyJWK(private, algorithm=pyjwt_alg).key
    token = jwt.encode({"sub": "mail"}, signing, algorithm=pyjwt_alg)
    checking = jwt.PyJWK(public, algorithm=pyjwt_alg).key
    assert jwt.decode(token, checking, algorithms=[pyjwt_alg]) == {"sub": "mail"}


def test_the_file_is_its_owners_alone_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "client-key.json"
    write_private_jwk(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_text()
    with pytest.raises(FileExistsError):
        write_private_jwk(path)
    assert path.read_text() == before


def test_the_command_prints_a_jwk_set_to_register(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "client-key.json"
    assert main([str(path), "--alg", "ES256"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [key["kid"] for key in printed["keys"]] == [json.loads(path.read_text())["kid"]]
    assert "d" not in printed["keys"][0]
    assert main([str(path)]) == 1
    assert "exists" in capsys.readouterr().err
