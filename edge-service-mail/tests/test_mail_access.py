"""Who gets in: tokens and scopes on every route, the public routes, probes, limits."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edge_service_mail.app import create_app
from edge_service_mail.config import MailSettings
from gatepass.edgetest import EdgeUnderTest, expect_problem, run_edge
from gatepass.testing import FakeIssuer

DRAFT = {"to": "usr_bob", "subject": "s", "body": "b"}
ROUTES = [
    ("GET", "/inbox", "mail:read"),
    ("GET", "/sent", "mail:read"),
    ("POST", "/messages", "mail:send"),
    ("GET", "/messages/msg_x", "mail:read"),
    ("DELETE", "/messages/msg_x", "mail:read"),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in ROUTES]


async def call(
    mail: EdgeUnderTest, method: str, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = DRAFT if method == "POST" else None
    return await mail.http.request(method, path, json=body, headers=headers)


async def test_about_is_public_and_names_the_scopes(mail: EdgeUnderTest) -> None:
    about = (await mail.http.get("/about")).json()
    assert about["service"] == about["audience"] == "mail"
    assert set(about["scopes"]) == {"mail:read", "mail:send"}
    assert (await mail.http.get("/healthz")).json() == {"status": "ok"}
    openapi = mail.app.openapi()  # not served in production (the default): API_DOCS
    assert {"/inbox", "/sent", "/messages", "/messages/{message_id}"} <= set(openapi["paths"])


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES, ids=ROUTE_IDS)
async def test_no_token_is_a_bare_challenge(
    mail: EdgeUnderTest, method: str, path: str, scope: str
) -> None:
    answer = await call(mail, method, path)
    expect_problem(answer, 401, "missing_token")
    assert answer.headers["www-authenticate"] == 'Bearer realm="mail"'


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES, ids=ROUTE_IDS)
async def test_a_garbage_token_is_invalid(
    mail: EdgeUnderTest, method: str, path: str, scope: str
) -> None:
    answer = await call(mail, method, path, headers={"authorization": "Bearer not.a.token"})
    assert expect_problem(answer, 401, "invalid_token")["reason"] == "malformed"
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


async def test_a_token_for_another_service_is_refused(mail: EdgeUnderTest) -> None:
    token = mail.issuer.token(sub="usr_bob", scope="mail:read", aud=["video"])
    answer = await mail.http.get("/inbox", headers={"authorization": f"Bearer {token}"})
    assert expect_problem(answer, 401, "invalid_token")["reason"] == "wrong_audience"


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES, ids=ROUTE_IDS)
async def test_each_route_needs_its_scope(
    mail: EdgeUnderTest, method: str, path: str, scope: str
) -> None:
    other = "mail:send" if scope == "mail:read" else "mail:read"
    answer = await call(mail, method, path, headers=mail.bearer("usr_bob", f"{other} video:read"))
    body = expect_problem(answer, 403, "insufficient_scope")
    assert body["required_scopes"] == [scope]
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert f'scope="{scope}"' in challenge


async def test_a_body_over_the_limit_is_413(mail: EdgeUnderTest) -> None:
    draft = {**DRAFT, "body": "b" * 70_000}
    answer = await mail.http.post("/messages", json=draft, headers=mail.bearer("a", "mail:send"))
    expect_problem(answer, 413, "payload_too_large")


async def test_ready_with_keys_and_a_database(mail: EdgeUnderTest) -> None:
    ready = (await mail.http.get("/readyz")).json()
    assert ready["checks"] == {"keys": True, "database": True}
    assert ready["keyset"]["kids"] == [mail.issuer.default_kid]


async def test_metrics_count_requests_by_route(mail: EdgeUnderTest) -> None:
    await mail.http.get("/inbox", headers=mail.bearer("usr_bob", "mail:read"))
    await mail.http.get("/messages/msg_1", headers=mail.bearer("usr_bob", "mail:read"))
    metrics = (await mail.http.get("/metrics")).text
    assert 'gatepass_edge_http_requests_total{method="GET",route="/inbox",status="200"} 1.0' in (
        metrics
    )
    assert 'route="/messages/{message_id}",status="404"' in metrics
    assert "gatepass_edge_jwks_usable 1.0" in metrics


async def test_unready_and_503_while_the_issuer_is_unreachable(
    issuer: FakeIssuer, tmp_path: Path
) -> None:
    issuer.fail_with = httpx.ConnectError("connection refused")
    settings = MailSettings(issuer=issuer.issuer, data_dir=tmp_path)
    async with run_edge(create_app, settings, issuer) as mail:
        body = expect_problem(await mail.http.get("/readyz"), 503, "not_ready")
        assert body["checks"] == {"keys": False, "database": True}
        assert body["keyset"]["last_fetch_outcome"] is not None
        answer = await mail.http.get("/inbox", headers=mail.bearer("usr_bob", "mail:read"))
        expect_problem(answer, 503)
        assert int(answer.headers["retry-after"]) >= 1
        assert (await mail.http.get("/healthz")).status_code == 200
