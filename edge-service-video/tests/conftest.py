"""Fixtures for the video service's tests.

- ``issuer`` and ``video``: the app in-process on a fresh SQLite file, taking tokens from an
  issuer in a box (keys generated per test, never committed), with no client identity (no calls
  out: an upload's notification is not sent).
- ``pair``: video and the mail edge side by side in-process, each with a client identity, and
  the issuer's token endpoint (:mod:`video_peers`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from video_peers import Pair

from edge_service_video.app import create_app
from edge_service_video.config import VideoSettings
from gatepass.edgetest import edge_fixtures

issuer, video = edge_fixtures(create_app, VideoSettings, name="video")


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with Pair.run(tmp_path) as both:
        yield both
