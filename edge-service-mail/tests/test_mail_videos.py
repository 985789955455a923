"""A message that points at a video: checked with the video service on send, looked up on read.

Mail and video run side by side in-process (the ``pair`` fixture); mail asks video with a token
exchanged for the user's (audience ``video``, scope ``video:read``) at the fake issuer's token
endpoint, which counts what it was asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from mail_peers import VIDEO_URL, Pair
from sqlalchemy import Connection, func, insert, select, table, text
from sqlalchemy.sql.expression import column

from edge_service_mail.app import DATABASE
from edge_service_mail.models import Message
from gatepass import EdgeAuth
from gatepass.core.oauth import TOKEN_EXCHANGE
from gatepass.db import alembic_config, create_engine, upgrade
from gatepass.edgetest import EdgeUnderTest, expect_problem
from gatepass.service import database_of

ALICE, BOB, EVE = "usr_alice", "usr_bob", "usr_eve"
# What the auth service's "user" role grants, in a token addressed to mail.
USER = "mail:read mail:send video:read video:upload"


@pytest.fixture(autouse=True)
async def their_mailboxes(pair: Pair) -> None:
    for user in (ALICE, BOB):
        assert (await pair.mail.http.get("/inbox", headers=pair.mail.bearer(user, USER))).is_success


async def upload(pair: Pair, title: str = "holiday", owner: str = ALICE) -> Any:
    answer = await pair.video.http.post(
        "/videos", json={"title": title}, headers=pair.video.bearer(owner, USER)
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def send(pair: Pair, video_id: str, *, to: str = BOB) -> Any:
    draft = {"to": to, "subject": "look", "body": "this one", "video_id": video_id}
    return await pair.mail.http.post("/messages", json=draft, headers=pair.mail.bearer(ALICE, USER))


async def read(mail: EdgeUnderTest, user: str, message_id: str) -> Any:
    answer = await mail.http.get(f"/messages/{message_id}", headers=mail.bearer(user, USER))
    assert answer.status_code == 200, answer.text
    return answer.json()


@dataclass
class Counting(httpx.AsyncBaseTransport):
    """A transport that counts the requests it passes on."""

    inner: httpx.AsyncBaseTransport
    requests: int = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await self.inner.handle_async_request(request)


def rejections(edge: EdgeUnderTest) -> Mapping[str, int]:
    auth = edge.app.state.gatepass_edge_auth
    assert isinstance(auth, EdgeAuth)
    return auth.readiness().rejections


async def sent_by_alice(mail: EdgeUnderTest) -> int:
    """Messages Alice sent (video's notifications of her uploads are not hers)."""
    db = database_of(mail.app)
    assert db is not None
    query = select(func.count()).select_from(Message).where(Message.sender == ALICE)
    async with db.sessions() as session:
        return (await session.scalar(query)) or 0


async def test_a_message_points_at_an_existing_video(pair: Pair) -> None:
    video = await upload(pair)
    assert pair.token_grants(TOKEN_EXCHANGE) == []
    answer = await send(pair, video["id"])
    assert answer.status_code == 201, answer.text
    message = answer.json()
    expected = {"id": video["id"], "title": "holiday", "available": True}
    assert (message["video_id"], message["video"]) == (video["id"], expected)
    assert await read(pair.mail, BOB, message["id"]) == message
    # Mail had each user's token exchanged for one to video, reading only: alice's, then bob's.
    exchanges = pair.token_grants(TOKEN_EXCHANGE)
    assert [(g["client_id"], g["audience"], g["scope"]) for g in exchanges] == [
        ("mail", ["video"], "video:read")
    ] * 2


async def test_a_second_read_reuses_the_exchanged_token(pair: Pair) -> None:
    message = (await send(pair, (await upload(pair))["id"])).json()
    bob = pair.mail.bearer(BOB, USER)  # one token, presented twice
    first = await pair.mail.http.get(f"/messages/{message['id']}", headers=bob)
    asked = pair.issuer.count("/token")
    second = await pair.mail.http.get(f"/messages/{message['id']}", headers=bob)
    assert first.json() == second.json()
    assert second.json()["video"]["available"] is True
    assert pair.issuer.count("/token") == asked
    other_token = pair.mail.bearer(BOB, USER)  # another token of his: exchanged in turn
    assert (await pair.mail.http.get(f"/messages/{message['id']}", headers=other_token)).is_success
    assert pair.issuer.count("/token") == asked + 1


async def test_an_unknown_video_is_422_and_nothing_is_stored(pair: Pair) -> None:
    body = expect_problem(await send(pair, "vid_nobodyhasthis"), 422, "unknown_video")
    assert "vid_nobodyhasthis" not in body["detail"]
    assert await sent_by_alice(pair.mail) == 0


async def test_the_recipient_is_checked_before_the_video(pair: Pair) -> None:
    expect_problem(await send(pair, "vid_whatever", to=EVE), 422, "unknown_recipient")
    assert pair.token_grants(TOKEN_EXCHANGE) == []  # video was never asked


async def test_video_down_is_503_on_send_and_the_message_is_still_readable(pair: Pair) -> None:
    message = (await send(pair, (await upload(pair))["id"])).json()
    pair.down(VIDEO_URL)
    expect_problem(await send(pair, message["video_id"]), 503, "peer_unavailable")
    assert await sent_by_alice(pair.mail) == 1  # only the first
    shown = await read(pair.mail, BOB, message["id"])
    assert shown["video"] == {"id": message["video_id"], "title": None, "available": False}
    assert {k: v for k, v in shown.items() if k != "video"} == {
        k: v for k, v in message.items() if k != "video"
    }


async def test_video_down_answers_with_retry_after(pair: Pair) -> None:
    pair.down(VIDEO_URL)
    answer = await send(pair, "vid_whatever")
    expect_problem(answer, 503, "peer_unavailable")
    assert int(answer.headers["retry-after"]) >= 1


async def test_a_user_who_may_not_read_videos_attaches_none_and_sees_no_title(
    pair: Pair,
) -> None:
    """Without ``video:read`` in their token, the exchange could only be refused: mail asks
    neither the issuer nor video. Attaching a video is the edge's 403 naming ``video:read``
    (counted as a rejection); reading shows the video unavailable."""
    message = (await send(pair, (await upload(pair))["id"])).json()
    video_host = httpx.URL(VIDEO_URL).host
    to_video = Counting(pair.hosts.routes[video_host])
    pair.hosts.routes[video_host] = to_video
    asked = pair.issuer.count("/token")
    mail_only = pair.mail.bearer(ALICE, "mail:read mail:send")
    draft = {"to": BOB, "subject": "s", "body": "b", "video_id": message["video_id"]}
    refused = await pair.mail.http.post("/messages", json=draft, headers=mail_only)
    body = expect_problem(refused, 403, "insufficient_scope")
    assert body["required_scopes"] == ["video:read"]
    assert 'scope="video:read"' in refused.headers["www-authenticate"]
    assert rejections(pair.mail)["insufficient_scope"] == 1
    assert await sent_by_alice(pair.mail) == 1
    shown = await pair.mail.http.get(f"/messages/{message['id']}", headers=mail_only)
    assert shown.json()["video"] == {"id": message["video_id"], "title": None, "available": False}
    assert pair.issuer.count("/token") == asked
    assert to_video.requests == 0


async def test_a_revoked_session_at_exchange_is_401(pair: Pair) -> None:
    """The auth service refuses the exchange with ``invalid_grant`` (the user's session ended
    before mail heard of it): the user's own token is no longer good, on send and on read."""
    message = (await send(pair, (await upload(pair))["id"])).json()
    pair.issuer.token_error = "invalid_grant"
    refused = await send(pair, message["video_id"])  # a new token of alice's: not cached
    expect_problem(refused, 401, "invalid_token")
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert await sent_by_alice(pair.mail) == 1
    answer = await pair.mail.http.get(
        f"/messages/{message['id']}", headers=pair.mail.bearer(BOB, USER)
    )
    expect_problem(answer, 401, "invalid_token")


@pytest.mark.parametrize("error", ["invalid_scope", "invalid_target"])
async def test_an_exchange_refused_for_the_scope_is_403_on_send_unavailable_on_read(
    pair: Pair, error: str
) -> None:
    message = (await send(pair, (await upload(pair))["id"])).json()
    pair.issuer.token_error = error
    refused = await send(pair, message["video_id"])
    body = expect_problem(refused, 403, "insufficient_scope")
    assert body["required_scopes"] == ["video:read"]
    assert "retry-after" not in refused.headers
    assert await sent_by_alice(pair.mail) == 1
    shown = await read(pair.mail, BOB, message["id"])
    assert shown["video"] == {"id": message["video_id"], "title": None, "available": False}


async def test_the_token_endpoint_down_is_as_video_down(pair: Pair) -> None:
    message = (await send(pair, (await upload(pair))["id"])).json()
    pair.issuer.token_fail_with = httpx.ConnectError("connection refused")
    expect_problem(await send(pair, message["video_id"]), 503, "peer_unavailable")
    shown = await read(pair.mail, BOB, message["id"])
    assert shown["video"] == {"id": message["video_id"], "title": None, "available": False}


async def test_a_deleted_video_is_shown_unavailable(pair: Pair) -> None:
    video = await upload(pair)
    message = (await send(pair, video["id"])).json()
    deleted = await pair.video.http.delete(
        f"/videos/{video['id']}", headers=pair.video.bearer(ALICE, USER)
    )
    assert deleted.status_code == 204
    shown = await read(pair.mail, ALICE, message["id"])
    assert shown["video"] == {"id": video["id"], "title": None, "available": False}


async def test_listings_show_the_video_id_only_and_ask_video_nothing(pair: Pair) -> None:
    video = await upload(pair)
    message = (await send(pair, video["id"])).json()
    asked = pair.issuer.count("/token")
    for user, path in ((BOB, "/inbox"), (ALICE, "/sent")):
        listed = await pair.mail.http.get(path, headers=pair.mail.bearer(user, USER))
        assert listed.json()["items"] == [{k: v for k, v in message.items() if k != "video"}]
    assert pair.issuer.count("/token") == asked


async def test_a_message_without_a_video_asks_video_nothing(pair: Pair) -> None:
    draft = {"to": BOB, "subject": "s", "body": "b"}
    answer = await pair.mail.http.post(
        "/messages", json=draft, headers=pair.mail.bearer(ALICE, USER)
    )
    message = answer.json()
    assert (message["video_id"], message["video"]) == (None, None)
    assert await read(pair.mail, BOB, message["id"]) == message
    assert pair.token_grants(TOKEN_EXCHANGE) == []


@pytest.mark.parametrize(
    "video_id",
    ["", "nope", "vid_", "vid_" + "x" * 37, "vid_a/b", "vid_a b", ["vid_a"], 7],
    ids=["empty", "no-prefix", "prefix-only", "too-long", "slash", "space", "list", "number"],
)
async def test_a_malformed_video_id_is_422(mail: EdgeUnderTest, video_id: Any) -> None:
    draft = {"to": ALICE, "subject": "s", "body": "b", "video_id": video_id}
    answer = await mail.http.post("/messages", json=draft, headers=mail.bearer(ALICE, USER))
    body = expect_problem(answer, 422, "validation_error")
    assert all("input" not in error for error in body["errors"])
    assert await sent_by_alice(mail) == 0


async def test_without_an_identity_a_video_cannot_be_attached(mail: EdgeUnderTest) -> None:
    """No client identity configured: mail cannot ask video, says so, and stores nothing."""
    draft = {"to": ALICE, "subject": "s", "body": "b", "video_id": "vid_x"}
    answer = await mail.http.post("/messages", json=draft, headers=mail.bearer(ALICE, USER))
    expect_problem(answer, 503, "peer_unavailable")
    assert await sent_by_alice(mail) == 0


async def test_the_migration_keeps_the_messages_sent_before(tmp_path: Path) -> None:
    """Upgrading a database that holds mail: every message is still there, with no video."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'mail.db'}")
    columns = ("id", "sender", "recipient", "subject", "body", "created_at")
    messages = table("messages", *(column(name) for name in columns))
    row = ("msg_1", ALICE, BOB, "s", "b", datetime.now(UTC).replace(tzinfo=None))

    def to_0002_with_mail(connection: Connection) -> None:
        command.upgrade(alembic_config(DATABASE.migrations, connection), "0002")
        connection.execute(insert(messages).values(dict(zip(columns, row, strict=True))))

    try:
        async with engine.begin() as conn:
            await conn.run_sync(to_0002_with_mail)
        await upgrade(engine, DATABASE.migrations, lock_id=DATABASE.lock_id)
        async with engine.connect() as conn:
            found = (await conn.execute(text("SELECT id, video_id FROM messages"))).all()
    finally:
        await engine.dispose()
    assert [tuple(r) for r in found] == [("msg_1", None)]


async def test_a_slow_video_service_holds_no_database_connection(pair: Pair) -> None:
    """While mail waits for video, its other requests are served: the request that waits has
    handed its connection back (SQLite has one for every request)."""
    message = (await send(pair, (await upload(pair))["id"])).json()
    hold = pair.hold(VIDEO_URL)
    sending = asyncio.create_task(send(pair, message["video_id"]))
    reading = asyncio.create_task(read(pair.mail, BOB, message["id"]))
    async with asyncio.timeout(10):  # each takes milliseconds once it may go on
        await hold.arrived.wait()
        inbox = await pair.mail.http.get("/inbox", headers=pair.mail.bearer(BOB, USER))
        assert [item["id"] for item in inbox.json()["items"]] == [message["id"]]
        hold.released.set()
        assert (await sending).status_code == 201
        assert (await reading)["video"]["available"] is True
