"""``GET /revocations``: the revocation feed the edges follow (its logic: :mod:`auth_service.feed`).

Readers present a bearer token of ``FEED_READ_TOKENS`` (name -> token), compared in constant time
with every configured one; the name is what logs and metrics show. In development with no reader
configured the feed is anonymous; otherwise a request without a known token gets 401. The route's
OpenAPI security follows the settings, so each app's document says which.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Mapping
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, SecretStr

from auth_service import feed
from auth_service.config import Settings
from auth_service.errors import InvalidFeedRequestError
from auth_service.routes.jwks import if_none_match
from auth_service.security import REALM, bearer_token, client_ip
from auth_service.state import Svc
from gatepass import challenges
from gatepass.core.errors import GatepassError, TokenError
from gatepass.openapi import (
    CHALLENGE,
    Header,
    Responses,
    bearer_security,
    merge_responses,
    problem_responses,
)
from gatepass.problems import ProblemError

log = logging.getLogger("gatepass.auth.feed")

ANONYMOUS = "anonymous"
UNKNOWN = "unknown"  # the reader of a refused request, in metrics
NO_STORE = "no-store"


class UnknownFeedTokenError(TokenError):
    """A bearer token that is no configured feed reader's (an access token among them)."""

    reason = "unknown_feed_token"
    description = "The token does not grant access to the revocation feed."


# -- what the OpenAPI document says ---------------------------------------------------------------


class SessionEvent(BaseModel):
    """Refuse tokens whose ``sid`` is ``sid``."""

    id: int
    kind: Literal["session"]
    sid: str
    expires_at: int


class UserEvent(BaseModel):
    """Refuse tokens of ``sub`` whose ``iat`` is before ``not_before`` (keep the latest)."""

    id: int
    kind: Literal["user"]
    sub: str
    not_before: int
    expires_at: int


class JtiEvent(BaseModel):
    """Refuse the token whose ``jti`` is ``jti``."""

    id: int
    kind: Literal["jti"]
    jti: str
    expires_at: int


class KeyEvent(BaseModel):
    """Refuse every token signed with ``kid`` (and drop the key)."""

    id: int
    kind: Literal["key"]
    kid: str
    expires_at: int


FeedEvent = Annotated[SessionEvent | UserEvent | JtiEvent | KeyEvent, Field(discriminator="kind")]


class FeedPage(BaseModel):
    """One answer: ``snapshot`` replaces what the reader holds, otherwise the events are added;
    ``more``: call again at once with ``cursor``. Times are seconds since the epoch."""

    cursor: str
    snapshot: bool
    more: bool
    events: list[FeedEvent]


_ANSWER_HEADERS = {
    "ETag": {
        "description": "The quoted cursor: sent back as `If-None-Match` with `wait=0`, it gets "
        "a 304 while nothing is newer.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "Never cached.",
        "required": True,
        "schema": {"type": "string", "pattern": NO_STORE},
    },
}
_MALFORMED = "The `cursor` or `wait` is malformed"
_CHALLENGE_IF_HEADER = Header(
    "WWW-Authenticate",
    "The RFC 6750 challenge, when the `Authorization` header is what is malformed.",
    CHALLENGE.schema,
    required=False,
)


def _answers(anonymous: bool) -> Responses:
    found: Responses = {
        200: {"headers": _ANSWER_HEADERS},
        304: {
            "description": "Nothing newer than the cursor (`wait=0`).",
            "headers": _ANSWER_HEADERS,
        },
    }
    if anonymous:
        return merge_responses(found, problem_responses(400, descriptions={400: _MALFORMED + "."}))
    return merge_responses(
        found,
        problem_responses(
            400,
            401,
            descriptions={
                400: _MALFORMED + ", or the `Authorization` header is (two, or a malformed token).",
                401: "No feed read token, or one that is not configured.",
            },
            headers={400: [_CHALLENGE_IF_HEADER], 401: [CHALLENGE]},
        ),
    )


CursorParam = Annotated[
    str | None,
    Query(
        description="The `cursor` of the previous answer; none on the first call. One this "
        "service cannot continue (another database, an id it never issued) gets a snapshot.",
        json_schema_extra={"pattern": feed.CURSOR_PATTERN},
    ),
]
WaitParam = Annotated[
    str | None,
    Query(
        description=f"Seconds (0 to {feed.MAX_WAIT:g}, default 0) to wait for an event newer than "
        "the cursor before answering with none.",
        json_schema_extra={"pattern": feed.WAIT_PATTERN},
    ),
]


def router(settings: Settings) -> APIRouter:
    """The feed's route, documented with the security these settings give it."""
    anonymous = settings.feed_is_anonymous
    routes = APIRouter(tags=["revocations"])
    routes.add_api_route(
        "/revocations",
        revocations,
        methods=["GET"],
        response_model=FeedPage,
        summary="The revocation feed: events after a cursor, or a snapshot; long poll with wait.",
        responses=_answers(anonymous),
        openapi_extra=None if anonymous else bearer_security(),
    )
    return routes


# -- the route ------------------------------------------------------------------------------------


async def revocations(
    request: Request, svc: Svc, cursor: CursorParam = None, wait: WaitParam = None
) -> Response:
    try:
        reader = feed_reader(request, svc.settings)
    except ProblemError as refusal:
        svc.metrics.feed_requests.labels(UNKNOWN, str(refusal.status)).inc()
        raise
    try:
        after, seconds = _parameters(request, cursor, wait)
    except InvalidFeedRequestError:
        svc.metrics.feed_requests.labels(reader, "400").inc()
        raise
    if seconds:
        page = await _unless_gone(request, svc.feed.follow(after, seconds))
        if page is None:  # the reader went away while it waited: nobody to answer (nginx's 499)
            svc.metrics.feed_requests.labels(reader, "499").inc()
            return Response(status_code=499)
    else:
        page = await svc.feed.follow(after, 0)
    etag = f'"{page.cursor}"'
    headers = {"ETag": etag, "Cache-Control": NO_STORE}
    unchanged = not page.snapshot and not page.events and not page.more
    if seconds == 0 and unchanged and if_none_match(request.headers.getlist("if-none-match"), etag):
        svc.metrics.feed_requests.labels(reader, "304").inc()
        return Response(status_code=304, headers=headers)
    svc.metrics.feed_requests.labels(reader, "200").inc()
    log.debug(
        "revocation feed read",
        extra={"reader": reader, "events": len(page.events), "snapshot": page.snapshot},
    )
    return JSONResponse(page.body(), headers=headers)


async def _unless_gone(request: Request, waiting: Awaitable[feed.Page]) -> feed.Page | None:
    """``waiting``'s page, or ``None`` as soon as the client disconnects: a long poll whose reader
    went away (an edge stopped) must not wait on, or a stopping server would wait for it."""
    follow = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({follow, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not follow.done():
            follow.cancel()
    return follow.result() if follow.done() and not follow.cancelled() else None


async def _disconnect(request: Request) -> None:
    """Returns when the client has gone (the request itself, a GET, has no body to read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _parameters(
    request: Request, cursor: str | None, wait: str | None
) -> tuple[feed.Cursor | None, float]:
    """The cursor and the wait, each at most once; 400 for anything else (never echoed)."""
    for name in ("cursor", "wait"):
        if len(request.query_params.getlist(name)) > 1:
            raise InvalidFeedRequestError(f"The parameter {name} is repeated.")
    try:
        after = None if cursor is None else feed.parse_cursor(cursor)
    except ValueError:
        raise InvalidFeedRequestError("The cursor is malformed.") from None
    try:
        seconds = 0.0 if wait is None else feed.parse_wait(wait)
    except ValueError:
        raise InvalidFeedRequestError(
            f"wait must be a number of seconds from 0 to {feed.MAX_WAIT:g}."
        ) from None
    return after, seconds


def feed_reader(request: Request, settings: Settings) -> str:
    """The name of the reader the request's bearer token belongs to (``anonymous`` where the
    feed is); else the 401 (or the 400 of a malformed ``Authorization`` header) to answer."""
    if settings.feed_is_anonymous:
        return ANONYMOUS
    try:
        token = bearer_token(request)
    except GatepassError as exc:
        raise challenges.problem(exc, REALM) from None
    if token is None:
        raise challenges.no_token(REALM)
    name = reader_named(settings.feed_read_tokens, token)
    if name is None:
        client = client_ip(request)
        log.warning("revocation feed: unknown read token refused", extra={"client": client})
        raise challenges.problem(UnknownFeedTokenError(), REALM)
    return name


def reader_named(readers: Mapping[str, SecretStr], presented: str) -> str | None:
    """The reader whose token ``presented`` is, compared with every configured token in constant
    time (no early exit: the time says nothing of which, or how many, came close)."""
    found = None
    for name, token in readers.items():
        if hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
            found = name
    return found
