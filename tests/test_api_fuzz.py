"""Standing proof that the three services' OpenAPI documents tell the truth, and that no input
makes a service fail: a schemathesis run over each document, on SQLite and on PostgreSQL.

Each service runs in-process (schemathesis drives the ASGI app, lifespan included, on an event loop
of its own), with real authentication so protected routes are exercised past their 401:

- the auth service signs a new admin up (``accounts.signup(..., roles=["admin"])``) and logs them
  in for every generated request that needs a token, through a route only this test adds: the
  generated requests log out, log out everywhere, disable and demote, and must not end the run's
  own access; ``/introspect`` gets a configured client's credentials;
- each edge takes tokens from a :class:`~gatepass.testing.FakeIssuer`, with all of its scopes.

Every answer is checked against the document: no server error, a documented status, the documented
media type, a body matching the documented schema, the documented headers; and three checks that
re-send the request: without its credentials (a protected route must refuse), with data the
document calls invalid (it must be refused), without a required header.

Bounded and repeatable: a few examples per operation (positive and negative), derandomized with a
fixed seed, no example database, no shrinking. A quarter of the text and integer inputs come from
what the red team sent (NUL and other control characters, over-long text, integers past 64 bits).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI, Request
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from auth_service import accounts, devices
from auth_service.app import create_app as create_auth_app
from auth_service.config import Settings as AuthSettings
from auth_service.state import Services
from edge_service_mail.app import create_app as create_mail_app
from edge_service_mail.config import MailSettings
from edge_service_video.app import create_app as create_video_app
from edge_service_video.config import VideoSettings
from gatepass.openapi import BEARER, CLIENT_BASIC
from gatepass.testing import FakeIssuer
from tests.support.pg import PostgresServer

MAX_EXAMPLES = 15
SEED = 20_309  # issue 9

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
    negative_data_rejection,
    missing_required_header,
]

# What the red team sent (issue 9), drawn for a quarter of the text and integer inputs: NUL and
# other control characters, text over any column, integers past 64 bits.
HOSTILE_TEXT = [
    "nul\u0000byte",
    "\u0000",
    "cr\r\nlf",
    "esc\u001b[0m",
    "\u202eright-to-left",
    "x" * 1100,
]
HOSTILE_INTEGERS = [2**63, 2**64, -(2**63) - 1, 10**30]
HOSTILE_SHARE = 0.25


def _config(document: dict[str, Any]) -> Any:
    """The run's settings for one document: bounded, derandomized, no example database."""
    hostile_text = {"dictionary": "hostile-text", "probability": HOSTILE_SHARE}
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            "dictionaries": {
                "hostile-text": {"values": HOSTILE_TEXT},
                "hostile-integers": {"values": HOSTILE_INTEGERS},
            },
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "no-shrink": True,
                "dictionaries": {
                    "string": hostile_text,
                    "integer": {"dictionary": "hostile-integers", "probability": HOSTILE_SHARE},
                },
            },
            # Bodies take dictionaries per field: every text field of every JSON body.
            "parameters": {key: hostile_text for key in sorted(_body_text_fields(document))},
            "phases": {"stateful": {"enabled": False}},
        }
    )


def _body_text_fields(document: dict[str, Any]) -> set[str]:
    """``body.<field>`` (``body.<field>[*]`` for a list of text) of every JSON request body."""
    schemas = document.get("components", {}).get("schemas", {})
    fields: set[str] = set()
    for item in document["paths"].values():
        for operation in item.values():
            content = operation.get("requestBody", {}).get("content", {})
            body = content.get("application/json", {}).get("schema", {})
            body = schemas.get(body.get("$ref", "").rsplit("/", 1)[-1], body)
            for name, field in body.get("properties", {}).items():
                if _is_text(field):
                    fields.add(f"body.{name}")
                elif _is_text(field.get("items", {})):
                    fields.add(f"body.{name}[*]")
    return fields


def _is_text(field: dict[str, Any]) -> bool:
    kinds = [field, *field.get("anyOf", [])]
    return any(kind.get("type") == "string" for kind in kinds)


PASSWORD = "correct horse battery staple 42"
INTROSPECTION_CLIENT = ("fuzz-client", "fuzz-client-secret")
MINT_PATH = "/__fuzz__/token"
EDGE_SUBJECT = "fuzz-user"


@dataclass
class Target:
    """A running service: its app, and the headers a request to an operation carries."""

    app: FastAPI
    headers_for: Callable[[Any], dict[str, str]]


def _security(operation: Any) -> list[dict[str, list[str]]]:
    return list(operation.definition.raw.get("security", []))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database(request: pytest.FixtureRequest) -> Iterator[Callable[[], str | None]]:
    """Where a service under test keeps its data: ``None`` (SQLite in its data folder), or a
    fresh PostgreSQL database per service, dropped at the end."""
    if request.param == "sqlite":
        yield lambda: None
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    made: list[str] = []

    def fresh() -> str:
        made.append(server.create_database())
        return made[-1]

    yield fresh
    asgi.shutdown_lifespans()  # the apps' engines go before their databases do
    for url in made:
        server.drop_database(url)


# -- the auth service -------------------------------------------------------------------------


def _auth_settings(data_dir: Path, database_url: str | None = None) -> AuthSettings:
    client_id, secret = INTROSPECTION_CLIENT
    return AuthSettings(
        environment="development",
        issuer="http://auth.test",
        data_dir=data_dir,
        database_url=database_url,
        argon2_time_cost=1,
        argon2_memory_cost=8192,
        argon2_parallelism=1,
        introspection_clients={client_id: secret},
        # Every request comes from one address, and the generated ones fail logins, signups and
        # client authentications: past an allowance even right credentials get 429 (documented),
        # and whether a check's probe or a success below landed before or after that would
        # depend on the clock. The throttles have their own tests.
        throttle_ip_free=1_000_000,
        throttle_pair_free=1_000_000,
        throttle_signup_free=1_000_000,
        throttle_client_ip_free=1_000_000,
        throttle_client_free=1_000_000,
    )


@pytest.fixture(scope="module")
def auth_service(
    database: Callable[[], str | None], tmp_path_factory: pytest.TempPathFactory
) -> Target:
    app = create_auth_app(_auth_settings(tmp_path_factory.mktemp("auth"), database()))
    app.add_api_route(MINT_PATH, _mint_admin_token, methods=["POST"], include_in_schema=False)
    client = asgi.get_client(app)  # type: ignore[arg-type]  # schemathesis types ASGI apps narrowly
    client_id, secret = INTROSPECTION_CLIENT
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()

    def headers_for(operation: Any) -> dict[str, str]:
        names = {name for requirement in _security(operation) for name in requirement}
        if BEARER in names:
            with client:
                token = client.post(MINT_PATH).json()["access_token"]
            return {"Authorization": f"Bearer {token}"}
        if CLIENT_BASIC in names and {} not in _security(operation):
            return {"Authorization": f"Basic {basic}"}
        return {}

    return Target(app, headers_for)


async def _mint_admin_token(request: Request) -> dict[str, str]:
    """A new admin's access token: nothing a generated request did (log out everywhere, disable
    or demote a user whose id it learned from a listing) touches it, and no revocation cut-off of
    theirs has to pass before it is signed."""
    svc: Services = request.app.state.services
    email = f"fuzz-{uuid.uuid4().hex}@example.com"
    user = await accounts.signup(svc, email, PASSWORD, roles=["admin"])
    pair = await devices.open_session(
        svc, user, client_id=svc.settings.default_client_id, user_agent="fuzz", ip="127.0.0.1"
    )
    return {"access_token": pair.access_token}


# -- the edges --------------------------------------------------------------------------------

ISSUER = FakeIssuer(clock=time.time)


def _edge_target(app: FastAPI, audience: str, scopes: list[str]) -> Target:
    token = ISSUER.token(sub=EDGE_SUBJECT, aud=[audience], scope=" ".join(scopes), ttl=3600)

    def headers_for(operation: Any) -> dict[str, str]:
        needs_token = any(BEARER in requirement for requirement in _security(operation))
        return {"Authorization": f"Bearer {token}"} if needs_token else {}

    return Target(app, headers_for)


def _mail_settings(data_dir: Path, database_url: str | None = None) -> MailSettings:
    return MailSettings(issuer=ISSUER.issuer, data_dir=data_dir, database_url=database_url)


def _video_settings(data_dir: Path, database_url: str | None = None) -> VideoSettings:
    return VideoSettings(issuer=ISSUER.issuer, data_dir=data_dir, database_url=database_url)


@pytest.fixture(scope="module")
def mail_service(
    database: Callable[[], str | None], tmp_path_factory: pytest.TempPathFactory
) -> Target:
    settings = _mail_settings(tmp_path_factory.mktemp("mail"), database())
    app = create_mail_app(settings, client=ISSUER.client())
    return _edge_target(app, "mail", ["mail:read", "mail:send"])


@pytest.fixture(scope="module")
def video_service(
    database: Callable[[], str | None], tmp_path_factory: pytest.TempPathFactory
) -> Target:
    settings = _video_settings(tmp_path_factory.mktemp("video"), database())
    app = create_video_app(settings, client=ISSUER.client())
    return _edge_target(app, "video", ["video:read", "video:upload", "video:delete"])


# -- the runs ---------------------------------------------------------------------------------

# The documents, from apps built (never started) with the same settings as those under test.
_UNUSED = Path("unused-data-dir")


def _schema(app: FastAPI) -> Any:
    document = app.openapi()
    return schemathesis.openapi.from_dict(document, config=_config(document))


AUTH_API = _schema(create_auth_app(_auth_settings(_UNUSED)))
MAIL_API = _schema(create_mail_app(_mail_settings(_UNUSED)))
VIDEO_API = _schema(create_video_app(_video_settings(_UNUSED)))


def _call_and_validate(case: Any, target: Target) -> None:
    # The documents were loaded without an app: requests (and the checks' own) go to this one.
    case.operation.schema.app = case.operation.app = target.app
    case.call_and_validate(headers=target.headers_for(case.operation), checks=CHECKS)


@AUTH_API.parametrize()
def test_auth_service_answers_as_documented(case: Any, auth_service: Target) -> None:
    _call_and_validate(case, auth_service)


@MAIL_API.parametrize()
def test_mail_service_answers_as_documented(case: Any, mail_service: Target) -> None:
    _call_and_validate(case, mail_service)


@VIDEO_API.parametrize()
def test_video_service_answers_as_documented(case: Any, video_service: Target) -> None:
    _call_and_validate(case, video_service)


# -- the answers random inputs rarely reach ---------------------------------------------------
# Generated ids name nothing, and generated refresh tokens are never valid: these walk each
# service through its success answers once, with the same checks.

FORM = "application/x-www-form-urlencoded"


def _exchange(api: Any, target: Target, method: str, path: str, expect: int, **case: Any) -> Any:
    """One request built by hand, sent and checked like the generated ones."""
    operation = api[path][method]
    operation.schema.app = operation.app = target.app
    response = operation.Case(**case).call_and_validate(checks=CHECKS)
    problem = response.text if response.status_code >= 400 else ""  # never a token
    assert response.status_code == expect, (method, path, response.status_code, problem)
    return response


def test_auth_service_success_answers_as_documented(auth_service: Target) -> None:
    def call(method: str, path: str, expect: int, **case: Any) -> Any:
        return _exchange(AUTH_API, auth_service, method, path, expect, **case)

    bob = {"email": f"bob-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
    user_id = call("POST", "/signup", 201, body=bob).json()["id"]
    login = call("POST", "/login", 200, body=bob).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}
    pair = call("POST", "/token", 200, body=refresh, media_type=FORM).json()
    client_id, secret = INTROSPECTION_CLIENT
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    introspected = call(
        "POST",
        "/introspect",
        200,
        body={"token": pair["access_token"]},
        media_type=FORM,
        headers={"Authorization": f"Basic {basic}"},
    ).json()
    assert introspected["active"] is True
    bearer = {"Authorization": f"Bearer {pair['access_token']}"}
    path = {"session_id": pair["session_id"]}
    call("DELETE", "/sessions/{session_id}", 204, path_parameters=path, headers=bearer)

    admin = auth_service.headers_for(AUTH_API["/admin/users/{user_id}"]["GET"])
    user = {"user_id": user_id}
    call("GET", "/admin/users/{user_id}", 200, path_parameters=user, headers=admin)
    roles = {"roles": ["viewer"]}
    call(
        "PUT", "/admin/users/{user_id}/roles", 200, path_parameters=user, headers=admin, body=roles
    )
    call("POST", "/admin/users/{user_id}/disable", 200, path_parameters=user, headers=admin)
    call("POST", "/admin/users/{user_id}/enable", 200, path_parameters=user, headers=admin)


def _edge_bearer(sub: str, audience: str, scopes: str) -> dict[str, str]:
    token = ISSUER.token(sub=sub, aud=[audience], scope=scopes, ttl=3600)
    return {"Authorization": f"Bearer {token}"}


def test_mail_service_success_answers_as_documented(mail_service: Target) -> None:
    def call(method: str, path: str, expect: int, **case: Any) -> Any:
        return _exchange(MAIL_API, mail_service, method, path, expect, **case)

    alice = _edge_bearer("fuzz-alice", "mail", "mail:read mail:send")
    bob_id = f"fuzz-bob-{uuid.uuid4().hex[:8]}"
    call("GET", "/inbox", 200, headers=_edge_bearer(bob_id, "mail", "mail:read"))  # his mailbox
    draft = {"to": bob_id, "subject": "Hello", "body": "Lunch on Friday?"}
    sent = call("POST", "/messages", 201, headers=alice, body=draft).json()
    message = {"message_id": sent["id"]}
    call("GET", "/messages/{message_id}", 200, headers=alice, path_parameters=message)
    call("DELETE", "/messages/{message_id}", 204, headers=alice, path_parameters=message)


def test_video_service_success_answers_as_documented(video_service: Target) -> None:
    def call(method: str, path: str, expect: int, **case: Any) -> Any:
        return _exchange(VIDEO_API, video_service, method, path, expect, **case)

    alice = _edge_bearer("fuzz-alice", "video", "video:read video:upload")
    draft = {"title": "Cats", "description": "Two cats and a box."}
    added = call("POST", "/videos", 201, headers=alice, body=draft).json()
    video = {"video_id": added["id"]}
    call("GET", "/videos/{video_id}", 200, headers=alice, path_parameters=video)
    call("DELETE", "/videos/{video_id}", 204, headers=alice, path_parameters=video)
