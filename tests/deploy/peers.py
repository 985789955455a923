"""The edges' calls to each other, driven from outside a running deployment (the compose stack,
the dev overlay under ``podman kube play``).

A user uploads a video: video tells them so in their mail inbox, with a token of its own
(client credentials at the auth service: audience mail, scope ``mail:notify``). Then they send a
message pointing at that video: mail looks the video up at video with the user's token exchanged
at the auth service for one video accepts (``video:read``), when the message is sent and when it
is read. Either call failing shows: the upload says ``notified: false``, the message has no title.
"""

from __future__ import annotations

import secrets

import httpx

from edge_service_video.notices import subject
from tests.support.auth_client import bearer


def check_upload_notice_and_video_in_mail(
    mail: httpx.Client, video: httpx.Client, token: str, user_id: str
) -> None:
    """The user of ``token`` (``user_id``) uploads at ``video``, finds the notice at ``mail``,
    and sends themselves a message there that points at the video."""
    headers = bearer(token)
    # Mail takes notices only for users who have used it: the first request opens the mailbox.
    opened = mail.get("/inbox", headers=headers)
    assert opened.status_code == 200, opened.text

    title = f"deploy {secrets.token_hex(4)}"
    upload = video.post("/videos", json={"title": title}, headers=headers)
    assert upload.status_code == 201, upload.text
    assert upload.json()["notified"] is True, "video could not notify mail (see video's log)"
    video_id = upload.json()["id"]

    inbox = mail.get("/inbox", headers=headers)
    assert inbox.status_code == 200, inbox.text
    notices = [item for item in inbox.json()["items"] if item["from"] == "service:video"]
    assert [(notice["to"], notice["subject"]) for notice in notices] == [(user_id, subject(title))]

    draft = {"to": user_id, "subject": "watch this", "body": "mine", "video_id": video_id}
    sent = mail.post("/messages", json=draft, headers=headers)
    assert sent.status_code == 201, sent.text
    described = {"id": video_id, "title": title, "available": True}
    assert sent.json()["video"] == described
    read = mail.get(sent.headers["location"], headers=headers)
    assert read.status_code == 200, read.text
    assert read.json()["video"] == described
