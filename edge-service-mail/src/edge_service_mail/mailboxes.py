"""Mailboxes: mail is delivered only to a user who has one.

A user's mailbox is made the first time they present a valid token at any mail route
(:func:`open_mailbox`, a dependency of every user route), and sending to an id without one is
refused (``unknown_recipient``): a message can no longer be left where nobody can ever delete it.

Cheap: each replica remembers the owners whose mailbox it knows exists (:class:`KnownMailboxes`,
bounded, least recently seen first out), so only a user's first request, not every request, costs
a write. Race-safe: the insert is ``ON CONFLICT DO NOTHING``, so concurrent first requests, on any
number of replicas, leave one row and no error.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from edge_service_mail.models import Mailbox
from gatepass import Principal
from gatepass.service import DbSession

_STATE_ATTRIBUTE = "mail_known_mailboxes"


class KnownMailboxes:
    """Owners whose mailbox exists, at most ``capacity`` of them (0: remember none)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._owners: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, owner: str) -> bool:
        if owner not in self._owners:
            return False
        self._owners.move_to_end(owner)
        return True

    def __len__(self) -> int:
        return len(self._owners)

    def add(self, owner: str) -> None:
        if self._capacity == 0:
            return
        self._owners[owner] = None
        self._owners.move_to_end(owner)
        while len(self._owners) > self._capacity:
            self._owners.popitem(last=False)


def attach_known(app: FastAPI, known: KnownMailboxes) -> None:
    setattr(app.state, _STATE_ATTRIBUTE, known)


def known_of(app: FastAPI) -> KnownMailboxes:
    known = getattr(app.state, _STATE_ATTRIBUTE, None)
    if not isinstance(known, KnownMailboxes):
        raise RuntimeError("not the mail app: build it with edge_service_mail.app.create_app")
    return known


async def ensure(db: AsyncSession, owner: str) -> None:
    """Make ``owner``'s mailbox unless it exists (one statement: no race, no error)."""
    await db.execute(_insert_ignoring_existing(db, owner, datetime.now(UTC)))
    await db.commit()


def _insert_ignoring_existing(db: AsyncSession, owner: str, now: datetime) -> Insert:
    values = {"owner": owner, "created_at": now}
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(Mailbox).values(values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(Mailbox).values(values).on_conflict_do_nothing()
    raise RuntimeError(f"unsupported database {dialect!r}")


async def exists(db: AsyncSession, owner: str) -> bool:
    return await db.get(Mailbox, owner) is not None


async def open_mailbox(request: Request, user: Principal, db: DbSession) -> None:
    """The dependency of every user route: the caller's mailbox exists from their first request.

    Runs after the token was checked at the door, so only a valid token makes a mailbox; and
    never for a service's own token (a service is nobody's recipient; the user routes refuse
    those tokens at the door anyway).
    """
    if user.is_service:
        return
    known = known_of(request.app)
    if user.sub in known:
        return
    await ensure(db, user.sub)
    known.add(user.sub)
