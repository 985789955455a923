"""``POST /notifications``: a service (its own token, ``mail:notify``) puts a message into a
user's inbox; users may not, and a service may not use the users' routes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from edge_service_mail.models import Mailbox
from gatepass.edgetest import EdgeUnderTest, expect_problem
from gatepass.service import database_of

BOB = "usr_bob"
NOTICE = {"to": BOB, "subject": "Your video is up: cats", "body": 'Your video "cats" is up.'}


def service_token(mail: EdgeUnderTest, client_id: str = "video", scope: str = "mail:notify") -> str:
    """A client-credentials token: the client is its own subject, no session, no ``act``."""
    return mail.issuer.token(
        sub=client_id, client_id=client_id, sid=None, aud=["mail"], scope=scope
    )


def as_service(mail: EdgeUnderTest, **kwargs: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {service_token(mail, **kwargs)}"}


async def notify(mail: EdgeUnderTest, notice: Any = None, **kwargs: Any) -> Any:
    return await mail.http.post(
        "/notifications",
        json=NOTICE if notice is None else notice,
        headers=as_service(mail, **kwargs),
    )


async def owners(mail: EdgeUnderTest) -> set[str]:
    db = database_of(mail.app)
    assert db is not None
    async with db.sessions() as session:
        return set(await session.scalars(select(Mailbox.owner)))


@pytest.fixture
async def bob_has_a_mailbox(mail: EdgeUnderTest) -> None:
    assert (await mail.http.get("/inbox", headers=mail.bearer(BOB, "mail:read"))).is_success


@pytest.mark.usefixtures("bob_has_a_mailbox")
async def test_a_service_notifies_a_user_who_sees_it_in_their_inbox(mail: EdgeUnderTest) -> None:
    answer = await notify(mail)
    assert answer.status_code == 201, answer.text
    message = answer.json()
    assert answer.headers["location"] == f"/messages/{message['id']}"
    assert (message["from"], message["to"]) == ("service:video", BOB)
    assert (message["subject"], message["body"]) == (NOTICE["subject"], NOTICE["body"])
    inbox = (await mail.http.get("/inbox", headers=mail.bearer(BOB, "mail:read"))).json()
    assert [item["id"] for item in inbox["items"]] == [message["id"]]
    read = await mail.http.get(answer.headers["location"], headers=mail.bearer(BOB, "mail:read"))
    assert read.json() == message
    assert await owners(mail) == {BOB}  # the service got no mailbox


async def test_a_recipient_without_a_mailbox_is_422(mail: EdgeUnderTest) -> None:
    body = expect_problem(await notify(mail), 422, "unknown_recipient")
    assert BOB not in body["detail"]
    assert await owners(mail) == set()


async def test_a_user_token_is_refused_even_with_the_scope(mail: EdgeUnderTest) -> None:
    answer = await mail.http.post(
        "/notifications", json=NOTICE, headers=mail.bearer(BOB, "mail:notify mail:read")
    )
    expect_problem(answer, 403, "caller_not_allowed")
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]
    assert await owners(mail) == set()


async def test_an_exchanged_token_is_a_users_token(mail: EdgeUnderTest) -> None:
    """A service acting for a user (``act``) is the user here: no notifications."""
    token = mail.issuer.token(
        sub=BOB, client_id="video", aud=["mail"], scope="mail:notify", act={"sub": "video"}
    )
    answer = await mail.http.post(
        "/notifications", json=NOTICE, headers={"authorization": f"Bearer {token}"}
    )
    expect_problem(answer, 403, "caller_not_allowed")


@pytest.mark.usefixtures("bob_has_a_mailbox")
async def test_a_service_token_needs_mail_notify(mail: EdgeUnderTest) -> None:
    answer = await notify(mail, scope="mail:read mail:send")
    body = expect_problem(answer, 403, "insufficient_scope")
    assert body["required_scopes"] == ["mail:notify"]


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/inbox", "mail:read"),
        ("GET", "/sent", "mail:read"),
        ("GET", "/messages/msg_x", "mail:read"),
        ("DELETE", "/messages/msg_x", "mail:read"),
        ("POST", "/messages", "mail:send"),
    ],
)
async def test_a_service_token_is_refused_at_the_user_routes_and_gets_no_mailbox(
    mail: EdgeUnderTest, method: str, path: str, scope: str
) -> None:
    draft = {"to": BOB, "subject": "s", "body": "b"} if method == "POST" else None
    answer = await mail.http.request(
        method, path, json=draft, headers=as_service(mail, scope=f"{scope} mail:notify")
    )
    expect_problem(answer, 403, "caller_not_allowed")
    assert await owners(mail) == set()


@pytest.mark.usefixtures("bob_has_a_mailbox")
@pytest.mark.parametrize(
    "notice",
    [
        {"subject": "s", "body": "b"},
        {"to": BOB, "body": "b"},
        {"to": BOB, "subject": "s"},
        {"to": BOB, "subject": "s", "body": "b", "from": "service:mail"},
        {"to": BOB, "subject": "s", "body": "b", "video_id": "vid_x"},
        {"to": BOB, "subject": "s\nBcc: eve", "body": "b"},
        {"to": BOB, "subject": "s" * 201, "body": "b"},
        {"to": BOB, "subject": "s", "body": "b\x00"},
        {"to": "bob smith", "subject": "s", "body": "b"},
    ],
    ids=[
        "no-to",
        "no-subject",
        "no-body",
        "forged-from",
        "video",
        "newline-in-subject",
        "long-subject",
        "nul-in-body",
        "space-in-to",
    ],
)
async def test_notifications_are_validated(mail: EdgeUnderTest, notice: dict[str, Any]) -> None:
    body = expect_problem(await notify(mail, notice), 422, "validation_error")
    assert all("input" not in error for error in body["errors"])
    inbox = (await mail.http.get("/inbox", headers=mail.bearer(BOB, "mail:read"))).json()
    assert inbox["items"] == []
