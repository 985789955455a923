"""The background loops (housekeeping, key maintenance) survive an error they do not expect.

Such an error used to end its loop silently until shutdown: keys stopped rotating, old rows were
no longer forgotten. Now it is logged at ERROR with its traceback, counted in
``gatepass_auth_background_errors_total{job=...}``, and the loop runs again at its next interval.
In-process, on the test's clock: the service's sleep moves it at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from auth_service.app import running
from auth_service.clock import run_every
from auth_service.config import Settings
from auth_service.state import Services

# Generous: on the test's clock each loop turns in milliseconds.
DEADLINE = 10.0


class FlakyJob:
    """Raises RuntimeError on its first run, then succeeds; ``second_run`` is set after that."""

    def __init__(self) -> None:
        self.runs = 0
        self.second_run = asyncio.Event()

    async def __call__(self, *_: Any) -> list[str]:
        self.runs += 1
        if self.runs == 1:
            raise RuntimeError("the job broke in a way nobody planned for")
        self.second_run.set()
        return []


def errors(svc: Services, job: str) -> float:
    value = svc.metrics.registry.get_sample_value(
        "gatepass_auth_background_errors_total", {"job": job}
    )
    return value or 0.0


def failures_logged(caplog: pytest.LogCaptureFixture, job: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.levelno == logging.ERROR and f"background job {job} failed" in record.message
    ]


async def test_each_loop_logs_counts_and_goes_on_after_an_unexpected_error(
    auth_settings: Settings,
    clock: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    housekeeping, maintenance = FlakyJob(), FlakyJob()
    async with running(auth_settings, clock, sleep=clock.sleep) as svc:
        # The loops have not run yet: nothing was awaited since they were created.
        monkeypatch.setattr(svc.throttle, "forget_old", housekeeping)
        monkeypatch.setattr(svc.keys, "maintain", maintenance)
        await asyncio.wait_for(housekeeping.second_run.wait(), DEADLINE)
        await asyncio.wait_for(maintenance.second_run.wait(), DEADLINE)
        assert errors(svc, "housekeeping") == 1.0
        assert errors(svc, "key-maintenance") == 1.0
        secret = svc.refresh_key.hex()
    for job in ("housekeeping", "key-maintenance"):
        (record,) = failures_logged(caplog, job)
        assert record.exc_info is not None
        assert record.exc_info[0] is RuntimeError
    assert "Traceback (most recent call last)" in caplog.text
    assert "the job broke in a way nobody planned for" in caplog.text
    assert secret not in caplog.text  # the line names the job, never what it holds


async def test_run_every_goes_on_after_an_error_on_the_injected_sleep(
    clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    counter = Counter("background_errors_total", "test", ["job"], registry=registry)
    job = FlakyJob()
    loop = asyncio.create_task(
        run_every("tidy", job, interval=lambda: 60.0, sleep=clock.sleep, errors=counter)
    )
    await asyncio.wait_for(job.second_run.wait(), DEADLINE)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert job.runs >= 2  # it ran again after the error (and went on until cancelled)
    assert clock.slept[:2] == [60.0, 60.0]  # the next run waits its interval, no more, no less
    assert registry.get_sample_value("background_errors_total", {"job": "tidy"}) == 1.0
    (record,) = failures_logged(caplog, "tidy")
    assert record.exc_info is not None


async def test_cancelling_a_loop_mid_job_stops_it_and_is_no_error(
    clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    counter = Counter("background_errors_total", "test", ["job"], registry=registry)
    started = asyncio.Event()

    async def endless() -> None:
        started.set()
        await asyncio.Event().wait()

    loop = asyncio.create_task(
        run_every("endless", endless, interval=lambda: 1.0, sleep=clock.sleep, errors=counter)
    )
    await asyncio.wait_for(started.wait(), DEADLINE)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, DEADLINE)
    assert registry.get_sample_value("background_errors_total", {"job": "endless"}) is None
    assert not failures_logged(caplog, "endless")
