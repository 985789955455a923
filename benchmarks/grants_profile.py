"""Where a grant's time goes: the token endpoint in-process, step by step (``--profile``).

    ./dev bench grants --profile [--requests 200] [--database both]

The auth service's app runs in this process behind ``httpx.ASGITransport`` (no server, no
network), with the benchmark's clients (``grants_bench``), one request at a time, so that a
step's time is its own. The token endpoint's steps (the registry lookup, the throttle's
transaction, the assertion's signature and ``jti`` insert, token signing, ...) are wrapped with
timers for the run (replaced in their modules, then put back: nothing of the service changes),
and every transaction and SQL statement is counted against the innermost step that ran it.

Per route: wall and CPU time per request (the process's, every thread: aiosqlite runs each
statement on a thread of its own) and, per step, wall time, CPU time of the event loop's thread,
transactions and statements per request. Then a cProfile pass over 100 more: the event loop
thread's own time summed by package (built-ins by name), as shares (the profiler slows what it
counts, the shares less so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import inspect
import os
import pstats
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from auth_service import clients, grants, registry
from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.routes import oauth
from auth_service.throttle import LoginThrottler
from benchmarks import loadgen
from benchmarks.grants_bench import (
    CC_BASIC,
    CC_JWT,
    EXCHANGE,
    LABELS,
    OPEN,
    PASSWORD,
    WORKER_CPU,
    Database,
    Identities,
    Routes,
    pinned,
    postgres,
)

BASE = "http://auth.test"
WARMUP_REQUESTS = 30
PROFILED_REQUESTS = 100  # under cProfile, after the timed ones
# The steps timed: where the function lives, its name there, and how it is shown (indented
# under the step that calls it).
STEPS: tuple[tuple[Any, str, str], ...] = (
    (oauth, "token", "token endpoint (all of the route)"),
    (oauth, "read_form", "  read the form"),
    (clients, "token_caller", "  client authentication (all of it)"),
    (registry, "credentials_of", "    registry lookup (with the secret's hash)"),
    (registry, "find", "    registry lookup"),
    (clients, "_verify", "    assertion check (all of it)"),
    (clients, "_signed_by", "      assertion signature verify"),
    (clients, "_remember", "      assertion jti insert (committed)"),
    (LoginThrottler, "check_client", "    throttle transaction"),
    (grants, "client_credentials", "  client_credentials grant"),
    (grants, "exchange", "  token exchange grant"),
    (grants, "_subject", "    subject token verify"),
    (grants, "_sign_exchanged", "    user lock, revocation check, signing"),
    (grants, "issue_access_token", "      token signing"),
)
PACKAGES = (
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "greenlet",
    "fastapi",
    "starlette",
    "pydantic",
    "anyio",
    "httpx",
    "jwt",
    "cryptography",
    "prometheus_client",
    "auth_service",
    "gatepass",
    "asyncio",
    "logging",
    "json",
)


@dataclass
class Tally:
    """What the steps spent, while one route runs."""

    wall: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    cpu: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    transactions: Counter[str] = field(default_factory=Counter)
    statements: Counter[str] = field(default_factory=Counter)
    stack: list[str] = field(default_factory=list)

    def clear(self) -> None:
        for counter in (self.wall, self.cpu, self.transactions, self.statements):
            counter.clear()

    @property
    def current(self) -> str:
        return self.stack[-1] if self.stack else "(outside every step)"


def timed(function: Callable[..., Any], label: str, tally: Tally) -> Callable[..., Any]:
    """``function`` (sync or async), its wall and thread CPU time added to ``tally`` per call."""

    @contextlib.contextmanager
    def step() -> Iterator[None]:
        tally.stack.append(label)
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            tally.wall[label] += time.perf_counter() - wall
            tally.cpu[label] += time.thread_time() - cpu
            tally.stack.pop()

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def awaited(*args: Any, **kwargs: Any) -> Any:
            with step():
                return await function(*args, **kwargs)

        return awaited

    @functools.wraps(function)
    def called(*args: Any, **kwargs: Any) -> Any:
        with step():
            return function(*args, **kwargs)

    return called


@contextlib.contextmanager
def steps_timed(tally: Tally) -> Iterator[list[str]]:
    """Every step of :data:`STEPS` wrapped while the block runs; yields those not found (a
    renamed function: the profile says so rather than failing)."""
    replaced: list[tuple[Any, str, Any]] = []
    missing = []
    for owner, name, label in STEPS:
        original = owner.__dict__.get(name)
        if not callable(original):
            missing.append(label.strip())
            continue
        replaced.append((owner, name, original))
        setattr(owner, name, timed(original, label, tally))
    try:
        yield missing
    finally:
        for owner, name, original in reversed(replaced):
            setattr(owner, name, original)


@contextlib.asynccontextmanager
async def in_process(
    folder: Path, identities: Identities, db: Database, tally: Tally
) -> AsyncIterator[httpx.AsyncClient]:
    """The auth service's app, started, its transactions and statements counted into ``tally``."""
    settings = Settings(
        environment="development",
        issuer=BASE,
        data_dir=folder / "auth-data",
        database_url=db.url,
        clients_file=identities.clients_file,
        access_token_ttl=3600,
        throttle_ip_free=100_000,
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        argon2_parallelism=1,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine = app.state.services.engine.sync_engine

        def began(*_: Any) -> None:
            tally.transactions[tally.current] += 1

        def executed(*_: Any) -> None:
            tally.statements[tally.current] += 1

        event.listen(engine, "begin", began)
        event.listen(engine, "before_cursor_execute", executed)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


async def subject_token(client: httpx.AsyncClient) -> str:
    email = "profile@example.com"
    answer = await client.post("/signup", json={"email": email, "password": PASSWORD})
    answer.raise_for_status()
    body = {"email": email, "password": PASSWORD, "resource": ["mail", "video"]}
    answer = await client.post("/login", json=body)
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


@dataclass
class RouteProfile:
    route: str
    requests: int
    wall: float
    cpu: float
    thread_cpu: float
    tally: Tally
    packages: Counter[str]


async def send_all(client: httpx.AsyncClient, requests: list[loadgen.Request]) -> None:
    for method, path, body, headers in requests:
        answer = await client.request(method, path, content=body, headers=headers)
        if answer.status_code != 200:
            raise SystemExit(f"profile: a request got {answer.status_code}: {answer.text[:200]}")


async def profile_route(
    client: httpx.AsyncClient, routes: Routes, route: str, count: int, tally: Tally
) -> RouteProfile:
    """``count`` requests timed step by step, then a few more under cProfile."""
    await send_all(client, [routes.request(route, 0) for _ in range(WARMUP_REQUESTS)])
    batch = [routes.request(route, 0) for _ in range(count)]
    tally.clear()
    wall, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
    await send_all(client, batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    thread = time.thread_time() - thread
    steps = Tally(
        wall=defaultdict(float, tally.wall),
        cpu=defaultdict(float, tally.cpu),
        transactions=tally.transactions.copy(),
        statements=tally.statements.copy(),
    )
    batch = [routes.request(route, 0) for _ in range(min(count, PROFILED_REQUESTS))]
    profiler = cProfile.Profile()
    profiler.enable()
    await send_all(client, batch)
    profiler.disable()
    return RouteProfile(route, count, wall, cpu, thread, steps, by_package(profiler))


def by_package(profiler: cProfile.Profile) -> Counter[str]:
    """The profiled thread's own time (``tottime``) summed by the package of each function."""
    totals: Counter[str] = Counter()
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _line, name), (_cc, _nc, own, *_rest) in stats.items():
        totals[package_of(filename, name)] += own
    return totals


def package_of(filename: str, name: str) -> str:
    if filename == "~" and "epoll" in name:
        return "waiting for I/O or threads (epoll)"
    for package in PACKAGES:
        if f"/{package}/" in filename or filename.endswith(f"/{package}.py"):
            return package
    if filename == "~":  # a built-in: by its own name (put_nowait is waking aiosqlite's thread)
        method = re.search(r"'(\w+)' of '([\w.]+)'", name)
        return f"{method[2]}.{method[1]}" if method else name.strip("<>")
    return "other (standard library)"


async def profile_database(db: Database, count: int) -> list[RouteProfile]:
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="gatepass-grants-profile-") as tmp:
        folder = Path(tmp)
        identities = Identities.make(folder)
        async with in_process(folder, identities, db, tally) as client:
            token = await subject_token(client)
            routes = Routes(identities, [token], f"{BASE}/token")
            with steps_timed(tally) as missing:
                if missing:
                    print(f"  steps not found (renamed?), not timed: {', '.join(missing)}")
                return [
                    await profile_route(client, routes, route, count, tally)
                    for route in (OPEN, CC_BASIC, CC_JWT, EXCHANGE)
                ]


def print_route(profile: RouteProfile) -> None:
    n = profile.requests
    tally = profile.tally
    print(
        f"\n  {LABELS[profile.route]}: per request {profile.wall / n * 1000:.2f} ms wall, "
        f"{profile.cpu / n * 1000:.2f} ms CPU ({profile.thread_cpu / n * 1000:.2f} ms on the "
        f"event loop's thread), {sum(tally.transactions.values()) / n:.1f} transactions, "
        f"{sum(tally.statements.values()) / n:.1f} SQL statements"
    )
    if tally.wall:
        print(
            f"    {'step':50s} {'wall ms':>8s} {'CPU ms':>8s} {'share':>6s} {'tx':>4s} {'SQL':>4s}"
        )
    for _owner, _name, label in STEPS:
        if label not in tally.wall:
            continue
        wall, cpu = tally.wall[label] / n * 1000, tally.cpu[label] / n * 1000
        print(
            f"    {label:50s} {wall:8.2f} {cpu:8.2f} {tally.cpu[label] / profile.thread_cpu:6.0%} "
            f"{tally.transactions[label] / n:4.1f} {tally.statements[label] / n:4.1f}"
        )
    total = sum(profile.packages.values())
    shares = ", ".join(
        f"{package} {seconds / total:.0%}"
        for package, seconds in profile.packages.most_common(8)
        if seconds / total >= 0.02
    )
    print(f"    cProfile, own time by package: {shares}")


def main(args: argparse.Namespace) -> None:
    """The profile, on the databases ``args.database`` names (``grants_bench --profile``)."""
    if pinned():
        os.sched_setaffinity(0, {WORKER_CPU})
    print(
        f"profile: the auth service's app in this process (CPU {WORKER_CPU}), one request at a "
        f"time, {args.requests} requests per route, then {PROFILED_REQUESTS} under cProfile"
    )
    print(
        "  step rows: wall and event-loop-thread CPU per request; share: of that thread's CPU; "
        "tx, SQL: transactions and statements the step itself ran, per request"
    )
    databases: list[Database | str] = []
    with contextlib.ExitStack() as stack:
        if args.database in ("sqlite", "both"):
            databases.append(Database("SQLite", None))
        if args.database in ("postgres", "both"):
            databases.append(stack.enter_context(postgres()))
        for db in databases:
            if isinstance(db, str):
                print(f"\nPostgreSQL: not run: {db}")
                continue
            print(f"\n{db.name}:")
            for profile in asyncio.run(profile_database(db, args.requests)):
                print_route(profile)
