"""The mail service's SQLite data (everyone's messages) is readable by the service's user only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edge_service_mail.app import create_app
from edge_service_mail.config import MailSettings
from gatepass.edgetest import run_edge
from gatepass.testing import FakeIssuer


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_data_folder_is_0700_and_its_files_0600(
    issuer: FakeIssuer, tmp_path: Path
) -> None:
    data = tmp_path / "var" / "mail"
    previous = os.umask(0o022)  # under which the folder was 0755 and the files 0644
    try:
        async with run_edge(create_app, MailSettings(issuer=issuer.issuer, data_dir=data), issuer):
            names = sorted(p.name for p in data.iterdir())
            files = {name: mode(data / name) for name in names}
    finally:
        os.umask(previous)
    assert names == ["mail.db", "mail.db-shm", "mail.db-wal"]
    assert files == dict.fromkeys(names, 0o600)
    assert mode(data) == 0o700
