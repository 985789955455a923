"""Benchmark the revocation feed: how soon a revocation reaches the edges, and what following costs.

    python -m benchmarks.revocation_bench [--revocations 200] [--seconds 20] [--rounds 20]

Three measurements, each beside a baseline taken in the same run:

1. Delay. An auth service and the two real edges (``python -m edge_service_mail`` and
   ``edge_service_video``, each with its own feed token, the default long poll), both kept busy
   for the whole measurement by wrk (else ``benchmarks.loadgen``) on their protected route
   (``/inbox``, ``/videos``) with a valid hot token. Then ``--revocations`` revocations one after
   the other, in a shuffled mix: logouts of sessions logged in beforehand (80 %), logout everywhere
   (10 %), RFC 7009 revocations of an access token (10 %). Before each, the token about to be
   revoked is used once at each edge (a 200: it is now in the edge's verified-token cache); from
   the auth service's answer on, each edge is polled with it in a tight loop until it answers 401.
   An edge's delay is the time from that answer to the 401's arrival: an upper bound, coarse by
   about one poll round trip under load, which is printed beside it (the 200 just before the
   revocation). Beside it, when the edge's follower applied the event: its ``last_event_at``, read
   from ``/readyz`` once the edge refused (same machine, same clock). Goal: the 401's p99 <= 1 s,
   per edge and over both.
2. Cost on the hot path. Two edge processes of ``benchmarks.bench_edge_app`` (the edge
   benchmark's app; its ``/protected`` route is gatepass as the edges wire it), one following the
   feed with ``--live`` (10,000) live deny-set entries, the other with ``REVOCATION_FEED=false``,
   driven in turn with one hot token, ``--rounds`` alternating rounds, after a warm-up.
   Goal: >= 0.97 x the req/s of the one that does not follow (the median of the rounds' ratios).
3. Size, with ``--big`` (100,000) live events: the feed's time to answer a snapshot of them (every
   page, one after the other, as an edge fetches them at start; ``--snapshots`` times, the
   median); the RSS of an edge process following them beside the same edge not following (both
   after the same few requests), and the time each took from start to ready (caught up); and the
   deny-set alone, in this process, by ``tracemalloc`` over ``gatepass.core.revocations.DenySet``.

The live entries of 2. and 3. are rows written into the auth service's SQLite database before it
starts (``benchmarks.revocation_seed``: its own migrations and model); through the API each would
cost a refresh grant and an RFC 7009 request, minutes for 10,000 on a small machine. The edges of
1. follow the same auth service as those of 2., so they hold those 10,000 entries too.

Placement as in ``benchmarks.edge_bench``: the edges on CPU 0; the load generators, the pollers
(this process) and the auth service on CPU 1 (the auth service is unpinned while logins are set
up). An edge's delay includes the auth service answering the edge's long poll on that busy CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import random
import secrets
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks import loadgen, revocation_seed
from benchmarks.background_load import BackgroundLoad, LoadReport
from benchmarks.edge_bench import (
    HOST,
    ROOT,
    SCENARIOS,
    Child,
    Edge,
    Measurement,
    Placement,
    Runner,
    Wrk,
    choose_runner,
    combine,
    cpu_model,
    cpu_seconds,
    measure,
    pin_process,
    placement,
    throughput_goal,
)
from benchmarks.verify_bench import python_build
from gatepass.core.revocations import DenySet
from gatepass.launch import base_url, clean_env, free_port, python_service

PASSWORD = "revocation benchmark password, long and unique 7"  # noqa: S105 - throwaway accounts
ACCESS_TOKEN_TTL = 3600  # every token outlives the run
EVENT_LIFETIME = ACCESS_TOKEN_TTL + 60  # what the service gives an event: the TTL plus leeway
SESSIONS_PER_USER = 25
PARALLEL_LOGINS = 4  # the auth service hashes four passwords at a time by default
LOGOUT, LOGOUT_ALL, RFC7009 = "logout", "logout everywhere", "RFC 7009 access token"
DELAY_GOAL = 1.0  # seconds, p99
COST_GOAL = 0.97
LIVE_TIMEOUT = 120.0  # seconds for an edge to hold the seeded entries


@dataclass(frozen=True)
class EdgeService:
    """One of the real edges, as ``python -m <module>`` runs it."""

    name: str
    module: str
    prefix: str
    path: str  # its protected route for reading, which the load and the pollers use


MAIL = EdgeService("mail", "edge_service_mail", "GATEPASS_MAIL_", "/inbox")
VIDEO = EdgeService("video", "edge_service_video", "GATEPASS_VIDEO_", "/videos")


# -- processes --------------------------------------------------------------------------------


def feed_readers() -> dict[str, str]:
    """The auth service's feed readers: one token per edge, one for the benchmark's own edges."""
    return {name: secrets.token_hex(32) for name in ("mail", "video", "bench")}


def start_auth(
    stack: contextlib.ExitStack, folder: Path, readers: dict[str, str], where: Placement
) -> Child:
    """An auth service on ``folder/auth-data`` (seeded already), ready; unpinned until
    :func:`pin_process` (setting up logins gets both CPUs)."""
    port = free_port()
    base = base_url(port, HOST)
    env = clean_env(
        {
            "GATEPASS_AUTH_ENVIRONMENT": "development",
            "GATEPASS_AUTH_DATA_DIR": str(folder / "auth-data"),
            "GATEPASS_AUTH_ISSUER": base,
            "GATEPASS_AUTH_LOG_LEVEL": "WARNING",
            "GATEPASS_AUTH_THROTTLE_IP_FREE": "100000",
            "GATEPASS_AUTH_THROTTLE_SIGNUP_FREE": "100000",
            "GATEPASS_AUTH_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL),
            "GATEPASS_AUTH_ARGON2_TIME_COST": "1",  # logins only set up; never measured here
            "GATEPASS_AUTH_ARGON2_MEMORY_COST": "8192",
            "GATEPASS_AUTH_ARGON2_PARALLELISM": "1",
            "GATEPASS_AUTH_FEED_READ_TOKENS": json.dumps(readers),
        }
    )
    command = where.unpinned() + python_service("auth_service", port, HOST)
    child = Child(
        "auth service", command, base_url=base, log=folder / "auth.log", env=env, cwd=ROOT
    )
    stack.enter_context(child)  # started now, stopped with the stack
    child.ready("/readyz")
    return child


def start_edge_service(
    stack: contextlib.ExitStack,
    edge: EdgeService,
    *,
    issuer: str,
    folder: Path,
    token: str,
    where: Placement,
) -> Child:
    """A real edge on CPU 0, following the feed with its own token; not waited for."""
    port = free_port()
    env = clean_env(
        {
            f"{edge.prefix}ISSUER": issuer,
            f"{edge.prefix}ALLOW_HTTP_ISSUER": "true",  # production mode, plain http on loopback
            f"{edge.prefix}DATA_DIR": str(folder / f"{edge.name}-data"),
            f"{edge.prefix}FEED_TOKEN": token,
            f"{edge.prefix}LOG_LEVEL": "WARNING",
        }
    )
    command = where.prefix(where.edge) + python_service(edge.module, port, HOST)
    log = folder / f"{edge.name}.log"
    child = Child(edge.name, command, base_url=base_url(port, HOST), log=log, env=env, cwd=ROOT)
    stack.enter_context(child)
    return child


def start_bench_edge(
    stack: contextlib.ExitStack,
    name: str,
    *,
    issuer: str,
    folder: Path,
    feed_token: str | None,
    where: Placement,
) -> Child:
    """``benchmarks.bench_edge_app`` on CPU 0: following the feed with ``feed_token``, or not
    following it at all (``None``: ``REVOCATION_FEED=false``); not waited for."""
    port = free_port()
    command = [*where.prefix(where.edge), sys.executable, "-m", "benchmarks.bench_edge_app"]
    command += ["--host", HOST, "--port", str(port), "--issuer", issuer, "--audience", MAIL.name]
    settings = (
        {"GATEPASS_BENCH_FEED_TOKEN": feed_token}
        if feed_token is not None
        else {"GATEPASS_BENCH_REVOCATION_FEED": "false"}
    )
    log = folder / f"{name}.log"
    child = Child(
        name, command, base_url=base_url(port, HOST), log=log, env=clean_env(settings), cwd=ROOT
    )
    stack.enter_context(child)
    return child


def feed_state(child: Child, path: str) -> dict[str, Any]:
    """The edge's follower state (``live``, ``answers``, ``errors``...), {} without a feed.
    ``path``: ``/readyz`` (a real edge: under ``keyset``) or ``/bench-stats``."""
    body = httpx.get(child.url(path), timeout=10).json()
    state = body.get("keyset", body).get("feed")
    return state if isinstance(state, dict) else {}


def live_entries(child: Child, path: str) -> int:
    return sum(feed_state(child, path).get("live", {}).values())


def wait_live(child: Child, path: str, count: int) -> int:
    """Wait until the edge holds at least ``count`` live entries; the number it holds then."""
    deadline = time.monotonic() + LIVE_TIMEOUT
    while (live := live_entries(child, path)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{child.name} holds {live:,} live entries, not {count:,}")
        time.sleep(0.2)
    return live


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (now) and ``VmHWM`` (peak) of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


# -- accounts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One revocation to measure: what is revoked, and an access token it refuses."""

    kind: str
    token: str

    def request(self) -> loadgen.Request:
        if self.kind == RFC7009:
            form = f"token={self.token}&token_type_hint=access_token"
            return loadgen.post_form("/revoke", form)
        path = "/logout/all" if self.kind == LOGOUT_ALL else "/logout"
        return ("POST", path, b"", {"Authorization": f"Bearer {self.token}"})


async def post_all(port: int, path: str, bodies: Sequence[dict[str, str]]) -> list[bytes]:
    """POST every body as JSON, a few at a time; every answer must be a 2xx."""
    answers: list[bytes] = [b""] * len(bodies)
    turn = iter(range(len(bodies)))

    async def worker() -> None:
        conn = loadgen.Connection(HOST, port)
        await conn.open()
        try:
            for index in turn:
                status, body = await conn.send(loadgen.post_json(path, bodies[index]))
                if not 200 <= status < 300:
                    raise SystemExit(f"POST {path} answered {status}")
                answers[index] = body
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(PARALLEL_LOGINS)))
    return answers


def kinds(count: int, rng: random.Random) -> list[str]:
    """The revocations' kinds, shuffled: a tenth each logout everywhere and RFC 7009."""
    everywhere, rfc7009 = round(count * 0.1), round(count * 0.1)
    mix = [LOGOUT_ALL] * everywhere + [RFC7009] * rfc7009
    mix += [LOGOUT] * (count - len(mix))
    rng.shuffle(mix)
    return mix


def set_up_accounts(port: int, plan: Sequence[str]) -> tuple[list[str], list[Target]]:
    """Sign up and log in: two hot tokens (the load's, never revoked) and one fresh session per
    revocation of ``plan``. A logout everywhere gets a user of its own (it ends all their
    sessions); the other sessions are shared out over a few users."""
    tag = secrets.token_hex(4)
    shared = sum(1 for kind in plan if kind != LOGOUT_ALL)
    pool = [
        f"revocation-bench-{tag}-{i}@example.com" for i in range(-(-shared // SESSIONS_PER_USER))
    ]
    loner = iter(f"revocation-bench-{tag}-all-{i}@example.com" for i in range(len(plan)))
    hot = f"revocation-bench-{tag}-hot@example.com"
    logins = [hot, hot]
    for index, kind in enumerate(plan):
        logins.append(next(loner) if kind == LOGOUT_ALL else pool[index % len(pool)])
    users = sorted(set(logins))
    asyncio.run(post_all(port, "/signup", [{"email": u, "password": PASSWORD} for u in users]))
    bodies = [{"email": email, "password": PASSWORD} for email in logins]
    tokens = [
        json.loads(answer)["access_token"]
        for answer in asyncio.run(post_all(port, "/login", bodies))
    ]
    return tokens[:2], [Target(kind, token) for kind, token in zip(plan, tokens[2:], strict=True)]


# -- 1. the delay -----------------------------------------------------------------------------


@dataclass
class Delay:
    """One revocation as the edges saw it, in seconds from the auth service's answer."""

    kind: str
    refused: dict[str, float] = field(default_factory=dict)  # edge -> the first 401's arrival
    applied: dict[str, float] = field(default_factory=dict)  # edge -> its follower applied it
    round_trip: dict[str, float] = field(default_factory=dict)  # edge -> the 200 just before
    accepted: dict[str, int] = field(default_factory=dict)  # edge -> 200s after the answer


async def first_refusal(
    conn: loadgen.Connection, request: loadgen.Request, answered: float, patience: float
) -> tuple[float, int]:
    """Poll until a 401: seconds from ``answered`` to its arrival (``inf``: none within
    ``patience`` seconds), and how many 200s came before it."""
    accepted = 0
    while True:
        status, _ = await conn.send(request)
        now = time.perf_counter()
        if status == 401:
            return now - answered, accepted
        if status != 200:
            raise SystemExit(f"an edge answered {status} to a token being revoked")
        accepted += 1
        if now - answered > patience:
            return math.inf, accepted


async def last_event_at(conn: loadgen.Connection) -> float:
    """When the edge's follower last applied events (epoch seconds, the edge's clock: this
    machine's), from its ``/readyz``."""
    _, body = await conn.send(loadgen.get("/readyz"))
    value = json.loads(body)["keyset"]["feed"]["last_event_at"]
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Poller:
    """The auth service's port, and a keep-alive connection to each edge (name -> the
    connection and the edge's protected path)."""

    auth_port: int
    edges: dict[str, tuple[loadgen.Connection, str]]

    async def measure(self, target: Target, patience: float) -> Delay:
        """Use the token once at each edge, revoke it, poll each edge until it refuses it; then
        ask each when its follower applied the revocation (nothing else happens meanwhile)."""
        delay = Delay(target.kind)
        header = {"Authorization": f"Bearer {target.token}"}
        requests = {name: loadgen.get(path, header) for name, (_, path) in self.edges.items()}
        for name, (conn, _) in self.edges.items():
            start = time.perf_counter()
            status, _ = await conn.send(requests[name])
            delay.round_trip[name] = time.perf_counter() - start
            if status != 200:
                raise SystemExit(f"{name} refused a token before its revocation ({status})")
        status, answered, answered_at = await self.revoke(target)
        if status not in (200, 204):
            raise SystemExit(f"the revocation ({target.kind}) answered {status}")
        found = await asyncio.gather(
            *(
                first_refusal(conn, requests[name], answered, patience)
                for name, (conn, _) in self.edges.items()
            )
        )
        for name, (seconds, accepted) in zip(self.edges, found, strict=True):
            delay.refused[name], delay.accepted[name] = seconds, accepted
            delay.applied[name] = await last_event_at(self.edges[name][0]) - answered_at
        return delay

    async def revoke(self, target: Target) -> tuple[int, float, float]:
        """The revocation, on a connection of its own (one kept between revocations could have
        timed out while an edge was polled): its status, and when its answer came (a
        ``perf_counter`` and an epoch time)."""
        auth = loadgen.Connection(HOST, self.auth_port)
        await auth.open()
        try:
            status, _ = await auth.send(target.request())
            return status, time.perf_counter(), time.time()
        finally:
            await auth.close()


async def revocation_delays(
    auth_port: int, edges: dict[str, tuple[int, str]], targets: Sequence[Target], patience: float
) -> list[Delay]:
    """Each target in turn."""
    conns = {name: (loadgen.Connection(HOST, port), path) for name, (port, path) in edges.items()}
    await asyncio.gather(*(conn.open() for conn, _ in conns.values()))
    poller = Poller(auth_port, conns)
    delays = []
    try:
        for number, target in enumerate(targets, 1):
            delays.append(await poller.measure(target, patience))
            if number % 50 == 0:
                print(f"  {number} revocations measured", flush=True)
    finally:
        await asyncio.gather(*(conn.close() for conn, _ in conns.values()))
    return delays


def rank(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1): a value that was measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def print_delays(feed: FeedResults, args: argparse.Namespace) -> None:
    """The delays by edge, over both, and by kind; the goal's verdict."""
    delays, loads = feed.delays, feed.loads
    print(
        f"1. revocation delay, {len(delays)} revocations, both edges under load: ms from the auth "
        "service's answer to"
    )
    print(
        f"  {'':12s} {'the first 401 (arrival)':>23s}   {'its follower applied it':>23s}   "
        f"{'poll round trip':>15s}"
    )
    print(
        f"  {'edge':12s} {'p50':>7s} {'p99':>7s} {'max':>7s}   {'p50':>7s} {'p99':>7s} {'max':>7s}"
        f"   {'p50':>7s} {'p99':>7s}  {'load req/s':>10s} {'errors':>6s} {'CPU':>4s} {'live':>7s}"
    )
    names = list(loads)
    rows = [
        (name, [d.refused[name] for d in delays], [d.applied[name] for d in delays])
        for name in names
    ]
    rows.append(
        (
            "both edges",
            [s for d in delays for s in d.refused.values()],
            [s for d in delays for s in d.applied.values()],
        )
    )
    for name, refused, applied in rows:
        line = f"  {name:12s} {spread(refused)}   {spread(applied)}"
        if name in loads:
            rtt = [d.round_trip[name] for d in delays]
            load = loads[name]
            line += (
                f"   {ms(rank(rtt, 0.5))} {ms(rank(rtt, 0.99))}  {load.rate:10,.0f} "
                f"{load.non_2xx + load.socket_errors:6d} {feed.busy[name]:4.0%} "
                f"{feed.held[name]:7,d}"
            )
        print(line)
    for kind in (LOGOUT, LOGOUT_ALL, RFC7009):
        chosen = [d for d in delays if d.kind == kind]
        if chosen:
            refused = [s for d in chosen for s in d.refused.values()]
            applied = [s for d in chosen for s in d.applied.values()]
            print(f"  {kind:23s} x{len(chosen):<4d} {spread(refused)}   {spread(applied)}")
    accepted = [a for d in delays for a in d.accepted.values()]
    never = sum(1 for d in delays for s in d.refused.values() if math.isinf(s))
    print(
        "  applied: the follower's last_event_at (/readyz; same machine, same clock); negative: "
        "before the answer reached us\n"
        "  poll round trip: the 200 just before each revocation (the load's queue); CPU: the "
        "edge's, over the wall time;\n"
        "  live: entries each edge held before the first revocation; polls still answered 200 "
        f"after the answer: median {statistics.median(accepted):g}, max {max(accepted)}; "
        f"never refused within {args.poll_timeout:g} s: {never}"
    )
    for name, state in feed.feed_states.items():
        print(
            f"  {name} follower: {state.get('answers')} answers, errors "
            f"{state.get('errors') or 'none'}, events applied {state.get('events')}"
        )
    p99 = {name: rank(refused, 0.99) for name, refused, _ in rows}
    met = all(value <= DELAY_GOAL for value in p99.values())
    valid = all(load.valid for load in loads.values())
    verdict = ("PASS" if met else "MISS") if valid else "INVALID (the load had errors)"
    shown = ", ".join(f"{name} {value * 1e3:.0f} ms" for name, value in p99.items())
    print(f"  goal: first 401 p99 <= {DELAY_GOAL:g} s per edge and over both: {shown}  {verdict}")


def spread(values: Sequence[float]) -> str:
    """p50, p99 and max in ms (NaNs left out)."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return f"{'n/a':>23s}"
    return f"{ms(rank(kept, 0.5))} {ms(rank(kept, 0.99))} {ms(max(kept))}"


def ms(seconds: float) -> str:
    return "  never" if math.isinf(seconds) else f"{seconds * 1e3:7.1f}"


# -- 2. the cost on the hot path --------------------------------------------------------------


def measure_cost(
    runner: Runner, edges: Sequence[Edge], args: argparse.Namespace
) -> list[Measurement]:
    """Each edge warmed up, then ``--rounds`` rounds of ``/protected`` with the hot token, the
    order alternating, as ``benchmarks.edge_bench`` does."""
    scenario = SCENARIOS["b"]
    for edge in edges:
        runner.run(edge.base, scenario.path, edge.token_files["hot"], args.connections, args.warmup)
    parts: list[list[Measurement]] = [[] for _ in edges]
    for turn in range(args.rounds):
        order = list(enumerate(edges))
        if turn % 2:
            order.reverse()
        for index, edge in order:
            part = measure(runner, edge, scenario, args.connections, args.seconds / args.rounds)
            parts[index].append(part)
            print(f"  round {turn + 1}, {edge.edge.name}: {part.rate:,.0f} req/s", flush=True)
    return [combine(p) for p in parts]


def print_cost(feed: FeedResults, args: argparse.Namespace) -> None:
    print(
        f"2. hot-token route (/protected, one token, {args.connections} connections, "
        f"{args.rounds} alternating rounds of {args.seconds / args.rounds:g} s per edge):"
    )
    print(
        f"  {'edge':38s} {'req/s':>7s} {'p50 ms':>7s} {'p99 ms':>7s} {'errors':>6s} "
        f"{'edge':>5s} {'other':>5s} {'us/req':>6s}"
    )
    titles = (
        f"following the feed, {feed.cost_held:,} live",
        "not following (REVOCATION_FEED=false)",
    )
    for title, r in zip(titles, feed.cost, strict=True):
        note = "" if r.valid else "  INVALID (errors)"
        if r.noisy:
            note += "  NOISY: other processes on the edge's CPU"
        print(
            f"  {title:38s} {r.rate:7,.0f} {r.p50 * 1e3:7.2f} {r.p99 * 1e3:7.2f} "
            f"{r.non_2xx + r.socket_errors:6d} {r.edge_share * 100:4.0f}% "
            f"{r.foreign_share * 100:4.0f}% {r.cost * 1e6:6.0f}{note}"
        )
    print(f"  {'goal':44s} {'ratio':>7s} {'by CPU':>8s}   {'goal':7s} verdict rounds' range")
    throughput_goal("following / not following, req/s", feed.cost[0], feed.cost[1], COST_GOAL)


# -- 3. size ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    seconds: float
    pages: int
    events: int
    megabytes: float


def fetch_snapshot(issuer: str, token: str) -> Snapshot:
    """Every page of a snapshot, one after the other, as a follower's first catch-up reads it."""
    pages = events = size = 0
    params = {"wait": "0"}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=issuer, headers=headers, timeout=60) as client:
        start = time.perf_counter()
        while True:
            response = client.get("/revocations", params=params)
            response.raise_for_status()
            page = orjson.loads(response.content)
            pages, events, size = (
                pages + 1,
                events + len(page["events"]),
                size + len(response.content),
            )
            if not page["more"]:
                break
            params["cursor"] = page["cursor"]
        seconds = time.perf_counter() - start
    return Snapshot(seconds, pages, events, size / 1e6)


def deny_set_bytes(count: int) -> int:
    """What ``count`` live entries (the seeded mix) take in a ``DenySet``, by ``tracemalloc``:
    the tables, the expiry heap, and the values' strings the set keeps."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        denyset = DenySet()
        denyset.extend(revocation_seed.revocations(count, EVENT_LIFETIME), time.time())
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    if len(denyset) != count:
        raise SystemExit(f"the deny-set holds {len(denyset):,} entries, not {count:,}")
    return used


@dataclass
class Size:
    count: int
    seeded_s: float
    snapshots: list[Snapshot]
    start_s: dict[str, float] = field(default_factory=dict)  # edge -> start to caught up
    memory: dict[str, dict[str, int]] = field(default_factory=dict)  # edge -> VmRSS, VmHWM
    held: int = 0
    denyset_bytes: int = 0


def measure_size(
    workdir: Path,
    runner: Runner,
    readers: dict[str, str],
    where: Placement,
    args: argparse.Namespace,
) -> Size:
    folder = workdir / "size"
    started = time.perf_counter()
    revocation_seed.seed(folder / "auth-data", args.big, EVENT_LIFETIME)
    seeded = time.perf_counter() - started
    print(f"3. seeded {args.big:,} live events in {seeded:.1f} s", flush=True)
    with contextlib.ExitStack() as stack:
        auth = start_auth(stack, folder, readers, where)
        hot, _ = set_up_accounts(auth.port, [])
        pin_process(auth.pid, where.auth)
        snapshots = [fetch_snapshot(auth.base_url, readers["bench"]) for _ in range(args.snapshots)]
        size = Size(args.big, seeded, snapshots)
        hot_file = folder / "hot.txt"
        hot_file.write_text(hot[0] + "\n")
        children = {}
        for name, token in (("not following", None), ("following", readers["bench"])):
            started = time.perf_counter()
            child = start_bench_edge(
                stack,
                f"edge, {name}",
                issuer=auth.base_url,
                folder=folder,
                feed_token=token,
                where=where,
            )
            child.ready("/open")
            if token is not None:
                size.held = wait_live(child, "/bench-stats", args.big)
            size.start_s[name] = time.perf_counter() - started
            children[name] = child
        for name, child in children.items():  # the same requests for both, then their RSS
            runner.run(child.base_url, "/protected", hot_file, 4, 1.0)
            size.memory[name] = memory_kib(child.pid)
    size.denyset_bytes = deny_set_bytes(args.big)
    return size


def print_size(size: Size) -> None:
    snap = statistics.median(s.seconds for s in size.snapshots)
    first = size.snapshots[0]
    print(f"3. {size.count:,} live revocation events:")
    print(
        f"  feed snapshot: {snap * 1e3:,.0f} ms for all {first.pages} pages "
        f"({first.events:,} events, {first.megabytes:.1f} MB; median of {len(size.snapshots)}, "
        f"range {min(s.seconds for s in size.snapshots) * 1e3:,.0f}-"
        f"{max(s.seconds for s in size.snapshots) * 1e3:,.0f} ms), "
        f"{snap / first.pages * 1e3:.1f} ms a page"
    )
    base, big = size.memory["not following"], size.memory["following"]
    print(
        f"  edge RSS, following ({size.held:,} live entries) / not following: "
        f"{big['VmRSS'] / 1024:.1f} / {base['VmRSS'] / 1024:.1f} MiB "
        f"({(big['VmRSS'] - base['VmRSS']) / 1024:+.1f} MiB, "
        f"{(big['VmRSS'] - base['VmRSS']) * 1024 / size.count:+.0f} B an entry); "
        f"peak {big['VmHWM'] / 1024:.1f} / {base['VmHWM'] / 1024:.1f} MiB"
    )
    print(
        f"  edge start to ready: following (caught up) {size.start_s['following']:.1f} s, "
        f"not following {size.start_s['not following']:.1f} s"
    )
    print(
        f"  the deny-set alone (tracemalloc, in-process): {size.denyset_bytes / 2**20:.1f} MiB, "
        f"{size.denyset_bytes / size.count:.0f} B an entry"
    )


# -- the run ----------------------------------------------------------------------------------


def print_header(runner: Runner, where: Placement, args: argparse.Namespace) -> None:
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; {where.describe()}")
    print(
        f"python {platform.python_version()} ({python_build()}); load: {runner.name}; "
        f"{args.revocations} revocations under {args.load_connections} connections per edge; "
        f"hot route {args.connections} connections, {args.seconds:g} s per edge in "
        f"{args.rounds} rounds; {args.live:,} and {args.big:,} live entries",
        flush=True,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--revocations", type=int, default=200, help="measured (default 200)")
    parser.add_argument(
        "--load-connections", type=int, default=4, help="per edge, during 1. (default 4)"
    )
    parser.add_argument(
        "--poll-timeout", type=float, default=10.0, help="seconds to wait for a 401 (default 10)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="per edge in 2., all rounds")
    parser.add_argument(
        "--rounds", type=int, default=20, help="alternating rounds in 2. (1 s each by default)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="per edge before 2.")
    parser.add_argument("--connections", type=int, default=32, help="in 2. (default 32)")
    parser.add_argument("--live", type=int, default=10_000, help="live entries in 2.")
    parser.add_argument("--big", type=int, default=100_000, help="live entries in 3.")
    parser.add_argument("--snapshots", type=int, default=3, help="snapshot reads in 3.")
    parser.add_argument("--seed", type=int, default=1, help="of the revocations' order")
    parser.add_argument("--tool", choices=("auto", "wrk", "loadgen"), default="auto")
    args = parser.parse_args(argv)
    if args.revocations < 1 or args.rounds < 1 or args.snapshots < 1:
        parser.error("--revocations, --rounds and --snapshots must be at least 1")
    if args.live < 0 or args.big < 1:
        parser.error("--live must be at least 0, --big at least 1")
    return args


@dataclass
class FeedStack:
    """1. and 2.: one auth service seeded with ``--live`` entries, the real edges, hot tokens."""

    auth: Child
    edges: dict[str, tuple[EdgeService, Child]]
    hot_files: dict[str, Path]  # edge name -> a file with its load's token
    hot_token: str  # the mail edge's, also the benchmark edges' (their audience is mail)
    targets: list[Target]


@dataclass
class FeedResults:
    cost: list[Measurement]  # following, not following
    cost_held: int
    delays: list[Delay]
    loads: dict[str, LoadReport]
    held: dict[str, int]  # live entries at each real edge before the revocations
    busy: dict[str, float]  # each real edge's CPU time over the wall time, during 1.
    feed_states: dict[str, dict[str, Any]]  # each real edge's follower, afterwards


def bring_up(
    stack: contextlib.ExitStack,
    bench_stack: contextlib.ExitStack,
    *,
    folder: Path,
    readers: dict[str, str],
    where: Placement,
    args: argparse.Namespace,
) -> tuple[FeedStack, list[Child]]:
    """The feed stack, and the two benchmark edges (in ``bench_stack``), all ready."""
    revocation_seed.seed(folder / "auth-data", args.live, EVENT_LIFETIME)
    auth = start_auth(stack, folder, readers, where)
    edges = {
        e.name: (
            e,
            start_edge_service(
                stack, e, issuer=auth.base_url, folder=folder, token=readers[e.name], where=where
            ),
        )
        for e in (MAIL, VIDEO)
    }
    bench = [
        start_bench_edge(
            bench_stack, name, issuer=auth.base_url, folder=folder, feed_token=token, where=where
        )
        for name, token in (("edge, following", readers["bench"]), ("edge, not following", None))
    ]
    plan = kinds(args.revocations, random.Random(args.seed))  # noqa: S311 - an order, not a secret
    started = time.perf_counter()
    hot, targets = set_up_accounts(auth.port, plan)  # while the edges start
    print(f"  {len(targets) + 2} sessions in {time.perf_counter() - started:.1f} s", flush=True)
    for _, child in edges.values():
        child.ready("/readyz")
    for child in bench:
        child.ready("/open")
    pin_process(auth.pid, where.auth)
    files = {}
    for name, token in zip(edges, hot, strict=True):
        files[name] = folder / f"hot-{name}.txt"
        files[name].write_text(token + "\n")
    return FeedStack(auth, edges, files, hot[0], targets), bench


def run_cost(
    runner: Runner,
    feed: FeedStack,
    bench: Sequence[Child],
    where: Placement,
    args: argparse.Namespace,
) -> tuple[list[Measurement], int]:
    """2., checking that the following edge held ``--live`` entries throughout."""
    following = bench[0]
    held = wait_live(following, "/bench-stats", args.live)
    pair = [
        Edge(
            "ES256",
            c.base_url,
            c,
            feed.auth,
            {"hot": feed.hot_files[MAIL.name]},
            len(feed.hot_token),
            where.edge,
        )
        for c in bench
    ]
    print("2. the hot-token route, following the feed or not", flush=True)
    cost = measure_cost(runner, pair, args)
    after = live_entries(following, "/bench-stats")
    if after != held:
        raise SystemExit(f"the following edge held {held:,} entries, then {after:,}")
    return cost, held


def run_delays(
    runner: Runner, feed: FeedStack, folder: Path, where: Placement, args: argparse.Namespace
) -> tuple[list[Delay], dict[str, LoadReport], dict[str, int], dict[str, float]]:
    """1.: both real edges under load from before the first revocation to after the last."""
    print(f"1. {len(feed.targets)} revocations, both edges under load", flush=True)
    held = {name: live_entries(child, "/readyz") for name, (_, child) in feed.edges.items()}
    tool = "wrk" if isinstance(runner, Wrk) else "loadgen"
    cpu = {name: cpu_seconds(child.pid) for name, (_, child) in feed.edges.items()}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        loads = {
            name: stack.enter_context(
                BackgroundLoad(
                    child.url(edge.path),
                    feed.hot_files[name],
                    args.load_connections,
                    tool=tool,
                    prefix=where.prefix(where.load),
                    log=folder / f"load-{name}.log",
                )
            )
            for name, (edge, child) in feed.edges.items()
        }
        time.sleep(1.0)  # the load is under way before the first revocation
        polled = {name: (child.port, edge.path) for name, (edge, child) in feed.edges.items()}
        delays = asyncio.run(
            revocation_delays(feed.auth.port, polled, feed.targets, args.poll_timeout)
        )
        reports = {name: load.stop() for name, load in loads.items()}
    wall = time.perf_counter() - started
    busy = {
        name: (cpu_seconds(child.pid) - cpu[name]) / wall for name, (_, child) in feed.edges.items()
    }
    return delays, reports, held, busy


def run_feed_stack(
    workdir: Path,
    runner: Runner,
    readers: dict[str, str],
    where: Placement,
    args: argparse.Namespace,
) -> FeedResults:
    """1. and 2. on one auth service; the benchmark edges stop before 1."""
    folder = workdir / "feed"
    with contextlib.ExitStack() as stack:
        with contextlib.ExitStack() as bench_stack:
            feed, bench = bring_up(
                stack, bench_stack, folder=folder, readers=readers, where=where, args=args
            )
            cost, cost_held = run_cost(runner, feed, bench, where, args)
        delays, loads, held, busy = run_delays(runner, feed, folder, where, args)
        states = {name: feed_state(child, "/readyz") for name, (_, child) in feed.edges.items()}
    return FeedResults(cost, cost_held, delays, loads, held, busy, states)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # A SIGTERM becomes SystemExit, so the ExitStacks stop the services as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    where = placement()
    if where.load is not None:
        os.sched_setaffinity(0, {where.load})  # this process: the pollers
    readers = feed_readers()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="revocation-bench-") as tmp:
        workdir = Path(tmp)
        runner = choose_runner(args.tool, workdir, where)
        print_header(runner, where, args)
        feed = run_feed_stack(workdir, runner, readers, where, args)
        size = measure_size(workdir, runner, readers, where, args)
    print()
    print_delays(feed, args)
    print_cost(feed, args)
    print_size(size)
    print(f"({time.perf_counter() - began:.0f} s in all)")


if __name__ == "__main__":
    main()
