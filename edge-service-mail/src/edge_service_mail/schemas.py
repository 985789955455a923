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

VideoId = Annotated[str, StringConstraints(pattern=r"^vid_[A-Za-z0-9_-]{1,36}$")]
"""A video id as the video service makes them: ``vid_`` and a URL-safe token (40 at most)."""

Subject = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SUBJECT),
    OneLine,
]
Body = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY), MultiLine]


class Draft(BaseModel):
    """A message to send. The sender is the caller: a ``from`` field is refused, not ignored.

    ``video_id``: a video of the video service to point at; it must exist when the message is
    sent (checked with the video service, on the sender's behalf).
    """

    model_config = ConfigDict(extra="forbid")

    to: UserId
    subject: Subject
    body: Body
    video_id: VideoId | None = None


class Notification(BaseModel):
    """A message a service puts into a user's inbox; the sender is ``service:<client id>``."""

    model_config = ConfigDict(extra="forbid")

    to: UserId
    subject: Subject
    body: Body


class MessageOut(BaseModel):
    """A message as either party sees it in a list: ``MessageOut.model_validate(row)``."""

    # Every field is in every answer: a default only lets a route fill it in after validation.
    model_config = ConfigDict(
        from_attributes=True, json_schema_serialization_defaults_required=True
    )

    id: str
    from_: str = Field(validation_alias="sender", serialization_alias="from")
    to: str = Field(validation_alias="recipient")
    subject: str
    body: str
    sent_at: datetime = Field(validation_alias="created_at")
    video_id: str | None = None


class VideoRef(BaseModel):
    """The video a message points at, as the video service describes it now.

    ``available`` false (and ``title`` null): the video is gone, or the video service could not
    be asked; the message is shown all the same.
    """

    id: str
    title: str | None
    available: bool


class MessageView(MessageOut):
    """One message with its video looked up (``null`` when it points at none)."""

    video: VideoRef | None = None


class Mailbox(Page[MessageOut]):
    """A page of one user's messages (received, or sent)."""

    owner: str
