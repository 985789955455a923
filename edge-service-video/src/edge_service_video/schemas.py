"""What the video routes take and answer (JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gatepass.paging import Page
from gatepass.text import MultiLine, OneLine

MAX_TITLE = 200
MAX_DESCRIPTION = 5_000


class VideoDraft(BaseModel):
    """A video's metadata. The owner is the caller: an ``owner`` field is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE),
        OneLine,
    ]
    description: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION), MultiLine] = ""


class VideoOut(BaseModel):
    """A video as any reader sees it: ``VideoOut.model_validate(row)``."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    owner: str
    title: str
    description: str
    uploaded_at: datetime = Field(validation_alias="created_at")


class Upload(VideoOut):
    """An upload's answer: the video, and whether its owner was told in their mail inbox."""

    # Always in the answer: the default only lets the route fill it after validating the row.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    notified: bool = False


class Catalogue(Page[VideoOut]):
    """A page of the catalogue, newest first, as ``viewer`` (the caller) asked for it."""

    viewer: str
