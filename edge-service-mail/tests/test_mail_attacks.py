"""Attacks on mail's calls to video and its service route, each refused: found by a review that
attacked them without having written them; every test failed before its fix, or documents a
defence worth keeping.

Mail and video side by side in-process (``pair``), the fake issuer's token endpoint counting
what it is asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from mail_peers import VIDEO_URL, Pair

from gatepass.core.oauth import TOKEN_EXCHANGE

ALICE, BOB = "usr_alice", "usr_bob"
USER = "mail:read mail:send video:read video:upload"
MAIL_ONLY = "mail:read mail:send"


@dataclass
class Recording(httpx.AsyncBaseTransport):
    """A transport that keeps the ``Authorization`` of each request before passing it on."""

    inner: httpx.AsyncBaseTransport
    seen: list[str] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.headers.get("authorization", "").removeprefix("Bearer "))
        return await self.inner.handle_async_request(request)


async def mailboxes(pair: Pair) -> None:
    for user in (ALICE, BOB):
        assert (await pair.mail.http.get("/inbox", headers=pair.mail.bearer(user, USER))).is_success


async def upload(pair: Pair) -> Any:
    answer = await pair.video.http.post(
        "/videos", json={"title": "holiday"}, headers=pair.video.bearer(ALICE, USER)
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def exchanges(pair: Pair) -> int:
    return len(pair.token_grants(TOKEN_EXCHANGE))


async def test_a_user_without_video_read_is_refused_without_asking_the_issuer(
    pair: Pair,
) -> None:
    """Was a finding (low): mail exchanged the token of a user who lacks ``video:read``, though
    the exchange must fail (scopes stay within the user's), and answered the refusal with 503
    ``peer_unavailable``: the user was told to retry, each retry another round trip to the auth
    service. Mail answers 403 ``insufficient_scope`` on send and shows the video unavailable on
    read, without a token request."""
    await mailboxes(pair)
    video = await upload(pair)
    draft = {"to": BOB, "subject": "s", "body": "b", "video_id": video["id"]}
    before = exchanges(pair)
    refused = await pair.mail.http.post(
        "/messages", json=draft, headers=pair.mail.bearer(ALICE, MAIL_ONLY)
    )
    assert refused.status_code != 503, "a scope the user lacks is no unavailable peer"
    assert exchanges(pair) == before


async def test_defended_video_sees_only_the_exchanged_token_never_the_users(pair: Pair) -> None:
    """Defended: mail never forwards the user's own token: video is called with a token for
    ``video`` alone, ``video:read`` alone, naming mail as the actor."""
    await mailboxes(pair)
    video = await upload(pair)
    host = httpx.URL(VIDEO_URL).host
    recording = Recording(pair.hosts.routes[host])
    pair.hosts.routes[host] = recording
    headers = pair.mail.bearer(ALICE, USER)
    draft = {"to": BOB, "subject": "s", "body": "b", "video_id": video["id"]}
    sent = await pair.mail.http.post("/messages", json=draft, headers=headers)
    assert sent.status_code == 201, sent.text
    user_token = headers["authorization"].removeprefix("Bearer ")
    assert recording.seen
    assert user_token not in recording.seen
    for token in recording.seen:
        claims = pair.issuer.decode(token)
        assert (claims["aud"], claims["scope"]) == (["video"], "video:read")
        assert claims["act"] == {"sub": "mail"}
        assert claims["sub"] == ALICE


async def test_defended_an_exchanged_token_cannot_post_notifications(pair: Pair) -> None:
    """Defended: a service acting for a user (``act``) is not the service itself: even with
    ``mail:notify`` in it, an exchanged token is refused at ``POST /notifications``."""
    await mailboxes(pair)
    token = pair.issuer.token(
        sub=ALICE,
        sid="ses_1",
        client_id="video",
        aud=["mail"],
        scope="mail:notify",
        act={"sub": "video"},
    )
    notice = {"to": BOB, "subject": "s", "body": "b"}
    answer = await pair.mail.http.post(
        "/notifications", json=notice, headers={"authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 403
    assert answer.json()["code"] == "caller_not_allowed"
