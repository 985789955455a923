"""A service's SQLite data is readable by the service's user only: folder 0700, files 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gatepass.db import create_engine, private_file, sqlite_url


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The common 022: what made the files 0644 before."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


FILES = ("svc.db", "svc.db-wal", "svc.db-shm")


async def modes_while_open(data: Path) -> list[int]:
    """Write through a new engine; the modes of the database, WAL and shared-memory files while
    its connection is open (closing the last one removes the WAL and shared-memory files)."""
    engine = create_engine(sqlite_url(data, "svc"))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS t (secret TEXT)"))
            await conn.execute(text("INSERT INTO t VALUES ('x')"))
        return [mode(data / name) for name in FILES]
    finally:
        await engine.dispose()


async def test_a_new_data_folder_and_its_database_are_private(tmp_path: Path) -> None:
    data = tmp_path / "var" / "data"
    assert await modes_while_open(data) == [0o600] * 3
    assert mode(data) == 0o700


async def test_files_left_readable_by_an_older_version_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    for name in FILES:
        (data / name).touch()
        (data / name).chmod(0o644)
    assert await modes_while_open(data) == [0o600] * 3
    assert mode(data) == 0o755  # a folder we did not make is left as it is


def test_private_file_never_truncates(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.write_text("data")
    kept.chmod(0o644)
    private_file(kept)
    assert (kept.read_text(), mode(kept)) == ("data", 0o600)
    private_file(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()
