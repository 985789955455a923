"""Services calling services, across real processes: mail asks video on a user's behalf (token
exchange), video tells mail with its own identity (client credentials).

Each edge is a client registered at the auth service through its clients file, with a private
key of its own (``private_key_jwt``): the path a deployment takes (tests/support/identities.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from gatepass.core.oauth import REFUSAL_MIN_AGE
from tests.edges.common import BOUND, describe, refused_within
from tests.edges.conftest import VIDEO, EdgeLauncher, EdgeStack
from tests.support.auth_client import bearer, jose_part, new_user
from tests.support.metrics import metric_value, scrape
from tests.support.procs import ServiceFactory

TITLE = "A walk through gatepass"


def signed_up(auth_url: str, name: str) -> tuple[str, str]:
    """A fresh user at the auth service: their id and an access token."""
    with httpx.Client(base_url=auth_url, timeout=30) as client:
        _, user_id, tokens = new_user(client, name)
    return user_id, tokens["access_token"]


def upload(client: httpx.Client, video_url: str, token: str) -> dict[str, object]:
    answer = client.post(
        f"{video_url}/videos", json={"title": TITLE, "description": "d"}, headers=bearer(token)
    )
    assert answer.status_code == 201, describe(answer)
    body: dict[str, object] = answer.json()
    return body


def open_inbox(client: httpx.Client, mail_url: str, token: str) -> list[dict[str, object]]:
    answer = client.get(f"{mail_url}/inbox", headers=bearer(token))
    assert answer.status_code == 200, describe(answer)
    items: list[dict[str, object]] = answer.json()["items"]
    return items


def send_with_video(
    client: httpx.Client, mail_url: str, token: str, to: str, video_id: object
) -> str:
    draft = {"to": to, "subject": "watch this", "body": "it is short", "video_id": video_id}
    answer = client.post(f"{mail_url}/messages", json=draft, headers=bearer(token))
    assert answer.status_code == 201, describe(answer)
    message_id: str = answer.json()["id"]
    return message_id


def exchanges(client: httpx.Client, auth_url: str) -> float:
    metrics = scrape(client, auth_url)
    return metric_value(metrics, "gatepass_auth_tokens_issued_total", {"grant": "token_exchange"})


def test_both_flows_end_to_end(edge_stack: EdgeStack) -> None:
    mail, video = edge_stack.mail.base_url, edge_stack.video.base_url
    with httpx.Client(base_url=edge_stack.auth.base_url, timeout=30) as client:
        _, alice, alice_tokens = new_user(client, "alice")
        _, bob, bob_tokens = new_user(client, "bob")
    alice_token, bob_token = alice_tokens["access_token"], bob_tokens["access_token"]
    with httpx.Client(timeout=30) as client:
        open_inbox(client, mail, alice_token)
        open_inbox(client, mail, bob_token)

        # video -> mail: the upload puts a notice into the uploader's inbox, sent by video itself.
        uploaded = upload(client, video, alice_token)
        assert uploaded["notified"] is True, uploaded
        notices = [m for m in open_inbox(client, mail, alice_token) if m["from"] == "service:video"]
        assert [notice["to"] for notice in notices] == [alice], notices
        assert TITLE in str(notices[0]["body"]) or TITLE in str(notices[0]["subject"])

        # mail -> video: attaching asks video, as Alice, whether the video exists.
        message_id = send_with_video(client, mail, alice_token, bob, uploaded["id"])
        read = client.get(f"{mail}/messages/{message_id}", headers=bearer(bob_token))
        assert read.status_code == 200, describe(read)
        assert read.json()["video"] == {"id": uploaded["id"], "title": TITLE, "available": True}

        missing = client.post(
            f"{mail}/messages",
            json={"to": bob, "subject": "s", "body": "b", "video_id": "vid_doesnotexist"},
            headers=bearer(alice_token),
        )
        assert missing.status_code == 422, describe(missing)
        assert missing.json()["code"] == "unknown_video"


def test_no_call_reaches_the_auth_service_while_the_exchanged_token_is_valid(
    edge_stack: EdgeStack,
) -> None:
    mail, video = edge_stack.mail.base_url, edge_stack.video.base_url
    alice, token = signed_up(edge_stack.auth.base_url, "reader")
    with httpx.Client(timeout=30) as client:
        open_inbox(client, mail, token)
        video_id = upload(client, video, token)["id"]
        message_id = send_with_video(client, mail, token, alice, video_id)
        first = client.get(f"{mail}/messages/{message_id}", headers=bearer(token))
        assert first.json()["video"]["available"] is True, describe(first)
        before = exchanges(client, edge_stack.auth.base_url)
        for _ in range(20):
            again = client.get(f"{mail}/messages/{message_id}", headers=bearer(token))
            assert again.json()["video"]["title"] == TITLE, describe(again)
        assert exchanges(client, edge_stack.auth.base_url) == before


def test_a_users_token_is_never_a_services_and_the_reverse(edge_stack: EdgeStack) -> None:
    with httpx.Client(base_url=edge_stack.auth.base_url, timeout=30) as client:
        _, alice, tokens = new_user(client, "caller")
    with httpx.Client(timeout=30) as client:
        notice = {"to": alice, "subject": "s", "body": "b"}
        answer = client.post(
            f"{edge_stack.mail.base_url}/notifications",
            json=notice,
            headers=bearer(tokens["access_token"]),
        )
        assert answer.status_code == 403, describe(answer)
        assert answer.json()["code"] == "caller_not_allowed"


def test_cached_tokens_keep_mail_to_video_working_while_auth_is_down(
    start_auth: ServiceFactory, edges: EdgeLauncher
) -> None:
    auth = start_auth()
    mail, video = (service.base_url for service in edges.both())
    alice, token = signed_up(auth.base_url, "outage")
    assert set(jose_part(token, 1)["aud"]) >= {"mail", "video"}
    with httpx.Client(timeout=30) as client:
        open_inbox(client, mail, token)
        video_id = upload(client, video, token)["id"]
        message_id = send_with_video(client, mail, token, alice, video_id)
        warm = client.get(f"{mail}/messages/{message_id}", headers=bearer(token))
        assert warm.json()["video"]["available"] is True, describe(warm)

        auth.stop()
        for _ in range(5):
            read = client.get(f"{mail}/messages/{message_id}", headers=bearer(token))
            assert read.status_code == 200, describe(read)
            assert read.json()["video"] == {"id": video_id, "title": TITLE, "available": True}
        # Both cached tokens serve new work too: mail's exchanged token is kept per user token
        # and audience (not per video), video's own token per audience and scope.
        another = upload(client, video, token)
        assert another["notified"] is True  # video's own token was cached by the first upload
        send_with_video(client, mail, token, alice, another["id"])


def test_a_client_disabled_and_enabled_again_calls_with_a_new_token_at_once(
    edge_stack: EdgeStack, admin_token: Callable[[], str]
) -> None:
    """A red team's finding: disabling and enabling video revokes every token issued to it, and
    video went on presenting its cached service token to mail (every upload unnotified) for
    about four minutes, until that token expired. Now mail's 401 makes video forget the token
    and ask for a new one: uploads are notified again within ``REFUSAL_MIN_AGE`` (how long a
    token is kept despite a refusal), well before the token would have expired."""
    mail, video = edge_stack.mail.base_url, edge_stack.video.base_url
    _, token = signed_up(edge_stack.auth.base_url, "reenabled")
    with httpx.Client(timeout=30) as client:
        open_inbox(client, mail, token)
        assert upload(client, video, token)["notified"] is True
        admin = bearer(admin_token())
        with httpx.Client(base_url=edge_stack.auth.base_url, timeout=30) as auth:
            for disabled in (True, False):
                answer = auth.patch(
                    "/admin/clients/video", json={"disabled": disabled}, headers=admin
                )
                assert answer.status_code == 200, describe(answer)
        deadline = time.monotonic() + 2 * (REFUSAL_MIN_AGE + BOUND)
        while not upload(client, video, token)["notified"]:
            assert time.monotonic() < deadline, "video still calls mail with its revoked token"
            time.sleep(0.5)
        # The revocation feed reaches video again too: its own feed token was revoked with the
        # others, and is replaced once old enough; meanwhile the feed backs off (30 s at most).
        # The package's later tests then find video following the feed, as before.
        with httpx.Client(base_url=edge_stack.auth.base_url, timeout=30) as auth:
            _, _, other = new_user(auth, "after-reenable")
            assert auth.post("/logout", headers=bearer(other["access_token"])).status_code == 204
    refused_within({VIDEO: edge_stack.video}, other["access_token"], 2 * (REFUSAL_MIN_AGE + 30))
