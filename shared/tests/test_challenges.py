"""``gatepass.challenges``: a verification error as its RFC 6750 answer, and challenges that stay
well-formed whatever their values hold."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gatepass import challenges
from gatepass.core.errors import (
    CsrfError,
    ExpiredTokenError,
    GatepassError,
    InsufficientScopeError,
    NoUsableKeysError,
    RequestError,
    UnknownKidError,
)
from gatepass.fastapi import EdgeAuth
from gatepass.settings import EdgeAuthSettings
from gatepass.testing import FakeIssuer

# -- quoting --------------------------------------------------------------------------------


def test_a_quote_or_a_backslash_in_the_realm_is_escaped() -> None:
    assert challenges.challenge('mail "eu" \\ west') == 'Bearer realm="mail \\"eu\\" \\\\ west"'


def test_rfc_6750_values_never_hold_a_quote_or_a_backslash() -> None:
    header = challenges.challenge(
        "mail", error="invalid_token", error_description='say "no" \\ here', scope='a"b c\\d'
    )
    assert header == (
        'Bearer realm="mail", error="invalid_token", error_description="say no  here", '
        'scope="ab cd"'
    )


@pytest.mark.parametrize("value", ["line\r\nSet-Cookie: x=1", "tab\there", "café", "nul\x00"])
def test_what_cannot_stand_in_a_header_is_dropped(value: str) -> None:
    header = challenges.challenge(value, error_description=value)
    assert header.isascii()
    assert all(" " <= c <= "~" for c in header)
    assert header.count('"') == 4  # two values, each quoted once


# -- the answers ----------------------------------------------------------------------------


def answer(error: GatepassError) -> tuple[int, str, dict[str, Any], str | None]:
    problem = challenges.problem(error, "mail")
    body = problem.to_dict()
    return problem.status, body["code"], body, problem.headers.get("www-authenticate")


def test_a_bad_token_is_401_invalid_token() -> None:
    status, code, body, header = answer(ExpiredTokenError())
    assert (status, code, body["reason"]) == (401, "invalid_token", "expired")
    assert header == (
        'Bearer realm="mail", error="invalid_token", error_description="The access token expired."'
    )


def test_two_tokens_are_400_invalid_request() -> None:
    status, code, _, header = answer(RequestError())
    assert (status, code) == (400, "invalid_request")
    assert header is not None
    assert header.startswith('Bearer realm="mail", error="invalid_request"')


def test_a_missing_scope_is_403_naming_every_required_scope() -> None:
    problem = challenges.insufficient_scope({"mail:send", "mail:read"}, "mail")
    body = problem.to_dict()
    assert (problem.status, body["code"]) == (403, "insufficient_scope")
    assert body["required_scopes"] == ["mail:read", "mail:send"]
    assert problem.headers["www-authenticate"].endswith('scope="mail:read mail:send"')
    assert answer(InsufficientScopeError(["mail:read"]))[0] == 403


def test_a_csrf_refusal_is_403_without_a_challenge() -> None:
    status, code, body, header = answer(CsrfError())
    assert (status, code, body["reason"], header) == (403, "access_denied", "csrf", None)


def test_no_usable_keys_is_503_with_retry_after_never_401() -> None:
    problem = challenges.problem(NoUsableKeysError(retry_after=2.1), "mail")
    assert (problem.status, problem.headers) == (503, {"retry-after": "3"})


def test_no_token_is_a_bare_challenge() -> None:
    problem = challenges.no_token("mail")
    assert (problem.status, problem.code) == (401, "missing_token")
    assert problem.headers == {"www-authenticate": 'Bearer realm="mail"'}


# -- the edges answer with it ---------------------------------------------------------------


async def test_an_edge_answers_with_this_vocabulary(
    issuer: FakeIssuer, client: httpx.AsyncClient
) -> None:
    settings = EdgeAuthSettings(issuer=issuer.issuer, audience="mail", realm='mail "eu"')
    auth = EdgeAuth.from_settings(settings, client=client)
    problem = auth.problem(UnknownKidError())
    expected = challenges.problem(UnknownKidError(), 'mail "eu"')
    assert (problem.status, problem.headers) == (expected.status, expected.headers)
    assert problem.headers["www-authenticate"].startswith('Bearer realm="mail \\"eu\\"", error=')
    assert auth.insufficient_scope(frozenset({"b", "a"})).headers == (
        challenges.insufficient_scope(["a", "b"], 'mail "eu"').headers
    )
