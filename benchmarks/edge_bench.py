"""Benchmark an edge: what verifying tokens locally costs, beside the alternatives, in one run.

    python -m benchmarks.edge_bench [--seconds 12] [--rounds 6] [--connections 32] [--tokens 2000]

Starts an auth service (one uvicorn worker, SQLite, fast argon2 parameters: logins only set up,
they are not measured) and one edge process (``benchmarks.bench_edge_app``, one uvicorn worker),
mints many valid access tokens through the refresh grant, then drives the edge with ``wrk`` (or,
when wrk is missing, the in-repo ``benchmarks.loadgen``), one scenario after the other, all on the
same edge process:

- (a) ``GET /open``: no authentication: the ceiling;
- (b) ``GET /protected``, one hot token: gatepass, answered from its verified-token cache;
- (c) ``GET /protected``, every request a different valid token: gatepass's cold path (header,
  signature, claims). The edge's cache holds fewer entries than the tokens in rotation, so every
  request misses (and pays the insert); the edge's counters, read around each run, prove it;
- (d) ``GET /naive``, the same tokens: FastAPI ``HTTPBearer`` + PyJWT ``decode`` per request;
- (e) ``GET /introspect``, the same tokens: the edge asks the auth service per request (RFC 7662,
  one pooled keep-alive httpx client);
- (f) ``GET /protected-depends``, the hot token: (b)'s route without ``GatepassRoute``, so the
  token is checked when FastAPI resolves ``require_scopes``, not at the door; shown beside (b),
  for apps that do not use the route class (32 connections, first algorithm only; no goal).

Each scenario gets ``--seconds`` in all (default 12), split into ``--rounds`` rounds (default 6)
that alternate with the other scenarios' rounds (the order rotating), after a warm-up. A
scenario's req/s, CPU per request, p50 and p99 are the median of its rounds', and a goal's ratio
is the median over rounds of the ratio within each round: on a shared machine a burst of noise
then sinks one round, not the verdict (the range of the rounds' ratios is printed beside it).

Goals: (b) >= 0.85 x (a); (c) >= 1.3 x (d); (b) >= 5 x (e) with (b)'s p99 under
half of (e)'s. The first algorithm of ``--algs`` (ES256) runs (a) to (e) and one-connection runs;
each other one runs (a) to (d) with its own auth service (fresh data folder) and edge, since
which algorithm is cheapest to verify decides the default for edges.

Placement, on two CPUs: the edge alone on CPU 0; wrk and the auth service on CPU 1 (the auth
service works only in (e), and while minting tokens, when it is left unpinned). How to read it:
"edge" is the edge's CPU time over the wall time (about 100 %: the edge was the bottleneck), "other"
the share of the edge's CPU that other processes took (noise from a shared machine), "auth" the
auth service's CPU use, and "us/req" the edge's CPU time per request, which holds better than req/s
on a noisy machine (the goals are shown both ways). Compare ratios taken in one run, not absolute
figures across machines. wrk does not correct for coordinated omission, so the
32-connection p99 is indicative; the one-connection runs give per-request latency without queueing.
A scenario with any non-2xx answer or socket error is INVALID, and so is any goal that uses it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import cryptography
import httpx
import jwt
from cryptography.hazmat.backends.openssl.backend import backend

from benchmarks import loadgen
from benchmarks.verify_bench import python_build
from gatepass.launch import (
    Service,
    ServiceStartError,
    base_url,
    clean_env,
    free_port,
    python_service,
)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PASSWORD = "edge benchmark password, long and unique 11"  # noqa: S105 - a throwaway account
CLIENT_ID = "bench"
AUDIENCE = "mail"
READY_TIMEOUT = 60.0
ALGORITHMS = ("ES256", "RS256", "EdDSA")

WRK_SCRIPT = r"""
-- Rotates through the tokens of a file (one a line), round-robin from an offset (where the last
-- run stopped, so the tokens it used most recently come last); no file: no Authorization.
local requests, count, index = {}, 0, 0
function init(args)
  local path, file, start = args[1], args[2], tonumber(args[3] or "0")
  if file then
    for line in io.lines(file) do
      if #line > 0 then
        count = count + 1
        requests[count] = wrk.format("GET", path, {["Authorization"] = "Bearer " .. line})
      end
    end
  end
  if count == 0 then
    count = 1
    requests[1] = wrk.format("GET", path)
  end
  index = start % count
end
function request()
  index = index % count + 1
  return requests[index]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


# -- where things run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Which CPU each process runs on (``None``: not pinned, fewer than two CPUs)."""

    edge: int | None
    auth: int | None
    load: int | None
    cpus: tuple[int, ...] = ()

    def describe(self) -> str:
        if self.edge is None:
            return "one CPU: nothing pinned (edge, auth service and load generator share it)"
        shared = " (shared with the load generator)" if self.auth == self.load else ""
        return (
            f"edge on CPU {self.edge} alone; load generator on CPU {self.load}; "
            f"auth service on CPU {self.auth}{shared}"
        )

    def prefix(self, cpu: int | None) -> list[str]:
        return [] if cpu is None else ["taskset", "-c", str(cpu)]

    def unpinned(self) -> list[str]:
        """Every CPU (this process is pinned, and children inherit that)."""
        return ["taskset", "-c", ",".join(map(str, self.cpus))] if self.cpus else []


def placement() -> Placement:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return Placement(None, None, None)
    auth = cpus[2] if len(cpus) > 2 else cpus[1]
    return Placement(edge=cpus[0], auth=auth, load=cpus[1], cpus=tuple(cpus))


def pin_process(pid: int, cpu: int | None) -> None:
    """Pin every thread of a running process (threads it starts later inherit the pin)."""
    if cpu is None:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(int(task.name), {cpu})


def busy_seconds(cpu: int | None) -> float:
    """Time one CPU spent busy so far, whoever ran there (NaN where /proc/stat has no line)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            name, *ticks = line.split()
            if name == f"cpu{cpu}":
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, ticks[:8])
                busy = user + nice + system + irq + softirq + steal
                return busy / os.sysconf("SC_CLK_TCK")
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (NaN where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- child processes --------------------------------------------------------------------------


class Child(Service):
    """One service process (pinned by its command), logging to a file, stopped for sure."""

    @property
    def pid(self) -> int:
        """Its process id, read in /proc for its CPU time (start_auth and start_edge start it)."""
        pid = super().pid
        if pid is None:
            raise RuntimeError(f"{self.name} was never started")
        return pid

    def ready(self, path: str) -> None:
        """Wait until ``path`` answers 200; a child that never does ends the run with its log."""
        try:
            self.wait_ready(path, READY_TIMEOUT)
        except ServiceStartError as exc:
            raise SystemExit(str(exc)) from None


def start_auth(
    stack: contextlib.ExitStack, data_dir: Path, alg: str, secret: str, where: Placement
) -> tuple[Child, str]:
    port = free_port()
    base = base_url(port, HOST)
    env = clean_env(
        {
            "GATEPASS_AUTH_ENVIRONMENT": "development",
            "GATEPASS_AUTH_DATA_DIR": str(data_dir),
            "GATEPASS_AUTH_ISSUER": base,
            "GATEPASS_AUTH_SIGNING_ALG": alg,
            "GATEPASS_AUTH_LOG_LEVEL": "WARNING",
            "GATEPASS_AUTH_THROTTLE_IP_FREE": "100000",
            "GATEPASS_AUTH_ACCESS_TOKEN_TTL": "3600",  # minted tokens outlive the run
            "GATEPASS_AUTH_ARGON2_TIME_COST": "1",  # logins only set up; never measured here
            "GATEPASS_AUTH_ARGON2_MEMORY_COST": "8192",
            "GATEPASS_AUTH_ARGON2_PARALLELISM": "1",
            "GATEPASS_AUTH_INTROSPECTION_CLIENTS": json.dumps({CLIENT_ID: secret}),
        }
    )
    cmd = python_service("auth_service", port, HOST)
    # Started unpinned: minting tokens gets both CPUs; bring_up() pins it before any measurement.
    name, log = f"auth service ({alg})", data_dir / "auth.log"
    child = Child(name, where.unpinned() + cmd, base_url=base, log=log, env=env, cwd=ROOT)
    stack.enter_context(child)  # started now, stopped with the stack
    child.ready("/readyz")
    return child, base


def start_edge(
    stack: contextlib.ExitStack,
    log_dir: Path,
    issuer: str,
    secret: str,
    *,
    cache: int,
    where: Placement,
) -> tuple[Child, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "benchmarks.bench_edge_app", "--port", str(port)]
    cmd += ["--issuer", issuer, "--audience", AUDIENCE, "--token-cache-size", str(cache)]
    cmd += ["--client-id", CLIENT_ID]
    env = clean_env({"GATEPASS_BENCH_INTROSPECTION_SECRET": secret})
    base = base_url(port, HOST)
    log = log_dir / "edge.log"
    child = Child("edge", where.prefix(where.edge) + cmd, base_url=base, log=log, env=env, cwd=ROOT)
    stack.enter_context(child)  # started now, stopped with the stack
    child.ready("/open")
    child.ready("/bench-stats")
    return child, base


# -- tokens -----------------------------------------------------------------------------------


def refresh_tokens(base: str, users: int, sessions: int) -> list[str]:
    """Sign up ``users`` accounts, log in ``sessions`` times: one refresh token per session."""
    emails = [f"edge-bench-{i}-{secrets.token_hex(4)}@example.com" for i in range(users)]
    with httpx.Client(base_url=base, timeout=60) as client:
        for email in emails:
            client.post("/signup", json={"email": email, "password": PASSWORD}).raise_for_status()
        tokens = []
        for i in range(sessions):
            login = {"email": emails[i % users], "password": PASSWORD}
            response = client.post("/login", json=login)
            response.raise_for_status()
            tokens.append(response.json()["refresh_token"])
    return tokens


async def mint(port: int, refresh: list[str], count: int) -> list[str]:
    """``count`` access tokens: each session's refresh chain, walked in parallel."""
    minted: list[str] = []

    async def chain(token: str) -> None:
        conn = loadgen.Connection(HOST, port)
        await conn.open()
        try:
            while len(minted) < count:
                form = f"grant_type=refresh_token&refresh_token={quote(token)}"
                status, body = await conn.send(loadgen.post_form("/token", form))
                data = json.loads(body)
                if status != 200:
                    raise SystemExit(f"the refresh grant failed: {status} {data}")
                token = data["refresh_token"]
                minted.append(data["access_token"])
        finally:
            await conn.close()

    await asyncio.gather(*(chain(token) for token in refresh))
    return minted[:count]


# -- load -------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One load run against one route, and what the processes spent during it; or several runs
    of one scenario (``rounds``), whose rate and cost are then the median of the rounds'."""

    requests: int
    seconds: float  # as the load generator counts them
    p50: float  # seconds
    p99: float
    non_2xx: int
    socket_errors: int
    wall: float = float("nan")  # around the whole load-generator run
    edge_cpu_s: float = float("nan")  # the edge process's CPU time
    auth_cpu_s: float = float("nan")
    core_busy_s: float = float("nan")  # the edge's CPU busy, with anything
    cache_hits: int | None = None  # verified-token cache hits during the run, for /protected
    verified: int | None = None
    rounds: tuple[Measurement, ...] = ()

    @property
    def rate(self) -> float:
        if self.rounds:
            return statistics.median(r.rate for r in self.rounds)
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0

    @property
    def edge_share(self) -> float:
        """The edge's CPU time over the wall time: about 1 when the edge is the bottleneck."""
        return self.edge_cpu_s / self.wall

    @property
    def foreign_share(self) -> float:
        """The edge's CPU busy with other processes: noise the edge had to share its core with.

        Clock ticks split interrupt time between the two counters unevenly: a percent or two
        either way is accounting, not load (negatives are shown as 0).
        """
        return max(0.0, (self.core_busy_s - self.edge_cpu_s) / self.wall)

    @property
    def noisy(self) -> bool:
        """Other processes took a real share of the edge's CPU while the edge wanted all of it."""
        return self.foreign_share > 0.05 and self.edge_share + self.foreign_share > 0.9

    @property
    def cost(self) -> float:
        """The edge's CPU seconds per request: what req/s would be on a core of its own."""
        if self.rounds:
            return statistics.median(r.cost for r in self.rounds)
        return self.edge_cpu_s / self.requests if self.requests else float("nan")


def per_round(fast: Measurement, slow: Measurement) -> tuple[list[float], list[float]]:
    """``fast`` over ``slow`` in each round, by req/s and by the edge's CPU per request.

    The two runs of a round were measured minutes apart at most, so a burst of noise on the
    shared machine moves both or neither less than it moves runs of different rounds.
    """
    pairs = list(zip(fast.rounds or (fast,), slow.rounds or (slow,), strict=True))
    return [f.rate / s.rate for f, s in pairs], [s.cost / f.cost for f, s in pairs]


class Rotation:
    """Where the last run of each route in each token file stopped; the next run goes on from there.

    Restarting at the first token would make a run's first tokens the ones the previous run used
    last, which the edge's cache may still hold: (c) would not be all misses. The load generator
    may have handed out up to one token per connection more than it counted, hence the margin.
    """

    def __init__(self) -> None:
        self.offsets: dict[tuple[Path, str], int] = {}

    def start(self, tokens: Path | None, path: str) -> int:
        return self.offsets.get((tokens, path), 0) if tokens else 0

    def advance(self, tokens: Path | None, path: str, requests: int, connections: int) -> None:
        if tokens:
            self.offsets[tokens, path] = self.start(tokens, path) + requests + connections


class Wrk(Rotation):
    """wrk, one thread, the token-rotating Lua script above."""

    name = "wrk"

    def __init__(self, workdir: Path, cpu: int | None) -> None:
        super().__init__()
        self.script = workdir / "rotate.lua"
        self.script.write_text(WRK_SCRIPT)
        self.prefix = [] if cpu is None else ["taskset", "-c", str(cpu)]

    def run(
        self, base: str, path: str, tokens: Path | None, connections: int, seconds: float
    ) -> Measurement:
        cmd = [
            *self.prefix,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
        ]
        cmd += ["-s", str(self.script), base + path, "--", path]
        cmd += [str(tokens), str(self.start(tokens, path))] if tokens else []
        done = subprocess.run(  # noqa: S603 - wrk, found on PATH by which(), fixed arguments
            cmd, capture_output=True, text=True, check=True, timeout=seconds + 60
        )
        line = next(x for x in done.stdout.splitlines() if x.startswith("WRK_JSON "))
        data = json.loads(line.removeprefix("WRK_JSON "))
        self.advance(tokens, path, data["requests"], connections)
        return Measurement(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            p50=data["p50_us"] / 1e6,
            p99=data["p99_us"] / 1e6,
            non_2xx=data["status_errors"],
            socket_errors=data["socket_errors"],
        )


class Loadgen(Rotation):
    """The fallback: ``benchmarks.loadgen`` in this process (pinned to the load CPU)."""

    name = "benchmarks.loadgen (wrk not found)"

    def run(
        self, base: str, path: str, tokens: Path | None, connections: int, seconds: float
    ) -> Measurement:
        port = int(base.rpartition(":")[2])
        lines = tokens.read_text().split() if tokens else []
        requests = [loadgen.get(path, {"Authorization": f"Bearer {t}"}) for t in lines]
        requests = requests or [loadgen.get(path)]
        turn = iter(range(self.start(tokens, path), sys.maxsize))

        def worker(_: int) -> loadgen.Worker:
            return lambda conn, result: loadgen.timed(
                conn, result, requests[next(turn) % len(requests)]
            )

        result = asyncio.run(loadgen.run(HOST, port, connections, seconds, worker))
        self.advance(tokens, path, result.requests, connections)
        return Measurement(
            requests=result.requests,
            seconds=result.elapsed,
            p50=result.percentile(0.5),
            p99=result.percentile(0.99),
            non_2xx=result.errors,
            socket_errors=0,
        )


Runner = Wrk | Loadgen


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    path: str
    tokens: str | None  # "hot", "many" or None


SCENARIOS = {
    s.key: s
    for s in (
        Scenario("a", "open route", "/open", None),
        Scenario("b", "gatepass, one hot token", "/protected", "hot"),
        Scenario("c", "gatepass, a new token each request", "/protected", "many"),
        Scenario("d", "naive: HTTPBearer + PyJWT decode", "/naive", "many"),
        Scenario("e", "call-back: introspection per request", "/introspect", "many"),
        Scenario("f", "gatepass hot, FastAPI Depends only", "/protected-depends", "hot"),
    )
}


@dataclass
class Edge:
    """One auth service + edge pair, ready to be measured."""

    alg: str
    base: str
    edge: Child
    auth: Child
    token_files: dict[str, Path]
    token_bytes: int
    edge_cpu: int | None
    results: dict[str, Measurement] = field(default_factory=dict)
    one_connection: dict[str, Measurement] = field(default_factory=dict)

    def stats(self) -> dict[str, int]:
        data = httpx.get(f"{self.base}/bench-stats", timeout=10).json()
        return {"verified": data["verified"], "cache_hits": data["cache_hits"]}


def measure(
    runner: Runner, edge: Edge, scenario: Scenario, connections: int, seconds: float
) -> Measurement:
    """One run, with the edge's and auth service's CPU time and the cache counters around it."""
    tokens = edge.token_files[scenario.tokens] if scenario.tokens else None
    before = edge.stats()
    cpu = cpu_seconds(edge.edge.pid), cpu_seconds(edge.auth.pid), busy_seconds(edge.edge_cpu)
    start = time.perf_counter()
    result = runner.run(edge.base, scenario.path, tokens, connections, seconds)
    wall = time.perf_counter() - start
    result.wall = wall
    result.edge_cpu_s = cpu_seconds(edge.edge.pid) - cpu[0]
    result.auth_cpu_s = cpu_seconds(edge.auth.pid) - cpu[1]
    result.core_busy_s = busy_seconds(edge.edge_cpu) - cpu[2]
    after = edge.stats()
    if scenario.path.startswith("/protected"):
        result.verified = after["verified"] - before["verified"]
        result.cache_hits = after["cache_hits"] - before["cache_hits"]
    return result


def sanity_check(edge: Edge, token: str) -> None:
    """Each guarded route takes a good token and refuses a missing or forged one."""
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    with httpx.Client(base_url=edge.base, timeout=30) as client:
        if client.get("/open").status_code != 200:
            raise SystemExit("/open does not answer 200")
        for path in ("/protected", "/protected-depends", "/naive", "/introspect"):
            good = client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code
            bad = client.get(path, headers={"Authorization": f"Bearer {forged}"}).status_code
            none = client.get(path).status_code
            if good != 200 or bad != 401 or none not in (401, 403):
                raise SystemExit(f"{path} ({edge.alg}): good {good}, forged {bad}, none {none}")


# -- one algorithm ----------------------------------------------------------------------------


def bring_up(
    stack: contextlib.ExitStack, workdir: Path, alg: str, args: argparse.Namespace, where: Placement
) -> Edge:
    folder = workdir / alg
    folder.mkdir()
    secret = secrets.token_urlsafe(24)
    auth, issuer = start_auth(stack, folder, alg, secret, where)
    refresh = refresh_tokens(issuer, users=4, sessions=args.chains)
    port = int(issuer.rpartition(":")[2])
    started = time.perf_counter()
    tokens = asyncio.run(mint(port, refresh, args.tokens + 1))
    pin_process(auth.pid, where.auth)
    print(
        f"  {alg}: minted {len(tokens)} access tokens in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    files = {"hot": folder / "hot.txt", "many": folder / "many.txt"}
    files["hot"].write_text(tokens[0] + "\n")  # kept out of the rotation: it stays cached
    files["many"].write_text("\n".join(tokens[1:]) + "\n")
    edge, base = start_edge(stack, folder, issuer, secret, cache=args.cache_size, where=where)
    result = Edge(alg, base, edge, auth, files, len(tokens[0]), where.edge)
    sanity_check(result, tokens[1])
    return result


def run_scenarios(
    runner: Runner, edge: Edge, keys: str, args: argparse.Namespace, *, connections: int
) -> dict[str, Measurement]:
    """Warm each scenario up, then measure them in rounds, the order rotating each round.

    Alternating spreads a shared machine's bursts of noise over every scenario instead of
    letting one burst sink one of them (and the ratios with it).
    """
    if connections > 1 and args.warmup > 0:
        for key in keys:
            scenario = SCENARIOS[key]
            tokens = edge.token_files.get(scenario.tokens or "")
            runner.run(edge.base, scenario.path, tokens, connections, args.warmup)
    seconds = (args.seconds if connections > 1 else args.latency_seconds) / args.rounds
    parts: dict[str, list[Measurement]] = {key: [] for key in keys}
    for turn in range(args.rounds):
        for key in keys[turn % len(keys) :] + keys[: turn % len(keys)]:
            part = measure(runner, edge, SCENARIOS[key], connections, seconds)
            parts[key].append(part)
            print(
                f"  {edge.alg} round {turn + 1}, {connections} conn., ({key}) "
                f"{SCENARIOS[key].title}: {part.rate:,.0f} req/s",
                flush=True,
            )
    return {key: combine(parts[key]) for key in keys}


def combine(parts: Sequence[Measurement]) -> Measurement:
    """Rounds of one scenario as one: counts and times added; rate, cost and percentiles the
    median of the rounds' (a burst of noise sinks one round, not the figure)."""
    hits = [p.cache_hits for p in parts if p.cache_hits is not None]
    verified = [p.verified for p in parts if p.verified is not None]
    return Measurement(
        requests=sum(p.requests for p in parts),
        seconds=sum(p.seconds for p in parts),
        p50=statistics.median(p.p50 for p in parts),
        p99=statistics.median(p.p99 for p in parts),
        non_2xx=sum(p.non_2xx for p in parts),
        socket_errors=sum(p.socket_errors for p in parts),
        wall=sum(p.wall for p in parts),
        edge_cpu_s=sum(p.edge_cpu_s for p in parts),
        auth_cpu_s=sum(p.auth_cpu_s for p in parts),
        core_busy_s=sum(p.core_busy_s for p in parts),
        cache_hits=sum(hits) if hits else None,
        verified=sum(verified) if verified else None,
        rounds=tuple(parts),
    )


# -- report -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f}"


def pct(value: float) -> str:
    return "   n/a" if math.isnan(value) else f"{value * 100:5.0f}%"  # NaN: no /proc


def print_table(title: str, results: dict[str, Measurement], *, loaded: bool) -> None:
    """``loaded``: many connections, so the edge's CPU should be busy; say so when it was not."""
    print(title)
    print(
        f"  {'scenario':44s} {'req/s':>7s} {'p50 ms':>7s} {'p99 ms':>7s} {'non2xx':>6s} "
        f"{'sockerr':>7s} {'edge':>5s} {'other':>5s} {'auth':>5s} {'us/req':>6s}  note"
    )
    for key, r in results.items():
        name = f"({key}) {SCENARIOS[key].title}"
        note = "" if r.valid else "INVALID (errors) "
        idle = 1 - r.edge_share - r.foreign_share
        if loaded and idle > 0.1:
            note += f"edge's CPU {idle:.0%} idle: limited elsewhere; "
        if r.verified is not None:
            note += f"cache hits {r.cache_hits:,} of {r.verified:,} verified"
        print(
            f"  {name:44s} {r.rate:7,.0f} {ms(r.p50)} {ms(r.p99)} {r.non_2xx:6d} "
            f"{r.socket_errors:7d} {pct(r.edge_share)} {pct(r.foreign_share)} "
            f"{pct(r.auth_cpu_s / r.wall)} {r.cost * 1e6:6.0f}  {note}"
        )
    print(
        "  edge/other: the edge's CPU used by the edge / by other processes; auth: the auth "
        "service's CPU use;\n  us/req: the edge's CPU time per request"
    )


def verdict(passed: bool, inputs: Sequence[Measurement]) -> str:
    return "INVALID" if not all(m.valid for m in inputs) else ("PASS" if passed else "MISS")


def throughput_goal(name: str, fast: Measurement, slow: Measurement, factor: float) -> None:
    """``fast`` must serve at least ``factor`` times the requests per second of ``slow``: the
    median over rounds of the ratio within each round."""
    rates, cpus = per_round(fast, slow)
    ratio, by_cpu = statistics.median(rates), statistics.median(cpus)
    result = verdict(ratio >= factor, [fast, slow])
    spread = f"{min(rates):.2f}-{max(rates):.2f}"
    print(f"  {name:44s} {ratio:7.2f} {by_cpu:8.2f}   >= {factor:<4g} {result:7s} {spread}")


def latency_goal(name: str, fast: Measurement, slow: Measurement) -> None:
    """``fast``'s p99 must be under half of ``slow``'s."""
    ratio = fast.p99 / slow.p99
    print(f"  {name:44s} {ratio:7.2f} {'':8s}   < 0.5   {verdict(ratio < 0.5, [fast, slow])}")


def print_goals(edge: Edge, connections: int) -> None:
    r, one = edge.results, edge.one_connection
    print(
        f"goals, same edge process, same run ({connections} connections unless said); each "
        "ratio is the median over rounds of the ratio within a round ('by CPU': from the edge's "
        "CPU time per request), beside the range of the rounds' ratios:"
    )
    print(f"  {'':44s} {'ratio':>7s} {'by CPU':>8s}   {'goal':7s} verdict rounds' range")
    throughput_goal("(b)/(a) req/s: hot token vs open route", r["b"], r["a"], 0.85)
    throughput_goal("(c)/(d) req/s: gatepass cold vs naive PyJWT", r["c"], r["d"], 1.3)
    throughput_goal("(b)/(e) req/s: hot token vs introspection", r["b"], r["e"], 5)
    latency_goal("p99 (b) / p99 (e)", r["b"], r["e"])
    if "b" in one and "e" in one:
        latency_goal("p99 (b) / p99 (e), one connection", one["b"], one["e"])
    if "f" in r:
        rates, cpus = per_round(r["f"], r["a"])
        print(
            f"  {'(f)/(a) req/s: hot token, Depends only':44s} {statistics.median(rates):7.2f} "
            f"{statistics.median(cpus):8.2f}   (none)  without GatepassRoute, for comparison"
        )
    noisy = [key for key, m in [*r.items(), *one.items()] if m.noisy]
    if noisy:
        print(
            "  NOISY: other processes took over 5% of the edge's CPU during "
            f"{', '.join(sorted({f'({k})' for k in noisy}))}: req/s there understate the edge, "
            "the 'by CPU' ratios hold better"
        )


def print_algorithms(edges: Sequence[Edge]) -> None:
    print("signing algorithms (req/s; each its own auth service and edge, one after the other):")
    print(
        f"  {'alg':6s} {'token B':>7s} {'(a) open':>9s} {'(b) hot':>9s} {'(c) cold':>9s} "
        f"{'(d) PyJWT':>9s} {'(c)/(d)':>7s} {'(b)/(a)':>7s} {'(c) us/req':>10s}"
    )
    for edge in edges:
        a, b, c, d = (edge.results[k] for k in "abcd")
        flag = "" if all(m.valid for m in (a, b, c, d)) else "  INVALID: errors"
        if any(m.noisy for m in (a, b, c, d)):
            flag += "  NOISY: other processes on the edge's CPU"
        print(
            f"  {edge.alg:6s} {edge.token_bytes:7d} {a.rate:9,.0f} {b.rate:9,.0f} {c.rate:9,.0f} "
            f"{d.rate:9,.0f} {statistics.median(per_round(c, d)[0]):7.2f} "
            f"{statistics.median(per_round(b, a)[0]):7.2f} "
            f"{c.cost * 1e6:10.0f}{flag}"
        )
    by_rate = max(edges, key=lambda edge: edge.results["c"].rate).alg
    by_cpu = min(edges, key=lambda edge: edge.results["c"].cost).alg
    print(f"  cheapest cold verify on the edge in this run: {by_rate} by req/s, {by_cpu} by CPU")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.machine()


def print_header(runner: Runner, where: Placement, args: argparse.Namespace) -> None:
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; {where.describe()}")
    print(
        f"python {platform.python_version()} ({python_build()}), "
        f"cryptography {cryptography.__version__} "
        f"({backend.openssl_version_text()}), PyJWT {jwt.__version__}; load: {runner.name}, "
        f"{args.connections} connections, {args.seconds:g} s per scenario in {args.rounds} "
        f"alternating rounds, after {args.warmup:g} s warm-up"
    )
    print(
        f"edge token cache: {args.cache_size} entries; (c), (d), (e) rotate {args.tokens} tokens "
        "round-robin, so every (c) request misses the cache (LRU, cyclic)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=12.0, help="per scenario, all rounds (default 12)"
    )
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    parser.add_argument("--warmup", type=float, default=2.0, help="before each (default 2)")
    parser.add_argument(
        "--latency-seconds", type=float, default=6.0, help="per one-connection scenario"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=2000, help="distinct tokens per algorithm")
    parser.add_argument("--cache-size", type=int, default=None, help="default: tokens // 2")
    parser.add_argument("--chains", type=int, default=16, help="refresh chains minting tokens")
    parser.add_argument("--algs", default=",".join(ALGORITHMS), help="the first runs (a)-(e)")
    parser.add_argument("--tool", choices=("auto", "wrk", "loadgen"), default="auto")
    args = parser.parse_args(argv)
    args.cache_size = args.cache_size or max(1, args.tokens // 2)
    if args.cache_size >= args.tokens:
        parser.error("--cache-size must be below --tokens, or (c) would hit the cache")
    args.algs = [a.strip() for a in args.algs.split(",") if a.strip()]
    if not args.algs or not set(args.algs) <= set(ALGORITHMS):
        parser.error(f"--algs: a comma-separated subset of {', '.join(ALGORITHMS)}")
    return args


def choose_runner(tool: str, workdir: Path, where: Placement) -> Runner:
    if tool == "wrk" or (tool == "auto" and shutil.which("wrk")):
        if shutil.which("wrk") is None:
            raise SystemExit("wrk is not installed (apt-get install wrk), or use --tool loadgen")
        return Wrk(workdir, where.load)
    return Loadgen()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # A SIGTERM becomes SystemExit, so the ExitStacks below stop the services as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    where = placement()
    if where.load is not None:
        os.sched_setaffinity(0, {where.load})  # this process (and the loadgen fallback)
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        workdir = Path(tmp)
        runner = choose_runner(args.tool, workdir, where)
        print_header(runner, where, args)
        edges = []
        for i, alg in enumerate(args.algs):
            with contextlib.ExitStack() as stack:  # both processes stop here, error or Ctrl-C
                edge = bring_up(stack, workdir, alg, args, where)
                keys = "abcdef" if i == 0 else "abcd"
                edge.results = run_scenarios(runner, edge, keys, args, connections=args.connections)
                if i == 0:
                    edge.one_connection = run_scenarios(runner, edge, "abcde", args, connections=1)
            edges.append(edge)
    report(edges, args)


def report(edges: Sequence[Edge], args: argparse.Namespace) -> None:
    main_edge = edges[0]
    print()
    print_table(
        f"{main_edge.alg}, {args.connections} connections (p99 indicative: wrk does not correct "
        "coordinated omission):",
        main_edge.results,
        loaded=True,
    )
    print_table(
        f"{main_edge.alg}, one connection (per-request latency):",
        main_edge.one_connection,
        loaded=False,
    )
    print_goals(main_edge, args.connections)
    if len(edges) > 1:
        print_algorithms(edges)


if __name__ == "__main__":
    main()
