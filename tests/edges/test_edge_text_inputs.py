"""What a database cannot store never reaches it: the mail and video edges on SQLite and PostgreSQL.

PostgreSQL refuses NUL in text (a 500, after the request was accepted): every text field and
path segment of the edges refuses it, and other control characters, with a 422; each field is
bounded by its column. Mail goes only to a user with a mailbox, made race-free on first use. The
edges run in-process (ASGI, an issuer in a box) on both backends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from edge_service_mail.app import create_app as create_mail_app
from edge_service_mail.config import MailSettings
from edge_service_mail.models import Mailbox, Message
from edge_service_video.app import create_app as create_video_app
from edge_service_video.config import VideoSettings
from edge_service_video.models import Video
from gatepass.edgetest import EdgeUnderTest, expect_problem, run_edge
from gatepass.service import database_of
from gatepass.testing import FakeIssuer

ALICE, BOB = "usr_alice", "usr_bob"
MAIL = "mail:read mail:send"
VIDEO = "video:read video:upload video:delete"


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer(clock=time.time)


@pytest.fixture
async def mail(
    issuer: FakeIssuer, tmp_path: Path, database_url: str | None
) -> AsyncIterator[EdgeUnderTest]:
    settings = MailSettings(
        issuer=issuer.issuer, data_dir=tmp_path, database_url=database_url, mailbox_cache_size=0
    )
    async with run_edge(create_mail_app, settings, issuer) as edge:
        yield edge


@pytest.fixture
async def video(
    issuer: FakeIssuer, tmp_path: Path, database_url: str | None
) -> AsyncIterator[EdgeUnderTest]:
    settings = VideoSettings(issuer=issuer.issuer, data_dir=tmp_path, database_url=database_url)
    async with run_edge(create_video_app, settings, issuer) as edge:
        yield edge


async def count(edge: EdgeUnderTest, table: type[Any]) -> int:
    db = database_of(edge.app)
    assert db is not None
    async with db.sessions() as session:
        return (await session.scalar(select(func.count()).select_from(table))) or 0


def refused(answer: httpx.Response) -> None:
    body = expect_problem(answer, 422, "validation_error")
    assert all("input" not in error for error in body["errors"])


DRAFTS = {
    "nul-in-to": {"to": BOB + "\x00"},
    "nul-in-subject": {"subject": "hi\x00"},
    "escape-in-subject": {"subject": "hi\x1b]0;pwned\x07"},
    "nul-in-body": {"body": "see you\x00"},
    "c1-in-body": {"body": "see you\x9b"},
    "long-to": {"to": "u" * 129},
    "long-subject": {"subject": "s" * 201},
    "long-body": {"body": "b" * 10_001},
}


@pytest.mark.parametrize("change", DRAFTS.values(), ids=DRAFTS.keys())
async def test_mail_refuses_what_no_column_can_hold(
    mail: EdgeUnderTest, change: dict[str, str]
) -> None:
    await mail.http.get("/inbox", headers=mail.bearer(BOB, MAIL))  # Bob has a mailbox
    draft = {"to": BOB, "subject": "hi", "body": "see you", **change}
    refused(await mail.http.post("/messages", json=draft, headers=mail.bearer(ALICE, MAIL)))
    assert await count(mail, Message) == 0


async def test_mail_keeps_lines_tabs_and_any_script(mail: EdgeUnderTest) -> None:
    await mail.http.get("/inbox", headers=mail.bearer(BOB, MAIL))
    draft = {"to": BOB, "subject": "Grüße 👋 " + "s" * 190, "body": "a\tb\r\nc\n" + "é" * 9990}
    answer = await mail.http.post("/messages", json=draft, headers=mail.bearer(ALICE, MAIL))
    assert answer.status_code == 201, answer.text
    read = await mail.http.get(answer.headers["location"], headers=mail.bearer(BOB, MAIL))
    assert (read.json()["subject"], read.json()["body"]) == (draft["subject"], draft["body"])


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("segment", ["msg%00x", "msg_%1b", "m" * 65, "msg%20x"])
async def test_mail_paths_are_checked(mail: EdgeUnderTest, method: str, segment: str) -> None:
    answer = await mail.http.request(method, f"/messages/{segment}", headers=mail.bearer(BOB, MAIL))
    refused(answer)


@pytest.mark.parametrize("query", ["offset=9223372036854775808", "offset=10001", "limit=101"])
@pytest.mark.parametrize("path", ["/inbox", "/sent"])
async def test_mail_pages_are_bounded(mail: EdgeUnderTest, path: str, query: str) -> None:
    refused(await mail.http.get(f"{path}?{query}", headers=mail.bearer(BOB, MAIL)))


async def test_mail_to_an_unknown_recipient_stores_nothing(mail: EdgeUnderTest) -> None:
    draft = {"to": "usr_nobody", "subject": "hi", "body": "anyone?"}
    answer = await mail.http.post("/messages", json=draft, headers=mail.bearer(ALICE, MAIL))
    expect_problem(answer, 422, "unknown_recipient")
    assert await count(mail, Message) == 0


async def test_concurrent_first_requests_make_one_mailbox(mail: EdgeUnderTest) -> None:
    # mailbox_cache_size=0: every request inserts, all of them racing on one row.
    answers = await asyncio.gather(
        *(mail.http.get("/inbox", headers=mail.bearer(BOB, MAIL)) for _ in range(20))
    )
    assert [a.status_code for a in answers] == [200] * 20
    assert await count(mail, Mailbox) == 1


VIDEO_DRAFTS = {
    "nul-in-title": {"title": "cats\x00"},
    "escape-in-title": {"title": "cats\x1b[2J"},
    "newline-in-title": {"title": "cats\ndogs"},
    "nul-in-description": {"description": "purr\x00"},
    "long-title": {"title": "t" * 201},
    "long-description": {"description": "d" * 5001},
}


@pytest.mark.parametrize("change", VIDEO_DRAFTS.values(), ids=VIDEO_DRAFTS.keys())
async def test_video_refuses_what_no_column_can_hold(
    video: EdgeUnderTest, change: dict[str, str]
) -> None:
    draft = {"title": "cats", "description": "purr", **change}
    refused(await video.http.post("/videos", json=draft, headers=video.bearer(ALICE, VIDEO)))
    assert await count(video, Video) == 0


async def test_video_keeps_a_multiline_description(video: EdgeUnderTest) -> None:
    draft = {"title": "Katzen 🐈", "description": "line one\nline two\ttabbed"}
    answer = await video.http.post("/videos", json=draft, headers=video.bearer(ALICE, VIDEO))
    assert answer.status_code == 201, answer.text
    assert answer.json()["description"] == draft["description"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("segment", ["vid%00x", "vid_%7f", "v" * 65])
async def test_video_paths_are_checked(video: EdgeUnderTest, method: str, segment: str) -> None:
    answer = await video.http.request(
        method, f"/videos/{segment}", headers=video.bearer(ALICE, VIDEO)
    )
    refused(answer)


async def test_video_pages_are_bounded(video: EdgeUnderTest) -> None:
    for query in ("offset=9223372036854775808", "offset=10001", "limit=101"):
        refused(await video.http.get(f"/videos?{query}", headers=video.bearer(ALICE, VIDEO)))
