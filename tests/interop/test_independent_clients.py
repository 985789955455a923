"""Client libraries nobody here wrote get service tokens from a running auth service.

authlib's ``AsyncOAuth2Client`` (Python) and panva's ``oauth4webapi`` (node, in ``node/``) each
authenticate with ``private_key_jwt`` (RFC 7523), make a client-credentials grant (RFC 6749 §4.4)
with a resource indicator (RFC 8707), and exchange a user's token (RFC 8693). They build the
assertions and read the answers their own way: authlib puts the token endpoint in ``aud``,
oauth4webapi the issuer and ``nbf``; oauth4webapi finds the endpoint through the RFC 8414
metadata and checks the issuer it names.

node is skipped where it is not installed (``GATEPASS_REQUIRE_INTEROP=1``, which CI sets, makes
that a failure); its one package is installed from ``node/package-lock.json`` on first use.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from joserfc.jwk import ECKey

with warnings.catch_warnings():
    # authlib prefers httpx2 and, finding httpx, says so under a filter of its own ("always").
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

from gatepass.clientkey import ClientRegistration
from gatepass.core.jwk import new_private_jwk, public_of
from tests.support.auth_client import jose_part, new_user
from tests.support.node import NODE_DIR, node_or_skip
from tests.support.procs import ServiceFactory, ServiceProcess

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
# A service like mail: its users' tokens name it, and it may ask video to read for them.
INTEROP = ClientRegistration("interop", ("video",), ("video:read",), resource="mail")


def start_with_client(
    start_auth: ServiceFactory, tmp_path: Path
) -> tuple[ServiceProcess, dict[str, str]]:
    """The auth service with one service client registered, and that client's private key."""
    private = new_private_jwk("ES256")
    clients = tmp_path / "interop-clients.json"
    clients.write_text(json.dumps({"clients": [INTEROP.declaration(public_of(private))]}))
    return start_auth({"GATEPASS_AUTH_CLIENTS_FILE": str(clients)}), private


def users_token(auth: ServiceProcess) -> str:
    with httpx.Client(base_url=auth.base_url, timeout=30) as client:
        token: str = new_user(client, "interop")[2]["access_token"]
    return token


def check_service_token(token: str, scope: str) -> None:
    claims = jose_part(token, 1)
    assert claims["sub"] == claims["client_id"] == "interop"
    assert "sid" not in claims
    assert claims["aud"] in ("video", ["video"])
    assert claims["scope"] == scope


def check_exchanged_token(token: str, subject: str) -> None:
    claims, original = jose_part(token, 1), jose_part(subject, 1)
    assert claims["sub"] == original["sub"]
    assert claims["sid"] == original["sid"]
    assert claims["act"] == {"sub": "interop"}
    assert claims["aud"] in ("video", ["video"])
    assert claims["scope"] == "video:read"
    assert claims["exp"] <= original["exp"]


async def test_authlib_gets_a_service_token_and_exchanges_a_users(
    start_auth: ServiceFactory, tmp_path: Path
) -> None:
    auth, private = start_with_client(start_auth, tmp_path)
    subject = users_token(auth)
    token_url = f"{auth.base_url}/token"
    client = AsyncOAuth2Client(
        client_id="interop",
        client_secret=ECKey.import_key(dict[str, str | list[str]](private)),
        token_endpoint_auth_method=PrivateKeyJWT(token_url, alg="ES256"),
    )
    async with client:
        issued: dict[str, Any] = await client.fetch_token(
            token_url, grant_type="client_credentials", resource="video", scope="video:read"
        )
        check_service_token(issued["access_token"], "video:read")
        assert issued["token_type"].lower() == "bearer"
        exchanged: dict[str, Any] = await client.fetch_token(
            token_url,
            grant_type=TOKEN_EXCHANGE,
            subject_token=subject,
            subject_token_type=ACCESS_TOKEN,
            audience="video",
            scope="video:read",
        )
        check_exchanged_token(exchanged["access_token"], subject)
        assert exchanged["issued_token_type"] == ACCESS_TOKEN

        # And the standard's refusals reach authlib as the standard's error codes.
        with pytest.raises(Exception, match="invalid_scope"):
            await client.fetch_token(
                token_url, grant_type="client_credentials", scope="video:delete"
            )
        with pytest.raises(Exception, match="invalid_target"):
            await client.fetch_token(token_url, grant_type="client_credentials", resource="mail")


def test_oauth4webapi_gets_a_service_token_and_exchanges_a_users(
    start_auth: ServiceFactory, tmp_path: Path
) -> None:
    node = node_or_skip()
    auth, private = start_with_client(start_auth, tmp_path)
    subject = users_token(auth)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ISSUER": auth.base_url,
        "CLIENT_ID": "interop",
        "CLIENT_JWK": json.dumps(private),
        "CC_RESOURCE": "video",
        "CC_SCOPE": "video:read",
        "SUBJECT_TOKEN": subject,
        "EXCHANGE_AUDIENCE": "video",
        "EXCHANGE_SCOPE": "video:read",
    }
    run = subprocess.run(
        [node, "service_client.mjs"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    check_service_token(result["client_credentials"]["access_token"], "video:read")
    check_exchanged_token(result["exchange"]["access_token"], subject)
    assert result["exchange"]["issued_token_type"] == ACCESS_TOKEN
