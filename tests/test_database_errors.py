"""A failing statement never puts a value in an error message or a log, on SQLite or PostgreSQL.

Every engine comes from :func:`gatepass.db.create_engine`: bound parameters are hidden, and
PostgreSQL's DETAIL (which quotes the failing row, a password hash included) is dropped, so the
traceback a service logs for an unexpected database error names the statement and the constraint,
never an email, a hash or a token.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gatepass.db import create_engine, sqlite_url

EMAIL = "victim@example.com"
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
OTHER_HASH = "$argon2id$v=19$m=65536,t=3,p=4$b3RoZXJzYWx0$b3RoZXJoYXNo"

log = logging.getLogger("tests.database_errors")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "data", "errors")
    else:
        url = request.getfixturevalue("postgres_url")
    made = create_engine(url)
    try:
        async with made.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(40) NOT NULL "
                    "UNIQUE, password_hash VARCHAR(255) NOT NULL)"
                )
            )
            await conn.execute(
                text("INSERT INTO users (id, email, password_hash) VALUES (1, :e, :h)"),
                {"e": EMAIL, "h": HASH},
            )
        yield made
    finally:
        await made.dispose()


async def failing(engine: AsyncEngine, statement: str, **values: object) -> DBAPIError:
    with pytest.raises(DBAPIError) as failed:
        async with engine.begin() as conn:
            await conn.execute(text(statement), values)
    return failed.value


def everything_said(error: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    """The message, the whole chained traceback, and what a logged exception looks like."""
    with caplog.at_level(logging.ERROR, logger=log.name):
        log.error("unhandled error", exc_info=error)
    return "\n".join([str(error), "".join(traceback.format_exception(error)), caplog.text])


async def test_a_unique_violation_names_no_value(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    error = await failing(
        engine,
        "INSERT INTO users (id, email, password_hash) VALUES (2, :e, :h)",
        e=EMAIL,
        h=OTHER_HASH,
    )
    said = everything_said(error, caplog)
    assert "users" in said  # the table or constraint is still named
    for value in (EMAIL, OTHER_HASH, "argon2id"):
        assert value not in said


async def test_a_not_null_violation_names_no_value(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # PostgreSQL's DETAIL would be "Failing row contains (2, other@example.com, null)".
    error = await failing(
        engine,
        "INSERT INTO users (id, email, password_hash) VALUES (2, :e, NULL)",
        e="other@example.com",
    )
    said = everything_said(error, caplog)
    assert "other@example.com" not in said


async def test_a_value_the_database_refuses_is_not_repeated(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    too_long = "secret-" + "x" * 60  # over VARCHAR(40): PostgreSQL refuses it, SQLite stores it
    with_nul = "nul\x00" + HASH  # PostgreSQL refuses NUL in text
    statement = "UPDATE users SET email = :e, password_hash = :h WHERE id = 1"
    if engine.dialect.name != "postgresql":
        statement = "INSERT INTO users (id, email, password_hash) VALUES (1, :e, :h)"
    error = await failing(engine, statement, e=too_long, h=with_nul)
    said = everything_said(error, caplog)
    assert "SQL parameters hidden" in str(error)
    for value in (too_long, HASH, "argon2id"):
        assert value not in said


async def test_a_value_the_driver_cannot_send_is_not_repeated(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # asyncpg would say "invalid input for query argument $1: 'secret-...' (...)".
    secret = "secret-token-" + "7" * 20
    error = await failing(engine, "UPDATE users SET id = :v WHERE id = 1", v=secret)
    said = everything_said(error, caplog)
    assert secret not in said
    assert "users" in said
