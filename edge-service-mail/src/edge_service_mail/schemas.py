"""What the mail routes take and answer (JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gatepass.paging import Page
from gatepass.text import MultiLine, OneLine

MAX_SUBJECT = 200
MAX_BODY = 10_000

UserId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._~:@-]+$")
]
"""A user id as the auth service issues it (the token's opaque ``sub``)."""


class Draft(BaseModel):
    """A message to send. The sender is the caller: a ``from`` field is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

    to: UserId
    subject: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SUBJECT),
        OneLine,
    ]
    body: Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY), MultiLine]


class MessageOut(BaseModel):
    """A message as either party sees it: ``MessageOut.model_validate(row)``."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    from_: str = Field(validation_alias="sender", serialization_alias="from")
    to: str = Field(validation_alias="recipient")
    subject: str
    body: str
    sent_at: datetime = Field(validation_alias="created_at")


class Mailbox(Page[MessageOut]):
    """A page of one user's messages (received, or sent)."""

    owner: str
