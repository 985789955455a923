"""``GET /revocations``: the revocation feed the edges follow (its logic: :mod:`auth_service.feed`).

Readers present a bearer token of ``FEED_READ_TOKENS`` (name -> token), compared in constant time
with every configured one; the name is what logs and metrics show. A registered service may read
it with a service token of its own instead (client credentials, audience this service's own,
scope ``revocations:read``): its client id is then the reader's name. In development with no
reader configured the feed is anonymous; otherwise a request without a known token, or with a
token of a user, gets 401, and a service token without the scope 403. The route's OpenAPI
security follows the settings, so each app's document says which.
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

from auth_service import feed, grants
from auth_service.config import Settings
from auth_service.errors import InvalidFeedRequestError
from auth_service.routes.jwks import if_none_match
from auth_service.security import REALM, bearer_token, client_ip
from auth_service.state import Services, Svc
from gatepass import challenges
from gatepass.core.errors import GatepassError, RevokedTokenError, TokenError
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
READ_SCOPE = "revocations:read"  # what a service token needs to read the feed


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


class ClientEvent(BaseModel):
    """Refuse tokens whose ``client_id`` claim is ``client_id`` and whose ``iat`` is before
    ``not_before`` (keep the latest): a registered client was disabled or removed."""

    id: int
    kind: Literal["client"]
    client_id: str
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


FeedEvent = Annotated[
    SessionEvent | UserEvent | ClientEvent | JtiEvent | KeyEvent, Field(discriminator="kind")
]


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
            403,
            descriptions={
                400: _MALFORMED + ", or the `Authorization` header is (two, or a malformed token).",
                401: "No feed read token, or one that is not configured; nor a valid service "
                "token (a user's access token is refused).",
                403: f"A service token without the scope `{READ_SCOPE}`.",
            },
            headers={400: [_CHALLENGE_IF_HEADER], 401: [CHALLENGE], 403: [CHALLENGE]},
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
        reader = await feed_reader(request, svc)
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


async def feed_reader(request: Request, svc: Services) -> str:
    """The name of the reader the request's bearer token belongs to (``anonymous`` where the
    feed is; a client id for a service token); else the 401 (or the 400 of a malformed
    ``Authorization`` header, or the 403 of a service token without the scope) to answer."""
    settings = svc.settings
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
        name = await service_reader(svc, token)
    if name is None:
        client = client_ip(request)
        log.warning("revocation feed: unknown read token refused", extra={"client": client})
        raise challenges.problem(UnknownFeedTokenError(), REALM)
    return name


async def service_reader(svc: Services, token: str) -> str | None:
    """The client id of a service token that may read the feed; None for anything else that is
    no service token (a user's, an exchanged one, one that does not verify). A service token
    that its client can no longer use is a 401, one without the scope a 403."""
    try:
        principal = await svc.verifier.verify(token)
    except GatepassError:
        return None
    if not grants.is_service_token(principal):
        return None
    async with svc.sessions() as db:
        if await grants.service_token_revoked(db, principal, svc.clock()):
            raise challenges.problem(RevokedTokenError(), REALM)
    if READ_SCOPE not in principal.scopes:
        raise challenges.insufficient_scope((READ_SCOPE,), REALM)
    return principal.sub


def reader_named(readers: Mapping[str, SecretStr], presented: str) -> str | None:
    """The reader whose token ``presented`` is, compared with every configured token in constant
    time (no early exit: the time says nothing of which, or how many, came close)."""
    found = None
    for name, token in readers.items():
        if hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
            found = name
    return found
