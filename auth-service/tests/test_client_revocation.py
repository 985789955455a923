"""Disabling or removing a registered client ends every token issued to it up to then: its own
service tokens (``sub`` = ``client_id`` = the client) and the tokens it got by token exchange for
users (``sub`` the user's, ``client_id`` the client's). A ``client`` revocation event says so, to
the edges through the feed and to the issuer's own checks (``/introspect``, the subject token of
an exchange); the ``user`` event for the client's id is still recorded, for older edges.

In-process: the real app over ASGI, a real SQLite file, the test's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from api_users import jose_part
from fake_clock import FakeClock
from service_clients import (
    INTROSPECTION_CLIENTS,
    ClientSecret,
    add_client,
    client_credentials,
    exchange,
    introspect,
    mail_as_deployed,
    oauth_error,
    register,
    service_token,
    set_disabled,
    user_tokens,
)

from auth_service import grants, registry
from auth_service.config import Settings
from auth_service.routes.feed import FeedPage
from auth_service.state import Services
from gatepass import DenySet, RevokedTokenError
from gatepass.core.feed import parse_answer

MAIL = "mail-svc"
VIDEO = "video-svc"


@pytest.fixture
def auth_settings(settings_for: Callable[..., Settings]) -> Settings:
    return settings_for(introspection_clients=INTROSPECTION_CLIENTS)


@pytest.fixture
async def mail(services: Services) -> ClientSecret:
    """Mail as deployed: it reads the feed with a token of its own and calls video for users."""
    return await mail_as_deployed(services)


async def exchanged_for_video(http: httpx.AsyncClient, client: ClientSecret, token: str) -> str:
    answer = await exchange(http, client, token, audience="video", scope="video:read")
    assert answer.status_code == 200, answer.text
    exchanged: str = answer.json()["access_token"]
    return exchanged


async def feed_token(http: httpx.AsyncClient, client: ClientSecret) -> str:
    return await service_token(http, client, resource="auth", scope="revocations:read")


async def active(http: httpx.AsyncClient, token: str) -> bool:
    found: bool = (await introspect(http, token))["active"]
    return found


async def client_events(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The ``client`` events of a snapshot of the feed (anonymous in development)."""
    answer = await http.get("/revocations")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    FeedPage.model_validate(body)
    return [event for event in body["events"] if event["kind"] == "client"]


async def test_disabling_a_client_ends_its_own_tokens_and_those_it_exchanged(
    client: httpx.AsyncClient, services: Services, clock: FakeClock, mail: ClientSecret
) -> None:
    video = await register(
        services, VIDEO, audiences=["mail"], scopes=["video:read"], resource="video"
    )
    users = (await user_tokens(client))["access_token"]
    own = await feed_token(client, mail)
    exchanged = await exchanged_for_video(client, mail, users)
    # Video, called by mail with that token, may exchange it in turn: the path works.
    onward = await exchange(client, video, exchanged, audience="mail", scope="video:read")
    assert onward.status_code == 200, onward.text
    assert [await active(client, t) for t in (users, own, exchanged)] == [True, True, True]

    await set_disabled(services, MAIL, True)
    clock.advance(2)

    assert await active(client, own) is False
    assert await active(client, exchanged) is False
    assert await active(client, users) is True  # the user's own token is no client's of mail
    # The issuer's own check of a subject token: what mail exchanged no longer counts.
    again = await exchange(client, video, exchanged, audience="mail", scope="video:read")
    assert (again.status_code, oauth_error(again)) == (400, "invalid_grant")


async def test_a_disabled_client_gets_no_new_token_of_either_kind(
    client: httpx.AsyncClient, services: Services, mail: ClientSecret
) -> None:
    users = (await user_tokens(client))["access_token"]
    await set_disabled(services, MAIL, True)
    own = await client_credentials(client, mail, resource="auth", scope="revocations:read")
    exchanged = await exchange(client, mail, users, audience="video", scope="video:read")
    for refused in (own, exchanged):
        assert (refused.status_code, oauth_error(refused)) == (401, "invalid_client")


async def test_a_re_enabled_client_uses_new_tokens_the_old_ones_stay_ended(
    client: httpx.AsyncClient, services: Services, clock: FakeClock, mail: ClientSecret
) -> None:
    users = (await user_tokens(client))["access_token"]
    before = await exchanged_for_video(client, mail, users)
    await set_disabled(services, MAIL, True)
    clock.advance(2 + registry.CLIENT_CACHE_SECONDS)  # past the revocation's reach
    await set_disabled(services, MAIL, False)
    after = await exchanged_for_video(client, mail, users)
    assert await active(client, before) is False
    assert await active(client, after) is True
    assert await active(client, await feed_token(client, mail)) is True


async def test_the_feed_serves_the_client_event_and_an_edge_refuses_with_it(
    client: httpx.AsyncClient, services: Services, clock: FakeClock, mail: ClientSecret
) -> None:
    users = (await user_tokens(client))["access_token"]
    exchanged = await exchanged_for_video(client, mail, users)
    assert await client_events(client) == []
    disabled_at = int(clock().timestamp())
    await set_disabled(services, MAIL, True)

    events = await client_events(client)
    settings = services.settings
    longest = max(settings.access_token_ttl, settings.service_token_ttl)
    assert [{k: v for k, v in e.items() if k != "id"} for e in events] == [
        {
            "kind": "client",
            "client_id": MAIL,
            # Every token issued up to now, and while another replica's cache may still hold
            # the client as enabled.
            "not_before": disabled_at + int(registry.CLIENT_CACHE_SECONDS) + 1,
            "expires_at": disabled_at + longest + 60,  # the longest it could hold, and the leeway
        }
    ]
    # The user event for its id is still there, for edges that do not know the kind.
    snapshot = (await client.get("/revocations")).json()["events"]
    assert [(e["kind"], e["sub"]) for e in snapshot if e["kind"] == "user"] == [("user", MAIL)]

    # An edge of this library, reading that answer, refuses the exchanged token.
    deny = DenySet()
    deny.extend(parse_answer((await client.get("/revocations")).content).events, disabled_at)
    principal = await grants.verifier_for(services, "video").verify(exchanged)
    assert principal.sub != MAIL
    with pytest.raises(RevokedTokenError):
        deny.check(principal, jose_part(exchanged, 0)["kid"], clock().timestamp())


async def test_removing_a_client_ends_its_tokens_a_public_one_records_nothing(
    client: httpx.AsyncClient, services: Services, clock: FakeClock, mail: ClientSecret
) -> None:
    users = (await user_tokens(client))["access_token"]
    exchanged = await exchanged_for_video(client, mail, users)
    await add_client(
        services,
        client_id="webapp",
        kind="app",
        auth_method="none",
        audiences=["mail"],
        scopes=["mail:read"],
    )
    async with services.sessions() as db:
        await registry.remove(db, services.settings, "webapp", now=clock())
        await registry.remove(db, services.settings, MAIL, now=clock())
    clock.advance(2)
    assert [event["client_id"] for event in await client_events(client)] == [MAIL]
    assert await active(client, exchanged) is False
