"""Deleting: the owner their own, ``video:delete`` anything, anyone else 403 insufficient_scope.

The roles of the auth service's default policy: a "user" (``video:read video:upload``) reads
everything and deletes their own; a "viewer" (``video:read``) only reads; a "moderator" (with
``video:delete``) reads and deletes anything.
"""

from __future__ import annotations

from typing import Any

import pytest

from gatepass.edgetest import EdgeUnderTest, expect_problem

OWNER, OTHER = "usr_owner", "usr_other"
USER = "video:read video:upload"
VIEWER = "video:read"
MODERATOR = "video:read video:upload video:delete"


@pytest.fixture
async def uploaded(video: EdgeUnderTest) -> Any:
    draft = {"title": "holiday"}
    answer = await video.http.post("/videos", json=draft, headers=video.bearer(OWNER, USER))
    return answer.json()


async def delete(video: EdgeUnderTest, video_id: str, sub: str, scope: str) -> Any:
    return await video.http.delete(f"/videos/{video_id}", headers=video.bearer(sub, scope))


async def still_there(video: EdgeUnderTest, video_id: str) -> bool:
    answer = await video.http.get(f"/videos/{video_id}", headers=video.bearer(OTHER, VIEWER))
    return answer.status_code == 200


async def test_one_user_reads_and_deletes_another_only_reads(
    video: EdgeUnderTest, uploaded: Any
) -> None:
    reader = video.bearer(OTHER, VIEWER)
    assert (await video.http.get(f"/videos/{uploaded['id']}", headers=reader)).status_code == 200
    refused = await delete(video, uploaded["id"], OTHER, VIEWER)
    assert expect_problem(refused, 403, "insufficient_scope")["required_scopes"] == ["video:delete"]
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="video", error="insufficient_scope"')
    assert 'scope="video:delete"' in challenge
    assert await still_there(video, uploaded["id"])
    assert (await delete(video, uploaded["id"], OWNER, USER)).status_code == 204
    assert not await still_there(video, uploaded["id"])


async def test_a_moderator_deletes_anyones_video(video: EdgeUnderTest, uploaded: Any) -> None:
    assert (await delete(video, uploaded["id"], OTHER, MODERATOR)).status_code == 204
    assert not await still_there(video, uploaded["id"])


async def test_video_delete_alone_is_enough(video: EdgeUnderTest, uploaded: Any) -> None:
    assert (await delete(video, uploaded["id"], OTHER, "video:delete")).status_code == 204


@pytest.mark.parametrize(
    ("sub", "scope"),
    [(OTHER, USER), (OTHER, ""), (OWNER, VIEWER), (OWNER, "")],
    ids=["another-uploader", "no-scope", "owner-with-a-read-only-token", "owner-without-scope"],
)
async def test_neither_owner_with_upload_nor_delete_is_403(
    video: EdgeUnderTest, uploaded: Any, sub: str, scope: str
) -> None:
    expect_problem(await delete(video, uploaded["id"], sub, scope), 403, "insufficient_scope")
    assert await still_there(video, uploaded["id"])


@pytest.mark.parametrize("scope", [MODERATOR, VIEWER])
async def test_an_unknown_video_is_404_for_anyone(video: EdgeUnderTest, scope: str) -> None:
    expect_problem(await delete(video, "vid_nope", OTHER, scope), 404, "video_not_found")


async def test_deleting_twice_is_404(video: EdgeUnderTest, uploaded: Any) -> None:
    assert (await delete(video, uploaded["id"], OWNER, USER)).status_code == 204
    expect_problem(await delete(video, uploaded["id"], OWNER, USER), 404)


async def test_refusals_are_counted(video: EdgeUnderTest, uploaded: Any) -> None:
    await delete(video, uploaded["id"], OTHER, VIEWER)
    metrics = (await video.http.get("/metrics")).text
    assert 'gatepass_edge_token_rejections_total{reason="insufficient_scope"} 1.0' in metrics
