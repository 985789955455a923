"""Uploading and browsing: the catalogue is everyone's to read, an upload is the caller's."""

from __future__ import annotations

from typing import Any

import pytest

from gatepass.edgetest import EdgeUnderTest, expect_problem

ALICE, BOB = "usr_alice", "usr_bob"
USER = "video:read video:upload"  # what the auth service's "user" role grants here


async def upload(video: EdgeUnderTest, owner: str, title: str = "a cat") -> Any:
    draft = {"title": title, "description": f"{title}, by {owner}"}
    answer = await video.http.post("/videos", json=draft, headers=video.bearer(owner, USER))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def browse(video: EdgeUnderTest, path: str, user: str = BOB) -> Any:
    return await video.http.get(path, headers=video.bearer(user, "video:read"))


async def test_an_upload_belongs_to_the_caller(video: EdgeUnderTest) -> None:
    answer = await video.http.post(
        "/videos", json={"title": "  cats  "}, headers=video.bearer(ALICE, "video:upload")
    )
    assert answer.status_code == 201
    added = answer.json()
    assert answer.headers["location"] == f"/videos/{added['id']}"
    assert (added["owner"], added["title"], added["description"]) == (ALICE, "cats", "")
    assert added.pop("notified") is False  # this video edge has no identity to tell mail with
    assert (await browse(video, f"/videos/{added['id']}")).json() == added


async def test_the_catalogue_is_newest_first_and_paginated(video: EdgeUnderTest) -> None:
    added = [await upload(video, owner, f"video {n}") for n, owner in enumerate([ALICE, BOB] * 3)]
    newest_first = [item["id"] for item in reversed(added)]
    first = (await browse(video, "/videos?limit=4")).json()
    assert first["viewer"] == BOB
    assert [item["id"] for item in first["items"]] == newest_first[:4]
    assert first["next_offset"] == 4
    rest = (await browse(video, "/videos?limit=4&offset=4")).json()
    assert [item["id"] for item in rest["items"]] == newest_first[4:]
    assert rest["next_offset"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "offset=10001"])
async def test_pages_are_bounded(video: EdgeUnderTest, query: str) -> None:
    expect_problem(await browse(video, f"/videos?{query}"), 422, "validation_error")


async def test_an_unknown_video_is_404(video: EdgeUnderTest) -> None:
    expect_problem(await browse(video, "/videos/vid_nope"), 404, "video_not_found")
    expect_problem(await browse(video, "/videos/" + "v" * 65), 422)


@pytest.mark.parametrize(
    "draft",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "t" * 201},
        {"title": "t", "description": "d" * 5_001},
        {"title": "t", "owner": ALICE},
        {"title": ["t"]},
    ],
    ids=["empty", "no-title", "blank-title", "long-title", "long-description", "owner", "list"],
)
async def test_drafts_are_validated(video: EdgeUnderTest, draft: dict[str, Any]) -> None:
    answer = await video.http.post("/videos", json=draft, headers=video.bearer(BOB, USER))
    expect_problem(answer, 422, "validation_error")
    assert (await browse(video, "/videos")).json()["items"] == []
