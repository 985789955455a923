"""Run the ``gatepass`` operator command against a test's auth settings."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.procs import service_env


def run_cli(env: Mapping[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("gatepass")), *args],
        env=service_env(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"gatepass {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout
