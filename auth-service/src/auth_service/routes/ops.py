"""Discovery, health, readiness and metrics."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from auth_service import clients, grants
from auth_service.state import Services, Svc
from gatepass.openapi import METRICS_RESPONSE, problem_responses
from gatepass.ops import readiness

router = APIRouter(tags=["operations"])

# How a client authenticates at /token and /revoke (auth_service.clients.token_caller): public
# clients name themselves, confidential ones prove it; private_key_jwt assertions are signed with
# one of the algorithms of clients.ASSERTION_ALGS.
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


async def discovery_document(svc: Services) -> dict[str, Any]:
    """RFC 8414 authorization server metadata (also served as the OpenID configuration).

    It claims only what is implemented. No grant uses an authorization endpoint, so there is none;
    ``response_types_supported`` is REQUIRED all the same and must not be empty (RFC 8414 §2,
    §3.2), so it holds ``none``, the registered response type that issues nothing. The signing
    algorithms are those of the keys in the JWKS, so the two documents never disagree; a list that
    would be empty is left out (RFC 8414 §3.2).
    """
    base = svc.settings.issuer
    scopes = sorted(svc.settings.known_scopes)  # the roles' and the services' own
    algs = await _published_algs(svc)
    assertion_algs = sorted(clients.ASSERTION_ALGS)
    document: dict[str, Any] = {
        "issuer": base,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "token_endpoint": f"{base}/token",
        "introspection_endpoint": f"{base}/introspect",
        "revocation_endpoint": f"{base}/revoke",
        # The edges follow it to learn revocations (routes/feed.py): a gatepass extension.
        "gatepass_revocation_feed_endpoint": f"{base}/revocations",
        "signup_endpoint": f"{base}/signup",
        "login_endpoint": f"{base}/login",
        "sessions_endpoint": f"{base}/sessions",
        "grant_types_supported": [
            "refresh_token",
            grants.CLIENT_CREDENTIALS,
            grants.TOKEN_EXCHANGE,
        ],
        "response_types_supported": ["none"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        # Introspecting clients are configured ones, with HTTP Basic only.
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "scopes_supported": scopes,
        "subject_types_supported": ["public"],
        "access_token_signing_alg_values_supported": algs,
        "id_token_signing_alg_values_supported": algs,
    }
    return {name: value for name, value in document.items() if value != []}


async def _published_algs(svc: Services) -> list[str]:
    """The ``alg`` of every key the JWKS publishes (next, active and retired keys alike)."""
    jwks = json.loads((await svc.keys.jwks()).body)
    return sorted({str(key["alg"]) for key in jwks["keys"] if "alg" in key})


@router.get("/.well-known/openid-configuration")
@router.get("/.well-known/oauth-authorization-server")
async def discovery(svc: Svc) -> JSONResponse:
    document = await discovery_document(svc)
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})


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
