"""The auth service's own routes accept and refuse tokens exactly as an edge does.

Each case sends one token to the auth app's ``/me`` and to an edge built with the library
(``EdgeAuth``, audience ``auth``, realm ``gatepass``) that fetches its keys from the same auth
app: both must give the same answer (status, RFC 6750 challenge, problem ``code`` and
``reason``). In-process: both apps over ASGI, the test's clock for both.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from asgi_clients import BASE_URL, client_from
from fastapi import FastAPI

from auth_service.keys import JwksDocument
from auth_service.security import REALM
from auth_service.state import Services
from auth_service.verification import ManagerKeys
from gatepass import EdgeAuth, EdgeAuthSettings, Principal, install_problem_handlers
from gatepass.core.errors import UnknownKidError

PASSWORD = "correct horse battery staple 42"


@asynccontextmanager
async def edge_of(auth_app: FastAPI, clock: Callable[[], Any]) -> AsyncIterator[httpx.AsyncClient]:
    """An edge of audience ``auth`` whose issuer is ``auth_app``, on the same clock."""
    settings = EdgeAuthSettings(issuer=BASE_URL, audience="auth", realm=REALM)
    async with client_from(auth_app) as to_issuer:
        auth = EdgeAuth.from_settings(settings, client=to_issuer, clock=lambda: clock().timestamp())
        app = FastAPI(lifespan=auth.lifespan)
        install_problem_handlers(app)
        auth.install(app)

        @app.get("/me")
        async def me(user: Principal) -> dict[str, str]:
            return {"sub": user.sub}

        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as http:
                yield http


async def access_token(client: httpx.AsyncClient, email: str = "ann@example.com") -> str:
    signed_up = await client.post("/signup", json={"email": email, "password": PASSWORD})
    assert signed_up.status_code == 201, signed_up.text
    login = await client.post("/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    token: str = login.json()["access_token"]
    return token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _part(token: str, index: int) -> dict[str, Any]:
    segment = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


async def forged(svc: Services, token: str, claims: dict[str, Any], header: dict[str, Any]) -> str:
    """``token`` changed as asked and signed again with the service's own signing key (an
    ``alg`` of ``none`` gets no signature)."""
    key = await svc.keys.signing_key()
    payload = {**_part(token, 1), **claims}
    headers = {**_part(token, 0), **header}
    if headers["alg"] == "none":
        encoded = (json.dumps(headers).encode(), json.dumps(payload).encode())
        return f"{_b64(encoded[0])}.{_b64(encoded[1])}."
    return jwt.encode(payload, key.private_key, algorithm=key.alg, headers=headers)


def answer(response: httpx.Response) -> tuple[object, ...]:
    body = response.json()
    return (
        response.status_code,
        response.headers.get("www-authenticate"),
        body.get("code"),
        body.get("reason"),
    )


REFUSED: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    # case: (claims, header, expected reason)
    "typ not at+jwt": ({}, {"typ": "JWT"}, "wrong_typ"),
    "another audience": ({"aud": "mail"}, {}, "wrong_audience"),
    "unknown kid": ({}, {"kid": "someone-else"}, "unknown_kid"),
    "alg none": ({}, {"alg": "none"}, "bad_algorithm"),
    "expired beyond the leeway": ({"exp": -61, "iat": -400}, {}, "expired"),
    "another issuer": ({"iss": "https://evil.example"}, {}, "wrong_issuer"),
}


def _relative(claims: dict[str, Any], now: int) -> dict[str, Any]:
    """Times in ``claims`` are given relative to ``now``."""
    return {
        name: now + value if name in {"exp", "iat"} else value for name, value in claims.items()
    }


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
async def test_a_bad_token_gets_the_edge_s_answer(
    app: FastAPI, client: httpx.AsyncClient, services: Services, clock: Any, case: str
) -> None:
    claims, header, reason = REFUSED[case]
    token = await access_token(client)
    now = int(clock().timestamp())
    bad = await forged(services, token, _relative(claims, now), header)
    async with edge_of(app, clock) as edge:
        at_edge = await edge.get("/me", headers={"Authorization": f"Bearer {bad}"})
    here = await client.get("/me", headers={"Authorization": f"Bearer {bad}"})
    assert answer(here) == answer(at_edge)
    assert answer(here)[0::2] == (401, "invalid_token")
    assert answer(here)[3] == reason
    assert str(answer(here)[1]).startswith(f'Bearer realm="{REALM}", error="invalid_token"')


async def test_a_token_within_the_leeway_passes_at_both(
    app: FastAPI, client: httpx.AsyncClient, services: Services, clock: Any
) -> None:
    token = await access_token(client)
    now = int(clock().timestamp())
    late = await forged(services, token, {"exp": now - 30, "iat": now - 300}, {})
    async with edge_of(app, clock) as edge:
        at_edge = await edge.get("/me", headers={"Authorization": f"Bearer {late}"})
    here = await client.get("/me", headers={"Authorization": f"Bearer {late}"})
    assert (here.status_code, at_edge.status_code) == (200, 200)


NO_GOOD_TOKEN = {
    # case: (headers, status, code)
    "no token": ([], 401, "missing_token"),
    "not b64token": ([("Authorization", "Bearer a b")], 400, "invalid_request"),
    "empty": ([("Authorization", "Bearer ")], 400, "invalid_request"),
}


@pytest.mark.parametrize("case", NO_GOOD_TOKEN, ids=list(NO_GOOD_TOKEN))
async def test_a_request_without_one_good_token_gets_the_edge_s_answer(
    app: FastAPI, client: httpx.AsyncClient, clock: Any, case: str
) -> None:
    headers, status, code = NO_GOOD_TOKEN[case]
    async with edge_of(app, clock) as edge:
        at_edge = await edge.get("/me", headers=headers)
    here = await client.get("/me", headers=headers)
    assert answer(here) == answer(at_edge)
    assert (here.status_code, here.json()["code"]) == (status, code)


async def test_two_authorization_headers_are_an_invalid_request(
    app: FastAPI, client: httpx.AsyncClient, clock: Any
) -> None:
    token = await access_token(client)
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    async with edge_of(app, clock) as edge:
        at_edge = await edge.get("/me", headers=headers)
    here = await client.get("/me", headers=headers)
    assert answer(here) == answer(at_edge)
    assert (here.status_code, here.json()["code"]) == (400, "invalid_request")
    assert 'error="invalid_request"' in here.headers["www-authenticate"]


async def test_a_missing_scope_names_it_in_the_challenge(client: httpx.AsyncClient) -> None:
    token = await access_token(client)
    refused = await client.get("/admin/users", headers={"Authorization": f"Bearer {token}"})
    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")
    assert refused.json()["required_scopes"] == ["admin"]
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer realm="{REALM}", error="insufficient_scope"')
    assert challenge.endswith('scope="admin"')


async def test_a_revoked_key_s_token_is_refused_at_once(
    client: httpx.AsyncClient, services: Services
) -> None:
    token = await access_token(client)
    me = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/me", headers=me)).status_code == 200  # the verifier knows the key
    await services.keys.revoke(_part(token, 0)["kid"])
    refused = await client.get("/me", headers=me)
    assert (refused.status_code, refused.json()["reason"]) == (401, "unknown_kid")
    # The replacement key signs, and its tokens pass.
    login = await client.post("/login", json={"email": "ann@example.com", "password": PASSWORD})
    fresh = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await client.get("/me", headers=fresh)).status_code == 200


async def test_a_revoked_session_s_token_is_refused(client: httpx.AsyncClient) -> None:
    token = await access_token(client)
    me = {"Authorization": f"Bearer {token}"}
    assert (await client.post("/logout", headers=me)).status_code == 204
    refused = await client.get("/me", headers=me)
    assert (refused.status_code, refused.json()["reason"]) == (401, "revoked")
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


async def test_the_key_source_reads_the_manager_s_keys_every_time(services: Services) -> None:
    """No copy kept: a key the manager stops publishing is unknown at the next read, and the
    verifier's listeners (a verified-token cache) hear that it left."""
    published = await services.keys.jwks()

    class Manager:
        document = published

        async def jwks(self) -> JwksDocument:
            return self.document

    manager = Manager()
    keys = ManagerKeys(manager)
    removed: list[frozenset[str]] = []
    keys.add_listener(removed.append)
    kid = json.loads(published.body)["keys"][0]["kid"]
    assert (await keys.get(kid)).kid == kid
    assert keys.peek(kid, 0.0) is None  # never answered from memory
    manager.document = JwksDocument(body=b'{"keys": []}', etag='"empty"')
    with pytest.raises(UnknownKidError):
        await keys.get(kid)
    assert kid in removed[0]
