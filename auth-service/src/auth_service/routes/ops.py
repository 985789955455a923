"""Health, readiness and metrics (discovery is :mod:`auth_service.routes.discovery`)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from auth_service.state import Svc
from gatepass.openapi import METRICS_RESPONSE, problem_responses
from gatepass.ops import readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses=problem_responses(
        503, descriptions={503: "Not ready: the database or an active signing key is missing."}
    ),
)
async def readyz(svc: Svc) -> Response:
    """The edges' readiness check (:func:`gatepass.ops.readiness`: the database answers in
    time), with the issuer's own condition: a key to sign with."""
    return await readiness(
        svc.engine,
        {"signing_key": svc.keys.has_active_key()},
        database_timeout=svc.settings.readiness_timeout,
    )


@router.get("/metrics", response_class=Response, responses=METRICS_RESPONSE)
async def metrics(svc: Svc) -> Response:
    age = svc.keys.key_age_seconds()
    if age is not None:
        svc.metrics.key_age.set(age)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
