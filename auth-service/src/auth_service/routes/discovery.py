"""Discovery: ``/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §3) and
``/.well-known/oauth-authorization-server`` (RFC 8414), one document served at both.

It claims only what is implemented, and the signing algorithms are those of the keys actually in
the JWKS, per purpose: a relying party that reads ``id_token_signing_alg_values_supported`` can
verify every ID token with a key it finds at ``jwks_uri``, and a changed algorithm appears here
when its first key is published, a lead before it signs. A list that would be empty is left out
(RFC 8414 §3.2).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from auth_service import clients, grants
from auth_service.keys import ACCESS, ID
from auth_service.state import Services, Svc

router = APIRouter(tags=["discovery"])

# How a client authenticates at /token and /revoke (auth_service.clients.token_caller): public
# clients name themselves, confidential ones prove it; private_key_jwt assertions are signed with
# one of the algorithms of clients.ASSERTION_ALGS.
CLIENT_AUTH_METHODS: Final = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
]
AUTHORIZATION_CODE: Final = "authorization_code"
# The scopes OpenID Connect itself defines that this provider honours (the others are the roles'
# and the services' own, settings.known_scopes).
OIDC_SCOPES: Final = ("openid", "email")
# What an ID token or /userinfo may say about the user (OpenID Connect Core §2, §5.1).
CLAIMS: Final = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "sid",
    "azp",
    "at_hash",
    "email",
    "email_verified",
]
CACHE_CONTROL: Final = "public, max-age=300"


async def discovery_document(svc: Services) -> dict[str, Any]:
    """The provider's metadata, identical under both well-known names.

    The authorization code flow is the only one with a front channel: ``code`` is the only
    response type, answered in the query (no implicit flow, so no fragment), with PKCE ``S256``
    only and the ``iss`` authorization response parameter (RFC 9207). Request objects are not
    supported, which OpenID Connect Discovery assumes for ``request_uri`` unless told: said
    explicitly.
    """
    base = svc.settings.issuer
    scopes = sorted({*OIDC_SCOPES, *svc.settings.known_scopes})
    assertion_algs = sorted(clients.ASSERTION_ALGS)
    document: dict[str, Any] = {
        "issuer": base,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "userinfo_endpoint": f"{base}/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "end_session_endpoint": f"{base}/end-session",
        "revocation_endpoint": f"{base}/revoke",
        "introspection_endpoint": f"{base}/introspect",
        # The edges follow it to learn revocations (routes/feed.py): a gatepass extension.
        "gatepass_revocation_feed_endpoint": f"{base}/revocations",
        "signup_endpoint": f"{base}/signup",
        "login_endpoint": f"{base}/login",
        "sessions_endpoint": f"{base}/sessions",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            AUTHORIZATION_CODE,
            "refresh_token",
            grants.CLIENT_CREDENTIALS,
            grants.TOKEN_EXCHANGE,
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": await svc.keys.published_algs(ID),
        "access_token_signing_alg_values_supported": await svc.keys.published_algs(ACCESS),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        # Introspecting clients are configured ones, with HTTP Basic only.
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "scopes_supported": scopes,
        "claims_supported": CLAIMS,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": True,
    }
    return {name: value for name, value in document.items() if value != []}


@router.get(
    "/.well-known/openid-configuration",
    summary="OpenID Connect Discovery: the provider's metadata.",
)
@router.get(
    "/.well-known/oauth-authorization-server",
    summary="RFC 8414 authorization server metadata (the same document).",
)
async def discovery(svc: Svc) -> JSONResponse:
    document = await discovery_document(svc)
    return JSONResponse(document, headers={"Cache-Control": CACHE_CONTROL})
