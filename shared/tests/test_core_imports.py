"""The token contract loads no web framework: a worker or a CLI can verify tokens without one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FRAMEWORKS = (
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic_settings",
    "prometheus_client",
    "uvicorn",
)


def _top_level_modules_after(statement: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running ``statement``."""
    report = "import json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    probe = f"{statement}\n{report}"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("statement", ["import gatepass.core", "import gatepass"])
def test_the_token_layer_imports_no_framework(statement: str) -> None:
    loaded = _top_level_modules_after(statement)
    assert "gatepass" in loaded
    assert loaded.isdisjoint(FRAMEWORKS), sorted(loaded & set(FRAMEWORKS))
    # Client assertions are signed with cryptography itself: PyJWT is for the tests only.
    assert "jwt" not in loaded


def test_the_fastapi_layer_is_still_reachable_from_the_root() -> None:
    loaded = _top_level_modules_after("from gatepass import Principal, GatepassRoute")
    assert "fastapi" in loaded
