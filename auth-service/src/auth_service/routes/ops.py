"""Discovery, health, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from auth_service.state import Services, Svc
from gatepass.problems import problem_response

router = APIRouter(tags=["operations"])


def discovery_document(svc: Services) -> dict[str, Any]:
    base = svc.settings.issuer
    scopes = sorted({s for scopes in svc.settings.role_scopes.values() for s in scopes})
    return {
        "issuer": base,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "token_endpoint": f"{base}/token",
        "introspection_endpoint": f"{base}/introspect",
        "signup_endpoint": f"{base}/signup",
        "login_endpoint": f"{base}/login",
        "sessions_endpoint": f"{base}/sessions",
        "grant_types_supported": ["refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "scopes_supported": scopes,
        "subject_types_supported": ["public"],
        "access_token_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        "id_token_signing_alg_values_supported": [svc.settings.signing_alg],
    }


@router.get("/.well-known/openid-configuration")
@router.get("/.well-known/oauth-authorization-server")
async def discovery(svc: Svc) -> JSONResponse:
    return JSONResponse(discovery_document(svc), headers={"Cache-Control": "public, max-age=300"})


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(svc: Svc) -> Response:
    checks = {"database": await _database_ok(svc), "signing_key": svc.keys.has_active_key()}
    if all(checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, ok in checks.items() if not ok)
    return problem_response(
        503, "not_ready", "Not ready", f"Failing checks: {failing}.", extra={"checks": checks}
    )


async def _database_ok(svc: Services) -> bool:
    try:
        async with svc.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):
        return False
    return True


@router.get("/metrics")
async def metrics(svc: Svc) -> Response:
    age = svc.keys.key_age_seconds()
    if age is not None:
        svc.metrics.key_age.set(age)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
