"""The revocation feed follower: the auth service's revocations reach the edge within a second.

Edges verify tokens locally and never call the auth service per request, so a logout, a disabled
user or a revoked key would go unnoticed until the token expires. The auth service publishes
every revocation on a feed, listed in its discovery document as
``gatepass_revocation_feed_endpoint``; :class:`RevocationFeed` follows it in the background into
the :class:`~gatepass.core.revocations.DenySet` the verifier checks on every accepted token.

The wire contract, in short: ``GET <feed>?cursor=<opaque>&wait=<seconds>`` with
``Authorization: Bearer <feed token>`` answers ``{"cursor", "snapshot", "more", "events"}``.
Without a cursor (or with one the server cannot continue: another database), the answer is a
snapshot of every live event, which replaces the deny-set; otherwise the events after the cursor,
which are added. ``more: true`` means call again at once; the follower is caught up once an
answer says ``more: false``. With nothing new, the server holds the request up to ``wait``
seconds (a long poll), so an event reaches the edge as soon as it is committed.

How it behaves:

- discovery is the key set's (:meth:`~gatepass.core.keyset.RemoteKeySet.discovery`): read once
  for both the JWKS and the feed; an issuer that lists no feed is asked again every five minutes;
  an ``endpoint`` given (the ``feed_url`` setting) is used instead, as ``jwks_url`` is for keys;
- at start, it catches up before the app serves (``wait=0`` and every page), then long-polls;
- a snapshot spread over several pages is collected aside and replaces the deny-set only when
  complete; meanwhile its events are also added to the live set, which never loses an entry;
- a ``key`` event also makes the key set refuse that ``kid`` until the event expires, even while
  the JWKS still lists it (which empties the verified-token cache of its tokens); ``session``
  and ``user`` events drop their tokens from that cache (an index lookup; the deny-set check
  alone already refuses them); a ``client`` event (a registered client disabled or removed)
  leaves the cache as it is: the cache has no index by client, and the deny-set check refuses
  its tokens, cached or not;
- it authenticates with the ``token`` given (the ``feed_token`` setting) or, without one, with
  a service token of the edge's own (:class:`~gatepass.core.oauth.ServiceTokens`, audience
  ``auth``, scope ``revocations:read``), fetched and renewed as it ages, and handed back when
  the feed answers 401 (revoked since it was issued), so that the next poll asks for a new one;
- failures (network, timeout, 4xx, 5xx, an answer that is not the contract's, no service token)
  back off exponentially with jitter, from one second to thirty, and never drop an entry: an
  edge that lost the feed keeps serving with what it has, unless ``max_lag`` says otherwise:
  after that many seconds without a successful answer every token gets a 503 (never a 401)
  until it answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random as _random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gatepass.core.clock import Clock, Sleep, system_clock
from gatepass.core.errors import TokenEndpointError
from gatepass.core.fetch import OK, FetchFailed, get_limited
from gatepass.core.keyset import RemoteKeySet
from gatepass.core.oauth import ServiceTokens
from gatepass.core.revocations import (
    CLIENT,
    CUT_OFF_KINDS,
    JTI,
    KEY,
    SESSION,
    USER,
    DenySet,
    Revocation,
)
from gatepass.core.stats import (
    FEED_CATCHING_UP,
    FEED_CAUGHT_UP,
    FEED_DISABLED,
    FEED_DISCOVERING,
    FEED_NOT_LISTED,
    FeedState,
)
from gatepass.core.tokencache import TokenCache

log = logging.getLogger("gatepass.core.revocations")

_VALUE_FIELDS = {SESSION: "sid", USER: "sub", CLIENT: "client_id", JTI: "jti", KEY: "kid"}
_MAX_VALUE_CHARS = 1024
_MAX_CURSOR_CHARS = 256
_MAX_SAFE_INT = 2**53


@dataclass(frozen=True)
class FeedConfig:
    """How the follower polls, retries and gives up. Times are seconds.

    ``wait``: the long poll the server is asked for (0 to 30); the request's own timeout is
    ``wait + fetch_timeout``. ``max_lag``: fail closed (503) after that long without a
    successful answer; ``None``: never. It must exceed ``wait``, which a quiet feed takes.
    ``hold``: how much longer than its ``expires_at`` an entry is kept: the edge's leeway, since
    the edge lets a token in until that long after its ``exp`` (the issuer's ``expires_at``
    allows for its own leeway only).
    """

    enabled: bool = True
    hold: float = 0.0
    wait: float = 25.0
    max_lag: float | None = None
    fetch_timeout: float = 10.0
    max_bytes: int = 16 * 1024 * 1024
    retry_min: float = 1.0
    retry_max: float = 30.0
    rediscover_interval: float = 300.0
    start_timeout: float = 30.0
    min_poll_interval: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.wait <= 30:
            raise ValueError("the feed's wait must be between 0 and 30 seconds")
        if self.max_lag is not None and self.max_lag <= self.wait:
            raise ValueError(
                "the feed's max lag must be longer than its wait: a quiet long poll answers "
                "only after wait seconds"
            )
        if min(self.fetch_timeout, self.retry_min, self.start_timeout) <= 0:
            raise ValueError("fetch_timeout, retry_min and start_timeout must be positive")
        if self.retry_max < self.retry_min:
            raise ValueError("retry_max must not be shorter than retry_min")


@dataclass(frozen=True)
class FeedAnswer:
    """One answer of the feed, parsed. ``skipped``: events of a kind this edge does not know."""

    cursor: str
    snapshot: bool
    more: bool
    events: tuple[Revocation, ...]
    skipped: int = 0


class RevocationFeed:
    """Follows the issuer's revocation feed into ``denyset``.

    Shares the key set's discovery and HTTP client, so :meth:`start` it after the key set, and
    :meth:`aclose` it before. ``token`` is the feed's bearer credential; without one,
    ``tokens`` gives it: a service token of the edge's own (audience ``auth``, scope
    ``revocations:read``), renewed as it ages; with neither the feed is read anonymously, which
    only a development auth service accepts.
    """

    def __init__(
        self,
        keyset: RemoteKeySet,
        denyset: DenySet,
        *,
        token: str | None = None,
        tokens: ServiceTokens | None = None,
        endpoint: str | None = None,
        config: FeedConfig | None = None,
        cache: TokenCache | None = None,
        clock: Clock = system_clock,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.config = config or FeedConfig()
        self.denyset = denyset
        self._keyset = keyset
        self._token = token
        self._tokens = tokens
        self._cache = cache
        self._clock, self._sleep, self._random = clock, sleep, random
        self._status = FEED_DISCOVERING if self.config.enabled else FEED_DISABLED
        # Given: the feed is there, whatever discovery lists (a URL on a private network, say).
        self._endpoint, self._fixed = endpoint, endpoint is not None
        if endpoint is not None and self.config.enabled:
            self._status = FEED_CATCHING_UP
        self._rediscover = False
        self._cursor: str | None = None
        self._more = False
        self._staging: DenySet | None = None
        self._caught_up = False
        self._failures = 0
        self._last_success_at: float | None = None
        self._last_event_at: float | None = None
        self._last_outcome: str | None = None
        self.answers = 0
        self.errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    def use_tokens(self, tokens: ServiceTokens) -> None:
        """Read the feed with ``tokens`` (a service token of the edge's own) unless a fixed
        ``token`` was given. Before :meth:`start`: the edge's lifespan calls it once its
        identity is known."""
        self._tokens = tokens

    @property
    def authenticates_with(self) -> str:
        """How the feed is read: ``token`` (given), ``service_token`` or ``anonymous``."""
        if self._token is not None:
            return "token"
        return "service_token" if self._tokens is not None else "anonymous"

    async def start(self) -> None:
        """Catch up once (bounded by ``start_timeout``), then follow in the background.

        Never raises for the issuer's failures: the edge starts, and readiness says why it is
        not ready yet.
        """
        if self._task is not None or not self.config.enabled:
            return
        if self.config.max_lag is not None:
            # Failing closed starts now: nothing is known of the revocations until caught up.
            self.denyset.trusted_until = -math.inf
        delay = await self._catch_up()
        self._task = asyncio.create_task(self._run(delay), name="gatepass-revocation-feed")
        self._task.add_done_callback(_report_crash)

    async def aclose(self) -> None:
        """Stop following (the deny-set keeps what it has)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None

    async def __aenter__(self) -> RevocationFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _catch_up(self) -> float:
        """Steps until caught up, not listed, a failure or the start timeout: the delay then."""
        try:
            async with asyncio.timeout(self.config.start_timeout):
                while True:
                    delay = await self._step()
                    if delay > 0 or self._caught_up:
                        return delay
        except TimeoutError:
            log.warning("the revocation feed is not caught up yet; following it in the background")
            return 0.0

    async def _run(self, delay: float) -> None:
        while True:
            if delay > 0:
                await self._sleep(delay)
            try:
                delay = await self._step()
            except Exception:  # a bug must not stop revocations for good
                log.exception("the revocation feed follower failed; retrying")
                delay = self._failed("internal_error")

    # -- one step: discovery, or one request to the feed -----------------------------------

    async def _step(self) -> float:
        """One request; returns how long to wait before the next (0: at once)."""
        self.denyset.prune(self._clock())
        if self._endpoint is None:
            return await self._find_feed()
        wait = self.config.wait if self._caught_up and not self._more else 0.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            answer = await self._poll(self._endpoint, wait)
        except FetchFailed as exc:
            return self._failed(exc.outcome, str(exc))
        self._apply(answer)
        if wait and not answer.more and not answer.events:
            # A server that does not hold the request must not make this a busy loop.
            return max(0.0, self.config.min_poll_interval - (loop.time() - started))
        return 0.0

    async def _find_feed(self) -> float:
        discovery = await self._keyset.discovery(refresh=self._rediscover)
        if discovery is None:
            return self._failed("discovery_error")
        self._rediscover = False
        if discovery.feed_uri is None:
            if self._status != FEED_NOT_LISTED:
                log.info("the issuer lists no revocation feed: running without one")
            self._status = FEED_NOT_LISTED
            self.denyset.trusted_until = math.inf  # nothing to lag behind
            self._rediscover = True
            return self.config.rediscover_interval
        if self._status in (FEED_DISCOVERING, FEED_NOT_LISTED):
            if self._status == FEED_NOT_LISTED and self.config.max_lag is not None:
                self.denyset.trusted_until = self._clock() + self.config.max_lag
            self._status = FEED_CATCHING_UP
        self._endpoint = discovery.feed_uri
        return 0.0

    async def _poll(self, endpoint: str, wait: float) -> FeedAnswer:
        client = self._keyset.http_client
        if client is None:
            raise RuntimeError("start the key set before its revocation feed")
        params = {"wait": f"{wait:g}"}
        if self._cursor is not None:
            params["cursor"] = self._cursor
        headers = {"accept": "application/json"}
        token = self._token or await self._service_token()
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        limit = wait + self.config.fetch_timeout
        try:
            async with asyncio.timeout(limit):
                response, body = await get_limited(
                    client,
                    endpoint,
                    headers,
                    self.config.max_bytes,
                    params=params,
                    client_timeout=limit,
                )
        except TimeoutError:
            raise FetchFailed("timeout", f"no answer within {limit:g} s") from None
        own = self._tokens if self._token is None else None
        if response.status_code == 401 and own is not None and token is not None:
            # Our own service token, refused: revoked since it was issued (our client disabled
            # and enabled again, say). Handed back, so the next poll asks for a new one.
            own.refused(token)
        self._check_status(response.status_code)
        return parse_answer(body)

    async def _service_token(self) -> str | None:
        """The edge's own token for the feed, if it reads the feed with one (cached: a request
        to the token endpoint only when it is due for renewal)."""
        if self._tokens is None:
            return None
        try:
            return await self._tokens.get()
        except TokenEndpointError as exc:
            raise FetchFailed("token_unavailable", exc.reason) from None

    def _check_status(self, status: int) -> None:
        if status == 200:
            return
        if status in (401, 403):
            raise FetchFailed("unauthorized", f"status {status}: check the feed's credentials")
        if status == 400:  # our cursor is refused: start again from a snapshot
            self._cursor, self._staging = None, None
            raise FetchFailed("bad_request", "status 400")
        if status == 404 and not self._fixed:  # the feed moved, or is gone: ask discovery again
            self._endpoint, self._rediscover = None, True
            raise FetchFailed("not_found", "status 404")
        raise FetchFailed("http_error", f"status {status}")

    def _apply(self, answer: FeedAnswer) -> None:
        """Take one answer: a snapshot's pages are collected aside until the last one."""
        now = self._clock()
        self.denyset.prune(now)
        if answer.snapshot:
            self._staging = DenySet()
        hold = self.config.hold
        for received in answer.events:
            event = dataclasses.replace(received, expires_at=received.expires_at + hold)
            if event.expires_at <= now:
                continue  # no token it could refuse is alive
            if self._staging is not None:
                self._staging.add(event, now)
            self.denyset.add(event, now)
            self._enforce(event)
            self.events[event.kind] += 1
        if answer.skipped:
            self.events["unknown"] += answer.skipped
        if answer.events:
            self._last_event_at = now
        if not answer.more and self._staging is not None:
            self.denyset.replace_with(self._staging)
            self._staging = None
        self._cursor, self._more = answer.cursor, answer.more
        self._succeeded(now, trusted=self._caught_up or not answer.more)
        if not answer.more and not self._caught_up:
            self._caught_up, self._status = True, FEED_CAUGHT_UP
            log.info("caught up with the revocation feed", extra={"entries": len(self.denyset)})

    def _enforce(self, event: Revocation) -> None:
        """What an event does beyond the deny-set: the key set, the verified-token cache."""
        if event.kind == KEY:
            self._keyset.revoke_key(event.value, event.expires_at)
        elif self._cache is not None:
            if event.kind == SESSION:
                self._cache.drop_sid(event.value)
            elif event.kind == USER:
                self._cache.drop_sub(event.value)

    # -- outcomes ---------------------------------------------------------------------------

    def _succeeded(self, now: float, *, trusted: bool = True) -> None:
        """An answer; ``trusted``: the deny-set is whole (not before the first catch-up)."""
        self.answers += 1
        self._failures = 0
        self._last_success_at = now
        self._last_outcome = OK
        max_lag = self.config.max_lag
        if trusted:
            self.denyset.trusted_until = math.inf if max_lag is None else now + max_lag

    def _failed(self, outcome: str, reason: str = "") -> float:
        """Count a failure; the backoff before the next try: exponential, with jitter."""
        self._failures += 1
        self.errors[outcome] += 1
        self._last_outcome = outcome
        exponent = min(self._failures - 1, 16)
        backoff = min(self.config.retry_min * 2.0**exponent, self.config.retry_max)
        delay = backoff * (0.5 + 0.5 * self._random())
        self.denyset.retry_after = max(1.0, delay)
        log.warning(
            "revocation feed request failed",
            extra={"outcome": outcome, "reason": reason, "retry_in_seconds": round(delay, 1)},
        )
        return delay

    # -- state ------------------------------------------------------------------------------

    @property
    def caught_up(self) -> bool:
        return self._caught_up

    @property
    def cursor(self) -> str | None:
        return self._cursor

    def state(self) -> FeedState:
        """A snapshot for readiness probes and metrics (prunes expired entries first)."""
        now = self._clock()
        self.denyset.prune(now)
        last = self._last_success_at
        return FeedState(
            status=self._status,
            endpoint=self._endpoint,
            caught_up=self._caught_up,
            fail_closed=now > self.denyset.trusted_until,
            lag_seconds=None if last is None else now - last,
            max_lag=self.config.max_lag,
            wait=self.config.wait,
            last_success_at=last,
            last_event_at=self._last_event_at,
            last_outcome=self._last_outcome,
            answers=self.answers,
            errors=dict(self.errors),
            events=dict(self.events),
            live=self.denyset.counts(),
        )


# -- the answer -----------------------------------------------------------------------------


def parse_answer(body: bytes) -> FeedAnswer:
    """An answer of the feed, checked against the contract; :class:`FetchFailed` otherwise.

    An event of a kind this edge does not know is skipped (a newer auth service may add
    kinds); a known kind with a missing or mistyped field fails the whole answer, which is
    retried: applying part of it could skip a revocation.
    """
    try:
        document: Any = orjson.loads(body)
    except ValueError as exc:  # not UTF-8, not JSON, or nested over 1,024 deep
        raise _invalid("not JSON") from exc
    if not isinstance(document, dict):
        raise _invalid("not a JSON object")
    cursor, events = document.get("cursor"), document.get("events")
    snapshot, more = document.get("snapshot"), document.get("more")
    if not isinstance(cursor, str) or not 0 < len(cursor) <= _MAX_CURSOR_CHARS:
        raise _invalid("no usable cursor")
    if type(snapshot) is not bool or type(more) is not bool:
        raise _invalid("snapshot and more must be booleans")
    if not isinstance(events, list):
        raise _invalid("events is not a list")
    parsed = [_event(event, position) for position, event in enumerate(events)]
    known = tuple(event for event in parsed if event is not None)
    return FeedAnswer(cursor, snapshot, more, known, len(parsed) - len(known))


def _event(event: object, position: int) -> Revocation | None:
    if not isinstance(event, dict) or not isinstance(event.get("kind"), str):
        raise _invalid(f"event {position} is not an object with a kind")
    kind: str = event["kind"]
    field = _VALUE_FIELDS.get(kind)
    if field is None:
        return None
    value = event.get(field)
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_VALUE_CHARS:
        raise _invalid(f"event {position} ({kind}): {field!r} is not a usable string")
    expires_at = _time(event.get("expires_at"), position, "expires_at")
    cut_off = kind in CUT_OFF_KINDS
    not_before = _time(event.get("not_before"), position, "not_before") if cut_off else 0.0
    return Revocation(kind, value, expires_at, not_before)


def _time(value: object, position: int, name: str) -> float:
    """A time: a number (a bool is none), neither huge nor NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"event {position}: {name!r} is not a time")
    if not -_MAX_SAFE_INT < value < _MAX_SAFE_INT:
        raise _invalid(f"event {position}: {name!r} is not a time")
    return float(value)


def _invalid(detail: str) -> FetchFailed:
    return FetchFailed("invalid_answer", detail)


def _report_crash(task: asyncio.Task[None]) -> None:
    """The loop only ends by cancellation; anything else is a bug worth a loud log."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the revocation feed follower stopped", exc_info=task.exception())
