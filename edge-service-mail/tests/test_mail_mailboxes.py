"""Mail goes only to a user with a mailbox, made the first time they use the mail service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from edge_service_mail.app import DATABASE, create_app
from edge_service_mail.config import MailSettings
from edge_service_mail.mailboxes import KnownMailboxes
from edge_service_mail.models import Mailbox, Message
from gatepass.db import alembic_config, create_engine, upgrade
from gatepass.edgetest import EdgeUnderTest, expect_problem, run_edge
from gatepass.service import database_of
from gatepass.testing import FakeIssuer

ALICE, BOB = "usr_alice", "usr_bob"
EVERYTHING = "mail:read mail:send"


def engine_of(mail: EdgeUnderTest) -> AsyncEngine:
    db = database_of(mail.app)
    assert db is not None
    return db.engine


async def count(mail: EdgeUnderTest, table: type[Mailbox] | type[Message]) -> int:
    db = database_of(mail.app)
    assert db is not None
    async with db.sessions() as session:
        return (await session.scalar(select(func.count()).select_from(table))) or 0


async def owners(mail: EdgeUnderTest) -> set[str]:
    db = database_of(mail.app)
    assert db is not None
    async with db.sessions() as session:
        return set(await session.scalars(select(Mailbox.owner)))


async def send(mail: EdgeUnderTest, sender: str, to: str) -> Any:
    draft = {"to": to, "subject": "hello", "body": "hi"}
    return await mail.http.post("/messages", json=draft, headers=mail.bearer(sender, EVERYTHING))


@contextmanager
def mailbox_inserts(engine: AsyncEngine) -> Iterator[list[str]]:
    """The INSERT statements into ``mailboxes`` run inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO MAILBOXES"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_mail_to_a_user_without_a_mailbox_is_refused_and_stores_nothing(
    mail: EdgeUnderTest,
) -> None:
    body = expect_problem(await send(mail, ALICE, "usr_nobody"), 422, "unknown_recipient")
    assert "usr_nobody" not in body["detail"]
    assert await count(mail, Message) == 0
    assert await owners(mail) == {ALICE}  # the sender used the service: theirs exists now


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
async def test_a_first_request_on_any_route_opens_the_callers_mailbox(
    mail: EdgeUnderTest, method: str, path: str, scope: str
) -> None:
    expect_problem(await send(mail, ALICE, BOB), 422, "unknown_recipient")
    draft = {"to": ALICE, "subject": "s", "body": "b"} if method == "POST" else None
    await mail.http.request(method, path, json=draft, headers=mail.bearer(BOB, scope))
    assert BOB in await owners(mail)
    assert (await send(mail, ALICE, BOB)).status_code == 201


async def test_a_refused_token_opens_no_mailbox(mail: EdgeUnderTest) -> None:
    wrong_scope = await mail.http.get("/inbox", headers=mail.bearer(BOB, "mail:send"))
    expect_problem(wrong_scope, 403, "insufficient_scope")
    expired = mail.issuer.token(sub=BOB, scope="mail:read", aud=["mail"], exp=1)
    stale = await mail.http.get("/inbox", headers={"authorization": f"Bearer {expired}"})
    expect_problem(stale, 401, "invalid_token")
    other = mail.issuer.token(sub=BOB, scope="mail:read", aud=["video"])
    elsewhere = await mail.http.get("/inbox", headers={"authorization": f"Bearer {other}"})
    expect_problem(elsewhere, 401, "invalid_token")
    assert await owners(mail) == set()


async def test_only_the_first_request_writes(mail: EdgeUnderTest) -> None:
    with mailbox_inserts(engine_of(mail)) as inserts:
        for _ in range(5):
            assert (await mail.http.get("/inbox", headers=mail.bearer(BOB, "mail:read"))).is_success
    assert len(inserts) == 1


@pytest.fixture
async def forgetful_mail(issuer: FakeIssuer, tmp_path: Path) -> AsyncIterator[EdgeUnderTest]:
    """The mail app remembering no mailbox: every request reaches the database."""
    settings = MailSettings(issuer=issuer.issuer, data_dir=tmp_path, mailbox_cache_size=0)
    async with run_edge(create_app, settings, issuer) as edge:
        yield edge


async def test_concurrent_first_requests_make_one_mailbox(forgetful_mail: EdgeUnderTest) -> None:
    mail = forgetful_mail
    with mailbox_inserts(engine_of(mail)) as inserts:
        answers = await asyncio.gather(
            *(mail.http.get("/inbox", headers=mail.bearer(BOB, "mail:read")) for _ in range(20))
        )
    assert [a.status_code for a in answers] == [200] * 20
    assert len(inserts) == 20  # every one of them tried
    assert await count(mail, Mailbox) == 1


def test_known_mailboxes_are_bounded_least_recently_seen_first_out() -> None:
    known = KnownMailboxes(2)
    known.add("a")
    known.add("b")
    assert "a" in known  # a is now the most recently seen
    known.add("c")
    assert ("a" in known, "b" in known, "c" in known) == (True, False, True)
    assert len(known) == 2
    nothing = KnownMailboxes(0)
    nothing.add("a")
    assert "a" not in nothing


async def test_the_migration_gives_every_past_sender_a_mailbox(tmp_path: Path) -> None:
    """Upgrading a database that already holds mail: senders get a mailbox, recipients wait."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'mail.db'}")
    messages = [
        {"id": f"msg_{n}", "sender": sender, "recipient": "usr_carol", "subject": "s", "body": "b"}
        for n, sender in enumerate([ALICE, BOB, ALICE])
    ]

    def to_0001_with_mail(connection: Connection) -> None:
        command.upgrade(alembic_config(DATABASE.migrations, connection), "0001")
        now = datetime.now(UTC)
        connection.execute(insert(Message), [{**m, "created_at": now} for m in messages])

    try:
        async with engine.begin() as conn:
            await conn.run_sync(to_0001_with_mail)
        await upgrade(engine, DATABASE.migrations, lock_id=DATABASE.lock_id)
        async with engine.connect() as conn:
            found = set((await conn.execute(select(Mailbox.owner))).scalars())
    finally:
        await engine.dispose()
    assert found == {ALICE, BOB}
