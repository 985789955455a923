"""Run the ``gatepass`` operator command against a test's auth settings."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.procs import service_env


def cli(
    env: Mapping[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``gatepass ARGS...`` as a process, whatever its exit code."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("gatepass")), *args],
        env=service_env(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_cli(env: Mapping[str, str], *args: str, stdin: str | None = None) -> str:
    """``gatepass ARGS...``, which must succeed; its standard output."""
    result = cli(env, *args, stdin=stdin)
    assert result.returncode == 0, (
        f"gatepass {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout
