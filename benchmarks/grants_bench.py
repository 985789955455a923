"""Benchmark the token endpoint's service grants: client credentials and token exchange.

    ./dev bench grants [--seconds 4] [--connections 32] [--rounds 3] [--database both]
    ./dev bench grants --profile [--requests 200] [--database both]

One auth service (one uvicorn worker) pinned to CPU 0, driven by ``benchmarks.loadgen`` from this
process pinned to CPU 1 (as ``auth_bench`` does), on SQLite and then, when its binaries are
installed, on a throwaway PostgreSQL server (``tests.support.pg``: one database, the server
pinned to CPU 1 beside the load, so that CPU 0 is the auth service's alone on both).

Four routes, measured in interleaved rounds (open, cc jwt, cc basic, exchange, open, ...), so
that each grant is compared with the open route of its own round:

- ``GET /healthz``: the open route, the baseline of the ratios;
- ``client_credentials`` with ``private_key_jwt``: a fresh assertion per request (unique ``jti``),
  signed before each measurement in bulk (signing on the load CPU would slow the load), by
  ``gatepass.ClientIdentity`` as a service signs them;
- ``client_credentials`` with ``client_secret_basic``;
- token exchange (RFC 8693) by a ``private_key_jwt`` client serving ``mail``: subject tokens are
  user access tokens of logins made before the run (``resource`` mail and video), exchanged for
  audience ``video``, scope ``video:read``.

The clients are registered through the clients file (``GATEPASS_AUTH_CLIENTS_FILE``), and one
grant of each kind is checked before the run (who the token names, its audience, ``act``).

Goal: 3 x 120 = 360 client-credential grants per second per core (Keycloak's sizing guide budgets
one vCPU per 120): the grants per second of the one worker on its one core. Beside it, the
worker's CPU time per grant (what a core would give if the worker kept it busy) and, on
PostgreSQL, the database's. Every answer but a 200 (and a 200 without a token) is an error,
counted and shown; a run with errors says so and exits with status 1.

``--profile`` measures instead where a grant's time goes, step by step, in-process
(``benchmarks.grants_profile``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx
from tests.support.pg import PostgresUnavailable, ThrowawayCluster

from benchmarks import loadgen
from benchmarks.edge_bench import busy_seconds, cpu_model, cpu_seconds, pin_process
from gatepass import ClientIdentity
from gatepass.core.jwk import new_private_jwk, public_of
from gatepass.launch import (
    Service,
    ServiceStartError,
    base_url,
    clean_env,
    free_port,
    python_service,
)

GOAL = 3 * 120  # client-credential grants per second per core
WORKER_CPU, LOAD_CPU = 0, 1
PASSWORD = "grants benchmark password, long and unique 7"  # noqa: S105 - throwaway accounts
USERS = 8
WARMUP = 1.0  # seconds per route, before the rounds
# Assertions signed ahead of a measurement: SIGN_MARGIN x its seconds x the best rate so far, or
# MIN_SIGNED if higher (per second). Signing is ~0.1 ms each: 3,000 cost a third of a second.
MIN_SIGNED = 500
SIGN_MARGIN = 1.5

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a URN
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

JWT_CLIENT, BASIC_CLIENT, EXCHANGER = "bench-cc-jwt", "bench-cc-basic", "bench-exchanger"
OPEN, CC_JWT, CC_BASIC, EXCHANGE = "open", "cc-jwt", "cc-basic", "exchange"
LABELS = {
    OPEN: "GET /healthz (open route)",
    CC_JWT: "client_credentials, private_key_jwt",
    CC_BASIC: "client_credentials, client_secret_basic",
    EXCHANGE: "token exchange, private_key_jwt",
}
ROUTES = (OPEN, CC_JWT, CC_BASIC, EXCHANGE)
GRANTS = (CC_JWT, CC_BASIC)  # what the goal is about


# -- the clients ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identities:
    """The benchmark's three registered services, and the clients file that declares them."""

    jwt: ClientIdentity  # client credentials, private_key_jwt
    basic_header: str = field(repr=False)  # client credentials, client_secret_basic
    exchanger: ClientIdentity  # token exchange, private_key_jwt, resource mail
    clients_file: Path

    @classmethod
    def make(cls, folder: Path) -> Identities:
        jwt_key, exchanger_key = new_private_jwk("ES256"), new_private_jwk("ES256")
        secret = secrets.token_urlsafe(32)
        notify = {"kind": "service", "audiences": ["mail"], "scopes": ["mail:notify"]}
        declared = [
            {
                "client_id": JWT_CLIENT,
                "auth_method": "private_key_jwt",
                "jwks": {"keys": [public_of(jwt_key)]},
                **notify,
            },
            {
                "client_id": BASIC_CLIENT,
                "auth_method": "client_secret_basic",
                "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
                **notify,
            },
            {
                "client_id": EXCHANGER,
                "kind": "service",
                "auth_method": "private_key_jwt",
                "audiences": ["video"],
                "scopes": ["video:read"],
                "resource": "mail",
                "jwks": {"keys": [public_of(exchanger_key)]},
            },
        ]
        path = folder / "clients.json"
        path.write_text(json.dumps({"clients": declared}))
        pair = f"{quote_plus(BASIC_CLIENT)}:{quote_plus(secret)}"  # RFC 6749 §2.3.1
        basic = base64.b64encode(pair.encode()).decode()
        return cls(
            jwt=ClientIdentity.from_jwk(JWT_CLIENT, jwt_key),
            basic_header=f"Basic {basic}",
            exchanger=ClientIdentity.from_jwk(EXCHANGER, exchanger_key),
            clients_file=path,
        )


class Assertions:
    """Client assertions signed ahead of a measurement; signed on the spot (and counted) only
    if the measurement outruns them. Each is used once: a fresh ``jti`` per request."""

    def __init__(self, identity: ClientIdentity, token_url: str) -> None:
        self.identity, self.token_url = identity, token_url
        self.ready: list[str] = []
        self.signed_late = 0

    def sign_ahead(self, count: int) -> None:
        now = time.time()
        self.ready = [self.identity.assertion(self.token_url, now) for _ in range(count)]
        self.signed_late = 0

    def next(self) -> str:
        if self.ready:
            return self.ready.pop()
        self.signed_late += 1
        return self.identity.assertion(self.token_url, time.time())


# -- the requests ---------------------------------------------------------------------------------


def form_request(form: dict[str, str], headers: dict[str, str] | None = None) -> loadgen.Request:
    request = loadgen.post_form("/token", urlencode(form))
    return (request[0], request[1], request[2], {**request[3], **(headers or {})})


def asserted(assertions: Assertions, form: dict[str, str]) -> loadgen.Request:
    return form_request(
        {
            **form,
            "client_id": assertions.identity.client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertions.next(),
        }
    )


CC_FORM = {"grant_type": "client_credentials", "resource": "mail", "scope": "mail:notify"}


def exchange_form(subject_token: str) -> dict[str, str]:
    return {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": "video",
        "scope": "video:read",
    }


@dataclass
class Routes:
    """Each route's next request, for connection ``index``."""

    identities: Identities
    subject_tokens: list[str] = field(repr=False)
    token_url: str
    assertions: dict[str, Assertions] = field(init=False)

    def __post_init__(self) -> None:
        self.assertions = {
            CC_JWT: Assertions(self.identities.jwt, self.token_url),
            EXCHANGE: Assertions(self.identities.exchanger, self.token_url),
        }

    def request(self, route: str, index: int) -> loadgen.Request:
        if route == OPEN:
            return loadgen.get("/healthz")
        if route == CC_JWT:
            return asserted(self.assertions[CC_JWT], CC_FORM)
        if route == CC_BASIC:
            return form_request(CC_FORM, {"Authorization": self.identities.basic_header})
        subject = self.subject_tokens[index % len(self.subject_tokens)]
        return asserted(self.assertions[EXCHANGE], exchange_form(subject))


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Phase:
    """One route for ``seconds``: the load generator's counts, the refusals by kind, CPU time."""

    result: loadgen.Result
    refusals: Counter[str]
    worker_cpu: float
    db_cpu: float
    core_busy: float
    signed_late: int

    @property
    def ok(self) -> int:
        return self.result.requests - self.result.errors

    @property
    def rate(self) -> float:
        """Successful answers per second (errors are not counted as work done)."""
        return self.ok / self.result.elapsed if self.result.elapsed else 0.0


def refusal(status: int, body: bytes) -> str:
    """What an error answer was, by its status and its error code (RFC 6749 ``error`` or the
    problem's ``code``: fixed words, never a token)."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    code = None
    if isinstance(document, dict):
        code = document.get("error") or document.get("code")
    if status == 200:
        return "200 without an access token"
    return f"{status} {code}" if isinstance(code, str) else str(status)


async def send(
    conn: loadgen.Connection,
    result: loadgen.Result,
    refusals: Counter[str],
    request: loadgen.Request,
    grant: bool,
) -> None:
    """One request, timed; a non-200 (or a grant without a token) is an error of its kind; a
    lost connection is one too, and the connection is opened again."""
    start = time.perf_counter()
    try:
        status, body = await conn.send(request)
    except (OSError, EOFError, IndexError, ValueError) as exc:
        result.requests += 1
        result.errors += 1
        refusals[f"connection lost ({type(exc).__name__})"] += 1
        with contextlib.suppress(OSError):
            await conn.close()
        await conn.open()
        return
    result.latencies.append(time.perf_counter() - start)
    result.requests += 1
    if status != 200 or (grant and b'"access_token"' not in body):
        result.errors += 1
        refusals[refusal(status, body)] += 1


async def measure(
    routes: Routes,
    route: str,
    *,
    port: int,
    connections: int,
    seconds: float,
    worker_pid: int,
    db_cpu: Callable[[], float],
) -> Phase:
    refusals: Counter[str] = Counter()
    grant = route != OPEN

    def worker(index: int) -> loadgen.Worker:
        async def step(conn: loadgen.Connection, result: loadgen.Result) -> None:
            await send(conn, result, refusals, routes.request(route, index), grant)

        return step

    before = cpu_seconds(worker_pid), db_cpu(), busy_seconds(WORKER_CPU)
    result = await loadgen.run("127.0.0.1", port, connections, seconds, worker)
    assertions = routes.assertions.get(route)
    return Phase(
        result=result,
        refusals=refusals,
        worker_cpu=cpu_seconds(worker_pid) - before[0],
        db_cpu=db_cpu() - before[1],
        core_busy=busy_seconds(WORKER_CPU) - before[2],
        signed_late=assertions.signed_late if assertions is not None else 0,
    )


async def run_rounds(
    routes: Routes, port: int, args: argparse.Namespace, worker_pid: int, db: Database
) -> dict[str, list[Phase]]:
    """A warm-up of each route, then ``args.rounds`` rounds of all four in turn."""
    best: dict[str, float] = {}

    async def phase(route: str, seconds: float) -> Phase:
        assertions = routes.assertions.get(route)
        if assertions is not None:
            rate = max(best.get(route, 0.0), MIN_SIGNED)
            assertions.sign_ahead(math.ceil(rate * seconds * SIGN_MARGIN))
        done = await measure(
            routes,
            route,
            port=port,
            connections=args.connections,
            seconds=seconds,
            worker_pid=worker_pid,
            db_cpu=db.cpu_seconds,
        )
        best[route] = max(best.get(route, 0.0), done.rate)
        return done

    for route in ROUTES:
        await phase(route, min(WARMUP, args.seconds))
    phases: dict[str, list[Phase]] = {route: [] for route in ROUTES}
    for _ in range(args.rounds):
        for route in ROUTES:
            phases[route].append(await phase(route, args.seconds))
    return phases


# -- the service and its database -----------------------------------------------------------------


@dataclass
class Database:
    """Where the auth service keeps its state: its name, URL (None: SQLite in the data folder)
    and the CPU time its server has used (NaN when it runs inside the worker)."""

    name: str
    url: str | None
    cpu_seconds: Callable[[], float] = lambda: float("nan")


def start_service(folder: Path, identities: Identities, db: Database) -> tuple[Service, int]:
    """The auth service, pinned to CPU 0, ready; else exit with its log."""
    port = free_port()
    settings = {
        "GATEPASS_AUTH_ENVIRONMENT": "development",
        "GATEPASS_AUTH_DATA_DIR": str(folder / "auth-data"),
        "GATEPASS_AUTH_ISSUER": base_url(port),
        "GATEPASS_AUTH_LOG_LEVEL": "WARNING",
        "GATEPASS_AUTH_CLIENTS_FILE": str(identities.clients_file),
        "GATEPASS_AUTH_THROTTLE_IP_FREE": "100000",
        "GATEPASS_AUTH_ACCESS_TOKEN_TTL": "3600",  # subject tokens outlive the run
        # Logins only make the subject tokens: cheap hashing, no part of what is measured.
        "GATEPASS_AUTH_ARGON2_TIME_COST": "1",
        "GATEPASS_AUTH_ARGON2_MEMORY_COST": "1024",
        "GATEPASS_AUTH_ARGON2_PARALLELISM": "1",
    }
    if db.url is not None:
        settings["GATEPASS_AUTH_DATABASE_URL"] = db.url
    cmd = python_service("auth_service", port)
    if pinned():
        cmd = ["taskset", "-c", str(WORKER_CPU), *cmd]
    service = Service(
        "auth service",
        cmd,
        base_url=base_url(port),
        log=folder / "auth.log",
        env=clean_env(settings),
    )
    service.start()
    try:
        service.wait_ready("/readyz")
    except ServiceStartError as exc:
        service.stop()
        raise SystemExit(str(exc)) from None
    return service, port


def pinned() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1


@contextlib.contextmanager
def postgres() -> Iterator[Database | str]:
    """A throwaway PostgreSQL server, pinned to the load CPU, and one database on it; or why
    there is none."""
    try:
        cluster = ThrowawayCluster.start()
    except PostgresUnavailable as exc:
        yield str(exc).splitlines()[0]
        return
    try:
        postmaster = int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])
        if pinned():
            for pid in [postmaster, *children(postmaster)]:
                pin_process(pid, LOAD_CPU)  # backends forked later inherit the pin
        url = cluster.server.create_database()
        yield Database("PostgreSQL", url, lambda: tree_cpu_seconds(postmaster))
    finally:
        cluster.stop()


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a server process and its children (its backends), the ended ones too."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    ended = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return cpu_seconds(pid) + ended + sum(cpu_seconds(child) for child in children(pid))


# -- set-up: subject tokens, one checked grant of each kind ---------------------------------------


def subject_tokens(base: str, count: int) -> list[str]:
    """``count`` user access tokens (logins of a few users) naming mail and video."""
    emails = [f"grants-{i}-{secrets.token_hex(3)}@example.com" for i in range(min(USERS, count))]
    tokens = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for email in emails:
            client.post("/signup", json={"email": email, "password": PASSWORD}).raise_for_status()
        for i in range(count):
            body = {"email": emails[i % len(emails)], "password": PASSWORD}
            answer = client.post("/login", json={**body, "resource": ["mail", "video"]})
            answer.raise_for_status()
            tokens.append(answer.json()["access_token"])
    return tokens


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def check_grants(base: str, routes: Routes) -> None:
    """One grant of each kind through httpx, its token's claims as the spec has them; else
    exit saying what is wrong (never the token)."""
    wanted: dict[str, dict[str, Any]] = {
        CC_JWT: {"sub": JWT_CLIENT, "client_id": JWT_CLIENT, "aud": "mail"},
        CC_BASIC: {"sub": BASIC_CLIENT, "client_id": BASIC_CLIENT, "aud": "mail"},
        EXCHANGE: {"client_id": EXCHANGER, "aud": "video", "act": {"sub": EXCHANGER}},
    }
    with httpx.Client(base_url=base, timeout=30) as client:
        for route, expected in wanted.items():
            method, path, body, headers = routes.request(route, 0)
            answer = client.request(method, path, content=body, headers=headers)
            if answer.status_code != 200:
                raise SystemExit(f"{LABELS[route]}: {refusal(answer.status_code, answer.content)}")
            claims = claims_of(answer.json()["access_token"])
            if isinstance(claims.get("aud"), list) and len(claims["aud"]) == 1:
                claims["aud"] = claims["aud"][0]
            wrong = sorted(name for name, value in expected.items() if claims.get(name) != value)
            if route == EXCHANGE and not str(claims.get("sub")).startswith("usr_"):
                wrong.append("sub")
            if route != EXCHANGE and ("sid" in claims or "act" in claims):
                wrong.append("sid/act")
            if wrong:
                raise SystemExit(f"{LABELS[route]}: unexpected claims {', '.join(wrong)}")


# -- one database ---------------------------------------------------------------------------------


def bench(db: Database, args: argparse.Namespace) -> dict[str, list[Phase]]:
    with tempfile.TemporaryDirectory(prefix="gatepass-grants-") as tmp:
        folder = Path(tmp)
        identities = Identities.make(folder)
        service, port = start_service(folder, identities, db)
        try:
            base = base_url(port)
            tokens = subject_tokens(base, args.connections)
            routes = Routes(identities, tokens, f"{base}/token")
            check_grants(base, routes)
            worker_pid = service.pid
            if worker_pid is None:
                raise SystemExit("the auth service has no process id")
            return asyncio.run(run_rounds(routes, port, args, worker_pid, db))
        finally:
            service.stop()


# -- the report -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def per_request_ms(cpu: float, count: int) -> str:
    return f"{cpu / count * 1000:7.2f}" if count and not math.isnan(cpu) else f"{'-':>7s}"


def report(db: Database, phases: dict[str, list[Phase]], args: argparse.Namespace) -> int:
    """Print one database's figures; answers its error count."""
    opens = phases[OPEN]
    print(
        f"\n{db.name}: {args.connections} connections, {args.rounds} rounds of {args.seconds:g} s"
    )
    print(
        f"  {'route':40s} {'req/s':>7s} {'p50 ms':>7s} {'p99 ms':>7s} {'errors':>7s} "
        f"{'x open':>7s} {'busy':>5s} {'CPU ms':>7s} {'DB ms':>7s}"
    )
    errors = 0
    for route in ROUTES:
        rounds = phases[route]
        latencies = [x for p in rounds for x in p.result.latencies]
        pooled = loadgen.Result(latencies=latencies)
        ok = sum(p.ok for p in rounds)
        failed = sum(p.result.errors for p in rounds)
        errors += failed
        rate = statistics.median(p.rate for p in rounds)
        ratio = statistics.median(p.rate / o.rate for p, o in zip(rounds, opens, strict=True))
        elapsed = sum(p.result.elapsed for p in rounds)
        busy = sum(p.worker_cpu for p in rounds) / elapsed
        print(
            f"  {LABELS[route]:40s} {rate:7.0f} {ms(pooled.percentile(0.5))} "
            f"{ms(pooled.percentile(0.99))} {failed:7d} {ratio:7.3f} {busy:5.0%} "
            f"{per_request_ms(sum(p.worker_cpu for p in rounds), ok)} "
            f"{per_request_ms(sum(p.db_cpu for p in rounds), ok)}"
        )
        refused = sum((p.refusals for p in rounds), Counter[str]())
        for kind, count in refused.most_common():
            print(f"      error: {count} x {kind}")
        late = sum(p.signed_late for p in rounds)
        if late:
            print(f"      {late} assertions signed during the measurement (the load CPU's time)")
        others = sum(p.core_busy - p.worker_cpu for p in rounds) / elapsed
        if others > 0.05:
            print(f"      CPU {WORKER_CPU} was {others:.0%} busy with other processes meanwhile")
    print(f"  goal: >= {GOAL} client-credential grants/s per core (3 x Keycloak's 120 per vCPU)")
    for route in GRANTS:
        rounds = phases[route]
        rate = statistics.median(p.rate for p in rounds)
        by_cpu = sum(p.ok for p in rounds) / sum(p.worker_cpu for p in rounds)
        failed = sum(p.result.errors for p in rounds)
        verdict = "PASS" if rate >= GOAL and not failed else "FAIL"
        why = f" ({failed} errors)" if failed else ""
        if verdict == "FAIL" and not failed and by_cpu >= GOAL:
            why = " (by the worker's CPU time it would pass: was its core shared, or idle?)"
        print(
            f"    {LABELS[route]:40s} {rate:5.0f} grants/s on one core: {verdict}{why}; "
            f"{by_cpu:.0f} per second of the worker's CPU time"
        )
    return errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="per route per round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database", choices=("sqlite", "postgres", "both"), default="both", help="default: both"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: where a grant's time goes, step by step, in-process (grants_profile)",
    )
    parser.add_argument("--requests", type=int, default=200, help="per route, with --profile")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or min(args.connections, args.rounds, args.requests) < 1:
        parser.error("--seconds must be positive; --connections, --rounds, --requests >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.profile:
        from benchmarks import grants_profile  # it builds on this module  # noqa: PLC0415

        grants_profile.main(args)
        return
    if pinned():
        os.sched_setaffinity(0, {LOAD_CPU})
    where = (
        f"auth worker on CPU {WORKER_CPU}, load generator (and PostgreSQL) on CPU {LOAD_CPU}"
        if pinned()
        else "one CPU: nothing pinned"
    )
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; {where}")
    print(
        f"rounds interleave {', '.join(ROUTES)}. req/s: successful answers, the median over "
        "rounds; x open: the median over rounds of the ratio to the open route within a round; "
        f"busy: CPU {WORKER_CPU}'s time the worker used; CPU ms, DB ms: the worker's and the "
        "database server's CPU time per successful request"
    )
    errors = 0
    if args.database in ("sqlite", "both"):
        sqlite = Database("SQLite (in the worker's process)", None)
        errors += report(sqlite, bench(sqlite, args), args)
    if args.database in ("postgres", "both"):
        with postgres() as pg:
            if isinstance(pg, str):
                print(f"\nPostgreSQL: not run: {pg}")
            else:
                errors += report(pg, bench(pg, args), args)
    if errors:
        print(f"\nTHIS RUN HAD ERRORS: {errors} requests did not get their 200 (see above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
