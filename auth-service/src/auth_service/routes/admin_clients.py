"""The admin API of the client registry (``registry.py``): register, list, change, disable,
rotate a secret, remove. Needs the ``admin`` scope, as the rest of ``/admin``.

A client_secret_basic client's secret is in the answer that makes it (registration, rotation),
once, with ``Cache-Control: no-store``; no other answer holds it or its hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from auth_service import registry
from auth_service.errors import NO_STORE
from auth_service.registry import (
    CLIENT_ID_MAX,
    JWKS_URI_MAX,
    REDIRECT_URI_MAX,
    REDIRECT_URIS_MAX,
    RegisteredClient,
)
from auth_service.security import ADMIN_ANSWERS, AdminCaller
from auth_service.state import Svc
from gatepass.openapi import bearer_security, merge_responses, problem_responses
from gatepass.text import OneLine

router = APIRouter(prefix="/admin/clients", tags=["admin"])

ADMIN = bearer_security("admin")
NO_CLIENT = merge_responses(
    ADMIN_ANSWERS, problem_responses(404, descriptions={404: "No such client."})
)
REFUSED = problem_responses(
    422, descriptions={422: "Not valid: the detail says which field and why."}
)
NO_STORE_HEADERS = {
    "Cache-Control": {
        "description": "no-store: the answer holds a secret.",
        "required": True,
        "schema": {"type": "string", "pattern": "no-store"},
    }
}

ClientId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=CLIENT_ID_MAX,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="a client id",
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=200), OneLine]
Names = Annotated[list[Name], Field(max_length=20)]
Uri = Annotated[str, Field(min_length=1, max_length=REDIRECT_URI_MAX), OneLine]
Uris = Annotated[list[Uri], Field(max_length=REDIRECT_URIS_MAX)]
_REDIRECTS = (
    "app only: where its authorization codes may be sent, each compared exactly (absolute "
    "https URIs, http only to a loopback host, no fragment)."
)
_LOGOUTS = "app only: where RP-initiated logout may send the browser back (as redirect_uris)."


class ClientOut(BaseModel):
    """A registered client, as the admin API shows it: never its secret, nor its hash."""

    client_id: str
    kind: Literal["service", "app"]
    auth_method: Literal["private_key_jwt", "client_secret_basic", "none"]
    audiences: list[str]
    scopes: list[str]
    resource: str | None
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    disabled: bool
    created_at: datetime | None
    updated_at: datetime | None
    redirect_uris: list[str] = []
    post_logout_redirect_uris: list[str] = []

    @classmethod
    def of(cls, client: RegisteredClient) -> ClientOut:
        return cls(
            client_id=client.client_id,
            kind=client.kind,
            auth_method=client.auth_method,
            audiences=sorted(client.audiences),
            scopes=sorted(client.scopes),
            resource=client.resource,
            jwks=dict(client.jwks) if client.jwks is not None else None,
            jwks_uri=client.jwks_uri,
            disabled=client.disabled,
            created_at=client.created_at,
            updated_at=client.updated_at,
            redirect_uris=list(client.redirect_uris),
            post_logout_redirect_uris=list(client.post_logout_redirect_uris),
        )


class ClientCreated(ClientOut):
    client_secret: str | None = Field(
        description="client_secret_basic only: the secret, shown this once (only its hash is "
        "kept). Null for the other methods."
    )


class ClientList(BaseModel):
    clients: list[ClientOut]


class SecretOut(BaseModel):
    client_id: str
    client_secret: str = Field(description="The new secret, shown this once.")


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: Annotated[str, Field(min_length=1, max_length=CLIENT_ID_MAX), OneLine]
    kind: Literal["service", "app"]
    auth_method: Literal["private_key_jwt", "client_secret_basic", "none"]
    audiences: Names
    scopes: Names = []
    resource: Name | None = None
    jwks: dict[str, Any] | None = Field(
        None, description="private_key_jwt: a JWK Set of the client's public keys."
    )
    jwks_uri: Annotated[str, Field(max_length=JWKS_URI_MAX), OneLine] | None = Field(
        None, description="private_key_jwt: where its JWK Set is published (https)."
    )
    redirect_uris: Uris | None = Field(None, description=_REDIRECTS)
    post_logout_redirect_uris: Uris | None = Field(None, description=_LOGOUTS)


class ClientPatch(BaseModel):
    """What to change; a field left out stays as it is (``null`` clears resource, jwks or
    jwks_uri; setting jwks or jwks_uri drops the other)."""

    model_config = ConfigDict(extra="forbid")

    audiences: Names | None = None
    scopes: Names | None = None
    resource: Name | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: Annotated[str, Field(max_length=JWKS_URI_MAX), OneLine] | None = None
    redirect_uris: Uris | None = Field(None, description=_REDIRECTS + " [] clears them.")
    post_logout_redirect_uris: Uris | None = Field(None, description=_LOGOUTS)
    disabled: bool | None = None


@router.post(
    "",
    status_code=201,
    response_model=ClientCreated,
    responses=merge_responses(
        {201: {"headers": NO_STORE_HEADERS}},
        ADMIN_ANSWERS,
        REFUSED,
        problem_responses(409, descriptions={409: "A client with this id exists."}),
    ),
    openapi_extra=ADMIN,
)
async def register(body: ClientIn, _admin: AdminCaller, svc: Svc) -> JSONResponse:
    async with svc.sessions() as db:
        client, secret = await registry.register(
            db,
            svc.settings,
            client_id=body.client_id,
            kind=body.kind,
            auth_method=body.auth_method,
            audiences=body.audiences,
            scopes=body.scopes,
            resource=body.resource,
            jwks=body.jwks,
            jwks_uri=body.jwks_uri,
            redirect_uris=body.redirect_uris,
            post_logout_redirect_uris=body.post_logout_redirect_uris,
            now=svc.clock(),
        )
    created = ClientCreated(**ClientOut.of(client).model_dump(), client_secret=secret)
    return JSONResponse(created.model_dump(mode="json"), status_code=201, headers=NO_STORE)


@router.get("", response_model=ClientList, responses=ADMIN_ANSWERS, openapi_extra=ADMIN)
async def list_clients(_admin: AdminCaller, svc: Svc) -> ClientList:
    async with svc.sessions() as db:
        clients = await registry.listed(db)
    return ClientList(clients=[ClientOut.of(client) for client in clients])


@router.get("/{client_id}", response_model=ClientOut, responses=NO_CLIENT, openapi_extra=ADMIN)
async def get_client(client_id: ClientId, _admin: AdminCaller, svc: Svc) -> ClientOut:
    async with svc.sessions() as db:
        return ClientOut.of(await registry.get(db, client_id))


@router.patch(
    "/{client_id}",
    response_model=ClientOut,
    responses=merge_responses(NO_CLIENT, REFUSED),
    openapi_extra=ADMIN,
)
async def change(
    client_id: ClientId, body: ClientPatch, _admin: AdminCaller, svc: Svc
) -> ClientOut:
    """Change a client; ``disabled: true`` also revokes the service tokens it holds."""
    given = body.model_fields_set
    async with svc.sessions() as db:
        client = await registry.get(db, client_id)
        if given - {"disabled"}:
            client = await registry.update(
                db,
                svc.settings,
                client_id,
                audiences=body.audiences,
                scopes=body.scopes,
                resource=body.resource if "resource" in given else ...,
                jwks=body.jwks if "jwks" in given else ...,
                jwks_uri=body.jwks_uri if "jwks_uri" in given else ...,
                redirect_uris=body.redirect_uris,
                post_logout_redirect_uris=body.post_logout_redirect_uris,
                now=svc.clock(),
            )
        if body.disabled is not None and body.disabled != client.disabled:
            client = await registry.set_disabled(
                db, svc.settings, client_id, body.disabled, now=svc.clock()
            )
    return ClientOut.of(client)


@router.post(
    "/{client_id}/secret",
    response_model=SecretOut,
    responses=merge_responses(
        {200: {"headers": NO_STORE_HEADERS}},
        NO_CLIENT,
        problem_responses(422, descriptions={422: "The client has no secret (its method)."}),
    ),
    openapi_extra=ADMIN,
)
async def rotate_secret(client_id: ClientId, _admin: AdminCaller, svc: Svc) -> JSONResponse:
    """A new secret for a client_secret_basic client; the old one stops working at once."""
    async with svc.sessions() as db:
        secret = await registry.rotate_secret(db, client_id, now=svc.clock())
    body = SecretOut(client_id=client_id, client_secret=secret)
    return JSONResponse(body.model_dump(), headers=NO_STORE)


@router.delete(
    "/{client_id}",
    status_code=204,
    response_class=Response,
    responses=merge_responses({204: {"description": "Removed."}}, NO_CLIENT),
    openapi_extra=ADMIN,
)
async def remove(client_id: ClientId, _admin: AdminCaller, svc: Svc) -> Response:
    """Remove a client; the service tokens it holds are revoked."""
    async with svc.sessions() as db:
        await registry.remove(db, svc.settings, client_id, now=svc.clock())
    return Response(status_code=204)
