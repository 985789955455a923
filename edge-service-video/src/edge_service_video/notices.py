"""Telling an uploader their video is up: a notification in their mail inbox.

After an upload commits, video calls mail ``POST {MAIL_URL}/notifications`` with its own
identity (a client-credentials token: audience ``mail``, scope ``mail:notify``; cached and
renewed by :mod:`gatepass.calls`). The upload never fails for it: mail unreachable, or refusing
(an uploader who never used mail has no mailbox there), is one log line and a count in
``gatepass_video_notifications_total{outcome}``, and the upload's answer says
``"notified": false``. Not retried: mail would deliver a retried notification twice.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Request
from prometheus_client import CollectorRegistry, Counter

from edge_service_video.models import Video
from gatepass.calls import Calls, PeerUnavailableError, ServiceCalls

AUDIENCE = "mail"
NOTIFY = "mail:notify"
MAX_SUBJECT = 200  # mail's limit

Outcome = Literal["sent", "refused", "unavailable"]
OUTCOMES: tuple[Outcome, ...] = ("sent", "refused", "unavailable")

log = logging.getLogger("edge_service_video.notices")

_STATE_ATTRIBUTE = "video_notices"


class Notices:
    """Upload notifications to the mail service at ``mail_url``, counted in ``registry``."""

    def __init__(self, mail_url: str, registry: CollectorRegistry) -> None:
        self.mail_url = mail_url
        self.counted = Counter(
            "gatepass_video_notifications",
            "Upload notifications to the mail service, by outcome: sent, refused by mail "
            "(the uploader has no mailbox, say), or mail unavailable.",
            ["outcome"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.counted.labels(outcome)  # every outcome at 0 from the start

    async def video_up(self, calls: ServiceCalls, video: Video) -> bool:
        """Tell ``video``'s owner it is up; whether mail took the notification (a failure is
        logged and counted, never raised)."""
        notice = {"to": video.owner, "subject": subject(video.title), "body": body(video)}
        status: int | None = None
        try:  # no identity configured: as_service raises at once
            auth = calls.as_service(AUDIENCE, NOTIFY)
            answer = await calls.post(f"{self.mail_url}/notifications", auth=auth, json=notice)
        except PeerUnavailableError:
            outcome: Outcome = "unavailable"
        else:
            status = answer.status_code
            outcome = "sent" if status == 201 else "refused"
        self.counted.labels(outcome).inc()
        if outcome != "sent":
            log.warning(
                "the uploader was not notified", extra={"outcome": outcome, "status": status}
            )
        return outcome == "sent"


def subject(title: str) -> str:
    """One line (the title is one), within mail's limit."""
    line = f"Your video is up: {title}"
    return line if len(line) <= MAX_SUBJECT else line[: MAX_SUBJECT - 1] + "…"


def body(video: Video) -> str:
    return f'Your video "{video.title}" is up, as {video.id}.'


def attach(app: FastAPI, notices: Notices) -> None:
    setattr(app.state, _STATE_ATTRIBUTE, notices)


class Mailer:
    """:class:`Notices` with the app's calls, for one request."""

    def __init__(self, notices: Notices, calls: ServiceCalls) -> None:
        self._notices = notices
        self._calls = calls

    async def video_up(self, video: Video) -> bool:
        return await self._notices.video_up(self._calls, video)


def mailer(request: Request, calls: Calls) -> Mailer:
    """The dependency: the app's :class:`Notices`, with its calls."""
    notices = getattr(request.app.state, _STATE_ATTRIBUTE, None)
    if not isinstance(notices, Notices):
        raise RuntimeError("not the video app: build it with edge_service_video.app.create_app")
    return Mailer(notices, calls)


MailNotices = Annotated[Mailer, Depends(mailer)]
