"""The secrets scripts, run offline: ``deploy/make-secrets.sh`` (compose) in a copy of the
``deploy`` folder of its own, ``deploy/k8s/make-secrets.sh`` as it is (it only prints).

What matters about the services' identities they make (``deploy/client-keys.sh``): each edge's
key is a private JWK the edge can sign with; the auth service's clients file declares each edge
exactly as the edge asks to be registered (``CLIENT`` in its ``app``), with the public half of
that very key and nothing private; the auth service reads the file. And for compose: a second
run keeps every secret, an older ``deploy/.env`` and secrets folder are brought up to date, and
no private key is ever printed.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from auth_service import client_file
from edge_service_mail.app import CLIENT as MAIL_CLIENT
from edge_service_video.app import CLIENT as VIDEO_CLIENT
from gatepass.clientkey import ClientRegistration
from gatepass.core.jwk import jwk_thumbprint, public_of
from gatepass.core.oauth import ClientIdentity

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
REGISTRATIONS: dict[str, ClientRegistration] = {"mail": MAIL_CLIENT, "video": VIDEO_CLIENT}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}
PROD_DATABASE_URLS = {
    f"GATEPASS_{service.upper()}_DATABASE_URL": f"postgresql+asyncpg://{service}:pw@db:5432/{service}"
    for service in ("auth", "mail", "video")
}

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the secrets scripts make keys with openssl"
)

Obj = dict[str, Any]


# --- what the identities must be -----------------------------------------------------------------


def check_identities(keys: Mapping[str, str], clients: str, path: Path) -> None:
    """``keys``: each edge's private JWK (JSON text); ``clients``: the clients file's text,
    also written at ``path`` for the auth service's own reader."""
    document = json.loads(clients)
    declared = {entry["client_id"]: entry for entry in document["clients"]}
    assert set(declared) == set(REGISTRATIONS) == set(keys)
    for name, registration in REGISTRATIONS.items():
        private = json.loads(keys[name])
        assert private["kid"] == jwk_thumbprint(private)
        assert (private["kty"], private["crv"], private["alg"]) == ("EC", "P-256", "ES256")
        # The edge's identity from its key, and the clients file's key verifies what it signs.
        identity = ClientIdentity.from_jwk(registration.client_id, private)
        assertion = identity.assertion("http://auth:8000/token", 1_000_000.0)
        entry = declared[name]
        assert entry == registration.declaration(public_of(private))
        (public,) = entry["jwks"]["keys"]
        assert not PRIVATE_MEMBERS & set(public), f"a private member in {name}'s declaration"
        key = jwt.PyJWK(public).key
        claims = jwt.decode(
            assertion,
            key,
            algorithms=["ES256"],
            audience="http://auth:8000/token",
            options={"verify_exp": False, "verify_iat": False},
        )
        assert claims["iss"] == claims["sub"] == registration.client_id
    path.write_text(clients)
    read = client_file.read(path)
    assert [client.client_id for client in read] == list(REGISTRATIONS)
    assert all(client.auth_method == "private_key_jwt" for client in read)


# --- compose: deploy/make-secrets.sh -------------------------------------------------------------


def deploy_copy(tmp_path: Path) -> Path:
    """The scripts in a folder of their own: the script writes next to itself."""
    folder = tmp_path / "deploy"
    folder.mkdir()
    for name in ("make-secrets.sh", "client-keys.sh"):
        shutil.copy2(DEPLOY / name, folder / name)
    return folder


def make_secrets(folder: Path) -> str:
    result = subprocess.run(
        ["sh", str(folder / "make-secrets.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not result.stderr, result.stderr
    return result.stdout


def env_of(folder: Path) -> dict[str, str]:
    lines = (folder / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def compose_identities(folder: Path) -> tuple[dict[str, str], str]:
    env = env_of(folder)
    keys = {
        name: (folder / env[f"GATEPASS_{name.upper()}_KEY_FILE"]).read_text()
        for name in REGISTRATIONS
    }
    return keys, (folder / env["GATEPASS_CLIENTS_FILE"]).read_text()


def test_compose_secrets_give_each_edge_a_key_the_clients_file_declares(tmp_path: Path) -> None:
    folder = deploy_copy(tmp_path)
    printed = make_secrets(folder)
    keys, clients = compose_identities(folder)
    check_identities(keys, clients, tmp_path / "clients.json")
    for key in keys.values():
        assert json.loads(key)["d"] not in printed
    # Every file compose mounts is named in .env, relative to the compose file's folder.
    env = env_of(folder)
    for variable in ("GATEPASS_KEK_FILE", "GATEPASS_CLIENTS_FILE"):
        assert env[variable].startswith("./secrets/"), variable
    # The folder keeps other users out; the files must be readable by the containers' user.
    assert stat.S_IMODE((folder / "secrets").stat().st_mode) == 0o700
    for file in (folder / "secrets").iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file.name
    assert sorted(file.name for file in (folder / "secrets").iterdir()) == [
        "clients.json",
        "kek",
        "mail-client-key.json",
        "video-client-key.json",
    ]


def test_compose_secrets_are_kept_when_made_again(tmp_path: Path) -> None:
    folder = deploy_copy(tmp_path)
    make_secrets(folder)
    before = {file.name: file.read_bytes() for file in (folder / "secrets").iterdir()}
    env = (folder / ".env").read_text()
    printed = make_secrets(folder)
    assert {file.name: file.read_bytes() for file in (folder / "secrets").iterdir()} == before
    assert (folder / ".env").read_text() == env
    assert "wrote" not in printed
    assert "added" not in printed


def test_an_older_compose_setup_gets_the_identities_and_keeps_its_secrets(tmp_path: Path) -> None:
    """What make-secrets.sh made before the edges had identities (or feed tokens): a .env with
    the passwords and the KEK file's name, and the KEK."""
    folder = deploy_copy(tmp_path)
    secrets_dir = folder / "secrets"
    secrets_dir.mkdir(mode=0o700)
    (secrets_dir / "kek").write_text("ab" * 32)
    old_env = (
        "# Made by deploy/make-secrets.sh. Hex passwords: they go into database URLs as they are.\n"
        + "".join(
            f"{name}={index:02x}{'0' * 46}\n"
            for index, name in enumerate(
                (
                    "POSTGRES_PASSWORD",
                    "GATEPASS_AUTH_DB_PASSWORD",
                    "GATEPASS_MAIL_DB_PASSWORD",
                    "GATEPASS_VIDEO_DB_PASSWORD",
                )
            )
        )
        + "GATEPASS_KEK_FILE=./secrets/kek\n"
    )
    (folder / ".env").write_text(old_env)

    printed = make_secrets(folder)

    assert (folder / ".env").read_text().startswith(old_env)
    assert (secrets_dir / "kek").read_text() == "ab" * 32
    assert set(env_of(folder)) >= {
        "GATEPASS_MAIL_FEED_TOKEN",
        "GATEPASS_VIDEO_FEED_TOKEN",
        "GATEPASS_CLIENTS_FILE",
        "GATEPASS_MAIL_KEY_FILE",
        "GATEPASS_VIDEO_KEY_FILE",
    }
    assert "added GATEPASS_CLIENTS_FILE to deploy/.env" in printed
    keys, clients = compose_identities(folder)
    check_identities(keys, clients, tmp_path / "clients.json")


def test_a_deleted_edge_key_is_made_again_and_the_clients_file_follows(tmp_path: Path) -> None:
    folder = deploy_copy(tmp_path)
    make_secrets(folder)
    old_keys, _ = compose_identities(folder)
    (folder / "secrets" / "video-client-key.json").unlink()

    printed = make_secrets(folder)

    keys, clients = compose_identities(folder)
    assert keys["mail"] == old_keys["mail"]
    assert keys["video"] != old_keys["video"]
    assert "wrote deploy/secrets/clients.json" in printed
    check_identities(keys, clients, tmp_path / "clients.json")


# --- Kubernetes: deploy/k8s/make-secrets.sh ------------------------------------------------------


def k8s_secrets(*args: str) -> dict[str, Obj]:
    result = subprocess.run(
        ["sh", str(DEPLOY / "k8s" / "make-secrets.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **PROD_DATABASE_URLS},
    )
    assert result.returncode == 0, result.stderr
    return {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(result.stdout) if doc}


def k8s_identities(printed: Mapping[str, Obj]) -> tuple[dict[str, str], str]:
    keys = {
        name: printed[f"gatepass-{name}-client"]["stringData"]["client-key.json"]
        for name in REGISTRATIONS
    }
    return keys, printed["gatepass-auth-clients"]["stringData"]["clients.json"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_k8s_secrets_give_each_edge_a_key_the_clients_file_declares(
    overlay: str, tmp_path: Path
) -> None:
    printed = k8s_secrets(overlay)
    keys, clients = k8s_identities(printed)
    check_identities(keys, clients, tmp_path / "clients.json")
    namespace = {"dev": "gatepass-dev", "prod": "gatepass"}[overlay]
    assert {secret["metadata"]["namespace"] for secret in printed.values()} == {namespace}


def test_k8s_clients_prints_only_the_identities(tmp_path: Path) -> None:
    """For a deployment made before the edges had identities, or to replace their keys."""
    printed = k8s_secrets("prod", "clients")
    assert set(printed) == {
        "gatepass-mail-client",
        "gatepass-video-client",
        "gatepass-auth-clients",
    }
    keys, clients = k8s_identities(printed)
    check_identities(keys, clients, tmp_path / "clients.json")
    again, _ = k8s_identities(k8s_secrets("prod", "clients"))
    assert again["mail"] != keys["mail"], "fresh keys on every run"


def test_k8s_secrets_are_not_printed_to_a_terminal() -> None:
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            ["sh", str(DEPLOY / "k8s" / "make-secrets.sh"), "dev"],
            stdout=terminal,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
        os.set_blocking(controller, False)
        try:
            shown = os.read(controller, 65536)
        except BlockingIOError:
            shown = b""
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 2
    assert "kubectl create -f -" in result.stderr
    assert shown == b""
