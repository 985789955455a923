"""The videos table, as the routes need it: list, find, add, remove."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from edge_service_video.models import Video
from edge_service_video.schemas import VideoDraft
from gatepass.paging import PageRequest


def new_id() -> str:
    """An unguessable video id."""
    return f"vid_{secrets.token_urlsafe(16)}"


async def listed(db: AsyncSession, page: PageRequest) -> Sequence[Video]:
    """Every video, newest first."""
    query = select(Video).order_by(Video.created_at.desc(), Video.id.desc())
    return (await db.scalars(page.window(query))).all()


async def find(db: AsyncSession, video_id: str) -> Video | None:
    return await db.get(Video, video_id)


async def add(db: AsyncSession, owner: str, draft: VideoDraft) -> Video:
    video = Video(
        id=new_id(),
        owner=owner,
        title=draft.title,
        description=draft.description,
        created_at=datetime.now(UTC),
    )
    db.add(video)
    await db.commit()
    return video


async def remove(db: AsyncSession, video_id: str) -> None:
    await db.execute(delete(Video).where(Video.id == video_id))
    await db.commit()
