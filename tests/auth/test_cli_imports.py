"""``gatepass --help`` loads none of what only the commands themselves use.

Every ``gatepass`` call used to import the whole service first (SQLAlchemy, Alembic, FastAPI, the
app, argon2, zxcvbn...): seconds before anything happened, ``--help`` included. The commands now
import what they need when they run. Checked by what a fresh interpreter has loaded, not by time.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.procs import service_env

# What the operator command's help must not load: the database layer, the web framework and the
# service built on them, password hashing and its word lists, and the library (whose root loads
# the token verifier and httpx).
HEAVY = (
    "alembic",
    "argon2",
    "auth_service.app",
    "auth_service.config",
    "cryptography",
    "fastapi",
    "gatepass",
    "httpx",
    "pydantic",
    "pydantic_settings",
    "sqlalchemy",
    "starlette",
    "zxcvbn",
)

PROBE = """
import contextlib, io, json, sys
from auth_service.cli import app
with contextlib.redirect_stdout(io.StringIO()) as help_text:
    app(["--help"], prog_name="gatepass", standalone_mode=False)
heavy = [name for name in sys.argv[1:] if name in sys.modules]  # a submodule loads its package
print(json.dumps({"heavy": heavy, "help": help_text.getvalue()}))
"""


def test_the_help_of_the_operator_command_loads_nothing_heavy() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *HEAVY],
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert "keys" in seen["help"]  # the probe did print the help
    assert seen["heavy"] == []
