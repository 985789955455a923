"""Attacks on the service grants (client credentials, token exchange, client assertions), each
refused: found by a review that attacked them without having written them; every test failed
before its fix, or documents a defence worth keeping.

In-process: the real app over ASGI, a real SQLite file, the test's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from api_users import PASSWORD, bearer, jose_part, new_email, signup
from fake_clock import FakeClock
from service_clients import (
    INTROSPECTION_CLIENTS,
    Signer,
    asserted,
    client_credentials,
    exchange,
    introspect,
    mail_as_deployed,
    new_key,
    oauth_error,
    register,
    register_signer,
    set_disabled,
    token_request,
    user_tokens,
)

from auth_service import registry
from auth_service.clients import token_caller
from auth_service.config import Settings
from auth_service.errors import OAuthError
from auth_service.state import Services


@pytest.fixture
def auth_settings(settings_for: Callable[..., Settings]) -> Settings:
    return settings_for(introspection_clients=INTROSPECTION_CLIENTS)


# --- exchange: audience widening -----------------------------------------------------------------


async def test_an_exchange_cannot_turn_a_mail_only_token_into_one_for_the_auth_service(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Was a finding (medium): the user gave mail a token for ``mail`` alone (RFC 8707 at login);
    mail, registered with audience ``auth`` only to read the feed, exchanges it for ``auth`` and
    then acts as the user at the auth service, whose user routes need no scope: it lists the
    user's sessions (IPs, user agents) and can sign every one of them out."""
    mail = await mail_as_deployed(services)
    tokens = await user_tokens(client, resource=["mail"])
    assert jose_part(tokens["access_token"], 1)["aud"] == "mail"
    answer = await exchange(client, mail, tokens["access_token"], audience="auth")
    used = None
    if answer.status_code == 200:
        used = await client.get("/sessions", headers=bearer(answer.json()["access_token"]))
    assert answer.status_code == 400, (
        f"exchanged for aud auth; GET /sessions with it answered "
        f"{None if used is None else used.status_code}"
    )
    assert oauth_error(answer) == "invalid_target"


# --- the tokens of a disabled service ------------------------------------------------------------


async def test_a_disabled_services_exchanged_tokens_are_no_longer_active(
    client: httpx.AsyncClient, services: Services, clock: FakeClock
) -> None:
    """Was a finding (low-medium): disabling a service revokes its own tokens (a ``user`` event for
    its id), not those it exchanged for users (their ``sub`` is the user's): the disabled
    (compromised?) service keeps acting for users until they expire, and /introspect says
    active, though it says inactive for that client's service tokens."""
    mail = await mail_as_deployed(services)
    tokens = await user_tokens(client)
    exchanged = await exchange(client, mail, tokens["access_token"], audience="video")
    assert exchanged.status_code == 200, exchanged.text
    token = exchanged.json()["access_token"]
    await set_disabled(services, "mail-svc", True)
    clock.advance(2)
    assert (await introspect(client, token))["active"] is False


# --- user ids as client ids ----------------------------------------------------------------------


async def test_a_login_may_not_name_a_user_id_as_its_client(client: httpx.AsyncClient) -> None:
    """Was a finding (low, defence in depth): the rule that tells service tokens apart assumes no
    client id starts with ``usr_``; the registry refuses one, but a login names any unregistered
    public client, the user's own id included, and gets a token whose ``sub`` is its
    ``client_id``: only ``sid`` still tells it from a service token."""
    email = new_email()
    user_id = await signup(client, email)
    answer = await client.post(
        "/login", json={"email": email, "password": PASSWORD, "client_id": user_id}
    )
    if answer.status_code == 200:
        claims = jose_part(answer.json()["access_token"], 1)
        assert claims["sub"] != claims["client_id"], "a user token whose sub is its client_id"
    assert answer.status_code in (400, 401, 422)


# --- client assertions ---------------------------------------------------------------------------


async def test_an_assertion_with_an_enormous_integer_exp_is_refused_not_a_500(
    services: Services, clock: FakeClock
) -> None:
    """Was a finding (low): a JSON integer too large for a float makes ``math.isfinite`` raise
    OverflowError in ``clients._number``: a 500 instead of 401 ``invalid_client`` (the
    assertion must be signed by the client's key, so only the client can cause it)."""
    signer = await register_signer(services, clock)
    for claim in ("exp", "iat", "nbf"):
        enormous: dict[str, Any] = {claim: 10**400}
        form = asserted(signer.assertion(**enormous))
        with pytest.raises(OAuthError) as refused:
            await token_caller(services, token_request(), form, "192.0.2.1")
        assert (refused.value.error, refused.value.status) == ("invalid_client", 401), claim


async def test_defended_strangers_bad_assertions_do_not_lock_a_service_out(
    services: Services, clock: FakeClock
) -> None:
    """Defended: failed assertions naming ``video`` from many addresses count against the client
    id, but that counter is waived for an address with no failures of its own: the real service
    still gets its tokens (no lock-out of the token endpoint, nor of the feed it reads)."""
    signer = await register_signer(services, clock)
    forger = Signer("video", signer.kid, "ES256", new_key("ES256"), clock)
    for number in range(services.settings.throttle_client_free + 5):
        with pytest.raises(OAuthError):
            await token_caller(
                services, token_request(), asserted(forger.assertion()), f"198.51.100.{number}"
            )
    who = await token_caller(services, token_request(), asserted(signer.assertion()), "192.0.2.10")
    assert (who.client_id, who.authenticated) == ("video", True)


async def test_defended_an_assertion_replayed_after_its_row_is_pruned_is_refused(
    services: Services, clock: FakeClock
) -> None:
    """Defended: the jti row lives as long as the assertion is acceptable (its exp, or iat +
    five minutes, plus the leeway): once housekeeping drops it the assertion is too old."""
    signer = await register_signer(services, clock)
    form = asserted(signer.assertion(exp=int(clock().timestamp()) + 3600))
    assert (await token_caller(services, token_request(), form, "192.0.2.10")).authenticated
    clock.advance(300 + 30 + 1)
    async with services.sessions() as db:
        assert await registry.forget_expired_assertions(db, clock()) == 1
        await db.commit()
    with pytest.raises(OAuthError) as refused:
        await token_caller(services, token_request(), form, "192.0.2.10")
    assert refused.value.error == "invalid_client"


async def test_defended_a_service_token_cannot_be_widened_by_exchanging_it(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Defended: a service's own token has no session: it is no subject token, even for a
    client that serves its audience."""
    video = await register(
        services, "video-svc", audiences=["mail"], scopes=["mail:notify"], resource="video"
    )
    mail = await mail_as_deployed(services)
    own = await client_credentials(client, video, resource="mail")
    assert own.status_code == 200, own.text
    answer = await exchange(client, mail, own.json()["access_token"], audience="video")
    assert (answer.status_code, oauth_error(answer)) == (400, "invalid_grant")
