"""An upload tells its owner in their mail inbox, with video's own identity; a notification that
cannot be sent never fails the upload (logged, counted, ``"notified": false``).

Video and mail run side by side in-process (the ``pair`` fixture); video gets its token from the
fake issuer's token endpoint (client credentials: audience ``mail``, scope ``mail:notify``).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from video_peers import MAIL_URL, Pair

from edge_service_video.notices import MAX_SUBJECT, subject
from gatepass.core.oauth import CLIENT_CREDENTIALS
from gatepass.edgetest import EdgeUnderTest, expect_problem

ALICE, BOB = "usr_alice", "usr_bob"
USER = "mail:read mail:send video:read video:upload"


async def upload(edge: EdgeUnderTest, owner: str = BOB, title: str = "cats") -> Any:
    answer = await edge.http.post(
        "/videos", json={"title": title}, headers=edge.bearer(owner, USER)
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def inbox(pair: Pair, user: str = BOB) -> list[Any]:
    answer = await pair.mail.http.get("/inbox", headers=pair.mail.bearer(user, USER))
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


async def notifications(edge: EdgeUnderTest, outcome: str) -> float:
    metrics = (await edge.http.get("/metrics")).text
    prefix = f'gatepass_video_notifications_total{{outcome="{outcome}"}} '
    line = next(line for line in metrics.splitlines() if line.startswith(prefix))
    return float(line.removeprefix(prefix))


async def still_there(edge: EdgeUnderTest, video_id: str) -> bool:
    answer = await edge.http.get(f"/videos/{video_id}", headers=edge.bearer(ALICE, USER))
    return answer.status_code == 200


async def test_an_upload_tells_the_uploader_in_their_mail_inbox(pair: Pair) -> None:
    assert await inbox(pair) == []  # bob has used mail: he has a mailbox
    added = await upload(pair.video)
    assert added["notified"] is True
    [notice] = await inbox(pair)
    assert (notice["from"], notice["to"]) == ("service:video", BOB)
    assert notice["subject"] == "Your video is up: cats"
    assert added["id"] in notice["body"]
    [grant] = pair.token_grants()
    assert grant["grant_type"] == CLIENT_CREDENTIALS
    assert (grant["client_id"], grant["audience"], grant["scope"]) == (
        "video",
        ["mail"],
        "mail:notify",
    )
    assert await notifications(pair.video, "sent") == 1


async def test_the_service_token_serves_many_uploads(pair: Pair) -> None:
    await inbox(pair)
    for title in ("one", "two", "three"):
        assert (await upload(pair.video, title=title))["notified"] is True
    assert len(await inbox(pair)) == 3
    assert len(pair.token_grants(CLIENT_CREDENTIALS)) == 1


async def test_an_uploader_without_a_mailbox_is_not_notified_and_the_upload_stands(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edge_service_video.notices"):
        added = await upload(pair.video, owner=ALICE)
    assert added["notified"] is False
    assert await still_there(pair.video, added["id"])
    assert await notifications(pair.video, "refused") == 1
    assert await notifications(pair.video, "sent") == 0
    [line] = [r for r in caplog.records if r.name == "edge_service_video.notices"]
    assert (line.outcome, line.status) == ("refused", 422)  # type: ignore[attr-defined]


async def test_mail_down_never_fails_the_upload(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    await inbox(pair)
    pair.down(MAIL_URL)
    with caplog.at_level(logging.DEBUG):
        added = await upload(pair.video)
    assert added["notified"] is False
    assert await still_there(pair.video, added["id"])
    assert await notifications(pair.video, "unavailable") == 1
    [line] = [r for r in caplog.records if r.name == "edge_service_video.notices"]
    assert line.outcome == "unavailable"  # type: ignore[attr-defined]
    for record in caplog.records:  # no token, ever: not the user's, not video's own
        assert "eyJ" not in record.getMessage()
        assert "eyJ" not in str(record.__dict__)
    pair.up(MAIL_URL)
    assert await inbox(pair) == []  # not sent later either: the upload said so


async def test_without_an_identity_nothing_is_sent(video: EdgeUnderTest) -> None:
    """No client identity configured: the upload stands, unnotified, counted."""
    added = await upload(video)
    assert added["notified"] is False
    assert await notifications(video, "unavailable") == 1


async def test_every_outcome_is_counted_from_zero(video: EdgeUnderTest) -> None:
    for outcome in ("sent", "refused", "unavailable"):
        assert await notifications(video, outcome) == 0


def test_a_long_title_still_makes_a_subject_mail_takes() -> None:
    assert subject("cats") == "Your video is up: cats"
    long = subject("t" * 200)
    assert len(long) == MAX_SUBJECT
    assert long.endswith("t…")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/videos", None),
        ("GET", "/videos/vid_x", None),
        ("POST", "/videos", {"title": "t"}),
        ("DELETE", "/videos/vid_x", None),
    ],
)
async def test_a_service_token_is_refused_at_every_route(
    video: EdgeUnderTest, method: str, path: str, body: Any
) -> None:
    token = video.issuer.token(
        sub="mail",
        client_id="mail",
        sid=None,
        aud=["video"],
        scope="video:read video:upload video:delete",
    )
    answer = await video.http.request(
        method, path, json=body, headers={"authorization": f"Bearer {token}"}
    )
    expect_problem(answer, 403, "caller_not_allowed")
