"""Fixtures for the mail service's tests.

- ``issuer`` and ``mail``: the app in-process on a fresh SQLite file, taking tokens from an issuer
  in a box (keys generated per test, never committed), with no client identity (no calls out).
- ``pair``: mail and the video edge side by side in-process, each with a client identity, and
  the issuer's token endpoint (:mod:`mail_peers`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mail_peers import Pair

from edge_service_mail.app import create_app
from edge_service_mail.config import MailSettings
from gatepass.edgetest import edge_fixtures

issuer, mail = edge_fixtures(create_app, MailSettings, name="mail")


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with Pair.run(tmp_path) as both:
        yield both
