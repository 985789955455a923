"""What the refresh-token tests share: a user signed in over the app, the refresh grant, and
the session's lineage and reuse events read from the database."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from auth_service.models import RefreshToken, RevocationEvent, SecurityEvent
from auth_service.models import Session as DeviceSession
from auth_service.state import Services

PASSWORD = "correct horse battery staple 42"


async def sign_in(client: httpx.AsyncClient, email: str = "ann@example.com") -> dict[str, Any]:
    signed_up = await client.post("/signup", json={"email": email, "password": PASSWORD})
    assert signed_up.status_code == 201, signed_up.text
    login = await client.post("/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    body: dict[str, Any] = login.json()
    return body


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token})


async def lineage(services: Services, session_id: str) -> list[RefreshToken]:
    async with services.sessions() as db:
        rows = await db.scalars(
            select(RefreshToken)
            .where(RefreshToken.session_id == session_id)
            .order_by(RefreshToken.seq)
        )
        return list(rows)


def live(rows: list[RefreshToken]) -> list[RefreshToken]:
    return [row for row in rows if row.rotated_at is None and row.superseded_at is None]


async def reuse_events(services: Services, session_id: str) -> int:
    async with services.sessions() as db:
        count = await db.scalar(
            select(func.count())
            .select_from(SecurityEvent)
            .where(
                SecurityEvent.kind == "refresh_token_reuse",
                SecurityEvent.session_id == session_id,
            )
        )
        return int(count or 0)


async def assert_revoked_for_reuse(
    services: Services, client: httpx.AsyncClient, tokens: dict[str, Any]
) -> None:
    """The session is revoked, with its security event and its revocation event for the edges."""
    session_id = tokens["session_id"]
    async with services.sessions() as db:
        session = await db.get(DeviceSession, session_id)
        assert session is not None
        assert session.revoked_at is not None
        assert session.revoked_reason == "refresh_reuse"
        events = await db.scalars(
            select(RevocationEvent).where(
                RevocationEvent.kind == "session", RevocationEvent.value == session_id
            )
        )
        assert len(list(events)) == 1
    assert await reuse_events(services, session_id) == 1
    me = await client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 401


def refused(response: httpx.Response) -> bool:
    return response.status_code == 400 and response.json()["error"] == "invalid_grant"
