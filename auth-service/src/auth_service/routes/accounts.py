"""Signup, login, and the caller's own profile."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from auth_service import accounts, devices
from auth_service.errors import NO_STORE
from auth_service.security import CurrentCaller, client_ip
from auth_service.state import Svc

router = APIRouter(tags=["accounts"])

Email = Annotated[str, Field(min_length=3, max_length=320)]
# Bounded well above the policy maximum so an over-long password gets the policy's 422.
Password = Annotated[str, Field(min_length=1, max_length=1024)]


class SignupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    password: Password
    display_name: Annotated[str | None, Field(max_length=100)] = None


class SignupOut(BaseModel):
    id: str
    email: str


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    password: Password
    client_id: Annotated[str | None, Field(max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")] = None


class LoginOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the RFC 6749 token type, not a secret
    expires_in: int
    refresh_token: str
    session_id: str
    scope: str


class Profile(BaseModel):
    id: str
    email: str
    display_name: str | None
    roles: list[str]
    created_at: datetime
    session_id: str | None


@router.post("/signup", status_code=status.HTTP_201_CREATED, response_model=SignupOut)
async def signup(body: SignupIn, svc: Svc) -> SignupOut:
    user = await accounts.signup(svc, body.email, body.password, body.display_name)
    return SignupOut(id=user.id, email=user.email)


@router.post("/login", response_model=LoginOut)
async def login(body: LoginIn, request: Request, svc: Svc) -> JSONResponse:
    ip = client_ip(request)
    user = await accounts.authenticate(svc, body.email, body.password, ip)
    pair = await devices.open_session(
        svc,
        user,
        client_id=body.client_id or svc.settings.default_client_id,
        user_agent=request.headers.get("user-agent"),
        ip=ip,
    )
    out = LoginOut(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        session_id=pair.session_id,
        scope=pair.scope,
    )
    return JSONResponse(out.model_dump(), headers=NO_STORE)


@router.get("/me", response_model=Profile)
async def me(caller: CurrentCaller, svc: Svc) -> Profile:
    user = await accounts.get_user(svc, caller.user_id)
    return Profile(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        roles=user.roles,
        created_at=user.created_at,
        session_id=caller.session_id,
    )
