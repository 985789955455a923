"""The last-known-good key set on disk, so an edge can start while the issuer is down.

Written after every successful fetch, atomically (a temporary file in the same folder, flushed,
then ``os.replace``), so a crash mid-write leaves the previous copy whole. Read once at start. A
file that cannot be read or parsed is ignored with a warning: it only ever saves a start, never
blocks one. Only the canonical public members of accepted keys are written.

Whoever can write this file can add keys the edge will trust, until max staleness: keep it in a
folder only the service user can write. The functions here block; the key set runs them in a
thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("gatepass.core.jwks")

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Snapshot:
    """A key set as last confirmed by the issuer at ``validated_at`` (epoch seconds)."""

    source: str
    validated_at: float
    ttl: float
    etag: str | None
    keys: Sequence[Mapping[str, Any]]

    def to_json(self) -> bytes:
        body = {"version": FORMAT_VERSION, **asdict(self), "keys": list(self.keys)}
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Snapshot:
        """Parse and check the shape; raise ``ValueError`` on anything unexpected."""
        body = orjson.loads(data)  # a ValueError for anything not JSON, however deep
        if not isinstance(body, dict) or body.get("version") != FORMAT_VERSION:
            raise ValueError("unknown format")
        snapshot = cls(
            source=_typed(body, "source", str),
            validated_at=float(_typed(body, "validated_at", (int, float))),
            ttl=float(_typed(body, "ttl", (int, float))),
            etag=body.get("etag") if isinstance(body.get("etag"), str) else None,
            keys=_typed(body, "keys", list),
        )
        if not (math.isfinite(snapshot.validated_at) and math.isfinite(snapshot.ttl)):
            raise ValueError("times are not finite")
        return snapshot


def _typed(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name!r} is missing or of the wrong type")
    return value


def read_snapshot(path: Path) -> Snapshot | None:
    """The copy at ``path``, or ``None`` if there is none or it is unusable (with a warning)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning(
            "cannot read the last-known-good JWKS", extra={"path": str(path), "error": str(exc)}
        )
        return None
    try:
        return Snapshot.from_json(data)
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning(
            "ignoring a corrupt last-known-good JWKS",
            extra={"path": str(path), "error": str(exc)},
        )
        return None


def write_snapshot(path: Path, snapshot: Snapshot) -> None:
    """Replace the copy at ``path`` atomically; raise ``OSError`` if the disk says no."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(snapshot.to_json())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
