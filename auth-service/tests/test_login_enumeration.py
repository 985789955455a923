"""An unknown email and a wrong password for a known one cannot be told apart: the same argon2
work (same parameters, one verify), the same SQL statements in the same order (so the same rows
of the throttle table written), and the same status, body and headers.

Proved in-process by recording what each attempt does, rather than by timing it: a first attempt
at an account is compared with a first attempt at an unknown email, then the second attempts
with each other (a first attempt creates counters; a later one updates them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from asgi_clients import client_from
from fastapi import FastAPI
from sqlalchemy import event, select

from auth_service.models import LoginThrottle
from auth_service.state import Services

KNOWN = "known@example.com"
UNKNOWN = "nobody@example.com"
PASSWORD = "correct horse battery staple 42"
WRONG = "not the password 7"


@dataclass
class Trace:
    """What one login attempt did."""

    statements: list[str] = field(default_factory=list)
    verified_against: list[str] = field(default_factory=list)  # argon2 parameters of each verify


class Recorder:
    def __init__(self, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trace = Trace()
        verify = services.passwords._verify_sync

        def recording_verify(password_hash: str, password: bytes) -> bool:
            # "$argon2id$v=19$m=8192,t=1,p=1$<salt>$<hash>": keep the algorithm and parameters.
            self.trace.verified_against.append(password_hash.rsplit("$", 2)[0])
            return verify(password_hash, password)

        monkeypatch.setattr(services.passwords, "_verify_sync", recording_verify)
        event.listen(services.engine.sync_engine, "before_cursor_execute", self._statement)
        self._engine = services.engine.sync_engine

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.trace.statements.append(" ".join(statement.split()))

    def start(self) -> Trace:
        self.trace = Trace()
        return self.trace

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._statement)


@pytest.fixture
def recorder(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recording = Recorder(services, monkeypatch)
    yield recording
    recording.close()


async def counters(services: Services) -> dict[str, tuple[int, bool]]:
    """The throttle table: key -> (failures, blocked)."""
    async with services.sessions() as db:
        rows = await db.scalars(select(LoginThrottle))
        return {row.key: (row.failures, row.blocked_until is not None) for row in rows}


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The rows an attempt wrote, by kind (key prefix): (kind, value before, value after)."""
    return sorted(
        (key.split(":", 1)[0], before.get(key), after[key])
        for key in after
        if before.get(key) != after[key]
    )


def answer(response: httpx.Response) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k.lower() != "x-request-id"}
    return response.status_code, response.json(), headers


async def attempt(
    http: httpx.AsyncClient, services: Services, recorder: Recorder, email: str
) -> tuple[tuple[int, dict[str, Any], dict[str, str]], Trace, list[tuple[str, Any, Any]]]:
    before = await counters(services)
    trace = recorder.start()
    response = await http.post("/login", json={"email": email, "password": WRONG})
    recorder.start()  # stop recording before reading the table again
    return answer(response), trace, changed(before, await counters(services))


async def test_unknown_email_and_wrong_password_do_the_same_work(
    app: FastAPI, services: Services, recorder: Recorder
) -> None:
    async with client_from(app, "192.0.2.1") as http:
        assert (
            await http.post("/signup", json={"email": KNOWN, "password": PASSWORD})
        ).status_code == 201
    # Each from an address of its own, so the address counters start alike too.
    async with client_from(app, "198.51.100.1") as one, client_from(app, "198.51.100.2") as two:
        for round_ in ("first attempts", "second attempts"):
            known = await attempt(one, services, recorder, KNOWN)
            unknown = await attempt(two, services, recorder, UNKNOWN)
            (known_answer, known_trace, known_rows) = known
            (unknown_answer, unknown_trace, unknown_rows) = unknown

            assert known_answer[0] == 401, round_
            assert known_answer == unknown_answer, round_
            # One verify each, against a hash with the same algorithm and parameters.
            assert len(known_trace.verified_against) == 1, round_
            assert known_trace.verified_against == unknown_trace.verified_against, round_
            assert known_trace.verified_against[0].startswith("$argon2id$"), round_
            # The same statements, in the same order; the same kinds of rows, changed alike.
            assert known_trace.statements == unknown_trace.statements, round_
            assert known_rows == unknown_rows, round_
            assert [kind for kind, _, _ in known_rows] == ["a", "i", "p"], round_
