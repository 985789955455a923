"""The mail routes. Scopes: ``mail:read`` to list, read and delete; ``mail:send`` to send;
``mail:notify`` for a service to put a notification into a user's inbox.

A message is visible to its sender and its recipient only; anyone else gets the same 404 as for a
message that never existed (a 403 would confirm it exists). Every user route first makes sure the
caller has a mailbox (:mod:`edge_service_mail.mailboxes`); mail goes only to a user who has one.

Users and services are told apart by their token (:func:`gatepass.require_user`,
:func:`gatepass.require_service`): the user routes refuse a service's own token, and
``POST /notifications`` refuses a user's, whatever scopes either holds. A message may point at a
video, looked up at the video service on the user's behalf (:mod:`edge_service_mail.videos`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from edge_service_mail import mailboxes, messages
from edge_service_mail.models import Message
from edge_service_mail.schemas import (
    Draft,
    Mailbox,
    MessageOut,
    MessageView,
    Notification,
    VideoRef,
)
from edge_service_mail.videos import VideoService
from gatepass import AccessPrincipal, GatepassRoute, ProblemError, require_service, require_user
from gatepass.openapi import (
    RETRY_AFTER,
    bearer_security,
    edge_bearer_responses,
    merge_responses,
    problem_responses,
)
from gatepass.paging import Paging
from gatepass.service import DbSession
from gatepass.text import ResourceId

READ = "mail:read"
SEND = "mail:send"
NOTIFY = "mail:notify"

# GatepassRoute checks the token at the door, before the body is read or a session opened; then
# the caller's mailbox is made if it is their first request here.
router = APIRouter(
    tags=["mail"], route_class=GatepassRoute, dependencies=[Depends(mailboxes.open_mailbox)]
)
# The services' route: a service has no mailbox, and gets none.
services = APIRouter(tags=["notifications"], route_class=GatepassRoute)

Reader = Annotated[AccessPrincipal, Depends(require_user(READ))]
Sender = Annotated[AccessPrincipal, Depends(require_user(SEND))]
Notifier = Annotated[AccessPrincipal, Depends(require_service(NOTIFY))]
MessageId = ResourceId


PROTECTED = edge_bearer_responses()
NO_MESSAGE = merge_responses(
    PROTECTED,
    problem_responses(404, descriptions={404: "No such message, or not the caller's to see."}),
)
NO_RECIPIENT = problem_responses(
    422, descriptions={422: "Not valid, or the recipient has no mailbox."}
)
VIDEO_UNAVAILABLE = problem_responses(
    503,
    descriptions={503: "The video service could not be asked about the message's video."},
    headers={503: [RETRY_AFTER]},
)


class MessageNotFoundError(ProblemError):
    status = 404
    code = "message_not_found"
    title = "No such message"


class UnknownRecipientError(ProblemError):
    status = 422
    code = "unknown_recipient"
    title = "No such recipient"

    def __init__(self) -> None:
        super().__init__(
            "The recipient has no mailbox here: a user gets one by using the mail service once."
        )


@router.get("/inbox", responses=PROTECTED, openapi_extra=bearer_security(READ))
async def inbox(user: Reader, db: DbSession, page: Paging) -> Mailbox:
    """The caller's received messages, newest first."""
    rows = await messages.received(db, user.sub, page)
    return Mailbox.build([MessageOut.model_validate(row) for row in rows], page, owner=user.sub)


@router.get("/sent", responses=PROTECTED, openapi_extra=bearer_security(READ))
async def sent(user: Reader, db: DbSession, page: Paging) -> Mailbox:
    """The messages the caller sent, newest first."""
    rows = await messages.sent(db, user.sub, page)
    return Mailbox.build([MessageOut.model_validate(row) for row in rows], page, owner=user.sub)


@router.post(
    "/messages",
    status_code=201,
    responses=merge_responses(
        PROTECTED,
        problem_responses(
            422,
            descriptions={
                422: "Not valid, the recipient has no mailbox, or the video does not exist."
            },
        ),
        VIDEO_UNAVAILABLE,
    ),
    openapi_extra=bearer_security(SEND),
)
async def send(
    draft: Draft, user: Sender, db: DbSession, response: Response, videos: VideoService
) -> MessageView:
    """Send a message to another user, by their user id (one who has used the mail service),
    pointing at a video of the video service if ``video_id`` is given (it must exist, and the
    caller's token must hold ``video:read``: 403 ``insufficient_scope`` otherwise)."""
    if not await mailboxes.exists(db, draft.to):
        raise UnknownRecipientError
    video = None
    if draft.video_id is not None:
        await messages.release(db)
        video = await videos.check(user, draft.video_id)
    message = await messages.send(db, user.sub, draft)
    return _created(response, message, video)


@services.post(
    "/notifications",
    status_code=201,
    responses=merge_responses(PROTECTED, NO_RECIPIENT),
    openapi_extra=bearer_security(NOTIFY),
)
async def notify(
    notification: Notification, service: Notifier, db: DbSession, response: Response
) -> MessageView:
    """Put a notification into a user's inbox (one who has used the mail service), from
    ``service:<the caller's client id>``. Service tokens only."""
    if not await mailboxes.exists(db, notification.to):
        raise UnknownRecipientError
    message = await messages.send(db, messages.notifier(service.sub), notification)
    return _created(response, message, None)


def _created(response: Response, message: Message, video: VideoRef | None) -> MessageView:
    response.headers["location"] = f"/messages/{message.id}"
    return MessageView.model_validate(message).model_copy(update={"video": video})


@router.get("/messages/{message_id}", responses=NO_MESSAGE, openapi_extra=bearer_security(READ))
async def read(
    message_id: MessageId, user: Reader, db: DbSession, videos: VideoService
) -> MessageView:
    """One message the caller sent or received, with its video as the video service describes
    it now (``available`` false when it is gone, cannot be asked, or the caller's token lacks
    ``video:read``: the message is shown anyway).
    """
    message = await messages.visible(db, user.sub, message_id)
    if message is None:
        raise MessageNotFoundError
    view = MessageView.model_validate(message)
    if view.video_id is None:
        return view
    await messages.release(db)
    return view.model_copy(update={"video": await videos.describe(user, view.video_id)})


@router.delete(
    "/messages/{message_id}",
    status_code=204,
    responses=NO_MESSAGE,
    openapi_extra=bearer_security(READ),
)
async def remove(message_id: MessageId, user: Reader, db: DbSession) -> None:
    """Delete a message from the caller's view only; the other party still has it."""
    if not await messages.delete_for(db, user.sub, message_id):
        raise MessageNotFoundError
