"""The revocation feed: what ``GET /revocations`` reads, in what order, and what wakes long polls.

Edges verify access tokens locally and never call the issuer per request, so they follow this feed
in the background and keep a deny-set of what it lists (:mod:`auth_service.revocation` records the
events: logout, device sign-out, logout everywhere, disable, role and password change, RFC 7009
revocation, refresh-token reuse, key revocation, a registered client disabled or removed).

**Reading.** A cursor is ``<epoch>:<id>``: the database's epoch (random, made by its migration)
and the id of the last event the follower has. The events after it are read in id order, at most
:data:`PAGE_SIZE` at a time (``more`` says another page follows). A request without a cursor, or
with a cursor this database cannot continue (another epoch: a restored or reset database; an id
beyond any it has issued), gets a snapshot instead: every live event from the start, which the
follower puts in place of what it holds. Expired events are left out of every answer (housekeeping
deletes them), but the cursor moves past them.

**Order.** A follower that has seen id N never looks below N again, so no event may become visible
after one with a higher id. SQLite has one writer at a time. On PostgreSQL two transactions could
take ids 5 and 6 and commit 6 first, and a reader between the two commits would skip 5 for good:
so every event insert first takes a transaction-scoped advisory lock (:func:`lock_for_insert`),
and ids are taken and committed one transaction at a time. Ids are never given twice (SQLite
AUTOINCREMENT, a PostgreSQL sequence), so a cursor always means the same place.

**Waking.** A long poll (``wait``) that finds nothing new waits on the process's :class:`Signal`,
holding no database connection. A commit in this process that recorded an event wakes it at once
(the session's after-commit hook, armed by :func:`lock_for_insert`); one committed through another
replica is seen by :meth:`Feed.watch`, which one background task runs every
:data:`WATCH_INTERVAL` and which reads the newest id only while a long poll waits.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from auth_service.clock import Clock, Sleep
from auth_service.config import Settings
from auth_service.models import FeedEpoch, RevocationEvent
from gatepass.server import draining

log = logging.getLogger("gatepass.auth.feed")

PAGE_SIZE: Final = 1000  # events per answer at most (the contract: at least 1000)
MAX_WAIT: Final = 30.0  # seconds a long poll may ask to wait
WATCH_INTERVAL: Final = 0.25  # seconds between looks for events committed by another replica
EPOCH_BYTES: Final = 12  # as migration 0004 makes it
# The key of the advisory lock that serialises event inserts on PostgreSQL ("gp:feed"; the
# migrations' lock is another).
INSERT_LOCK: Final = int.from_bytes(b"gp:feed", "big")

# <epoch>:<id>, the id in canonical decimal, at most 19 digits (an id past every one issued is
# well-formed: it gets a snapshot, and is never sent to the database).
_CURSOR = re.compile(r"([A-Za-z0-9_-]{1,32}):(0|[1-9][0-9]{0,18})")
CURSOR_PATTERN: Final = f"^{_CURSOR.pattern}$"
# Seconds as a plain non-negative number (digits, an optional fraction, an optional exponent).
_WAIT = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,10})?(?:[eE][+-]?[0-9]{1,3})?")
WAIT_PATTERN: Final = f"^{_WAIT.pattern}$"

# The field that names what an event revokes, by kind.
_VALUE_FIELD: Final = {
    "session": "sid",
    "user": "sub",
    "client": "client_id",
    "jti": "jti",
    "key": "kid",
}
# The kinds that refuse tokens issued before a time (their ``not_before``).
_CUT_OFF_KINDS: Final = frozenset({"user", "client"})
# Session.info keys: the process's signal (set on the sessionmaker), and "this transaction
# recorded an event" (set by lock_for_insert, read by the after-commit hook).
_SIGNAL: Final = "gatepass.revocation_feed.signal"
_RECORDED: Final = "gatepass.revocation_feed.recorded"


# --- the request's parameters --------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    epoch: str
    last_id: int

    def __str__(self) -> str:
        return f"{self.epoch}:{self.last_id}"


def parse_cursor(value: str) -> Cursor:
    """The cursor a follower sent back; ``ValueError`` when it is not one."""
    match = _CURSOR.fullmatch(value)
    if match is None:
        raise ValueError("malformed cursor")
    epoch, last_id = match.groups()
    return Cursor(epoch, int(last_id))


def parse_wait(value: str) -> float:
    """Seconds to wait, from 0 to :data:`MAX_WAIT`; ``ValueError`` otherwise."""
    if _WAIT.fullmatch(value) is None:
        raise ValueError("malformed wait")
    seconds = float(value)
    if not 0 <= seconds <= MAX_WAIT:
        raise ValueError("wait out of range")
    return seconds


# --- one answer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One answer of the feed (the body of a 200)."""

    cursor: Cursor
    snapshot: bool
    more: bool
    events: list[dict[str, Any]]

    def body(self) -> dict[str, Any]:
        return {
            "cursor": str(self.cursor),
            "snapshot": self.snapshot,
            "more": self.more,
            "events": self.events,
        }


def _seconds(moment: datetime) -> int:
    """Whole seconds since the epoch, rounded up: an event is never dropped early, a cut-off
    never falls short."""
    return math.ceil(moment.timestamp())


def event_json(row: RevocationEvent) -> dict[str, Any] | None:
    """An event as the contract spells it; None for a kind the feed does not know."""
    field = _VALUE_FIELD.get(row.kind)
    if field is None:
        return None
    body: dict[str, Any] = {"id": row.id, "kind": row.kind, field: row.value}
    if row.kind in _CUT_OFF_KINDS:
        body["not_before"] = _seconds(row.not_before or row.created_at)
    body["expires_at"] = _seconds(row.expires_at)
    return body


async def _epoch(db: AsyncSession) -> str:
    """This database's epoch; made now if its row is missing (a schema not made by the
    migrations), the first writer winning."""
    epoch = await db.scalar(select(FeedEpoch.epoch).where(FeedEpoch.id == 1))
    if epoch is not None:
        return epoch
    db.add(FeedEpoch(id=1, epoch=secrets.token_urlsafe(EPOCH_BYTES)))
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
    return str(await db.scalar(select(FeedEpoch.epoch).where(FeedEpoch.id == 1)))


async def _issued(db: AsyncSession) -> int:
    """The highest event id this database has given out, deleted events included (0: none)."""
    dialect = (await db.connection()).dialect.name
    if dialect == "sqlite":
        query = text("SELECT seq FROM sqlite_sequence WHERE name = 'revocation_events'")
    elif dialect == "postgresql":
        query = text(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM revocation_events_id_seq"
        )
    else:  # pragma: no cover - the service runs on SQLite or PostgreSQL
        return int(await db.scalar(select(func.max(RevocationEvent.id))) or 0)
    return int(await db.scalar(query) or 0)


# --- ordering and waking -------------------------------------------------------------------------


async def lock_for_insert(db: AsyncSession) -> None:
    """Call right before adding a :class:`RevocationEvent` (``revocation.record`` does).

    The caller's pending changes are flushed first, so that its row locks are taken before the
    feed's lock and nothing waits on a row while holding it (after it a transaction only inserts).
    On PostgreSQL the lock is then taken, held until the transaction ends: the event's id is drawn
    at its insert, after the lock, so ids are committed in order. The session is marked so that
    its commit wakes this process's long polls."""
    await db.flush()
    if (await db.connection()).dialect.name == "postgresql":
        await db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INSERT_LOCK})
    db.info[_RECORDED] = True


class Signal:
    """Wakes this process's waiting long polls. A waiter takes a :meth:`ticket` *before* it reads
    the feed, so an event committed between its read and its wait still wakes it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.waiting = 0

    def ticket(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, ticket: asyncio.Event, timer: asyncio.Future[None]) -> None:
        """Until ``ticket`` is notified or ``timer`` is done."""
        self.waiting += 1
        woken: asyncio.Future[Any] = asyncio.ensure_future(ticket.wait())
        try:
            await asyncio.wait({woken, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.waiting -= 1
            woken.cancel()


def wake_on_commit(sessions: async_sessionmaker[AsyncSession], signal: Signal) -> None:
    """Make every session of ``sessions`` wake ``signal`` when it commits a recorded event."""
    sessions.configure(info={**sessions.kw.get("info", {}), _SIGNAL: signal})


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # A mark left by a transaction that rolled back costs one needless wake at most.
    if session.info.pop(_RECORDED, False):
        signal = session.info.get(_SIGNAL)
        if isinstance(signal, Signal):
            signal.notify()


# --- the feed ------------------------------------------------------------------------------------


class Feed:
    """The feed of one process: reads pages, runs long polls, watches for other replicas."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, sleep: Sleep
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._sleep = sleep
        self.signal = Signal()
        self._newest_seen: int | None = None
        self._watch_failing = False

    async def read(self, cursor: Cursor | None) -> Page:
        """One page after ``cursor``, or from the start (a snapshot) if it cannot be continued."""
        now = self._clock()
        async with self._sessions() as db:
            epoch = await _epoch(db)
            snapshot = cursor is None or cursor.epoch != epoch or cursor.last_id > await _issued(db)
            after = 0 if snapshot or cursor is None else cursor.last_id
            rows = list(
                await db.scalars(
                    select(RevocationEvent)
                    .where(RevocationEvent.id > after)
                    .order_by(RevocationEvent.id)
                    .limit(PAGE_SIZE + 1)
                )
            )
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        events = [event_json(row) for row in rows if row.expires_at > now]
        last = rows[-1].id if rows else after
        return Page(Cursor(epoch, last), snapshot, more, [e for e in events if e is not None])

    async def follow(self, cursor: Cursor | None, wait: float) -> Page:
        """The answer to a request: a page at once if it holds anything (a snapshot, events, or
        more to come) or ``wait`` is 0; else the first page with events within ``wait`` seconds
        (the service's sleep), or the empty one then."""
        timer: asyncio.Future[None] | None = None
        try:
            while True:
                ticket = self.signal.ticket()
                page = await self.read(cursor)
                if page.snapshot or page.more or page.events or wait <= 0 or draining():
                    return page
                if timer is not None and timer.done():
                    return page
                cursor = page.cursor  # past expired events, if there were any
                if timer is None:
                    timer = asyncio.ensure_future(self._sleep(wait))
                await self.signal.wait(ticket, timer)
        finally:
            if timer is not None:
                timer.cancel()

    async def watch(self) -> None:
        """One look for events committed through another replica, while a long poll waits here.

        Wakes the waiters when the newest id grew since the last look (the first look always
        does: a needless wake costs one read). A database out of reach is said once, not four
        times a second, and once more when it answers again."""
        if self.signal.waiting == 0:
            return
        if draining():  # the server is stopping: the long polls answer now, not at their wait
            self.signal.notify()
            return
        try:
            async with self._sessions() as db:
                newest = await db.scalar(select(func.max(RevocationEvent.id)))
        except (SQLAlchemyError, OSError) as exc:
            if not self._watch_failing:
                log.warning(
                    "cannot watch the revocation feed; long polls end at their wait",
                    extra={"error": type(exc).__name__},
                )
                self._watch_failing = True
            return
        if self._watch_failing:
            log.info("watching the revocation feed again")
            self._watch_failing = False
        if newest is not None and (self._newest_seen is None or newest > self._newest_seen):
            self.signal.notify()
        self._newest_seen = newest


def warn_if_unreadable(settings: Settings) -> None:
    """Outside development, a feed without static readers can be read by registered services
    alone (a service token with ``revocations:read``): an edge with neither learns no revocation.
    Said once, at start."""
    if not settings.is_development and not settings.feed_read_tokens:
        log.warning(
            "no revocation feed reader is configured (GATEPASS_AUTH_FEED_READ_TOKENS): only "
            "registered services with a service token (scope revocations:read) can read "
            "GET /revocations; an edge with neither learns no revocation before tokens expire"
        )
