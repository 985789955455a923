"""``GET /revocations`` as the contract has it: snapshots and cursors, pages, the epoch, expiry,
the ETag and 304, refusals of malformed requests (400) and of readers without a known token
(401), and the settings of the readers. In-process over ASGI, on the test's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from api_users import bearer, new_user
from asgi_clients import client_from
from auth_apps import serving
from feed_helpers import MovableClock, caught_up, events_after, page, read
from pydantic import ValidationError

from auth_service import feed, revocation
from auth_service.app import create_app
from auth_service.config import Settings
from auth_service.models import RevocationEvent
from auth_service.routes.feed import FeedPage
from auth_service.state import Services
from gatepass.settings import describe_settings_error

MAIL_TOKEN = "mail-edge-feed-token-0123456789"
VIDEO_TOKEN = "video-edge-feed-token-9876543210"


async def add_events(services: Services, count: int, *, kind: str = "jti") -> None:
    """``count`` live events, written at once (what the feed reads is the table)."""
    now = services.clock()
    async with services.sessions() as db:
        db.add_all(
            RevocationEvent(
                kind=kind,
                value=f"{kind}-{n}",
                not_before=None,
                created_at=now,
                expires_at=now + timedelta(minutes=5),
            )
            for n in range(count)
        )
        await db.commit()


def epoch_of(cursor: str) -> str:
    return cursor.partition(":")[0]


def last_id(cursor: str) -> int:
    return int(cursor.partition(":")[2])


# --- snapshots, cursors, pages ---------------------------------------------------------------


async def test_a_first_read_is_a_snapshot_then_the_cursor_follows(
    client: httpx.AsyncClient,
) -> None:
    empty = await read(client)
    assert empty.status_code == 200
    assert empty.headers["Cache-Control"] == "no-store"
    body = empty.json()
    assert body == {"cursor": body["cursor"], "snapshot": True, "more": False, "events": []}
    assert empty.headers["ETag"] == f'"{body["cursor"]}"'
    FeedPage.model_validate(body)

    _, _, tokens = await new_user(client)
    await client.post("/logout", headers=bearer(tokens["access_token"]))
    after = await page(client, body["cursor"])
    assert after["snapshot"] is False
    assert [e["sid"] for e in after["events"]] == [tokens["session_id"]]
    assert last_id(after["cursor"]) == after["events"][-1]["id"]
    FeedPage.model_validate(after)

    # Nothing newer: no events, the same cursor.
    again = await page(client, after["cursor"])
    assert (again["events"], again["cursor"], again["snapshot"]) == ([], after["cursor"], False)
    # A fresh reader gets the same event in its snapshot.
    snapshot = await page(client)
    assert snapshot["snapshot"] is True
    assert snapshot["events"] == after["events"]


async def test_pages_of_a_thousand_snapshot_first(
    client: httpx.AsyncClient, services: Services
) -> None:
    await add_events(services, 2 * feed.PAGE_SIZE + 500)

    first = await page(client)
    second = await page(client, first["cursor"])
    third = await page(client, second["cursor"])

    assert [p["snapshot"] for p in (first, second, third)] == [True, False, False]
    assert [p["more"] for p in (first, second, third)] == [True, True, False]
    assert [len(p["events"]) for p in (first, second, third)] == [1000, 1000, 500]
    ids = [e["id"] for p in (first, second, third) for e in p["events"]]
    assert ids == sorted(set(ids))
    assert len(ids) == 2500
    assert {e["jti"] for p in (first, second, third) for e in p["events"]} == {
        f"jti-{n}" for n in range(2500)
    }


async def test_a_cursor_this_database_cannot_continue_gets_a_snapshot(
    client: httpx.AsyncClient, services: Services
) -> None:
    await add_events(services, 3)
    cursor = await caught_up(client)
    epoch, newest = epoch_of(cursor), last_id(cursor)

    other_database = await page(client, f"Zz{epoch[2:]}:{newest}")
    beyond = await page(client, f"{epoch}:{newest + 1}")
    far_beyond = await page(client, f"{epoch}:{'9' * 19}")
    continued = await page(client, f"{epoch}:{newest - 1}")

    for snapshot in (other_database, beyond, far_beyond):
        assert snapshot["snapshot"] is True
        assert len(snapshot["events"]) == 3
        assert snapshot["cursor"] == cursor
    assert continued["snapshot"] is False
    assert [e["id"] for e in continued["events"]] == [newest]


async def test_ids_are_never_given_twice_and_the_epoch_is_the_databases(
    settings_for: Callable[..., Settings], clock: MovableClock, tmp_path: Any
) -> None:
    """The newest event deleted, the next one still gets a new id (AUTOINCREMENT); the epoch
    survives a restart; another database has another epoch."""
    settings = settings_for()
    async with serving(settings, clock) as app, client_from(app) as client:
        services: Services = app.state.services
        await add_events(services, 2)
        before = await caught_up(client)
        clock.advance(600)  # both expire...
        async with services.sessions() as db:
            assert await revocation.forget_expired(db, clock()) == 2  # ...and are deleted
            await db.commit()
        await add_events(services, 1)
        after = await events_after(client, before)
        assert [e["id"] for e in after] == [last_id(before) + 1]
    async with serving(settings, clock) as app, client_from(app) as client:
        assert epoch_of(await caught_up(client)) == epoch_of(before)
    other = settings_for(data_dir=tmp_path / "another-database")
    async with serving(other, clock) as app, client_from(app) as client:
        assert epoch_of(await caught_up(client)) != epoch_of(before)


async def test_expired_events_are_left_out_and_passed_over(
    client: httpx.AsyncClient, services: Services, clock: MovableClock
) -> None:
    _, _, tokens = await new_user(client)
    cursor = await caught_up(client)
    await client.post("/logout", headers=bearer(tokens["access_token"]))
    # The logout event lives for the access-token lifetime plus a minute.
    clock.advance(services.settings.access_token_ttl + 61)

    snapshot = await page(client)
    after = await page(client, cursor)

    assert snapshot["events"] == []
    assert after["events"] == []
    assert last_id(after["cursor"]) > last_id(cursor)  # the cursor moves past it
    assert snapshot["cursor"] == after["cursor"]


# --- ETag, 304 and the long poll's end ---------------------------------------------------------


async def test_if_none_match_gets_304_while_nothing_is_newer(
    client: httpx.AsyncClient, services: Services
) -> None:
    cursor = await caught_up(client)
    etag = f'"{cursor}"'

    same = await read(client, cursor, wait="0", headers={"If-None-Match": etag})
    assert same.status_code == 304
    assert same.headers["ETag"] == etag
    assert same.headers["Cache-Control"] == "no-store"
    assert same.content == b""
    # Without a cursor the answer is a snapshot: never a 304.
    assert (await read(client, headers={"If-None-Match": etag})).status_code == 200

    await add_events(services, 1)
    newer = await read(client, cursor, wait="0", headers={"If-None-Match": etag})
    assert newer.status_code == 200
    assert len(newer.json()["events"]) == 1
    assert newer.headers["ETag"] != etag


async def test_a_long_poll_with_nothing_newer_answers_empty_after_its_wait(
    client: httpx.AsyncClient, clock: MovableClock
) -> None:
    cursor = await caught_up(client)
    etag = f'"{cursor}"'

    waited = await read(client, cursor, wait="12.5", headers={"If-None-Match": etag})

    # The service's sleep (the test clock's) passed the 12.5 s: an empty answer, not a 304.
    assert waited.status_code == 200
    assert waited.json() == {"cursor": cursor, "snapshot": False, "more": False, "events": []}
    assert 12.5 in clock.slept


# --- refusals ----------------------------------------------------------------------------------

MALFORMED = {
    "cursor": [
        "",
        "no-colon",
        "epoch:",
        ":12",
        "epoch:012",
        "epoch:-1",
        "epoch:1.5",
        "ep och:1",
        "epoch:1:2",
        "x" * 33 + ":1",
        "epoch:" + "1" * 20,
        "\u00e9poch:1",  # not ASCII
    ],
    "wait": ["", "-1", "30.5", "31", "abc", "nan", "inf", "1e3", "0x10", " 1", "1" * 11],
}


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in MALFORMED.items() for value in values]
)
async def test_a_malformed_cursor_or_wait_is_a_400_that_echoes_nothing(
    client: httpx.AsyncClient, name: str, value: str
) -> None:
    response = await client.get("/revocations", params={name: value})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_request"
    assert "WWW-Authenticate" not in response.headers
    if value.strip():
        assert value not in response.text


async def test_a_repeated_parameter_is_a_400(client: httpx.AsyncClient) -> None:
    cursor = await caught_up(client)
    repeated = await client.get(f"/revocations?cursor={cursor}&cursor={cursor}")
    assert repeated.status_code == 400
    assert "repeated" in repeated.json()["detail"]
    assert (await client.get("/revocations?wait=1&wait=1")).status_code == 400


@pytest.mark.parametrize("value", ["0", "30", "30.0", "0.25", "1e1", "2.5E-1"])
async def test_a_wait_from_0_to_30_is_taken(client: httpx.AsyncClient, value: str) -> None:
    assert (await read(client, wait=value)).status_code == 200


async def test_readers_need_a_configured_token(
    settings_for: Callable[..., Settings],
    clock: MovableClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gatepass.auth.feed")
    settings = settings_for(feed_read_tokens={"mail": MAIL_TOKEN, "video": VIDEO_TOKEN})
    async with serving(settings, clock) as app, client_from(app) as client:
        _, _, tokens = await new_user(client)
        missing = await read(client)
        unknown = await read(client, headers=bearer("not-a-feed-token-at-all"))
        access_token = await read(client, headers=bearer(tokens["access_token"]))
        basic = await read(client, headers={"Authorization": "Basic bWFpbDp4"})
        mail = await read(client, headers=bearer(MAIL_TOKEN))
        video = await read(client, headers=bearer(VIDEO_TOKEN))
        # Refused before anything else is looked at: no 400 for what an outsider sent.
        malformed_unknown = await read(client, "bad cursor", headers=bearer("nope-nope-nope"))
        metrics = (await client.get("/metrics")).text

    for refused in (missing, unknown, access_token, basic, malformed_unknown):
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith('Bearer realm="gatepass"')
        assert refused.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "missing_token"
    assert unknown.json()["reason"] == "unknown_feed_token"
    assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]
    assert (mail.status_code, video.status_code) == (200, 200)
    assert 'gatepass_auth_feed_requests_total{reader="mail",status="200"} 1.0' in metrics
    assert 'gatepass_auth_feed_requests_total{reader="unknown",status="401"} 5.0' in metrics
    assert any(getattr(r, "reader", None) == "video" for r in caplog.records)
    for token in (MAIL_TOKEN, VIDEO_TOKEN, "not-a-feed-token-at-all"):
        assert token not in caplog.text


async def test_in_production_without_readers_nobody_reads_and_the_start_says_so(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        environment="production",
        issuer="https://auth.example.com",
        kek="5f3c9a0e7d214b8c96e1a2f4d7b0c3e85a6f9d2c1b4e7a0d3f6c9b2e5a8d1f47",
        data_dir=tmp_path / "auth-data",
        argon2_time_cost=1,
        argon2_memory_cost=8192,
        argon2_parallelism=1,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_from(app) as client:
        assert (await read(client)).status_code == 401
        assert (await read(client, headers=bearer("any-token-at-all-1234"))).status_code == 401
    warnings = [r for r in caplog.records if "no revocation feed reader" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


def test_development_without_readers_is_anonymous_and_documented_so(
    settings_for: Callable[..., Settings],
) -> None:
    def security(settings: Settings) -> Any:
        operation = create_app(settings).openapi()["paths"]["/revocations"]["get"]
        return operation.get("security"), sorted(operation["responses"])

    anonymous, anonymous_answers = security(settings_for())
    protected, protected_answers = security(settings_for(feed_read_tokens={"mail": MAIL_TOKEN}))
    assert anonymous is None
    assert "401" not in anonymous_answers
    assert protected == [{"bearer": []}]
    assert "401" in protected_answers


@pytest.mark.parametrize(
    ("readers", "said"),
    [
        ({"mail": "short"}, "at least 16 characters"),
        ({"mail": "spaces are not sent" + "x" * 10}, "at least 16 characters"),
        ({"mail edge": MAIL_TOKEN}, "a reader name has"),
        ({"mail": MAIL_TOKEN, "video": MAIL_TOKEN}, "shares its token"),
    ],
)
def test_reader_settings_are_checked_and_never_echoed(
    settings_for: Callable[..., Settings], readers: dict[str, str], said: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        settings_for(feed_read_tokens=readers)
    message = describe_settings_error(refused.value)  # what gatepass-auth prints
    assert said in message
    for token in readers.values():
        assert token not in message
