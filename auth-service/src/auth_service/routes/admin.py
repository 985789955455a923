"""The admin API: list users, set roles, disable and enable. Needs the ``admin`` scope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from auth_service import accounts
from auth_service.models import User
from auth_service.security import ADMIN_ANSWERS, AdminCaller
from auth_service.state import Svc
from gatepass.openapi import bearer_security, merge_responses, problem_responses
from gatepass.text import OneLine, ResourceId

router = APIRouter(prefix="/admin", tags=["admin"])

ADMIN = bearer_security("admin")
NO_USER = merge_responses(
    ADMIN_ANSWERS, problem_responses(404, descriptions={404: "No such user."})
)

MAX_LIMIT = 200
# Beyond any list an admin pages through, far below what the database takes (an int64, where a
# bigger offset used to be a 500): a bigger one is a 422.
MAX_OFFSET = 1_000_000


class UserOut(BaseModel):
    id: str
    email: str
    display_name: str | None
    roles: list[str]
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            roles=user.roles,
            disabled=user.disabled,
            created_at=user.created_at,
        )


class UserList(BaseModel):
    users: list[UserOut]
    total: int
    limit: int
    offset: int


class RolesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: Annotated[list[Annotated[str, Field(max_length=40), OneLine]], Field(max_length=20)]


@router.get("/users", response_model=UserList, responses=ADMIN_ANSWERS, openapi_extra=ADMIN)
async def list_users(
    _admin: AdminCaller,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> UserList:
    page = await accounts.list_users(svc, limit=limit, offset=offset)
    return UserList(
        users=[UserOut.of(u) for u in page.users], total=page.total, limit=limit, offset=offset
    )


@router.get("/users/{user_id}", response_model=UserOut, responses=NO_USER, openapi_extra=ADMIN)
async def get_user(user_id: ResourceId, _admin: AdminCaller, svc: Svc) -> UserOut:
    return UserOut.of(await accounts.get_user(svc.sessions, user_id))


@router.put(
    "/users/{user_id}/roles",
    response_model=UserOut,
    responses=merge_responses(
        NO_USER, problem_responses(422, descriptions={422: "Not valid, or an unknown role."})
    ),
    openapi_extra=ADMIN,
)
async def set_roles(user_id: ResourceId, body: RolesIn, _admin: AdminCaller, svc: Svc) -> UserOut:
    return UserOut.of(await accounts.set_roles(svc, user_id, body.roles))


@router.post(
    "/users/{user_id}/disable", response_model=UserOut, responses=NO_USER, openapi_extra=ADMIN
)
async def disable(user_id: ResourceId, _admin: AdminCaller, svc: Svc) -> UserOut:
    return UserOut.of(await accounts.set_disabled(svc, user_id, True))


@router.post(
    "/users/{user_id}/enable", response_model=UserOut, responses=NO_USER, openapi_extra=ADMIN
)
async def enable(user_id: ResourceId, _admin: AdminCaller, svc: Svc) -> UserOut:
    return UserOut.of(await accounts.set_disabled(svc, user_id, False))
