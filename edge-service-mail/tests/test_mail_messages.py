"""Sending, listing, reading and deleting messages: each party sees only their own.

Alice, Bob and Eve have each used the mail service once (:func:`their_mailboxes`): mail goes only
to a user with a mailbox (see ``test_mail_mailboxes.py``).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from edge_service_mail.models import Message
from gatepass.edgetest import EdgeUnderTest, expect_problem
from gatepass.service import database_of

ALICE, BOB, EVE = "usr_alice", "usr_bob", "usr_eve"
EVERYTHING = "mail:read mail:send"


async def send(mail: EdgeUnderTest, sender: str, to: str, subject: str = "hello") -> Any:
    draft = {"to": to, "subject": subject, "body": f"{subject}, {to}"}
    answer = await mail.http.post("/messages", json=draft, headers=mail.bearer(sender, EVERYTHING))
    assert answer.status_code == 201, answer.text
    return answer.json()


def listed(message: dict[str, Any]) -> dict[str, Any]:
    """A message as a list shows it: its video's id only, never looked up."""
    return {name: value for name, value in message.items() if name != "video"}


async def get(mail: EdgeUnderTest, user: str, path: str) -> Any:
    return await mail.http.get(path, headers=mail.bearer(user, "mail:read"))


@pytest.fixture(autouse=True)
async def their_mailboxes(mail: EdgeUnderTest) -> None:
    for user in (ALICE, BOB, EVE):
        assert (await get(mail, user, "/inbox")).status_code == 200


async def rows(mail: EdgeUnderTest) -> int:
    db = database_of(mail.app)
    assert db is not None
    async with db.sessions() as session:
        return (await session.scalar(select(func.count()).select_from(Message))) or 0


async def test_a_sent_message_reaches_the_recipient_only(mail: EdgeUnderTest) -> None:
    answer = await mail.http.post(
        "/messages",
        json={"to": BOB, "subject": "  lunch?  ", "body": "at noon"},
        headers=mail.bearer(ALICE, "mail:send"),
    )
    assert answer.status_code == 201
    message = answer.json()
    assert answer.headers["location"] == f"/messages/{message['id']}"
    assert message["from"] == ALICE
    assert (message["to"], message["subject"], message["body"]) == (BOB, "lunch?", "at noon")
    assert (message["video_id"], message["video"]) == (None, None)
    bob = (await get(mail, BOB, "/inbox")).json()
    assert bob["owner"] == BOB
    assert bob["items"] == [listed(message)]
    assert (await get(mail, ALICE, "/inbox")).json()["items"] == []
    assert (await get(mail, ALICE, "/sent")).json()["items"] == [listed(message)]
    assert (await get(mail, EVE, "/inbox")).json()["items"] == []


async def test_the_inbox_is_newest_first_and_paginated(mail: EdgeUnderTest) -> None:
    sent = [await send(mail, ALICE, BOB, f"number {n}") for n in range(5)]
    await send(mail, ALICE, EVE, "not for bob")
    newest_first = [message["id"] for message in reversed(sent)]
    first = (await get(mail, BOB, "/inbox?limit=2")).json()
    assert [m["id"] for m in first["items"]] == newest_first[:2]
    assert (first["limit"], first["offset"], first["next_offset"]) == (2, 0, 2)
    last = (await get(mail, BOB, "/inbox?limit=2&offset=4")).json()
    assert [m["id"] for m in last["items"]] == newest_first[4:]
    assert last["next_offset"] is None
    everything = (await get(mail, BOB, "/inbox?limit=100")).json()
    assert [m["id"] for m in everything["items"]] == newest_first


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "offset=-1", "offset=10001", "limit=many"]
)
@pytest.mark.parametrize("path", ["/inbox", "/sent"])
async def test_pages_are_bounded(mail: EdgeUnderTest, path: str, query: str) -> None:
    expect_problem(await get(mail, BOB, f"{path}?{query}"), 422, "validation_error")


async def test_both_parties_read_a_message_and_strangers_get_404(mail: EdgeUnderTest) -> None:
    message = await send(mail, ALICE, BOB)
    path = f"/messages/{message['id']}"
    assert (await get(mail, ALICE, path)).json() == message
    assert (await get(mail, BOB, path)).json() == message
    stranger = expect_problem(await get(mail, EVE, path), 404, "message_not_found")
    never_was = expect_problem(await get(mail, EVE, "/messages/msg_nope"), 404)
    assert {k: v for k, v in stranger.items() if k != "instance"} == {
        k: v for k, v in never_was.items() if k != "instance"
    }
    expect_problem(await get(mail, ALICE, "/messages/" + "x" * 65), 422)
    expect_problem(await get(mail, ALICE, "/messages/msg%00x"), 422, "validation_error")


async def test_a_body_keeps_its_lines_and_tabs(mail: EdgeUnderTest) -> None:
    draft = {"to": BOB, "subject": "Agenda", "body": "1.\tcoffee\r\n2.\tlunch\n"}
    answer = await mail.http.post("/messages", json=draft, headers=mail.bearer(ALICE, EVERYTHING))
    assert answer.status_code == 201, answer.text
    assert answer.json()["body"] == draft["body"]


async def test_deleting_is_per_party_and_the_row_goes_when_both_did(
    mail: EdgeUnderTest,
) -> None:
    message = await send(mail, ALICE, BOB)
    path = f"/messages/{message['id']}"
    as_bob, as_alice = mail.bearer(BOB, "mail:read"), mail.bearer(ALICE, "mail:read")
    assert (await mail.http.delete(path, headers=as_bob)).status_code == 204
    expect_problem(await get(mail, BOB, path), 404)
    assert (await get(mail, BOB, "/inbox")).json()["items"] == []
    assert (await get(mail, ALICE, path)).json() == message  # still in the sender's view
    expect_problem(await mail.http.delete(path, headers=as_bob), 404)  # already gone for bob
    assert await rows(mail) == 1
    assert (await mail.http.delete(path, headers=as_alice)).status_code == 204
    assert (await get(mail, ALICE, "/sent")).json()["items"] == []
    assert await rows(mail) == 0


async def test_the_sender_deleting_leaves_the_recipient_copy(mail: EdgeUnderTest) -> None:
    message = await send(mail, ALICE, BOB)
    path = f"/messages/{message['id']}"
    assert (
        await mail.http.delete(path, headers=mail.bearer(ALICE, "mail:read"))
    ).status_code == 204
    expect_problem(await get(mail, ALICE, path), 404)
    assert (await get(mail, BOB, "/inbox")).json()["items"] == [listed(message)]


async def test_a_stranger_cannot_delete(mail: EdgeUnderTest) -> None:
    message = await send(mail, ALICE, BOB)
    path = f"/messages/{message['id']}"
    expect_problem(await mail.http.delete(path, headers=mail.bearer(EVE, "mail:read")), 404)
    assert (await get(mail, ALICE, path)).status_code == 200
    assert (await get(mail, BOB, path)).status_code == 200


async def test_a_note_to_self_goes_with_one_delete(mail: EdgeUnderTest) -> None:
    message = await send(mail, ALICE, ALICE)
    assert (await get(mail, ALICE, "/inbox")).json()["items"] == [listed(message)]
    path = f"/messages/{message['id']}"
    assert (
        await mail.http.delete(path, headers=mail.bearer(ALICE, "mail:read"))
    ).status_code == 204
    assert await rows(mail) == 0


@pytest.mark.parametrize(
    "draft",
    [
        {"subject": "s", "body": "b"},
        {"to": BOB, "body": "b"},
        {"to": BOB, "subject": "s"},
        {"to": "", "subject": "s", "body": "b"},
        {"to": "bob smith", "subject": "s", "body": "b"},
        {"to": "u" * 129, "subject": "s", "body": "b"},
        {"to": BOB, "subject": "   ", "body": "b"},
        {"to": BOB, "subject": "s" * 201, "body": "b"},
        {"to": BOB, "subject": "s", "body": ""},
        {"to": BOB, "subject": "s", "body": "b" * 10_001},
        {"to": BOB, "subject": "s", "body": "b", "from": EVE},
        {"to": [BOB], "subject": "s", "body": "b"},
        {"to": BOB + "\x00", "subject": "s", "body": "b"},
        {"to": BOB, "subject": "s\x00", "body": "b"},
        {"to": BOB, "subject": "s\x1b[2J", "body": "b"},
        {"to": BOB, "subject": "s\nBcc: eve", "body": "b"},
        {"to": BOB, "subject": "s", "body": "b\x00"},
        {"to": BOB, "subject": "s", "body": "b\x85"},
    ],
    ids=[
        "no-to",
        "no-subject",
        "no-body",
        "empty-to",
        "space-in-to",
        "long-to",
        "blank-subject",
        "long-subject",
        "empty-body",
        "long-body",
        "forged-from",
        "list-to",
        "nul-in-to",
        "nul-in-subject",
        "escape-in-subject",
        "newline-in-subject",
        "nul-in-body",
        "c1-control-in-body",
    ],
)
async def test_drafts_are_validated(mail: EdgeUnderTest, draft: dict[str, Any]) -> None:
    answer = await mail.http.post("/messages", json=draft, headers=mail.bearer(ALICE, "mail:send"))
    body = expect_problem(answer, 422, "validation_error")
    assert all("input" not in error for error in body["errors"])  # nothing echoed back
    assert await rows(mail) == 0


async def test_a_body_that_is_not_json_is_400(mail: EdgeUnderTest) -> None:
    answer = await mail.http.post(
        "/messages",
        content=b"{not json",
        headers={**mail.bearer(ALICE, "mail:send"), "content-type": "application/json"},
    )
    expect_problem(answer, 400, "malformed_request")
