"""The routes operators and clients find on every edge, and its request counters.

- ``GET /about``: public; what the service is and which scopes it uses.
- ``GET /healthz``: the process is alive (no dependency is checked: a restart would not help).
- ``GET /readyz``: 200 only when the key set is usable, the revocation feed caught up once (where
  the issuer lists one) **and** the database answers within ``READINESS_TIMEOUT``; otherwise 503
  problem+json naming the failing checks, with the key set's state (age, last fetch outcome) and
  the feed's (``keyset.feed``: caught up, lag, errors, live entries). The answer is
  :func:`readiness`, which the auth service's ``/readyz`` gives too, with its own condition (an
  active signing key) instead of the keys'.
- ``GET /metrics``: Prometheus, from the app's own registry: the key set's ``gatepass_edge_*``
  metrics and ``gatepass_edge_http_requests_total`` (by method, route template and status).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatepass.openapi import METRICS_RESPONSE, problem_responses
from gatepass.problems import problem_response
from gatepass.service import Service, database_of, service_of

__all__ = ["AboutDocument", "RequestMetricsMiddleware", "database_answers", "readiness", "router"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

router = APIRouter(tags=["operations"])


class AboutDocument(BaseModel):
    """The body of ``GET /about``."""

    service: str
    summary: str
    version: str
    audience: str
    issuer: str
    scopes: dict[str, str]
    docs: str | None = "/docs"  # None where the API docs are off (production, by default)


@router.get("/about")
async def about(service: Service) -> AboutDocument:
    """What this service is and which scopes it uses (public)."""
    info, settings = service.about, service.settings
    return AboutDocument(
        service=info.service,
        summary=info.summary,
        version=info.version,
        audience=settings.audience,
        issuer=settings.issuer,
        scopes=dict(info.scopes),
        docs="/docs" if settings.docs_enabled else None,
    )


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses=problem_responses(
        503,
        descriptions={
            503: "Not ready: the issuer's keys are unusable, the revocation feed is not caught "
            "up, or the database is down."
        },
    ),
)
async def readyz(request: Request) -> Response:
    """Ready to serve: keys usable, revocations followed, and the database answering."""
    service = service_of(request.app)
    state = service.auth.readiness()
    db = database_of(request.app)
    return await readiness(
        None if db is None else db.engine,
        state.checks(),
        database_timeout=service.settings.readiness_timeout,
        extra={"keyset": state.as_dict()},
    )


async def readiness(
    engine: AsyncEngine | None,
    checks: Mapping[str, bool],
    *,
    database_timeout: float,
    extra: Mapping[str, object] | None = None,
) -> Response:
    """The answer of a service's ``/readyz``: 200 ``{"status": "ready", "checks": {...}}`` when
    every one of ``checks`` holds and the database answers within ``database_timeout`` seconds
    (check ``database``), else a 503 ``not_ready`` problem naming the failing checks. ``extra``
    goes into either body (an edge adds its key set's state).

    A database that hangs must not hang the probe: a load balancer waits on it, and a replica
    whose database cannot answer in seconds is better taken out of rotation than kept waiting.
    """
    results = {**checks, "database": await database_answers(engine, within=database_timeout)}
    if all(results.values()):
        return JSONResponse({"status": "ready", "checks": results, **(extra or {})})
    failing = ", ".join(name for name, ok in results.items() if not ok)
    return problem_response(
        503,
        "not_ready",
        "Not ready",
        f"Failing checks: {failing}.",
        extra={"checks": results, **(extra or {})},
    )


async def database_answers(engine: AsyncEngine | None, *, within: float) -> bool:
    """True when ``SELECT 1`` comes back within ``within`` seconds (``None``: no database open)."""
    if engine is None:
        return False
    try:
        async with asyncio.timeout(within), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError):
        return False
    return True


@router.get("/metrics", response_class=Response, responses=METRICS_RESPONSE)
async def metrics(service: Service) -> Response:
    """Prometheus text format, from this app's registry only."""
    return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)


class RequestMetricsMiddleware:
    """Count requests by method, route template and status.

    The route is the template (``/messages/{message_id}``), never the path: ids in paths, or
    random paths and methods from a scanner, must not grow the label set without bound.
    """

    def __init__(
        self, app: ASGIApp, *, registry: CollectorRegistry, namespace: str = "gatepass_edge"
    ) -> None:
        self.app = app
        self.requests = Counter(
            f"{namespace}_http_requests",
            "HTTP requests, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            self.requests.labels(_method(scope), _route(scope), str(status)).inc()


def _method(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in _METHODS else "OTHER"


def _route(scope: Scope) -> str:
    """The matched route's template (FastAPI and Starlette put the route in the scope)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
