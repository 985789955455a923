"""The mail routes. Scopes: ``mail:read`` to list, read and delete; ``mail:send`` to send.

A message is visible to its sender and its recipient only; anyone else gets the same 404 as for a
message that never existed (a 403 would confirm it exists).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from edge_service_mail import messages
from edge_service_mail.schemas import Draft, Mailbox, MessageOut
from gatepass import AccessPrincipal, GatepassRoute, ProblemError, require_scopes
from gatepass.paging import Paging
from gatepass.service import DbSession

READ = "mail:read"
SEND = "mail:send"

# GatepassRoute checks the token at the door, before the body is read or a session opened.
router = APIRouter(tags=["mail"], route_class=GatepassRoute)

Reader = Annotated[AccessPrincipal, Depends(require_scopes(READ))]
Sender = Annotated[AccessPrincipal, Depends(require_scopes(SEND))]
MessageId = Annotated[str, Path(max_length=64)]


class MessageNotFoundError(ProblemError):
    status = 404
    code = "message_not_found"
    title = "No such message"


@router.get("/inbox")
async def inbox(user: Reader, db: DbSession, page: Paging) -> Mailbox:
    """The caller's received messages, newest first."""
    rows = await messages.received(db, user.sub, page)
    return Mailbox.build([MessageOut.model_validate(row) for row in rows], page, owner=user.sub)


@router.get("/sent")
async def sent(user: Reader, db: DbSession, page: Paging) -> Mailbox:
    """The messages the caller sent, newest first."""
    rows = await messages.sent(db, user.sub, page)
    return Mailbox.build([MessageOut.model_validate(row) for row in rows], page, owner=user.sub)


@router.post("/messages", status_code=201)
async def send(draft: Draft, user: Sender, db: DbSession, response: Response) -> MessageOut:
    """Send a message to another user, by their user id."""
    message = await messages.send(db, user.sub, draft)
    response.headers["location"] = f"/messages/{message.id}"
    return MessageOut.model_validate(message)


@router.get("/messages/{message_id}", responses={404: {"description": "no such message"}})
async def read(message_id: MessageId, user: Reader, db: DbSession) -> MessageOut:
    """One message the caller sent or received."""
    message = await messages.visible(db, user.sub, message_id)
    if message is None:
        raise MessageNotFoundError
    return MessageOut.model_validate(message)


@router.delete(
    "/messages/{message_id}", status_code=204, responses={404: {"description": "no such message"}}
)
async def remove(message_id: MessageId, user: Reader, db: DbSession) -> None:
    """Delete a message from the caller's view only; the other party still has it."""
    if not await messages.delete_for(db, user.sub, message_id):
        raise MessageNotFoundError
