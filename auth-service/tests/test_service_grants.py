"""The grants of registered services: ``client_credentials`` (RFC 6749 §4.4), a token of the
service's own, and token exchange (RFC 8693), a token to act for the user who called it.

In-process: the real app over ASGI, a real SQLite file, the test's clock. Clients are registered
through the registry, and authenticate with the secret it made (HTTP Basic).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from api_users import bearer, jose_part
from asgi_clients import BASE_URL, client_from
from auth_apps import serving
from cryptography.hazmat.primitives.asymmetric import ec
from fake_clock import FakeClock
from service_clients import (
    ACCESS_TOKEN,
    ClientSecret,
    client_credentials,
    exchange,
    oauth_error,
    register,
    user_tokens,
)

from auth_service import accounts, grants
from auth_service.config import Settings
from auth_service.state import Services

MAIL = "mail-svc"  # serves "mail", calls video for users
VIDEO = "video-svc"  # serves "video", calls mail as itself


@pytest.fixture
async def mail(services: Services) -> ClientSecret:
    return await register(
        services,
        MAIL,
        audiences=["video"],
        scopes=["video:read", "mail:read"],
        resource="mail",
    )


@pytest.fixture
async def video(services: Services) -> ClientSecret:
    return await register(
        services,
        VIDEO,
        audiences=["mail", "video"],
        scopes=["mail:notify", "video:read"],
        resource="video",
    )


def claims_of(answer: httpx.Response) -> dict[str, Any]:
    return jose_part(answer.json()["access_token"], 1)


# --- client credentials --------------------------------------------------------------------------


async def test_a_service_gets_a_token_of_its_own(
    client: httpx.AsyncClient, services: Services, video: ClientSecret, clock: FakeClock
) -> None:
    answer = await client_credentials(client, video, scope="mail:notify", resource="mail")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert answer.headers["Cache-Control"] == "no-store"
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["scope"]) == ("Bearer", "mail:notify")
    assert body["expires_in"] == services.settings.service_token_ttl
    claims = claims_of(answer)
    assert claims["sub"] == claims["client_id"] == VIDEO
    assert (claims["aud"], claims["scope"]) == ("mail", "mail:notify")
    assert "sid" not in claims
    assert "act" not in claims
    assert claims["jti"]
    assert claims["iat"] == int(clock().timestamp())
    assert claims["exp"] - claims["iat"] == services.settings.service_token_ttl
    # What the mail edge will do with it: verify it for its own audience.
    principal = await grants.verifier_for(services, "mail").verify(body["access_token"])
    assert grants.is_service_token(principal)
    metrics = (await client.get("/metrics")).text
    assert 'gatepass_auth_tokens_issued_total{grant="client_credentials"} 1.0' in metrics


async def test_without_scope_or_audience_a_service_gets_all_it_may(
    client: httpx.AsyncClient, video: ClientSecret
) -> None:
    answer = await client_credentials(client, video)
    assert answer.status_code == 200, answer.text
    claims = claims_of(answer)
    assert claims["aud"] == ["mail", "video"]
    assert claims["scope"] == answer.json()["scope"] == "mail:notify video:read"
    by_audience = await client_credentials(client, video, audience=["video", "mail"])
    assert claims_of(by_audience)["aud"] == ["mail", "video"]


async def test_a_secret_in_the_form_works_as_well(
    client: httpx.AsyncClient, video: ClientSecret
) -> None:
    answer = await client_credentials(
        client, None, client_id=video.client_id, client_secret=video.secret, resource="mail"
    )
    assert answer.status_code == 200, answer.text
    assert claims_of(answer)["sub"] == VIDEO


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"scope": "mail:notify admin"}, "invalid_scope"),
        ({"scope": "mail:send"}, "invalid_scope"),
        ({"scope": "bad  scope"}, "invalid_scope"),
        ({"resource": "auth"}, "invalid_target"),
        ({"audience": "nosuch"}, "invalid_target"),
        ({"resource": ["mail", "auth"]}, "invalid_target"),
    ],
    ids=str,
)
async def test_more_than_the_service_may_hold_is_refused(
    client: httpx.AsyncClient, video: ClientSecret, form: dict[str, Any], error: str
) -> None:
    answer = await client_credentials(client, video, **form)
    assert answer.status_code == 400
    assert oauth_error(answer) == error
    assert "nosuch" not in answer.text


async def test_only_an_authenticated_registered_service_gets_one(
    settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = settings_for(clients={"legacy": "legacy-secret-0123456789"})
    async with serving(settings, clock) as app, client_from(app) as http:
        services: Services = app.state.services
        app_client = await register(
            services, "photo-app", kind="app", audiences=["video"], scopes=["video:read"]
        )
        service = await register(services, "svc", audiences=["mail"], scopes=["mail:notify"])
        as_app = await client_credentials(http, app_client)
        as_legacy = await client_credentials(
            http, httpx.BasicAuth("legacy", "legacy-secret-0123456789")
        )
        anonymous = await client_credentials(http, None)
        named_only = await client_credentials(http, None, client_id="svc")
        wrong_secret = await client_credentials(http, httpx.BasicAuth("svc", "not-the-secret"))
        good = await client_credentials(http, service)
    for refused in (as_app, as_legacy):
        assert refused.status_code == 400
        assert oauth_error(refused) == "unauthorized_client"
    for refused in (anonymous, named_only, wrong_secret):
        assert refused.status_code == 401
        assert oauth_error(refused) == "invalid_client"
    assert good.status_code == 200, good.text


# --- token exchange ------------------------------------------------------------------------------


async def test_a_service_exchanges_a_users_token_to_act_for_them(
    client: httpx.AsyncClient, services: Services, mail: ClientSecret, clock: FakeClock
) -> None:
    tokens = await user_tokens(client)
    subject = jose_part(tokens["access_token"], 1)
    clock.advance(100)  # the subject token's exp is now nearer than a full service-token lifetime
    answer = await exchange(
        client, mail, tokens["access_token"], audience="video", scope="video:read"
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert answer.headers["Cache-Control"] == "no-store"
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in", "scope"}
    assert (body["issued_token_type"], body["token_type"]) == (ACCESS_TOKEN, "Bearer")
    claims = claims_of(answer)
    assert claims["sub"] == subject["sub"]
    assert claims["sid"] == subject["sid"] == tokens["session_id"]
    assert claims["client_id"] == MAIL
    assert claims["act"] == {"sub": MAIL}
    assert (claims["aud"], claims["scope"], body["scope"]) == ("video", "video:read", "video:read")
    assert claims["exp"] == subject["exp"]  # capped by the subject token's
    assert body["expires_in"] == claims["exp"] - claims["iat"] == 200
    assert claims["jti"] != subject["jti"]
    principal = await grants.verifier_for(services, "video").verify(body["access_token"])
    assert not grants.is_service_token(principal)
    metrics = (await client.get("/metrics")).text
    assert 'gatepass_auth_tokens_issued_total{grant="token_exchange"} 1.0' in metrics


async def test_without_scope_an_exchange_gets_what_user_and_client_have_in_common(
    client: httpx.AsyncClient, mail: ClientSecret
) -> None:
    tokens = await user_tokens(client)  # mail:read mail:send video:read video:upload
    answer = await exchange(client, mail, tokens["access_token"], audience="video")
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == claims_of(answer)["scope"] == "mail:read video:read"


async def test_an_exchanged_token_lives_no_longer_than_a_service_token(
    settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = settings_for(access_token_ttl=900, service_token_ttl=60)
    async with serving(settings, clock) as app, client_from(app) as http:
        auth = await register(
            app.state.services,
            MAIL,
            audiences=["video"],
            scopes=["video:read"],
            resource="mail",
        )
        tokens = await user_tokens(http)
        answer = await exchange(http, auth, tokens["access_token"], resource="video")
    assert answer.status_code == 200, answer.text
    claims = claims_of(answer)
    assert claims["exp"] - claims["iat"] == answer.json()["expires_in"] == 60


async def test_an_exchanged_token_exchanged_again_nests_the_actors(
    client: httpx.AsyncClient, mail: ClientSecret, video: ClientSecret
) -> None:
    tokens = await user_tokens(client)
    first = await exchange(client, mail, tokens["access_token"], audience="video")
    second = await exchange(client, video, first.json()["access_token"], audience="mail")
    assert second.status_code == 200, second.text
    claims = claims_of(second)
    assert claims["act"] == {"sub": VIDEO, "act": {"sub": MAIL}}
    assert (claims["aud"], claims["scope"]) == ("mail", "video:read")
    assert claims["sid"] == tokens["session_id"]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"audience": "video", "scope": "video:read video:upload"}, "invalid_scope"),
        ({"audience": "video", "scope": "admin"}, "invalid_scope"),
        ({"audience": "video", "scope": "mail:notify"}, "invalid_scope"),
        ({"audience": "auth"}, "invalid_target"),
        ({"audience": ["video", "mail"]}, "invalid_target"),
        ({"resource": "nosuch"}, "invalid_target"),
        ({}, "invalid_request"),
        ({"audience": "video", "actor_token": "x", "actor_token_type": ACCESS_TOKEN}, None),
        ({"audience": "video", "requested_token_type": "urn:x:refresh_token"}, None),
        ({"audience": "video", "subject_token_type": "urn:x:id_token"}, None),
    ],
    ids=str,
)
async def test_an_exchange_beyond_what_the_client_may_is_refused(
    client: httpx.AsyncClient, mail: ClientSecret, form: dict[str, Any], error: str | None
) -> None:
    tokens = await user_tokens(client)
    answer = await exchange(client, mail, tokens["access_token"], **form)
    assert answer.status_code == 400
    assert oauth_error(answer) == (error or "invalid_request")
    assert "nosuch" not in answer.text


async def test_no_scope_in_common_is_invalid_scope(
    client: httpx.AsyncClient, services: Services
) -> None:
    auth = await register(
        services, "notifier", audiences=["mail"], scopes=["mail:notify"], resource="video"
    )
    tokens = await user_tokens(client)
    answer = await exchange(client, auth, tokens["access_token"], audience="mail")
    assert oauth_error(answer) == "invalid_scope"


async def test_a_subject_token_not_meant_for_the_client_is_invalid_grant(
    client: httpx.AsyncClient, mail: ClientSecret
) -> None:
    tokens = await user_tokens(client, resource=["auth", "video"])  # no "mail": not mail's
    answer = await exchange(client, mail, tokens["access_token"], audience="video")
    assert answer.status_code == 400
    assert oauth_error(answer) == "invalid_grant"
    assert "not meant for this client" in answer.json()["error_description"]


async def test_a_signed_out_subject_is_invalid_grant(
    client: httpx.AsyncClient, mail: ClientSecret
) -> None:
    tokens = await user_tokens(client)
    assert (await client.post("/logout", headers=bearer(tokens["access_token"]))).status_code == 204
    answer = await exchange(client, mail, tokens["access_token"], audience="video")
    assert answer.status_code == 400
    assert oauth_error(answer) == "invalid_grant"


async def test_a_revoked_subject_token_is_invalid_grant(
    client: httpx.AsyncClient, mail: ClientSecret
) -> None:
    tokens = await user_tokens(client)
    revoked = await client.post(
        "/revoke", data={"token": tokens["access_token"], "token_type_hint": "access_token"}
    )
    assert revoked.status_code == 200
    answer = await exchange(client, mail, tokens["access_token"], audience="video")
    assert oauth_error(answer) == "invalid_grant"


async def test_a_disabled_users_token_is_invalid_grant(
    client: httpx.AsyncClient, services: Services, mail: ClientSecret, clock: FakeClock
) -> None:
    tokens = await user_tokens(client)
    clock.advance(2)
    await accounts.set_disabled(services, jose_part(tokens["access_token"], 1)["sub"], True)
    answer = await exchange(client, mail, tokens["access_token"], audience="video")
    assert oauth_error(answer) == "invalid_grant"


@pytest.mark.parametrize("seconds", [301, 400], ids=["within the leeway", "beyond it"])
async def test_an_expired_subject_token_is_invalid_grant(
    client: httpx.AsyncClient, mail: ClientSecret, clock: FakeClock, seconds: int
) -> None:
    tokens = await user_tokens(client)
    clock.advance(seconds)
    answer = await exchange(client, mail, tokens["access_token"], audience="video")
    assert oauth_error(answer) == "invalid_grant"


async def test_a_forged_or_foreign_subject_token_is_invalid_grant(
    client: httpx.AsyncClient, mail: ClientSecret
) -> None:
    tokens = await user_tokens(client)
    header = jose_part(tokens["access_token"], 0)
    claims = jose_part(tokens["access_token"], 1)
    own_key = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims, own_key, algorithm="ES256", headers=header)
    foreign = jwt.encode(
        {**claims, "iss": "https://other.example"}, own_key, algorithm="ES256", headers=header
    )
    for token in (forged, foreign, "not-a-token"):
        answer = await exchange(client, mail, token, audience="video")
        assert answer.status_code == 400
        assert oauth_error(answer) == "invalid_grant"
        assert answer.json()["error_description"] == "The subject token is not valid."


async def test_a_service_token_cannot_be_exchanged(
    client: httpx.AsyncClient, mail: ClientSecret, video: ClientSecret
) -> None:
    own = await client_credentials(client, video, resource="mail")  # aud mail: mail's to accept
    answer = await exchange(client, mail, own.json()["access_token"], audience="video")
    assert oauth_error(answer) == "invalid_grant"


async def test_only_a_registered_service_with_its_own_audience_exchanges(
    client: httpx.AsyncClient, services: Services
) -> None:
    no_resource = await register(services, "worker", audiences=["video"], scopes=["video:read"])
    app_client = await register(
        services, "photo-app", kind="app", audiences=["video"], scopes=["video:read"]
    )
    tokens = await user_tokens(client)
    for auth in (no_resource, app_client):
        answer = await exchange(client, auth, tokens["access_token"], audience="video")
        assert answer.status_code == 400
        assert oauth_error(answer) == "unauthorized_client"
    anonymous = await exchange(client, None, tokens["access_token"], audience="video")
    assert anonymous.status_code == 401
    assert oauth_error(anonymous) == "invalid_client"


async def test_the_subject_token_is_never_echoed(
    client: httpx.AsyncClient, mail: ClientSecret
) -> None:
    tokens = await user_tokens(client, resource="video")
    answer = await exchange(client, mail, tokens["access_token"], audience="video")
    assert tokens["access_token"] not in answer.text
    assert BASE_URL not in answer.text
