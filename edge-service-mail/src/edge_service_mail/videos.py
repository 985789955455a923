"""The video a message points at, looked up at the video service on the user's behalf.

Mail asks video ``GET {VIDEO_URL}/videos/{id}`` with a token exchanged for the user's own
(RFC 8693: audience ``video``, scope ``video:read``; :mod:`gatepass.calls` caches it for the
token's life), so video answers as it would answer the user: mail sees nothing the user could
not see themselves.

- A user whose token lacks ``video:read`` cannot have mail ask video for them (the issuer
  grants no scope the user's token lacks), so mail does not try: neither the issuer nor video
  is asked. On send that is the edge's 403 ``insufficient_scope`` naming ``video:read``; on
  read, the video is shown unavailable.
- On send, the video must exist: video's 404 is a 422 ``unknown_video``; video unreachable is
  the library's 503 ``peer_unavailable``; an exchange the issuer refuses for the user's sake is
  the library's 401 or 403 (:class:`~gatepass.calls.ExchangeRefusedError`). Nothing is stored
  in any of these cases.
- On read, the message is shown unless the user's token turned out no longer good (the
  issuer's 401): a video that is gone, a video service that cannot be asked, or an exchange
  refused for the scope make ``{"id", "title": null, "available": false}``.

Listing routes show the ``video_id`` only: one call per listed message would make an inbox as
slow, and as fragile, as the video service.
"""

from __future__ import annotations

import logging
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, ValidationError

from edge_service_mail.schemas import VideoRef
from gatepass import AccessPrincipal, ProblemError, edge_auth
from gatepass.calls import Calls, ExchangeRefusedError, PeerUnavailableError, ServiceCalls

AUDIENCE = "video"
READ = "video:read"

log = logging.getLogger("edge_service_mail.videos")

_STATE_ATTRIBUTE = "mail_videos"


class UnknownVideoError(ProblemError):
    status = 422
    code = "unknown_video"
    title = "No such video"

    def __init__(self) -> None:
        super().__init__("The video service has no such video (it may have been deleted).")


class _Video(BaseModel):
    """What mail reads of video's answer (the rest is video's business)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    title: str


class Videos:
    """The video service at ``base_url`` (one per app)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url


class VideoLookup:
    """The video service, asked for the caller of ``request`` through the app's calls."""

    def __init__(self, videos: Videos, calls: ServiceCalls, request: Request) -> None:
        self._base_url = videos.base_url
        self._calls = calls
        self._request = request

    async def check(self, user: AccessPrincipal, video_id: str) -> VideoRef:
        """The video, which must exist: 403 ``insufficient_scope`` if ``user`` may not read
        videos, :class:`UnknownVideoError` if video has none, :class:`PeerUnavailableError` if
        video cannot say."""
        if not may_read_videos(user):
            raise edge_auth(self._request).insufficient_scope(frozenset({READ}))
        answer = await self._get(video_id)
        if answer.status_code == 404:
            raise UnknownVideoError
        video = _read(answer)
        if video is None:
            raise PeerUnavailableError(AUDIENCE)
        return VideoRef(id=video_id, title=video.title, available=True)

    async def describe(self, user: AccessPrincipal, video_id: str) -> VideoRef:
        """The video as it is now; unavailable (no title) if ``user`` may not read videos, if
        it is gone, or if video cannot say."""
        gone = VideoRef(id=video_id, title=None, available=False)
        if not may_read_videos(user):
            return gone
        try:
            answer = await self._get(video_id)
        except PeerUnavailableError:
            return gone  # the library logged why
        except ExchangeRefusedError as refused:
            if refused.status == 401:
                raise  # the user's own token is no longer good: not theirs to read with
            return gone
        if answer.status_code == 404:
            return gone
        video = _read(answer)
        return gone if video is None else VideoRef(id=video_id, title=video.title, available=True)

    async def _get(self, video_id: str) -> httpx.Response:
        auth = self._calls.for_user(self._request, AUDIENCE, READ)
        return await self._calls.get(f"{self._base_url}/videos/{video_id}", auth=auth)


def may_read_videos(user: AccessPrincipal) -> bool:
    """Whether mail may ask video for ``user``: an exchange grants no scope their token lacks."""
    return READ in user.scopes


def _read(answer: httpx.Response) -> _Video | None:
    """Video's 200 answer, or ``None`` (logged) for any other answer, or one mail cannot read: a
    401 or 403 there is a misconfiguration (the exchanged token refused), not the user's doing."""
    if answer.status_code == 200:
        try:
            return _Video.model_validate_json(answer.content)
        except ValidationError:
            pass
    log.warning(
        "unexpected answer from the video service",
        extra={"peer": AUDIENCE, "status": answer.status_code},
    )
    return None


def attach(app: FastAPI, videos: Videos) -> None:
    setattr(app.state, _STATE_ATTRIBUTE, videos)


def video_lookup(request: Request, calls: Calls) -> VideoLookup:
    """The dependency: the video service, for this request's caller."""
    videos = getattr(request.app.state, _STATE_ATTRIBUTE, None)
    if not isinstance(videos, Videos):
        raise RuntimeError("not the mail app: build it with edge_service_mail.app.create_app")
    return VideoLookup(videos, calls, request)


VideoService = Annotated[VideoLookup, Depends(video_lookup)]
