"""``GET /.well-known/jwks.json``: the public signing keys, cacheable and revalidatable.

``Cache-Control: max-age`` is the JWKS cache lifetime the key schedule is built around (a new key is
published one max-age plus a margin before it signs), and the strong ``ETag`` lets the edges
revalidate with ``If-None-Match`` for a 304 with no body.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from auth_service.state import Svc

router = APIRouter()

# RFC 7517 §8.5: the media type of a JWK Set.
JWKS_MEDIA_TYPE = "application/jwk-set+json"
# One entity-tag (RFC 9110 §8.8.3): optional weak prefix, then a quoted opaque tag. Tags may hold
# commas, so the list is matched tag by tag rather than split on commas.
_ENTITY_TAG = re.compile(r'(?:W/)?"[^"]*"')


@router.get(
    "/.well-known/jwks.json",
    tags=["discovery"],
    summary="The public keys that verify this service's access tokens (RFC 7517 JWK Set).",
    response_class=Response,
    responses={
        200: {"content": {JWKS_MEDIA_TYPE: {}}, "description": "The JWK Set."},
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
    },
)
async def jwks(request: Request, svc: Svc) -> Response:
    document = await svc.keys.jwks()
    headers = {
        "Cache-Control": f"public, max-age={svc.settings.jwks_max_age}",
        "ETag": document.etag,
    }
    if if_none_match(request.headers.getlist("if-none-match"), document.etag):
        svc.metrics.jwks_requests.labels("304").inc()
        return Response(status_code=304, headers=headers)
    svc.metrics.jwks_requests.labels("200").inc()
    return Response(content=document.body, media_type=JWKS_MEDIA_TYPE, headers=headers)


def if_none_match(fields: list[str], etag: str) -> bool:
    """Whether an ``If-None-Match`` precondition is false, i.e. the client's copy is current.

    RFC 9110 §13.1.2: ``*`` matches any current representation; otherwise the listed tags are
    compared with the weak comparison (opaque tags equal, ``W/`` prefixes ignored).
    """
    value = ",".join(fields).strip()
    if not value:
        return False
    if value == "*":
        return True
    ours = _opaque(etag)
    return any(_opaque(tag) == ours for tag in _ENTITY_TAG.findall(value))


def _opaque(tag: str) -> str:
    return tag.removeprefix("W/")
