"""Revocation reaches both edges within a second, across real processes.

The package's shared stack (an auth service and both edges following its revocation feed with
their own read tokens). Each test makes a fresh user, shows a token working at both edges, then
revokes it one way, and polls both edges until they refuse it: within twice the one-second bound
the project promises (the delay itself is measured by ``./dev bench revocation``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.edges.common import DEADLINE, accepted_at, refused_within
from tests.edges.conftest import EDGES, EdgeStack
from tests.support.auth_client import STRONG_PASSWORD, bearer, login, new_user, refresh


def refused_everywhere_within(stack: EdgeStack, token: str, deadline: float) -> float:
    """Seconds until both edges refuse ``token``; fail past ``deadline``."""
    return refused_within({edge: stack.of(edge) for edge in EDGES}, token, deadline)


def accepted_everywhere(stack: EdgeStack, token: str) -> None:
    accepted_at({edge: stack.of(edge) for edge in EDGES}, token)


Revoke = Callable[[httpx.Client, dict[str, Any], str, Callable[[], str]], None]


def logout(
    auth: httpx.Client, tokens: dict[str, Any], user_id: str, admin: Callable[[], str]
) -> None:
    assert auth.post("/logout", headers=bearer(tokens["access_token"])).status_code == 204


def logout_everywhere(
    auth: httpx.Client, tokens: dict[str, Any], user_id: str, admin: Callable[[], str]
) -> None:
    assert auth.post("/logout/all", headers=bearer(tokens["access_token"])).status_code == 204


def sign_out_the_device(
    auth: httpx.Client, tokens: dict[str, Any], user_id: str, admin: Callable[[], str]
) -> None:
    # From another device of the same user: the list of devices, then that one signed out.
    other = login(auth, tokens["email"])["access_token"]
    answer = auth.delete(f"/sessions/{tokens['session_id']}", headers=bearer(other))
    assert answer.status_code == 204, answer.text


def disable_the_user(
    auth: httpx.Client, tokens: dict[str, Any], user_id: str, admin: Callable[[], str]
) -> None:
    answer = auth.post(f"/admin/users/{user_id}/disable", headers=bearer(admin()))
    assert answer.status_code == 200, answer.text


def change_the_roles(
    auth: httpx.Client, tokens: dict[str, Any], user_id: str, admin: Callable[[], str]
) -> None:
    answer = auth.put(
        f"/admin/users/{user_id}/roles", json={"roles": ["user"]}, headers=bearer(admin())
    )
    assert answer.status_code == 200, answer.text


def change_the_password(
    auth: httpx.Client, tokens: dict[str, Any], user_id: str, admin: Callable[[], str]
) -> None:
    answer = auth.post(
        "/me/password",
        json={"current_password": STRONG_PASSWORD, "new_password": STRONG_PASSWORD + " again"},
        headers=bearer(tokens["access_token"]),
    )
    assert answer.status_code == 204, answer.text


def revoke_the_access_token(
    auth: httpx.Client, tokens: dict[str, Any], user_id: str, admin: Callable[[], str]
) -> None:
    form = {"token": tokens["access_token"], "client_id": "gatepass-app"}
    answer = auth.post("/revoke", data=form)
    assert answer.status_code == 200, answer.text


def revoke_the_refresh_token(
    auth: httpx.Client, tokens: dict[str, Any], user_id: str, admin: Callable[[], str]
) -> None:
    form = {
        "token": tokens["refresh_token"],
        "token_type_hint": "refresh_token",
        "client_id": "gatepass-app",
    }
    answer = auth.post("/revoke", data=form)
    assert answer.status_code == 200, answer.text


def reuse_a_refresh_token(
    auth: httpx.Client, tokens: dict[str, Any], user_id: str, admin: Callable[[], str]
) -> None:
    """A refresh token used again once its successor was used: a thief; the session ends."""
    first = refresh(auth, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    second = refresh(auth, first.json()["refresh_token"])
    assert second.status_code == 200, second.text
    replayed = refresh(auth, tokens["refresh_token"])
    assert replayed.status_code == 400, replayed.text


REVOCATIONS: list[Revoke] = [
    logout,
    logout_everywhere,
    sign_out_the_device,
    disable_the_user,
    change_the_roles,
    change_the_password,
    revoke_the_access_token,
    revoke_the_refresh_token,
    reuse_a_refresh_token,
]


@pytest.mark.parametrize("revoke", REVOCATIONS, ids=lambda revoke: revoke.__name__)
def test_a_revoked_token_is_refused_at_both_edges_within_the_bound(
    edge_stack: EdgeStack, admin_token: Callable[[], str], revoke: Revoke
) -> None:
    with httpx.Client(base_url=edge_stack.auth.base_url, timeout=30) as auth:
        email, user_id, tokens = new_user(auth, "revoked")
        tokens["email"] = email
        accepted_everywhere(edge_stack, tokens["access_token"])  # cached at both edges now
        revoke(auth, tokens, user_id, admin_token)
    refused_everywhere_within(edge_stack, tokens["access_token"], DEADLINE)


def test_another_users_token_stays_good(edge_stack: EdgeStack) -> None:
    with httpx.Client(base_url=edge_stack.auth.base_url, timeout=30) as auth:
        _, _, bystander = new_user(auth, "bystander")
        _, _, revoked = new_user(auth, "revoked")
        assert auth.post("/logout/all", headers=bearer(revoked["access_token"])).status_code == 204
    refused_everywhere_within(edge_stack, revoked["access_token"], DEADLINE)
    accepted_everywhere(edge_stack, bystander["access_token"])
