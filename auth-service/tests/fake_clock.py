"""The auth service's clock in tests: it moves only when the test says (``clock`` fixture).

A module of its own, so that a test imports it by a name no other test folder has: every folder
has a ``conftest``, and which one ``import conftest`` finds depends on the order of collection.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    """The service's clock, moved by the test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        """The service's sleep: the time passes at once; ``slept`` records each wait."""
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
