"""Shared infrastructure for tests that run real services: child processes and PostgreSQL.

The fixtures built on these live in ``tests/conftest.py``.
"""

from tests.support.pg import PostgresServer, PostgresUnavailable, ThrowawayCluster, asyncpg_dsn
from tests.support.procs import (
    ServiceFactory,
    ServiceProcess,
    ServiceStartError,
    free_port,
    service_env,
)

__all__ = [
    "PostgresServer",
    "PostgresUnavailable",
    "ServiceFactory",
    "ServiceProcess",
    "ServiceStartError",
    "ThrowawayCluster",
    "asyncpg_dsn",
    "free_port",
    "service_env",
]
