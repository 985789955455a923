"""The auth service's settings for tests that run its app in-process, on SQLite or PostgreSQL.

``auth_settings(tmp_path, database_url, **overrides)``: development mode, issuer
:data:`BASE_URL`, a fresh data folder, cheap argon2 (tests do not wait on hashing), and the
database ``database_url`` names (``None``: SQLite in the data folder; see the ``database_url``
fixture in ``tests/conftest.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auth_service.config import Settings

BASE_URL = "http://auth.test"


def auth_settings(tmp_path: Path, database_url: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "development",
        "issuer": BASE_URL,
        "data_dir": tmp_path / "auth-data",
        "database_url": database_url,
        "argon2_time_cost": 1,
        "argon2_memory_cost": 8192,
        "argon2_parallelism": 1,
        **overrides,
    }
    return Settings(**values)
