"""``gatepass.openapi``: the error answers, form bodies and security a document declares, and the
service-wide answers ``install_openapi`` adds. (The three services' documents are checked against
their answers by the schemathesis run, ``tests/test_api_fuzz.py``.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from gatepass.openapi import (
    CHALLENGE,
    RETRY_AFTER,
    FormField,
    bearer_security,
    bearer_security_any,
    form_request_body,
    install_openapi,
    merge_responses,
    oauth_error_responses,
    problem_responses,
)
from gatepass.problems import PROBLEM_JSON, install_problem_handlers


class Note(BaseModel):
    text: Annotated[str, Field(max_length=10)]


def small_app(*, server_limits: bool = False) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post(
        "/notes",
        status_code=201,
        responses=problem_responses(401, headers={401: [CHALLENGE]}),
        openapi_extra=bearer_security("notes:write"),
    )
    async def add(note: Note) -> Note:
        return note

    @app.get("/notes/{note_id}", responses=problem_responses(404))
    async def read(note_id: int) -> Note:
        return Note(text=str(note_id))

    @app.post(
        "/exchange",
        responses=oauth_error_responses(400),
        openapi_extra=form_request_body({"code": FormField("The code.", required=True)}),
    )
    async def exchange(request: Request) -> dict[str, str]:
        return {"raw": (await request.body()).decode()}

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    install_openapi(app, max_body_bytes=2048, server_limits=server_limits)
    return app


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][method]
    return found


def media_types(response: dict[str, Any]) -> list[str]:
    return sorted(response.get("content", {}))


def test_a_problem_answer_is_problem_json_with_its_status_pinned() -> None:
    answer = problem_responses(404, 429)

    assert media_types(answer[404]) == [PROBLEM_JSON]
    schema = answer[404]["content"][PROBLEM_JSON]["schema"]
    assert schema["allOf"] == [{"$ref": "#/components/schemas/Problem"}]
    assert schema["properties"]["status"] == {"const": 404}
    assert "headers" not in answer[404]
    # Every throttle answers with Retry-After, so a 429 always declares it.
    assert answer[429]["headers"]["Retry-After"]["required"] is True


def test_an_oauth_error_is_the_rfc_6749_object() -> None:
    answer = oauth_error_responses(400)[400]

    assert media_types(answer) == ["application/json"]
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OAuthError"
    }


def test_merging_keeps_both_answers_and_promises_only_shared_headers() -> None:
    challenge = problem_responses(400, headers={400: [CHALLENGE]})
    busy = problem_responses(400, 503, headers={400: [RETRY_AFTER], 503: [RETRY_AFTER]})
    plain = oauth_error_responses(400)

    merged = merge_responses(challenge, busy, plain)

    assert media_types(merged[400]) == ["application/json", PROBLEM_JSON]
    headers = merged[400]["headers"]
    assert headers["WWW-Authenticate"]["required"] is False  # one answer comes without it
    assert headers["Retry-After"]["required"] is False
    assert merged[503]["headers"]["Retry-After"]["required"] is True
    assert challenge[400]["headers"]["WWW-Authenticate"]["required"] is True  # inputs untouched


def test_merging_one_answer_twice_keeps_its_promises() -> None:
    answer = problem_responses(401, headers={401: [CHALLENGE]})

    merged = merge_responses(answer, answer)

    assert merged[401]["headers"]["WWW-Authenticate"]["required"] is True


def test_fastapis_422_becomes_the_problem_we_answer() -> None:
    document = small_app().openapi()

    for method, path in (("post", "/notes"), ("get", "/notes/{note_id}")):
        answer = operation(document, method, path)["responses"]["422"]
        assert media_types(answer) == [PROBLEM_JSON], path
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert {"Problem", "ValidationIssue", "OAuthError"} <= set(schemas)


def test_a_route_that_takes_a_body_lists_the_malformed_body_and_the_size_limit() -> None:
    document = small_app().openapi()

    notes = operation(document, "post", "/notes")["responses"]
    assert media_types(notes["400"]) == [PROBLEM_JSON]
    assert "2048 bytes" in notes["413"]["description"]
    exchange = operation(document, "post", "/exchange")["responses"]
    assert media_types(exchange["400"]) == ["application/json"]  # its own, OAuth, answer only
    assert media_types(exchange["413"]) == [PROBLEM_JSON]
    ping = operation(document, "get", "/ping")["responses"]
    assert set(ping) == {"200"}  # nothing it cannot answer
    assert "2048 bytes" in document["info"]["description"]


def test_under_server_limits_every_operation_may_be_shed() -> None:
    document = small_app(server_limits=True).openapi()

    for item in document["paths"].values():
        for answer in item.values():
            shed = answer["responses"]["503"]
            assert media_types(shed) == [PROBLEM_JSON]
            assert shed["headers"]["Retry-After"]["required"] is True
    assert "431" in document["info"]["description"]
    assert "503" not in operation(small_app().openapi(), "get", "/ping")["responses"]


def test_a_form_body_is_documented_and_still_read_raw() -> None:
    document = small_app().openapi()

    body = operation(document, "post", "/exchange")["requestBody"]
    schema = body["content"]["application/x-www-form-urlencoded"]["schema"]
    assert schema["properties"]["code"]["type"] == "string"
    assert schema["required"] == ["code"]


def test_security_names_the_scheme_and_the_scopes() -> None:
    document = small_app().openapi()

    assert operation(document, "post", "/notes")["security"] == [{"bearer": ["notes:write"]}]
    assert "security" not in operation(document, "get", "/ping")
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"bearer": schemes["bearer"]}  # only the schemes some route uses
    assert schemes["bearer"]["scheme"] == "bearer"
    either = bearer_security_any(["a:delete"], ["a:upload"])
    assert either == {"security": [{"bearer": ["a:delete"]}, {"bearer": ["a:upload"]}]}


def test_the_document_is_built_once() -> None:
    app = small_app()

    assert app.openapi() is app.openapi()
