"""The edge process that ``benchmarks.edge_bench`` measures: four ways to guard one route.

    python -m benchmarks.bench_edge_app --port 8100 --issuer http://127.0.0.1:8000 --audience mail

One FastAPI app on one uvicorn worker (uvloop, httptools, no access log), so every variant runs in
the same process, behind the same server and the same (empty) middleware stack:

- ``GET /open``: no authentication at all, the ceiling;
- ``GET /protected``: the gatepass library exactly as an edge wires it (``EdgeAuth`` from
  settings, a remote key set following the issuer's JWKS through discovery, the verified-token
  cache, ``require_scopes("mail:read")`` on a ``GatepassRoute``, which checks the token as soon
  as the route matched and hands the endpoint the principal, which FastAPI then does not resolve);
- ``GET /protected-depends``: the same, on a plain FastAPI route: ``require_scopes`` checks the
  token when FastAPI resolves it (what an app gets without ``GatepassRoute``);
- ``GET /naive``: the common tutorial way: FastAPI's ``HTTPBearer``, then PyJWT per request
  (``get_unverified_header`` to find the key, then ``jwt.decode`` with audience and issuer), with
  the JWKS fetched once at start-up into a dict of ``PyJWK`` (what ``PyJWKClient`` caches);
- ``GET /introspect``: the call-back model: the edge asks the auth service per request (RFC 7662,
  HTTP Basic client credentials, one shared keep-alive ``httpx.AsyncClient``).

Every guarded route answers 200 ``{"sub": ...}`` for a valid token with ``mail:read`` and 401 (403
for a missing scope) otherwise; ``/open`` answers a body of the same shape. ``GET /bench-stats``
returns the gatepass verifier's counters (verified, cache hits), so the benchmark can prove which
path the protected requests took.

The introspection client secret comes from ``GATEPASS_BENCH_INTROSPECTION_SECRET`` (never argv);
the gatepass edge settings are read with the prefix ``GATEPASS_BENCH_`` (see ``shared/README.md``),
command-line values winning.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gatepass import (
    AccessPrincipal,
    EdgeAuth,
    EdgeAuthSettings,
    GatepassRoute,
    edge_auth_settings,
    install_problem_handlers,
    require_scopes,
)

ENV_PREFIX = "GATEPASS_BENCH_"
SECRET_ENV = "GATEPASS_BENCH_INTROSPECTION_SECRET"  # noqa: S105 - a variable name, not a secret
REQUIRED_SCOPE = "mail:read"

MailReader = Annotated[AccessPrincipal, Depends(require_scopes(REQUIRED_SCOPE))]
BearerCredentials = Annotated[HTTPAuthorizationCredentials, Depends(HTTPBearer())]


@dataclass(frozen=True)
class IntrospectionClient:
    """Who the edge is when it asks the auth service (RFC 7662 section 2.1)."""

    client_id: str
    secret: str
    pool_size: int = 64


@dataclass
class Baselines:
    """What the two comparison routes hold: the naive route's keys, the call-back client."""

    issuer: str
    audience: str
    naive_keys: dict[str, jwt.PyJWK]
    introspection: httpx.AsyncClient


# -- (d) the naive way: HTTPBearer + PyJWT per request -------------------------------------------


async def fetch_pyjwks(client: httpx.AsyncClient, issuer: str) -> dict[str, jwt.PyJWK]:
    """Discovery, then the JWKS, once: the ``kid`` -> ``PyJWK`` dict ``PyJWKClient`` would hold."""
    discovery = (await client.get(f"{issuer}/.well-known/openid-configuration")).json()
    document = (await client.get(discovery["jwks_uri"])).json()
    return {jwk["kid"]: jwt.PyJWK(jwk) for jwk in document["keys"]}


async def naive_claims(request: Request, credentials: BearerCredentials) -> dict[str, Any]:
    """The tutorial dependency: find the key by the unverified header, then ``jwt.decode``."""
    state: Baselines = request.app.state.baselines
    token = credentials.credentials
    try:
        key = state.naive_keys[jwt.get_unverified_header(token)["kid"]]
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],
            audience=state.audience,
            issuer=state.issuer,
        )
    except (jwt.InvalidTokenError, KeyError):
        raise HTTPException(401, "invalid token", {"WWW-Authenticate": "Bearer"}) from None
    if REQUIRED_SCOPE not in claims.get("scope", "").split():
        raise HTTPException(403, "insufficient scope")
    return claims


NaiveClaims = Annotated[dict[str, Any], Depends(naive_claims)]


# -- (e) the call-back model: RFC 7662 introspection per request ------------------------------


async def introspected_claims(request: Request, credentials: BearerCredentials) -> dict[str, Any]:
    """Ask the auth service about the token; 401 unless it says ``active``."""
    state: Baselines = request.app.state.baselines
    response = await state.introspection.post(
        "/introspect", data={"token": credentials.credentials}
    )
    if response.status_code != 200:
        raise HTTPException(503, "introspection failed")
    claims: dict[str, Any] = response.json()
    if not claims.get("active"):
        raise HTTPException(401, "invalid token", {"WWW-Authenticate": "Bearer"})
    aud = claims.get("aud")
    if state.audience not in ([aud] if isinstance(aud, str) else aud or []):
        raise HTTPException(401, "wrong audience", {"WWW-Authenticate": "Bearer"})
    if REQUIRED_SCOPE not in str(claims.get("scope", "")).split():
        raise HTTPException(403, "insufficient scope")
    return claims


IntrospectedClaims = Annotated[dict[str, Any], Depends(introspected_claims)]


# -- the app ----------------------------------------------------------------------------------


def create_app(settings: EdgeAuthSettings, client: IntrospectionClient) -> FastAPI:
    """The measured edge: one app, four routes, everything started in the lifespan."""
    auth = EdgeAuth.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(auth.lifespan(app))
            introspection = await stack.enter_async_context(_introspection_client(settings, client))
            async with httpx.AsyncClient(timeout=10) as fetcher:
                naive_keys = await fetch_pyjwks(fetcher, settings.issuer)
            app.state.baselines = Baselines(
                settings.issuer, settings.audience, naive_keys, introspection
            )
            yield

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    install_problem_handlers(app)
    auth.install(app)

    @app.get("/open")
    async def open_route() -> dict[str, str]:
        return {"sub": "anyone"}

    # Every route on the app itself, none in an included router (which costs each request
    # of its routes more routing), so the scenarios differ only in how they authenticate, and
    # in one thing more: routes are matched in order, so each request of /protected also pays
    # for not matching /open (a failed match of a FastAPI route: about 2 us in a tight loop on our
    # machines), which leans the (b)/(a) comparison against gatepass.
    async def protected(user: MailReader) -> dict[str, str]:
        return {"sub": user.sub}

    app.router.add_api_route(
        "/protected", protected, methods=["GET"], route_class_override=GatepassRoute
    )

    @app.get("/protected-depends")
    async def protected_depends(user: MailReader) -> dict[str, str]:
        return {"sub": user.sub}

    @app.get("/naive")
    async def naive(claims: NaiveClaims) -> dict[str, str]:
        return {"sub": claims["sub"]}

    @app.get("/introspect")
    async def introspect(claims: IntrospectedClaims) -> dict[str, str]:
        return {"sub": claims["sub"]}

    @app.get("/bench-stats")
    async def bench_stats() -> dict[str, Any]:
        return auth.readiness().as_dict()

    return app


def _introspection_client(
    settings: EdgeAuthSettings, client: IntrospectionClient
) -> httpx.AsyncClient:
    """One pooled keep-alive client for every request (never a client per call)."""
    limits = httpx.Limits(
        max_connections=client.pool_size, max_keepalive_connections=client.pool_size
    )
    return httpx.AsyncClient(
        base_url=settings.issuer,
        auth=httpx.BasicAuth(client.client_id, client.secret),
        limits=limits,
        timeout=10,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True, help="the auth service's base URL")
    parser.add_argument("--audience", default="mail")
    parser.add_argument(
        "--token-cache-size",
        type=int,
        default=None,
        help="gatepass verified-token cache entries (default: the library's, 10000)",
    )
    parser.add_argument("--client-id", default="bench", help="introspection client id")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    values: dict[str, Any] = {"issuer": args.issuer, "audience": args.audience}
    if args.token_cache_size is not None:
        values["token_cache_size"] = args.token_cache_size
    settings = edge_auth_settings(ENV_PREFIX, **values)
    client = IntrospectionClient(args.client_id, os.environ.get(SECRET_ENV, ""))
    uvicorn.run(
        create_app(settings, client),
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
