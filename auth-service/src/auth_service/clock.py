"""The service's clock and its sleep (injectable so tests can move time), and the loop that runs a
background job on them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Counter

Clock = Callable[[], datetime]
# Waits on the service's clock (asyncio.sleep in service; a test's sleep moves its fake clock).
Sleep = Callable[[float], Awaitable[None]]

log = logging.getLogger("gatepass.auth.background")


def system_clock() -> datetime:
    return datetime.now(UTC)


async def run_every(
    name: str,
    job: Callable[[], Awaitable[object]],
    *,
    interval: Callable[[], float],
    sleep: Sleep,
    errors: Counter,
) -> None:
    """Run ``job`` after each ``interval()`` seconds, until cancelled.

    A job catches and reports the failures it expects (a database out of reach, say). Anything
    else would otherwise end the loop silently until shutdown: it is logged at ERROR with its
    traceback, counted in ``errors`` (labelled ``job=name``), and the job runs again at its next
    interval. Cancellation is no error: it ends the loop at its next ``await``. The log line names
    the job only; the traceback holds the error's own message, which a job must keep free of
    secrets as every error message is.
    """
    while True:
        await sleep(interval())
        try:
            await job()
        except Exception:
            log.exception("background job %s failed; it runs again at its next interval", name)
            errors.labels(name).inc()
