"""Fixtures for the video service's tests: the app in-process on a fresh SQLite file, taking
tokens from an issuer in a box (keys generated per test, never committed)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_service_video.app import create_app
from edge_service_video.config import VideoSettings
from gatepass.edgetest import EdgeUnderTest, run_edge
from gatepass.testing import FakeIssuer


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer(clock=time.time)


@pytest.fixture
async def video(issuer: FakeIssuer, tmp_path: Path) -> AsyncIterator[EdgeUnderTest]:
    async with run_edge(
        create_app, VideoSettings(issuer=issuer.issuer, data_dir=tmp_path), issuer
    ) as edge:
        yield edge
