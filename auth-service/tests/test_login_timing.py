"""An unknown email and a wrong password take the same time to refuse, at realistic hashing cost.

That both do the same work is proved by recording it (``test_login_enumeration.py``); this checks
the time each takes through the whole app, without depending on a quiet machine: like is compared
with like (one known and one unknown email, each attempted as often, both past their first
attempt), samples interleaved in alternating order and compared pairwise, so background load hits
both sides of each pair alike. The margin is wide (2x), and still catches the real failure:
skipping argon2 for an unknown email answers several times faster.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import httpx
from api_users import new_email, signup
from asgi_clients import client_from
from auth_apps import ServiceClock, serving

from auth_service.config import Settings

PAIRS = 20


async def attempt(http: httpx.AsyncClient, email: str) -> tuple[int, dict[str, object], float]:
    """One wrong-password login: status, body (without its per-request instance), seconds."""
    start = time.perf_counter()
    response = await http.post("/login", json={"email": email, "password": "Wrong-password-9"})
    elapsed = time.perf_counter() - start
    body = response.json()
    body.pop("instance", None)
    return response.status_code, body, elapsed


async def test_unknown_email_and_wrong_password_look_the_same(
    settings_for: Callable[..., Settings], clock: ServiceClock
) -> None:
    settings = settings_for(
        argon2_time_cost=2,
        argon2_memory_cost=19456,
        throttle_pair_free=1000,
        throttle_account_free=1000,
        throttle_ip_free=1000,
    )
    async with serving(settings, clock) as app, client_from(app) as client:
        known, unknown = new_email("victim"), new_email("nobody")
        await signup(client, known)
        await attempt(client, known)  # warm-up: each email's counters now exist
        await attempt(client, unknown)
        answers: list[tuple[int, dict[str, object], float]] = []
        ratios: list[float] = []
        for i in range(PAIRS):
            order = (known, unknown) if i % 2 == 0 else (unknown, known)
            timed = {address: await attempt(client, address) for address in order}
            answers += timed.values()
            ratios.append(timed[unknown][2] / timed[known][2])
    assert {status for status, _, _ in answers} == {401}
    assert all(body == answers[0][1] for _, body, _ in answers)
    assert 0.5 <= statistics.median(ratios) <= 2.0, sorted(ratios)
