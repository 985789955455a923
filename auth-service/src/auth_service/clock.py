"""The service's clock and its sleep: injectable so tests can move time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
# Waits on the service's clock (asyncio.sleep in service; a test's sleep moves its fake clock).
Sleep = Callable[[float], Awaitable[None]]


def system_clock() -> datetime:
    return datetime.now(UTC)
