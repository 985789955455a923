"""The video routes. Scopes: ``video:read`` to browse, ``video:upload`` to add (and to delete
one's own), ``video:delete`` to delete anyone's. Users only: a service's own token is refused
(:func:`gatepass.require_user`); a service acting for a user exchanges the user's token first.

Deleting is where scopes meet ownership: the owner may delete their video, a moderator (holding
``video:delete``) any video; anyone else gets 403 ``insufficient_scope`` naming ``video:delete``.
An upload tells its owner in their mail inbox (:mod:`edge_service_video.notices`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from edge_service_video import catalogue
from edge_service_video.models import Video
from edge_service_video.notices import MailNotices
from edge_service_video.schemas import Catalogue, Upload, VideoDraft, VideoOut
from gatepass import (
    AccessPrincipal,
    GatepassRoute,
    InsufficientScopeError,
    ProblemError,
    edge_auth,
    require_user,
)
from gatepass.openapi import (
    bearer_security,
    bearer_security_any,
    edge_bearer_responses,
    merge_responses,
    problem_responses,
)
from gatepass.paging import Paging
from gatepass.service import DbSession
from gatepass.text import ResourceId

READ = "video:read"
UPLOAD = "video:upload"
DELETE = "video:delete"

# GatepassRoute checks the token at the door, before the body is read or a session opened.
router = APIRouter(tags=["video"], route_class=GatepassRoute)

Reader = Annotated[AccessPrincipal, Depends(require_user(READ))]
Uploader = Annotated[AccessPrincipal, Depends(require_user(UPLOAD))]
User = Annotated[AccessPrincipal, Depends(require_user())]
VideoId = ResourceId


PROTECTED = edge_bearer_responses()
NO_VIDEO = merge_responses(PROTECTED, problem_responses(404, descriptions={404: "No such video."}))


class VideoNotFoundError(ProblemError):
    status = 404
    code = "video_not_found"
    title = "No such video"


@router.get("/videos", responses=PROTECTED, openapi_extra=bearer_security(READ))
async def videos(user: Reader, db: DbSession, page: Paging) -> Catalogue:
    """The catalogue, newest first."""
    rows = await catalogue.listed(db, page)
    return Catalogue.build([VideoOut.model_validate(row) for row in rows], page, viewer=user.sub)


@router.get("/videos/{video_id}", responses=NO_VIDEO, openapi_extra=bearer_security(READ))
async def video(video_id: VideoId, user: Reader, db: DbSession) -> VideoOut:
    """One video's metadata."""
    found = await catalogue.find(db, video_id)
    if found is None:
        raise VideoNotFoundError
    return VideoOut.model_validate(found)


@router.post("/videos", status_code=201, responses=PROTECTED, openapi_extra=bearer_security(UPLOAD))
async def upload(
    draft: VideoDraft, user: Uploader, db: DbSession, response: Response, mailer: MailNotices
) -> Upload:
    """Add a video (its metadata); the caller owns it, and is told in their mail inbox
    (``notified``: whether mail took the notification; the upload stands either way)."""
    added = await catalogue.add(db, user.sub, draft)  # committed: the connection is free again
    response.headers["location"] = f"/videos/{added.id}"
    notified = await mailer.video_up(added)
    return Upload.model_validate(added).model_copy(update={"notified": notified})


@router.delete(
    "/videos/{video_id}",
    status_code=204,
    responses=merge_responses(
        NO_VIDEO,
        problem_responses(
            403, descriptions={403: "Neither the owner (with `video:upload`) nor `video:delete`."}
        ),
    ),
    openapi_extra=bearer_security_any([DELETE], [UPLOAD]),
)
async def remove(video_id: VideoId, user: User, db: DbSession, request: Request) -> None:
    """Delete a video: the owner's own, or any with ``video:delete``."""
    found = await catalogue.find(db, video_id)
    if found is None:
        raise VideoNotFoundError
    if not may_delete(user, found):
        auth = edge_auth(request)
        auth.verifier.stats.rejected("insufficient_scope")
        raise auth.problem(InsufficientScopeError([DELETE]))
    await catalogue.remove(db, video_id)


def may_delete(user: AccessPrincipal, video: Video) -> bool:
    """``video:delete`` deletes anything; the owner deletes their own with ``video:upload``.

    The owner still needs a write scope: a token narrowed to ``video:read`` (one a service got by
    token exchange to show a user's videos, say) must not delete them.
    """
    return DELETE in user.scopes or (video.owner == user.sub and UPLOAD in user.scopes)
