"""The operator command's read-only commands create nothing where the settings find no service.

``gatepass keys list``, run in the wrong folder with the settings its own hint suggested
(``GATEPASS_AUTH_ENVIRONMENT=development``), used to start an empty auth service there: a new
key-encryption key, a database, its migrations and an active signing key, beside the real one.
Now a read-only command finds no KEK or no database, says so in one line with how to reach the
running service, exits 2, and leaves the folder as it was.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import service_env

GATEPASS = str(Path(sys.executable).with_name("gatepass"))
READ_ONLY_COMMANDS = (("keys", "list"), ("users", "list"))
ENVIRONMENTS = {
    "development": {"GATEPASS_AUTH_ENVIRONMENT": "development"},
    "production": {},  # the default
}
# A token with three well-formed parts: ``token decode`` takes it apart and touches no data.
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c3JfeCJ9.c2lnbmF0dXJl"


def gatepass(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``gatepass ARGS...`` as a process whose working directory is ``folder``."""
    return subprocess.run(
        [GATEPASS, *args],
        cwd=folder,
        env=service_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def everything_in(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def assert_refused_with_the_way_to_the_service(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gatepass: no "), lines[0]
    assert "nothing was created" in lines[0]
    assert "./dev gatepass" in lines[0]
    assert "GATEPASS_AUTH_DATA_DIR" in lines[0]
    assert "GATEPASS_AUTH_DATABASE_URL" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=" ".join)
def test_a_read_only_command_in_an_empty_folder_leaves_it_empty(
    tmp_path: Path, environment: str, command: tuple[str, ...]
) -> None:
    result = gatepass(tmp_path, ENVIRONMENTS[environment], *command)
    assert everything_in(tmp_path) == []
    assert_refused_with_the_way_to_the_service(result)
    assert "key-encryption key" in result.stderr.split(" (")[0]  # what was not found comes first


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=" ".join)
def test_a_read_only_command_makes_no_database_beside_a_key(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """A KEK file alone (the data folder of a service that never started, say) gets no database,
    no migration and no signing key either."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "kek").write_text(secrets.token_hex(32))
    env = {"GATEPASS_AUTH_ENVIRONMENT": "development", "GATEPASS_AUTH_DATA_DIR": str(data)}
    result = gatepass(tmp_path, env, *command)
    assert everything_in(tmp_path) == ["data", "data/kek"]
    assert_refused_with_the_way_to_the_service(result)
    assert f"no database at {data / 'auth.db'}" in result.stderr


def test_token_decode_needs_no_settings_and_creates_nothing(tmp_path: Path) -> None:
    result = gatepass(tmp_path, {}, "token", "decode", TOKEN)
    assert result.returncode == 0, result.stderr
    assert "usr_x" in result.stdout
    assert everything_in(tmp_path) == []


def test_the_data_a_read_only_command_finds_is_read(
    tmp_path: Path, auth_env: dict[str, str]
) -> None:
    """Where the service's data is, ``keys list`` and ``users list`` read it, and only read it:
    no file appears but SQLite's own beside the database, none in the working directory."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = auth_env | {"GATEPASS_ADMIN_PASSWORD": "correct horse battery staple 9"}
    created = gatepass(workdir, env, "admin", "create", "ops@example.com")
    assert created.returncode == 0, created.stderr
    data = Path(auth_env["GATEPASS_AUTH_DATA_DIR"])
    before = set(os.listdir(data))
    keys = gatepass(workdir, auth_env, "keys", "list")
    users = gatepass(workdir, auth_env, "users", "list")
    assert keys.returncode == 0, keys.stderr
    assert users.returncode == 0, users.stderr
    # The header and the keys admin create made: one active key per purpose.
    rows = [line.split("\t") for line in keys.stdout.splitlines()[1:]]
    assert sorted((row[1], row[3]) for row in rows) == [("access", "active"), ("id", "active")]
    assert "ops@example.com" in users.stdout
    assert before <= set(os.listdir(data)) <= before | {"auth.db-wal", "auth.db-shm"}
    assert os.listdir(workdir) == []
