"""The three services' OpenAPI documents, read the way a client generator would: every error
listed with its body (problem+json, or the RFC 6749 object on the OAuth endpoints), the form
bodies of ``/token`` and ``/introspect``, the security of every protected route.

Whether each service answers what its document says is the schemathesis run's job
(``tests/test_api_fuzz.py``); this checks, fast, that the documents say it at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from auth_service.app import create_app as create_auth_app
from auth_service.config import Settings as AuthSettings
from edge_service_mail.app import create_app as create_mail_app
from edge_service_mail.config import MailSettings
from edge_service_video.app import create_app as create_video_app
from edge_service_video.config import VideoSettings

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
OAUTH_REF = "#/components/schemas/OAuthError"
OAUTH_PATHS = {"/token", "/introspect", "/revoke"}
FORM = "application/x-www-form-urlencoded"
UNUSED = Path("unused-data-dir")  # the apps are built, never started: nothing is written


@cache
def documents() -> dict[str, dict[str, Any]]:
    issuer = "https://auth.example.test"
    return {
        "auth": create_auth_app(AuthSettings(environment="development", data_dir=UNUSED)).openapi(),
        "mail": create_mail_app(MailSettings(issuer=issuer, data_dir=UNUSED)).openapi(),
        "video": create_video_app(VideoSettings(issuer=issuer, data_dir=UNUSED)).openapi(),
    }


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


@pytest.fixture(scope="module", params=["auth", "mail", "video"])
def document(request: pytest.FixtureRequest) -> dict[str, Any]:
    return documents()[request.param]


def test_every_error_answer_has_its_documented_body(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, answer in operation["responses"].items():
            if int(status) < 400:
                continue
            content = answer.get("content", {})
            where = f"{method} {path} {status}"
            if PROBLEM_JSON in content:
                schema = content[PROBLEM_JSON]["schema"]
                assert schema["allOf"] == [{"$ref": PROBLEM_REF}], where
                assert schema["properties"]["status"] == {"const": int(status)}, where
            else:
                assert path in OAUTH_PATHS, f"{where}: not problem+json"
                assert content["application/json"]["schema"] == {"$ref": OAUTH_REF}, where


def test_no_route_claims_fastapis_validation_error(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, operation in operations(document):
        if any(p["in"] in {"path", "query"} for p in operation.get("parameters", [])):
            answer = operation["responses"]["422"]
            assert list(answer["content"]) == [PROBLEM_JSON], f"{method} {path}"


def test_request_level_answers_are_on_every_route_they_reach(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert "503" in responses, f"{method} {path}: load shedding"
        assert PROBLEM_JSON in responses["503"]["content"], f"{method} {path}"
        if "requestBody" in operation:
            assert PROBLEM_JSON in responses["413"]["content"], f"{method} {path}: body limit"
        else:
            assert "413" not in responses, f"{method} {path} takes no body"
    assert "413" in document["info"]["description"]


def test_every_protected_route_declares_its_scheme_and_challenge(
    document: dict[str, Any],
) -> None:
    protected = 0
    for method, path, operation in operations(document):
        names = {name for requirement in operation.get("security", []) for name in requirement}
        if "bearer" not in names:
            continue
        protected += 1
        challenge = operation["responses"]["401"]["headers"]["WWW-Authenticate"]
        assert challenge["required"] is True, f"{method} {path}"
    assert protected >= 4
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_edge_scopes_are_in_the_security_requirements() -> None:
    mail, video = documents()["mail"], documents()["video"]

    assert mail["paths"]["/messages"]["post"]["security"] == [{"bearer": ["mail:send"]}]
    assert mail["paths"]["/inbox"]["get"]["security"] == [{"bearer": ["mail:read"]}]
    assert video["paths"]["/videos/{video_id}"]["delete"]["security"] == [
        {"bearer": ["video:delete"]},
        {"bearer": ["video:upload"]},
    ]


def test_the_oauth_endpoints_document_their_form_bodies_and_clients() -> None:
    paths = documents()["auth"]["paths"]

    token = paths["/token"]["post"]
    form = token["requestBody"]["content"][FORM]["schema"]
    assert set(form["properties"]) == {
        "grant_type",
        "refresh_token",
        "code",
        "redirect_uri",
        "code_verifier",
        "scope",
        "resource",
        "audience",
        "subject_token",
        "subject_token_type",
        "requested_token_type",
        "client_id",
        "client_secret",
        "client_assertion_type",
        "client_assertion",
    }
    assert set(form["required"]) == {"grant_type"}
    assert token["security"] == [{}, {"clientBasic": []}]  # public clients too
    assert token["responses"]["200"]["headers"]["Cache-Control"]["required"] is True

    introspect = paths["/introspect"]["post"]
    form = introspect["requestBody"]["content"][FORM]["schema"]
    assert set(form["properties"]) == {"token", "token_type_hint"}
    assert form["required"] == ["token"]
    assert introspect["security"] == [{"clientBasic": []}]
    for status in ("400", "401", "429"):
        assert status in token["responses"]
        assert status in introspect["responses"]


def test_metrics_are_documented_as_text() -> None:
    for name, document in documents().items():
        answer = document["paths"]["/metrics"]["get"]["responses"]["200"]
        assert list(answer["content"]) == ["text/plain"], name
