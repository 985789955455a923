"""What a database cannot store never reaches it: the auth service on SQLite and on PostgreSQL.

PostgreSQL refuses NUL in text and values longer than their column, which used to surface as 500s
(after the request was accepted) and, once, as a reuse detection that failed to revoke. Every
text input is now refused with a 4xx where it is parsed, what the service records on its own (a
User-Agent, an address in an audit row) is cleaned and bounded, and an audit row can never undo
the revocation it records. Each test runs the real app in-process (ASGI, injected clock) on both
backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from auth_service import accounts
from auth_service.app import create_app, running
from auth_service.models import RevocationEvent, SecurityEvent, User
from auth_service.models import Session as DeviceSession
from auth_service.state import Services
from tests.support.inprocess import BASE_URL, auth_settings

PASSWORD = "correct horse battery staple 42"
AUDIT_DOWN = "audit store unavailable"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


@dataclass
class Auth:
    app: FastAPI
    svc: Services
    clock: FakeClock

    def client(self, ip: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


@pytest.fixture
async def auth(tmp_path: Path, database_url: str | None) -> AsyncIterator[Auth]:
    settings = auth_settings(tmp_path, database_url)
    clock = FakeClock()
    async with running(settings, clock, background=False, sleep=clock.sleep) as svc:
        app = create_app(settings, clock=clock)
        app.state.services = svc
        yield Auth(app, svc, clock)


async def login(http: httpx.AsyncClient, email: str, **headers: str) -> dict[str, Any]:
    answer = await http.post("/login", json={"email": email, "password": PASSWORD}, headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def user_count(auth: Auth) -> int:
    async with auth.svc.sessions() as db:
        return (await db.scalar(select(func.count()).select_from(User))) or 0


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens['access_token']}"}


def assert_invalid(answer: httpx.Response) -> None:
    """A 422 problem that names the field and never echoes what was sent."""
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["code"] == "validation_error"
    assert all("input" not in error for error in body["errors"])


@pytest.mark.parametrize(
    "body",
    [
        {"email": "eve\x00@example.com"},
        {"email": "eve@example.com\x00"},
        {"email": "eve@example.com", "display_name": "Eve\x00"},
        {"email": "eve@example.com", "display_name": "Eve\x1b[2J"},
        {"email": "eve@example.com", "display_name": "Eve\u0085"},
        {"email": "eve@example.com", "display_name": "E" * 101},
        {"email": "e" * 310 + "@example.com"},
    ],
    ids=[
        "nul-email",
        "trailing-nul-email",
        "nul-name",
        "escape-name",
        "c1-name",
        "long-name",
        "long-email",
    ],
)
async def test_signup_refuses_what_no_column_can_hold(auth: Auth, body: dict[str, str]) -> None:
    async with auth.client() as http:
        answer = await http.post("/signup", json={"password": PASSWORD, **body})
    assert answer.status_code == 422, answer.text  # 422 validation_error or invalid_email
    assert await user_count(auth) == 0


async def test_signup_keeps_a_display_name_that_is_only_unusual(auth: Auth) -> None:
    body = {"email": "zoe@example.com", "password": PASSWORD, "display_name": "Zoë 🦊 " + "z" * 92}
    async with auth.client() as http:
        assert (await http.post("/signup", json=body)).status_code == 201
        tokens = await login(http, "zoe@example.com")
        assert (await http.get("/me", headers=bearer(tokens))).json()["display_name"] == body[
            "display_name"
        ]


@pytest.mark.parametrize("email", ["eve\x00@example.com", "\x00", "eve@example.com\x07"])
async def test_login_refuses_control_characters_in_the_email(auth: Auth, email: str) -> None:
    async with auth.client() as http:
        assert_invalid(await http.post("/login", json={"email": email, "password": PASSWORD}))


async def test_a_session_id_in_the_path_is_checked(auth: Auth) -> None:
    await accounts.signup(auth.svc, "ann@example.com", PASSWORD)
    async with auth.client() as http:
        tokens = await login(http, "ann@example.com")
        for bad in ("ses%00x", "ses_x%00", "ses_%1b", "s" * 65):
            assert_invalid(await http.delete(f"/sessions/{bad}", headers=bearer(tokens)))
        never = await http.delete("/sessions/ses_never", headers=bearer(tokens))
        assert never.status_code == 404
        assert (await http.get("/sessions", headers=bearer(tokens))).status_code == 200


async def test_admin_paths_and_bodies_are_checked(auth: Auth) -> None:
    await accounts.signup(auth.svc, "root@example.com", PASSWORD, roles=["admin"])
    async with auth.client() as http:
        admin = bearer(await login(http, "root@example.com"))
        for bad in ("usr%00x", "usr_x%00", "u" * 65):
            assert_invalid(await http.get(f"/admin/users/{bad}", headers=admin))
            assert_invalid(await http.post(f"/admin/users/{bad}/disable", headers=admin))
            assert_invalid(await http.post(f"/admin/users/{bad}/enable", headers=admin))
            roles = await http.put(f"/admin/users/{bad}/roles", json={"roles": []}, headers=admin)
            assert_invalid(roles)
        assert (await http.get("/admin/users/usr_never", headers=admin)).status_code == 404
        (me,) = (await http.get("/admin/users", headers=admin)).json()["users"]
        nul_role = await http.put(
            f"/admin/users/{me['id']}/roles", json={"roles": ["admin\x00"]}, headers=admin
        )
        assert_invalid(nul_role)


@pytest.mark.parametrize(
    "query",
    [
        "offset=9223372036854775807",
        "offset=9223372036854775808",
        "offset=18446744073709551616",
        "offset=1000001",
        "offset=-1",
        "limit=201",
        "limit=0",
    ],
)
async def test_admin_pages_are_bounded(auth: Auth, query: str) -> None:
    await accounts.signup(auth.svc, "root@example.com", PASSWORD, roles=["admin"])
    async with auth.client() as http:
        admin = bearer(await login(http, "root@example.com"))
        assert_invalid(await http.get(f"/admin/users?{query}", headers=admin))
        far = await http.get("/admin/users?offset=1000000&limit=200", headers=admin)
    assert far.status_code == 200
    assert (far.json()["users"], far.json()["total"]) == ([], 1)


async def test_the_user_agent_is_stored_clean_and_bounded(auth: Auth) -> None:
    await accounts.signup(auth.svc, "ua@example.com", PASSWORD)
    agent = "Mozilla/5.0\x00\x01 (X11)\x7f " + "x" * 600
    async with auth.client() as http:
        tokens = await login(http, "ua@example.com", **{"user-agent": agent})
        (session,) = (await http.get("/sessions", headers=bearer(tokens))).json()
    assert session["user_agent"] == ("Mozilla/5.0 (X11) " + "x" * 600)[:512]


async def refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": token})


async def replayed_after_the_window(auth: Auth, ip: str) -> tuple[str, httpx.Response]:
    """Log in, rotate once, then present the rotated token again well after the grace window,
    from ``ip``: reuse. The session's id, and the answer to the replay."""
    await accounts.signup(auth.svc, "thief@example.com", PASSWORD)
    async with auth.client() as http:
        tokens = await login(http, "thief@example.com")
        assert (await refresh(http, tokens["refresh_token"])).status_code == 200
    auth.clock.advance(auth.svc.settings.refresh_reuse_grace * 2 + 1)
    async with auth.client(ip) as from_elsewhere:
        replay = await refresh(from_elsewhere, tokens["refresh_token"])
    return tokens["session_id"], replay


async def revoked(auth: Auth, session_id: str) -> tuple[bool, int, list[SecurityEvent]]:
    """Whether the session is revoked, its revocation events, and every security event."""
    async with auth.svc.sessions() as db:
        session = await db.get(DeviceSession, session_id)
        events = await db.scalar(
            select(func.count())
            .select_from(RevocationEvent)
            .where(RevocationEvent.kind == "session", RevocationEvent.value == session_id)
        )
        audit = list(await db.scalars(select(SecurityEvent)))
    assert session is not None
    return session.revoked_at is not None, events or 0, audit


@pytest.mark.parametrize(
    "ip",
    ["203.0.113.7," * 20 + "203.0.113.8", "2001:db8::" + "1:" * 40 + "1", "198.51.100.1\x00"],
    ids=["forwarded-chain", "long-v6-like", "nul"],
)
async def test_reuse_from_an_unstorable_address_still_revokes(auth: Auth, ip: str) -> None:
    session_id, replay = await replayed_after_the_window(auth, ip)
    assert replay.status_code == 400, replay.text
    assert replay.json()["error"] == "invalid_grant"
    is_revoked, events, audit = await revoked(auth, session_id)
    assert is_revoked
    assert events >= 1
    (reuse,) = [event for event in audit if event.kind == "refresh_token_reuse"]
    assert reuse.session_id == session_id
    assert reuse.ip is not None
    assert len(reuse.ip) <= 64
    assert "\x00" not in reuse.ip


async def break_the_audit_table(auth: Auth) -> None:
    """Every insert into security_events now fails inside the database."""
    async with auth.svc.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(
                text(
                    "CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN RAISE EXCEPTION '{AUDIT_DOWN}'; END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER audit_down BEFORE INSERT ON security_events "
                    "FOR EACH ROW EXECUTE FUNCTION audit_down()"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE TRIGGER audit_down BEFORE INSERT ON security_events "
                    f"BEGIN SELECT RAISE(ABORT, '{AUDIT_DOWN}'); END"
                )
            )


async def test_a_failing_audit_write_does_not_undo_the_revocation(
    auth: Auth, caplog: pytest.LogCaptureFixture
) -> None:
    await break_the_audit_table(auth)
    session_id, replay = await replayed_after_the_window(auth, "127.0.0.1")
    assert replay.status_code == 400, replay.text
    assert replay.json()["error"] == "invalid_grant"
    is_revoked, events, audit = await revoked(auth, session_id)
    assert is_revoked
    assert events >= 1
    assert audit == []
    lost = [r for r in caplog.records if r.getMessage().startswith("security event not recorded")]
    assert lost
    assert lost[0].levelname == "ERROR"
