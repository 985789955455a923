"""Who gets in: tokens and scopes on every route, the public routes, probes, limits."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edge_service_video.app import create_app
from edge_service_video.config import VideoSettings
from gatepass.edgetest import EdgeUnderTest, expect_problem, run_edge
from gatepass.testing import FakeIssuer

ROUTES = [
    ("GET", "/videos", "video:read"),
    ("GET", "/videos/vid_x", "video:read"),
    ("POST", "/videos", "video:upload"),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in ROUTES]


async def call(
    video: EdgeUnderTest, method: str, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"title": "t"} if method == "POST" else None
    return await video.http.request(method, path, json=body, headers=headers)


async def test_about_is_public_and_names_the_scopes(video: EdgeUnderTest) -> None:
    about = (await video.http.get("/about")).json()
    assert about["service"] == about["audience"] == "video"
    assert set(about["scopes"]) == {"video:read", "video:upload", "video:delete"}
    openapi = video.app.openapi()  # not served in production (the default): API_DOCS
    assert {"/videos", "/videos/{video_id}"} <= set(openapi["paths"])


@pytest.mark.parametrize(
    ("method", "path"), [*((m, p) for m, p, _ in ROUTES), ("DELETE", "/videos/vid_x")]
)
@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "missing_token"), ("Bearer not.a.token", "invalid_token"), ("Basic eDp5", None)],
    ids=["none", "garbage", "basic"],
)
async def test_every_route_needs_a_valid_token(
    video: EdgeUnderTest, method: str, path: str, authorization: str | None, code: str | None
) -> None:
    headers = {"authorization": authorization} if authorization else None
    answer = await call(video, method, path, headers)
    expect_problem(answer, 401, code)
    assert answer.headers["www-authenticate"].startswith('Bearer realm="video"')


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES, ids=ROUTE_IDS)
async def test_each_route_needs_its_scope(
    video: EdgeUnderTest, method: str, path: str, scope: str
) -> None:
    other = "video:upload" if scope == "video:read" else "video:read"
    answer = await call(video, method, path, video.bearer("usr_bob", f"{other} mail:read"))
    assert expect_problem(answer, 403, "insufficient_scope")["required_scopes"] == [scope]
    assert f'scope="{scope}"' in answer.headers["www-authenticate"]


async def test_a_body_over_the_limit_is_413(video: EdgeUnderTest) -> None:
    draft = {"title": "t", "description": "d" * 70_000}
    answer = await video.http.post("/videos", json=draft, headers=video.bearer("a", "video:upload"))
    expect_problem(answer, 413, "payload_too_large")


async def test_ready_and_metrics(video: EdgeUnderTest) -> None:
    assert (await video.http.get("/readyz")).json()["checks"] == {"keys": True, "database": True}
    await video.http.get("/videos/vid_1", headers=video.bearer("usr_bob", "video:read"))
    metrics = (await video.http.get("/metrics")).text
    assert 'route="/videos/{video_id}",status="404"' in metrics


async def test_unready_while_the_issuer_is_unreachable(issuer: FakeIssuer, tmp_path: Path) -> None:
    issuer.fail_with = httpx.ConnectError("connection refused")
    settings = VideoSettings(issuer=issuer.issuer, data_dir=tmp_path)
    async with run_edge(create_app, settings, issuer) as video:
        body = expect_problem(await video.http.get("/readyz"), 503, "not_ready")
        assert body["checks"] == {"keys": False, "database": True}
        answer = await video.http.get("/videos", headers=video.bearer("usr_bob", "video:read"))
        expect_problem(answer, 503)
