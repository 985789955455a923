"""node for the tests that drive client libraries nobody here wrote (``tests/interop/node``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent.parent / "interop" / "node"


def node_or_skip() -> str:
    """node, with the packages of ``package-lock.json`` installed on first use; a skip where node
    is missing (a failure under ``GATEPASS_REQUIRE_INTEROP=1``, which CI sets)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("GATEPASS_REQUIRE_INTEROP") == "1":
            pytest.fail("node and npm are required here (GATEPASS_REQUIRE_INTEROP=1)")
        pytest.skip("node is not installed")
    wanted = ("oauth4webapi", "openid-client")
    if not all((NODE_DIR / "node_modules" / name).is_dir() for name in wanted):
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
        )
    return node
