"""The clock the verifier and the key set read: injectable, so tests move time, never sleep."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
"""Returns the current time as epoch seconds (``time.time`` in production)."""

Sleep = Callable[[float], Awaitable[None]]
"""Waits some seconds (``asyncio.sleep`` in production); the key set's refresh loop uses it."""

system_clock: Clock = time.time
