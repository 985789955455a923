"""The mail service's tables. Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gatepass.db import UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}


class Mailbox(Base):
    """A user's mailbox, made the first time they use the mail service with a valid token.

    Mail is delivered to a mailbox only: every stored message has a recipient who can read it and
    delete it (mail sent to an id nobody owns could never be deleted by anyone).
    """

    __tablename__ = "mailboxes"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)  # the token's ``sub``
    created_at: Mapped[datetime]


class Message(Base):
    """One message, seen by two parties. Each deletes it for themselves only.

    ``sender_deleted_at`` / ``recipient_deleted_at`` hide it from one party; once both are set
    nobody can see it, and the row is deleted. ``sender`` is a user id, or ``service:<client id>``
    for a notification a service put in the recipient's inbox. ``video_id``: a video of the video
    service the message points at (it existed when the message was sent).
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_recipient_created", "recipient", "created_at"),
        Index("ix_messages_sender_created", "sender", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sender: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    sender_deleted_at: Mapped[datetime | None]
    recipient_deleted_at: Mapped[datetime | None]
    video_id: Mapped[str | None] = mapped_column(String(40))
