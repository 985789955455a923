"""The caller's devices: list, sign one out, log out, log out everywhere."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from auth_service import devices
from auth_service.security import CALLER_ANSWERS, CurrentCaller
from auth_service.state import Svc
from gatepass.openapi import bearer_security, merge_responses, problem_responses
from gatepass.text import ResourceId

router = APIRouter(tags=["sessions"])


class SessionOut(BaseModel):
    id: str
    client_id: str
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool


@router.get(
    "/sessions",
    response_model=list[SessionOut],
    responses=CALLER_ANSWERS,
    openapi_extra=bearer_security(),
)
async def list_sessions(caller: CurrentCaller, svc: Svc) -> list[SessionOut]:
    rows = await devices.list_sessions(svc.sessions, svc.clock, caller.user_id)
    return [
        SessionOut(
            id=s.id,
            client_id=s.client_id,
            user_agent=s.user_agent,
            ip=s.ip,
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            expires_at=s.expires_at,
            current=s.id == caller.session_id,
        )
        for s in rows
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=merge_responses(
        CALLER_ANSWERS,
        problem_responses(404, descriptions={404: "No such session of the caller's."}),
    ),
    openapi_extra=bearer_security(),
)
async def delete_session(session_id: ResourceId, caller: CurrentCaller, svc: Svc) -> Response:
    await devices.revoke_session(svc, caller.user_id, session_id, "signed_out_by_user")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=CALLER_ANSWERS,
    openapi_extra=bearer_security(),
)
async def logout(caller: CurrentCaller, svc: Svc) -> Response:
    if caller.session_id is not None:
        await devices.revoke_session(svc, caller.user_id, caller.session_id, "logout")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/logout/all",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=CALLER_ANSWERS,
    openapi_extra=bearer_security(),
)
async def logout_all(caller: CurrentCaller, svc: Svc) -> Response:
    await devices.revoke_all(svc, caller.user_id, "logout_all")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
