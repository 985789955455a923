"""The auth service's data folder holds password hashes, sealed keys and the development KEK:
readable by the service's user only (folder 0700, files 0600), whatever the umask said."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from auth_service.config import Settings
from auth_service.state import Services


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # under which the folder was 0755 and the files 0644
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_data_folder_and_every_file_in_it_are_private(
    auth_settings: Settings, services: Services
) -> None:
    data = auth_settings.data_dir
    names = sorted(p.name for p in data.iterdir())
    assert names == ["auth.db", "auth.db-shm", "auth.db-wal", "kek"]  # open: WAL files exist
    assert mode(data) == 0o700
    assert {name: mode(data / name) for name in names} == dict.fromkeys(names, 0o600)
