"""The auth service's application factory. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

from fastapi import FastAPI
from sqlalchemy import delete, or_
from sqlalchemy.exc import SQLAlchemyError

from auth_service import authorization, client_file, feed, migrate, registry, revocation
from auth_service.browser import install_csrf_handler
from auth_service.clock import Clock, Sleep, run_every, system_clock
from auth_service.config import Settings
from auth_service.cors import install_cors
from auth_service.errors import install_oauth_handler
from auth_service.keys import KeyManager, load_kek
from auth_service.metrics import Metrics
from auth_service.models import Session as DeviceSession
from auth_service.passwords import PasswordService
from auth_service.routes import (
    accounts,
    admin,
    admin_clients,
    discovery,
    jwks,
    oauth,
    oidc,
    ops,
    sessions,
    web,
)
from auth_service.routes import feed as feed_routes
from auth_service.state import Services
from auth_service.throttle import LoginThrottler
from auth_service.tokens import derive_refresh_key
from auth_service.verification import access_token_verifier
from gatepass.db import create_engine, create_sessionmaker
from gatepass.httplayer import app_options, install_http_layer
from gatepass.openapi import install_openapi
from gatepass.problems import install_problem_handlers

log = logging.getLogger("gatepass.auth")

HOUSEKEEPING_INTERVAL = 60.0


def create_app(settings: Settings | None = None, *, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        feed.warn_if_unreadable(settings)
        async with running(settings, clock) as services:
            await client_file.apply_declared(services)
            app.state.services = services
            yield

    app = FastAPI(
        title="gatepass auth service",
        version="0.1.0",
        summary="Accounts, sessions and devices, signing keys, the token endpoint and the JWKS.",
        lifespan=lifespan,
        **app_options(settings),
    )
    install_problem_handlers(app)
    install_oauth_handler(app)
    install_csrf_handler(app)
    for module in (
        accounts,
        sessions,
        oauth,
        oidc,
        discovery,
        jwks,
        web,
        admin,
        admin_clients,
        ops,
    ):
        app.include_router(module.router)
    app.include_router(feed_routes.router(settings))  # documented as the settings make it
    install_openapi(app, max_body_bytes=settings.max_body_bytes, server_limits=True)
    install_cors(app)
    install_http_layer(app, settings)
    return app


@asynccontextmanager
async def running(
    settings: Settings,
    clock: Clock = system_clock,
    *,
    background: bool = True,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[Services]:
    """Everything the service holds, started; with ``background=False`` (the CLI) no loops run.
    ``sleep`` waits on ``clock`` (tests pass one that moves their fake clock)."""
    settings.check_production()
    engine = create_engine(settings.resolved_database_url)
    tasks: list[asyncio.Task[None]] = []
    client_keys = registry.ClientKeys(clock)
    try:
        if settings.auto_migrate:
            await migrate.upgrade(engine)
        sessionmaker = create_sessionmaker(engine)
        revocations = feed.Feed(sessionmaker, clock, sleep)
        feed.wake_on_commit(sessionmaker, revocations.signal)
        client_cache = registry.ClientCache()
        registry.forget_on_commit(sessionmaker, client_cache)
        metrics = Metrics()
        kek = load_kek(settings)
        keys = KeyManager(settings, sessionmaker, kek, clock, metrics)
        await keys.start()
        passwords = PasswordService(settings, metrics)
        await passwords.prepare()
        throttle = LoginThrottler(settings, sessionmaker, clock)
        verifiers = {
            audience: access_token_verifier(keys, settings, clock, audience=audience)
            for audience in settings.audiences
        }
        services = Services(
            settings,
            engine,
            sessionmaker,
            clock,
            metrics,
            keys,
            passwords,
            throttle,
            sleep=sleep,
            refresh_key=derive_refresh_key(kek),
            verifier=verifiers[settings.self_audience],
            userinfo_verifier=access_token_verifier(
                keys, settings, clock, audience=settings.userinfo_audience
            ),
            audience_verifiers=verifiers,
            feed=revocations,
            client_keys=client_keys,
            client_cache=client_cache,
        )
        if background:
            tasks.extend(_start_loops(services))
        yield services
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await client_keys.aclose()
        await engine.dispose()


def _start_loops(svc: Services) -> list[asyncio.Task[None]]:
    """The background loops every replica runs, each on :func:`run_every` with the service's
    sleep: an error a loop does not expect is logged and counted, and the loop goes on. The
    revocation feed's watch wakes long polls for events other replicas commit (feed.py)."""
    tidy = run_every(
        "housekeeping",
        partial(_housekeeping_tick, svc),
        interval=lambda: HOUSEKEEPING_INTERVAL,
        sleep=svc.sleep,
        errors=svc.metrics.background_errors,
    )
    watch = run_every(
        "revocation-feed",
        svc.feed.watch,
        interval=lambda: feed.WATCH_INTERVAL,
        sleep=svc.sleep,
        errors=svc.metrics.background_errors,
    )
    return [
        asyncio.create_task(svc.keys.run_forever(sleep=svc.sleep), name="key-maintenance"),
        asyncio.create_task(tidy, name="housekeeping"),
        asyncio.create_task(watch, name="revocation-feed"),
    ]


async def _housekeeping_tick(svc: Services) -> None:
    """One scheduled run; a database out of reach is expected: a warning, and the next run."""
    try:
        await housekeeping(svc)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("housekeeping failed; retrying later", extra={"error": type(exc).__name__})


async def housekeeping(svc: Services) -> None:
    """Forget what no longer matters: expired revocations, client assertion ids and authorization
    codes, old throttle counters, dead sessions."""
    now = svc.clock()
    await svc.throttle.forget_old()
    async with svc.sessions() as db:
        await revocation.forget_expired(db, now)
        await registry.forget_expired_assertions(db, now)
        await authorization.forget_expired(db, now)
        # A session keeps its newest rotated refresh tokens (``refresh_history``, pruned at each
        # rotation) for reuse detection; a dead session (and, by cascade, its tokens) is kept a
        # week for the owner's device list history.
        await db.execute(
            delete(DeviceSession).where(
                or_(
                    DeviceSession.expires_at < now - timedelta(days=7),
                    DeviceSession.revoked_at < now - timedelta(days=7),
                )
            )
        )
        await db.commit()
