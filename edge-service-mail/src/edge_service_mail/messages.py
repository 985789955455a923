"""The messages table, as the routes need it: send, list one party's view, read, delete.

Every query is scoped to the caller: a message another user sent or received is simply not
found, so a stranger cannot tell it exists.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from edge_service_mail.models import Message
from edge_service_mail.schemas import Draft, Notification
from gatepass.paging import PageRequest


def new_id() -> str:
    """An unguessable message id."""
    return f"msg_{secrets.token_urlsafe(16)}"


def notifier(client_id: str) -> str:
    """The sender of a notification from the service ``client_id``: never a user id (the auth
    service's are ``usr_`` and a URL-safe token, no ``:``)."""
    return f"service:{client_id}"


async def send(db: AsyncSession, sender: str, draft: Draft | Notification) -> Message:
    message = Message(
        id=new_id(),
        sender=sender,
        recipient=draft.to,
        subject=draft.subject,
        body=draft.body,
        created_at=datetime.now(UTC),
        video_id=draft.video_id if isinstance(draft, Draft) else None,
    )
    db.add(message)
    await db.commit()
    return message


async def release(db: AsyncSession) -> None:
    """End the session's transaction, which has only read, so that its connection goes back to
    the pool before a call to another service: a call may take seconds, and SQLite has one
    connection for every request."""
    await db.commit()


async def received(db: AsyncSession, user: str, page: PageRequest) -> Sequence[Message]:
    """The inbox: what ``user`` received and has not deleted, newest first."""
    return await _listed(db, page, Message.recipient == user, Message.recipient_deleted_at)


async def sent(db: AsyncSession, user: str, page: PageRequest) -> Sequence[Message]:
    """What ``user`` sent and has not deleted, newest first."""
    return await _listed(db, page, Message.sender == user, Message.sender_deleted_at)


async def _listed(
    db: AsyncSession,
    page: PageRequest,
    party: ColumnElement[bool],
    deleted_at: InstrumentedAttribute[datetime | None],
) -> Sequence[Message]:
    query = (
        select(Message)
        .where(party, deleted_at.is_(None))
        .order_by(Message.created_at.desc(), Message.id.desc())
    )
    return (await db.scalars(page.window(query))).all()


async def visible(db: AsyncSession, user: str, message_id: str) -> Message | None:
    """The message if ``user`` sent or received it and has not deleted it."""
    query = select(Message).where(Message.id == message_id, _visible_to(user))
    return (await db.scalars(query)).one_or_none()


def _visible_to(user: str) -> ColumnElement[bool]:
    return or_(
        and_(Message.sender == user, Message.sender_deleted_at.is_(None)),
        and_(Message.recipient == user, Message.recipient_deleted_at.is_(None)),
    )


async def delete_for(db: AsyncSession, user: str, message_id: str) -> bool:
    """Hide the message from ``user`` only; False if they could not see it.

    Once both parties have deleted it the row goes. Both steps are statements, not a read then a
    write, so a sender and a recipient deleting at the same moment still leave no row behind.
    """
    now = datetime.now(UTC)
    hid_sent = await _hide(db, message_id, Message.sender == user, Message.sender_deleted_at, now)
    hid_received = await _hide(
        db, message_id, Message.recipient == user, Message.recipient_deleted_at, now
    )
    await db.execute(
        delete(Message).where(
            Message.id == message_id,
            Message.sender_deleted_at.is_not(None),
            Message.recipient_deleted_at.is_not(None),
        )
    )
    await db.commit()
    return hid_sent or hid_received


async def _hide(
    db: AsyncSession,
    message_id: str,
    party: ColumnElement[bool],
    deleted_at: InstrumentedAttribute[datetime | None],
    now: datetime,
) -> bool:
    statement = (
        update(Message)
        .where(Message.id == message_id, party, deleted_at.is_(None))
        .values({deleted_at: now})
        .returning(Message.id)
    )
    return (await db.scalars(statement)).first() is not None
