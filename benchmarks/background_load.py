"""Load that runs in the background until told to stop: one edge route, one hot token.

    python -m benchmarks.background_load --url http://127.0.0.1:8001/inbox --tokens hot.txt

``benchmarks.revocation_bench`` keeps both edges busy for the whole revocation-delay measurement,
whose length is not known in advance, so the load runs until SIGINT and only then reports.
:class:`BackgroundLoad` runs wrk when it is installed (the edge benchmark's Lua script, whose
``done`` prints a ``WRK_JSON`` line, which wrk also calls on SIGINT); else this module's
:func:`main`: ``benchmarks.loadgen``'s keep-alive connections in a process of their own, printing
the same line, so the load never shares an interpreter (and its GIL) with the benchmark's pollers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from benchmarks import loadgen
from benchmarks.edge_bench import WRK_SCRIPT

STOP_GRACE = 15.0  # seconds for the load to report after SIGINT


@dataclass(frozen=True)
class LoadReport:
    """What one background load did, as its ``WRK_JSON`` line says."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def valid(self) -> bool:
        """Every answer a 2xx: the edge was loaded with accepted tokens the whole time."""
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0


class BackgroundLoad:
    """``connections`` keep-alive connections sending ``GET url`` with the token of the file
    ``tokens``, from start until :meth:`stop` (or the end of the ``with`` block).

    ``tool`` is ``wrk`` or ``loadgen``; ``prefix`` pins it (``taskset -c N``). Its output goes to
    ``log``, from which :meth:`stop` reads the report.
    """

    def __init__(
        self,
        url: str,
        tokens: Path,
        connections: int,
        *,
        tool: str,
        prefix: list[str],
        log: Path,
    ) -> None:
        self.url = url
        self.log = log
        if tool == "wrk":
            script = log.with_suffix(".lua")
            script.write_text(WRK_SCRIPT)
            path = urlsplit(url).path
            self.command = [*prefix, "wrk", "-t1", f"-c{connections}", "-d3600s"]
            self.command += [
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
                "--",
                path,
                str(tokens),
                "0",
            ]
        else:
            self.command = [*prefix, sys.executable, "-m", "benchmarks.background_load"]
            self.command += ["--url", url, "--tokens", str(tokens)]
            self.command += ["--connections", str(connections)]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(  # noqa: S603 - wrk or this interpreter, fixed args
                self.command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )

    def stop(self) -> LoadReport:
        """SIGINT, then its report; a load that does not report in time is killed (an error)."""
        process = self._process
        if process is None:
            raise RuntimeError("the background load was never started")
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None
        output = self.log.read_text(errors="replace")
        line = next((x for x in output.splitlines() if x.startswith("WRK_JSON ")), None)
        if line is None:
            raise SystemExit(f"the load on {self.url} gave no report:\n{output[-2000:]}")
        data = json.loads(line.removeprefix("WRK_JSON "))
        return LoadReport(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            non_2xx=data["status_errors"],
            socket_errors=data["socket_errors"],
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:  # not stopped (an error): just end it
            self._process.kill()
            self._process.wait()
            self._process = None


# -- the fallback when wrk is missing: this module as a process -----------------------------------


async def drive(url: str, token: str, connections: int) -> tuple[loadgen.Result, int]:
    """Until SIGINT: the result and the socket errors (each ends its connection, which reopens)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = loadgen.get(parts.path, {"Authorization": f"Bearer {token}"})
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stopping.set)
    result, socket_errors = loadgen.Result(), 0

    async def one_connection() -> None:
        nonlocal socket_errors
        while not stopping.is_set():
            conn = loadgen.Connection(host, port)
            try:
                await conn.open()
                while not stopping.is_set():
                    await loadgen.timed(conn, result, request)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                socket_errors += 1
            finally:
                with contextlib.suppress(OSError):
                    await conn.close()

    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    result.elapsed = asyncio.get_running_loop().time() - started
    return result, socket_errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--tokens", type=Path, required=True, help="a file: the token, one line")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    token = args.tokens.read_text().split()[0]
    result, socket_errors = asyncio.run(drive(args.url, token, args.connections))
    report = {
        "requests": result.requests,
        "duration_us": round(result.elapsed * 1e6),
        "status_errors": result.errors,
        "socket_errors": socket_errors,
        "p50_us": round(result.percentile(0.5) * 1e6),
        "p99_us": round(result.percentile(0.99) * 1e6),
    }
    print("WRK_JSON " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
