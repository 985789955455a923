"""Benchmark the auth service: login latency and refresh-grant throughput, beside baselines.

    ./dev bench-auth [--seconds 8] [--connections 32]

Starts one auth service (one uvicorn worker, production argon2 parameters, SQLite) pinned to
core 0, and drives it from this process pinned to core 1. Figures are printed side by side with a
baseline measured in the same run, since absolute times on a shared 2-core machine are noise:

- login: time per request (one connection, sequential) against a bare argon2id verify in-process
  with the same parameters: what the HTTP, database and token work adds around the hash;
- refresh grant: requests per second against GET /healthz (an open route) on the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from argon2 import PasswordHasher, Type

from benchmarks import loadgen
from gatepass.launch import (
    Service,
    ServiceStartError,
    base_url,
    clean_env,
    free_port,
    python_service,
)

PASSWORD = "benchmark password, long and unique 7"  # noqa: S105 - a throwaway test account
ARGON2: dict[str, Any] = {"time_cost": 3, "memory_cost": 65536, "parallelism": 4}


def pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})


def start_service(data_dir: Path, port: int) -> Service:
    """The auth service, pinned to core 0 (given two cores), ready; else exit with its log."""
    env = clean_env(
        {
            "GATEPASS_AUTH_ENVIRONMENT": "development",
            "GATEPASS_AUTH_DATA_DIR": str(data_dir),
            "GATEPASS_AUTH_ISSUER": base_url(port),
            "GATEPASS_AUTH_LOG_LEVEL": "WARNING",
            "GATEPASS_AUTH_THROTTLE_IP_FREE": "100000",
        }
    )
    cmd = python_service("auth_service", port)
    if (os.cpu_count() or 1) > 1:
        cmd = ["taskset", "-c", "0", *cmd]
    service = Service(
        "auth service", cmd, base_url=base_url(port), log=data_dir / "auth.log", env=env
    )
    service.start()
    try:
        service.wait_ready("/readyz")
    except ServiceStartError as exc:
        service.stop()
        raise SystemExit(str(exc)) from None
    return service


def make_users(base: str, count: int) -> list[str]:
    emails = [f"bench-{i}-{secrets.token_hex(3)}@example.com" for i in range(count)]
    with httpx.Client(base_url=base, timeout=60) as client:
        for email in emails:
            client.post("/signup", json={"email": email, "password": PASSWORD}).raise_for_status()
    return emails


def login_latency(base: str, emails: list[str], rounds: int) -> list[float]:
    times = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for i in range(rounds):
            start = time.perf_counter()
            r = client.post("/login", json={"email": emails[i % len(emails)], "password": PASSWORD})
            times.append(time.perf_counter() - start)
            r.raise_for_status()
    return times


def raw_verify_latency(rounds: int) -> list[float]:
    hasher = PasswordHasher(type=Type.ID, **ARGON2)
    digest = hasher.hash(PASSWORD)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        hasher.verify(digest, PASSWORD)
        times.append(time.perf_counter() - start)
    return times


def refresh_tokens(base: str, emails: list[str], count: int) -> list[str]:
    with httpx.Client(base_url=base, timeout=60) as client:
        return [
            client.post(
                "/login", json={"email": emails[i % len(emails)], "password": PASSWORD}
            ).json()["refresh_token"]
            for i in range(count)
        ]


async def throughput(
    port: int, connections: int, seconds: float, tokens: list[str]
) -> dict[str, loadgen.Result]:
    healthz = loadgen.get("/healthz")

    def open_worker(_: int) -> loadgen.Worker:
        return lambda conn, result: loadgen.timed(conn, result, healthz)

    def refresh_worker(index: int) -> loadgen.Worker:
        chain = {"token": tokens[index]}

        async def step(conn: loadgen.Connection, result: loadgen.Result) -> None:
            form = f"grant_type=refresh_token&refresh_token={quote(chain['token'])}"
            body = await loadgen.timed(conn, result, loadgen.post_form("/token", form))
            data = json.loads(body)
            if "refresh_token" not in data:
                raise SystemExit(f"refresh failed: {data}")
            chain["token"] = data["refresh_token"]

        return step

    results = {}
    results["GET /healthz (open route)"] = await loadgen.run(
        "127.0.0.1", port, connections, seconds, open_worker
    )
    results["POST /token refresh_token grant"] = await loadgen.run(
        "127.0.0.1", port, connections, seconds, refresh_worker
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--logins", type=int, default=20)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_service(Path(tmp), port)
        try:
            pin(1)
            base = f"http://127.0.0.1:{port}"
            emails = make_users(base, 8)
            login_latency(base, emails, 3)  # warm-up
            login = login_latency(base, emails, args.logins)
            raw = raw_verify_latency(args.logins)
            tokens = refresh_tokens(base, emails, args.connections)
            results = asyncio.run(throughput(port, args.connections, args.seconds, tokens))
        finally:
            proc.stop()
    report(login, raw, results, args)


def report(
    login: list[float],
    raw: list[float],
    results: dict[str, loadgen.Result],
    args: argparse.Namespace,
) -> None:
    params = ", ".join(f"{k}={v}" for k, v in ARGON2.items())
    print(f"argon2id parameters: {params} (memory in KiB)")
    lm, rm = statistics.median(login), statistics.median(raw)
    print(f"login, one connection, {args.logins} requests: median {lm * 1000:.1f} ms")
    print(f"  baseline: bare argon2id verify in-process: median {rm * 1000:.1f} ms")
    print(f"  ratio login / bare verify: {lm / rm:.2f}")
    print(f"throughput, {args.connections} connections, {args.seconds:.0f} s each, one worker:")
    for name, r in results.items():
        print(
            f"  {name:34s} {r.rate:8.0f} req/s  p50 {r.percentile(0.5) * 1000:6.1f} ms  "
            f"p99 {r.percentile(0.99) * 1000:6.1f} ms  errors {r.errors}"
        )
    base, grant = results.values()
    print(f"  ratio refresh grant / open route: {grant.rate / base.rate:.2f}")


if __name__ == "__main__":
    main()
