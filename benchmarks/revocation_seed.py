"""Live revocation events written into an auth service's SQLite database before it starts.

``benchmarks.revocation_bench`` needs 10,000 and 100,000 live deny-set entries. Through the API
each costs an access token minted by the refresh grant and an RFC 7009 revocation of it, two
committed transactions (about 20 ms together on a busy 2-core machine): minutes for 10,000. So the
database is made here as the service makes it (its own migrations, in this process), and the events
inserted as rows of its ``revocation_events`` table through its own model, before the service
starts: the feed then serves them as any others (ids from the table's AUTOINCREMENT, which is what
the feed's cursors follow).

The mix is a busy service's: mostly sessions (logout, device sign-out), some token ids (RFC 7009,
refresh-token reuse) and users (logout everywhere, password or role change), each with a fresh
random value shaped as the service's own (``ses_`` + 22 characters, and so on), so every entry is
one more in the edge's tables, and none refuses a token the benchmark uses.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from auth_service import migrate
from auth_service.models import RevocationEvent
from gatepass.core.revocations import JTI, SESSION, USER, Revocation
from gatepass.db import create_engine, sqlite_url

# Out of every 20 events: 16 sessions, 3 token ids, 1 user.
MIX = (SESSION,) * 16 + (JTI,) * 3 + (USER,)
_PREFIX = {SESSION: "ses_", JTI: "", USER: "usr_"}
BATCH = 10_000  # rows per executemany


def random_events(count: int) -> Iterator[tuple[str, str]]:
    """``count`` (kind, value) pairs in the mix above."""
    for index in range(count):
        kind = MIX[index % len(MIX)]
        yield kind, _PREFIX[kind] + secrets.token_urlsafe(16)


def rows(count: int, now: datetime, lifetime: float) -> list[dict[str, Any]]:
    """The table rows of ``count`` events recorded at ``now``, live for ``lifetime`` seconds."""
    expires_at = now + timedelta(seconds=lifetime)
    return [
        {
            "kind": kind,
            "value": value,
            "not_before": now if kind == USER else None,
            "created_at": now,
            "expires_at": expires_at,
        }
        for kind, value in random_events(count)
    ]


def revocations(count: int, lifetime: float) -> list[Revocation]:
    """The same mix as the edge's follower parses it (for the in-process deny-set)."""
    now = datetime.now(UTC)
    expires_at = now.timestamp() + lifetime
    return [
        Revocation(kind, value, expires_at, now.timestamp() if kind == USER else 0.0)
        for kind, value in random_events(count)
    ]


def seed(data_dir: Path, count: int, lifetime: float) -> None:
    """Make the auth service's database in ``data_dir`` (``auth.db``, as the service names it)
    with ``count`` live events; the service, started on it afterwards, finds it migrated."""
    asyncio.run(_seed(sqlite_url(data_dir, "auth"), rows(count, datetime.now(UTC), lifetime)))


async def _seed(url: str, events: list[dict[str, Any]]) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            for start in range(0, len(events), BATCH):
                await conn.execute(insert(RevocationEvent), events[start : start + BATCH])
    finally:
        await engine.dispose()
