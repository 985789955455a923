"""The mail routes. Scopes: ``mail:read`` to list, read and delete; ``mail:send`` to send.

A message is visible to its sender and its recipient only; anyone else gets the same 404 as for a
message that never existed (a 403 would confirm it exists). Every route first makes sure the
caller has a mailbox (:mod:`edge_service_mail.mailboxes`); mail goes only to a user who has one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from edge_service_mail import mailboxes, messages
from edge_service_mail.schemas import Draft, Mailbox, MessageOut
from gatepass import AccessPrincipal, GatepassRoute, ProblemError, require_scopes
from gatepass.openapi import (
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

# GatepassRoute checks the token at the door, before the body is read or a session opened; then
# the caller's mailbox is made if it is their first request here.
router = APIRouter(
    tags=["mail"], route_class=GatepassRoute, dependencies=[Depends(mailboxes.open_mailbox)]
)

Reader = Annotated[AccessPrincipal, Depends(require_scopes(READ))]
Sender = Annotated[AccessPrincipal, Depends(require_scopes(SEND))]
MessageId = ResourceId


PROTECTED = edge_bearer_responses()
NO_MESSAGE = merge_responses(
    PROTECTED,
    problem_responses(404, descriptions={404: "No such message, or not the caller's to see."}),
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
        problem_responses(422, descriptions={422: "Not valid, or the recipient has no mailbox."}),
    ),
    openapi_extra=bearer_security(SEND),
)
async def send(draft: Draft, user: Sender, db: DbSession, response: Response) -> MessageOut:
    """Send a message to another user, by their user id (one who has used the mail service)."""
    if not await mailboxes.exists(db, draft.to):
        raise UnknownRecipientError
    message = await messages.send(db, user.sub, draft)
    response.headers["location"] = f"/messages/{message.id}"
    return MessageOut.model_validate(message)


@router.get("/messages/{message_id}", responses=NO_MESSAGE, openapi_extra=bearer_security(READ))
async def read(message_id: MessageId, user: Reader, db: DbSession) -> MessageOut:
    """One message the caller sent or received."""
    message = await messages.visible(db, user.sub, message_id)
    if message is None:
        raise MessageNotFoundError
    return MessageOut.model_validate(message)


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
