"""PostgreSQL for tests: a server named by a URL, or a throwaway cluster started for the test run.

The suite never touches a developer's own databases: with ``GATEPASS_TEST_DATABASE_URL`` (an admin
URL to an existing server) it only creates and drops databases named ``test_<random>``; otherwise
it runs ``initdb`` and ``pg_ctl`` into a temporary folder, on 127.0.0.1 and a free port, with
durability switched off (nothing there has to survive a crash), and deletes it all at the end.

Everything here is synchronous, so one fixture serves sync tests (which drive services running as
processes) and async tests alike, whatever event loop pytest-asyncio has running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest

from tests.support.procs import free_port

__all__ = [
    "ADMIN_URL_ENV",
    "REQUIRE_POSTGRES_ENV",
    "PostgresServer",
    "PostgresUnavailable",
    "ThrowawayCluster",
    "asyncpg_dsn",
    "find_bindir",
    "server_for_tests",
]

ADMIN_URL_ENV = "GATEPASS_TEST_DATABASE_URL"
REQUIRE_POSTGRES_ENV = "GATEPASS_REQUIRE_POSTGRES"
SUPERUSER = "gatepass"
DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
START_ATTEMPTS = 3

T = TypeVar("T")


class PostgresUnavailable(Exception):
    """No PostgreSQL server could be found or started; the message says why and what to do."""


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://...`` (SQLAlchemy's form) as the plain URL asyncpg itself takes."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+")[0]))


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a private loop in a worker thread (see the module docstring for why)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass(frozen=True)
class PostgresServer:
    """A server on which ``admin_url`` (a superuser, or a CREATEDB role) may create databases."""

    admin_url: str

    def check(self) -> None:
        """Fail with :class:`PostgresUnavailable` now, rather than in every test, if unreachable."""
        try:
            _run_async(self._execute("select 1"))
        except (OSError, asyncpg.PostgresError) as exc:
            raise PostgresUnavailable(f"cannot reach {self._redacted()}: {exc}") from exc

    def database_url(self, name: str) -> str:
        """The SQLAlchemy URL of database ``name`` on this server, as services take it."""
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(scheme="postgresql+asyncpg", path=f"/{name}"))

    def create_database(self) -> str:
        """A new, empty database; returns its SQLAlchemy URL."""
        name = f"test_{secrets.token_hex(6)}"
        _run_async(self._execute(f'CREATE DATABASE "{name}"'))
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url``, disconnecting whoever still uses it (a stopped service)."""
        name = urlsplit(url).path.lstrip("/")
        _run_async(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self.admin_url), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def _redacted(self) -> str:
        parts = urlsplit(self.admin_url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"***@{host}"))


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: from PATH, else Debian's newest version."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += sorted(DEBIAN_BINDIRS.glob("*/bin"), key=_version, reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PostgresUnavailable(
        "no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin: install the PostgreSQL server "
        f"(Debian: apt-get install postgresql) or set {ADMIN_URL_ENV} to an admin URL"
    )


def _version(bindir: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> (15,), so 9.6 sorts before 10."""
    try:
        return tuple(int(part) for part in bindir.parent.name.split("."))
    except ValueError:
        return (0,)


class ThrowawayCluster:
    """A private PostgreSQL cluster in a temporary folder, owned by this test run.

    initdb and the server refuse to run as root, so under root (CI) both run as the ``postgres``
    user that Debian's package creates, through ``runuser``, and the folder is handed to it.
    """

    def __init__(self, bindir: Path) -> None:
        self._owner = _service_user()
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="gatepass-pg-"))
        self.password = secrets.token_urlsafe(18)
        self.port = 0

    @classmethod
    def start(cls) -> ThrowawayCluster:
        """initdb and start a cluster; on failure, remove what was made and raise."""
        cluster = cls(find_bindir())
        try:
            cluster._initdb()
            cluster._start_server()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def server(self) -> PostgresServer:
        secret = quote(self.password, safe="")
        return PostgresServer(f"postgresql://{SUPERUSER}:{secret}@127.0.0.1:{self.port}/postgres")

    def stop(self) -> None:
        """Stop at once (nothing in it is kept) and delete the folder."""
        if (self.root / "data" / "postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailable):  # the folder goes anyway
                self._run("pg_ctl", "-D", "data", "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._owner is not None:
            _chown_tree(self.root, self._owner)
        # Password logins only, as in production; no fsync: this cluster need not survive a crash.
        auth = ("-U", SUPERUSER, "--auth=scram-sha-256", f"--pwfile={pwfile}")
        self._run("initdb", "-D", "data", *auth, "-E", "UTF8", "--no-locale", "--no-sync")
        pwfile.unlink()

    def _start_server(self) -> None:
        """Start on a free port; another process may grab it first, so try a few."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            try:
                self._run(
                    "pg_ctl", "-D", "data", "-l", "server.log", "-w", "-o", self._options(), "start"
                )
                return
            except PostgresUnavailable:
                if attempt == START_ATTEMPTS:
                    raise

    def _options(self) -> str:
        return shlex.join(
            [
                *("-c", "listen_addresses=127.0.0.1", "-p", str(self.port), "-k", str(self.root)),
                *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
                *("-c", "max_connections=200"),
            ]
        )

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        """Run a PostgreSQL program in the cluster folder, as its owner when we are root."""
        command = [str(self.bindir / program), *args]
        if self._owner is not None:
            command = ["runuser", "-u", self._owner.pw_name, "--", *command]
        try:
            result = subprocess.run(
                command, cwd=self.root, capture_output=True, text=True, timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{shlex.join(command)}: {exc}") from exc
        if check and result.returncode != 0:
            raise PostgresUnavailable(
                f"{shlex.join(command)} failed with status {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{self._server_log()}"
            )

    def _server_log(self) -> str:
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-4000:] if log.exists() else ""


def _service_user() -> pwd.struct_passwd | None:
    """Who runs initdb and the server: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root, and runuser (util-linux) is missing")
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "running as root, and initdb refuses root: no 'postgres' user to run it as "
            "(Debian's postgresql package creates one)"
        ) from None


def _chown_tree(root: Path, owner: pwd.struct_passwd) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, owner.pw_uid, owner.pw_gid)


@contextlib.contextmanager
def server_for_tests() -> Iterator[PostgresServer]:
    """The server ``GATEPASS_TEST_DATABASE_URL`` names, else a throwaway cluster, stopped after.

    Without one the calling test (or fixture) is skipped, or fails where PostgreSQL is required
    (``GATEPASS_REQUIRE_POSTGRES=1``, as in CI).
    """
    cluster: ThrowawayCluster | None = None
    reason = ""
    try:
        admin_url = os.environ.get(ADMIN_URL_ENV)
        if admin_url:
            server = PostgresServer(admin_url)
            server.check()
        else:
            cluster = ThrowawayCluster.start()
            server = cluster.server
    except PostgresUnavailable as exc:
        reason = str(exc)  # skipped or failed below, outside the handler: no chained traceback
    if reason:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            required = f"PostgreSQL is required ({REQUIRE_POSTGRES_ENV}=1): {reason}"
            pytest.fail(required, pytrace=False)
        pytest.skip(f"no PostgreSQL: {reason}")
    try:
        yield server
    finally:
        if cluster is not None:
            cluster.stop()
