"""A small closed-loop HTTP/1.1 load generator over keep-alive sockets.

httpx costs milliseconds of client CPU per call, which on a 2-core machine would
measure the client, not the server. This speaks just enough HTTP/1.1 (Content-Length bodies, no
chunking) to drive our own services, so the server is what saturates.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Request = tuple[str, str, bytes, dict[str, str]]  # method, path, body, headers


@dataclass
class Result:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def send(self, request: Request) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            raise RuntimeError("connection not open")
        method, path, body, headers = request
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        payload = await self.reader.readexactly(length) if length else b""
        return int(status_line.split()[1]), payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


Worker = Callable[[Connection, Result], Any]


async def run(
    host: str, port: int, connections: int, seconds: float, make_worker: Callable[[int], Worker]
) -> Result:
    """Run ``connections`` workers, each looping on its own keep-alive connection."""
    result = Result()
    stop_at = time.perf_counter() + seconds
    conns = [Connection(host, port) for _ in range(connections)]
    await asyncio.gather(*(c.open() for c in conns))

    async def loop(index: int, conn: Connection) -> None:
        worker = make_worker(index)
        while time.perf_counter() < stop_at:
            await worker(conn, result)

    start = time.perf_counter()
    await asyncio.gather(*(loop(i, c) for i, c in enumerate(conns)))
    result.elapsed = time.perf_counter() - start
    await asyncio.gather(*(c.close() for c in conns))
    return result


async def timed(conn: Connection, result: Result, request: Request, expect: int = 200) -> bytes:
    start = time.perf_counter()
    status, body = await conn.send(request)
    result.latencies.append(time.perf_counter() - start)
    result.requests += 1
    if status != expect:
        result.errors += 1
    return body


def get(path: str, headers: dict[str, str] | None = None) -> Request:
    return ("GET", path, b"", headers or {})


def post_json(path: str, data: dict[str, Any]) -> Request:
    return ("POST", path, json.dumps(data).encode(), {"Content-Type": "application/json"})


def post_form(path: str, form: str) -> Request:
    return ("POST", path, form.encode(), {"Content-Type": "application/x-www-form-urlencoded"})
