"""Signing keys seen from outside: the JWKS, rotation, algorithms, restarts, discovery."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from datetime import datetime

import httpx
import pytest

from tests.support.auth_client import bearer, jose_part, login, new_user, refresh, verify_with_jwks
from tests.support.cli import run_cli
from tests.support.procs import ServiceFactory, service_env

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def jwks(client: httpx.Client) -> list[dict[str, str]]:
    keys: list[dict[str, str]] = client.get("/.well-known/jwks.json").json()["keys"]
    return keys


def test_jwks_publishes_public_parameters_with_caching_headers(start_auth: ServiceFactory) -> None:
    auth = start_auth()
    with httpx.Client(base_url=auth.base_url) as client:
        response = client.get("/.well-known/jwks.json")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/jwk-set+json")
        assert response.headers["cache-control"] == "public, max-age=600"
        etag = response.headers["etag"]
        (key,) = response.json()["keys"]
        assert key["use"] == "sig"
        assert key["alg"] == "ES256"
        assert key["kty"] == "EC"
        assert key["crv"] == "P-256"
        assert key["kid"]
        assert not PRIVATE_JWK_MEMBERS & set(key)
        cached = client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
        assert cached.status_code == 304
        assert cached.content == b""
        assert cached.headers["etag"] == etag


@pytest.mark.parametrize(("alg", "kty"), [("RS256", "RSA"), ("EdDSA", "OKP")])
def test_other_signing_algorithms(start_auth: ServiceFactory, alg: str, kty: str) -> None:
    auth = start_auth({"GATEPASS_AUTH_SIGNING_ALG": alg})
    with httpx.Client(base_url=auth.base_url) as client:
        (key,) = jwks(client)
        assert key["alg"] == alg
        assert key["kty"] == kty
        assert not PRIVATE_JWK_MEMBERS & set(key)
        _, user_id, tokens = new_user(client)
        assert jose_part(tokens["access_token"], 0)["alg"] == alg
        assert verify_with_jwks(client, tokens["access_token"])["sub"] == user_id


def test_rotation_publishes_a_key_before_it_signs(
    start_auth: ServiceFactory, auth_env: dict[str, str]
) -> None:
    # A two-second JWKS lifetime and no extra margin: the new key must sit in the JWKS >= 2 s first.
    # Judged by the issuer's own clock (the key's record, the tokens' iat), never by how fast this
    # machine answers: a busy machine only changes how many tokens the old key signs meanwhile.
    max_age = 2
    fast = {
        "GATEPASS_AUTH_JWKS_MAX_AGE": str(max_age),
        "GATEPASS_AUTH_KEY_PUBLISH_MARGIN": "0",
        "GATEPASS_AUTH_KEY_CHECK_INTERVAL": "0.2",
    }
    auth = start_auth(fast)
    with httpx.Client(base_url=auth.base_url) as client:
        email, _, tokens = new_user(client)
        old_kid = jose_part(tokens["access_token"], 0)["kid"]
        run_cli(auth_env | fast, "keys", "rotate")
        kids = [k["kid"] for k in jwks(client)]
        assert len(kids) == 2  # published at once
        new_kid = next(k for k in kids if k != old_kid)
        signed: list[tuple[int, str]] = []  # (iat, kid) of each token, in order
        deadline = time.monotonic() + 30
        while not signed or signed[-1][1] == old_kid:
            assert time.monotonic() < deadline, "the new key never started signing"
            token = login(client, email)["access_token"]
            signed.append((jose_part(token, 1)["iat"], jose_part(token, 0)["kid"]))
            time.sleep(0.2)
        # The issuer's own record: published (created) at least one JWKS max-age before signing.
        listing = run_cli(auth_env | fast, "keys", "list")
        row = next(line.split("\t") for line in listing.splitlines() if line.startswith(new_kid))
        created, activated = (datetime.fromisoformat(row[i]) for i in (3, 5))
        assert (activated - created).total_seconds() >= max_age
        # No token was signed with the new key before a whole max-age had passed since it was
        # published (iat is whole seconds, hence the one-second floor).
        first_new = min(iat for iat, kid in signed if kid == new_kid)
        assert first_new >= int(created.timestamp()) + max_age - 1
        # The old key stays published while tokens it signed can live; they still verify.
        assert old_kid in [k["kid"] for k in jwks(client)]
        assert client.get("/me", headers=bearer(tokens["access_token"])).status_code == 200


def test_restart_keeps_everyone_logged_in(start_auth: ServiceFactory) -> None:
    auth = start_auth()
    with httpx.Client(base_url=auth.base_url) as client:
        _, user_id, tokens = new_user(client)
        kids_before = [k["kid"] for k in jwks(client)]
    auth.stop()
    auth.restart()
    with httpx.Client(base_url=auth.base_url) as client:
        assert [k["kid"] for k in jwks(client)] == kids_before
        me = client.get("/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 200
        assert me.json()["id"] == user_id
        refreshed = refresh(client, tokens["refresh_token"])
        assert refreshed.status_code == 200
        assert verify_with_jwks(client, refreshed.json()["access_token"])["sub"] == user_id


def test_discovery_document(start_auth: ServiceFactory) -> None:
    auth = start_auth()
    with httpx.Client(base_url=auth.base_url) as client:
        doc = client.get("/.well-known/openid-configuration").json()
        assert doc["issuer"] == auth.base_url
        assert doc["jwks_uri"] == f"{auth.base_url}/.well-known/jwks.json"
        assert doc["token_endpoint"] == f"{auth.base_url}/token"
        assert doc["introspection_endpoint"] == f"{auth.base_url}/introspect"
        assert "refresh_token" in doc["grant_types_supported"]
        assert {"mail:read", "video:delete", "admin"} <= set(doc["scopes_supported"])
        assert client.get(doc["jwks_uri"].removeprefix(auth.base_url)).status_code == 200


def test_health_readiness_and_metrics(start_auth: ServiceFactory) -> None:
    auth = start_auth()
    with httpx.Client(base_url=auth.base_url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz").json()
        assert ready["checks"] == {"database": True, "signing_key": True}
        email, _, _ = new_user(client)
        client.post("/login", json={"email": email, "password": "Wrong-password-1"})
        text = client.get("/metrics").text
        assert 'gatepass_auth_logins_total{outcome="success"} 1.0' in text
        assert 'gatepass_auth_logins_total{outcome="invalid_credentials"} 1.0' in text
        assert 'gatepass_auth_tokens_issued_total{grant="password"} 1.0' in text
        assert "gatepass_auth_signing_key_age_seconds" in text
        assert client.get("/docs").status_code == 200


def test_production_mode_refuses_to_start_without_a_key_encryption_key(
    auth_env: dict[str, str],
) -> None:
    def start(**overrides: str) -> subprocess.CompletedProcess[str]:
        env = auth_env | {"GATEPASS_AUTH_ENVIRONMENT": "production"} | overrides
        return subprocess.run(
            [sys.executable, "-m", "auth_service", "--port", "1"],
            env=service_env(env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    no_kek = start(GATEPASS_AUTH_ISSUER="https://auth.example.com")
    assert no_kek.returncode == 2
    assert "key-encryption key" in no_kek.stderr
    # A good key ("A" * 43 would be 32 zero bytes, refused for itself): only the issuer is wrong.
    plain_http = start(
        GATEPASS_AUTH_KEK=secrets.token_hex(32), GATEPASS_AUTH_ISSUER="http://plain.example.com"
    )
    assert plain_http.returncode == 2
    assert "https" in plain_http.stderr
