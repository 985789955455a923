"""What a verified access token says about its caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, init=False)
class AccessPrincipal:
    """The caller of one request, from a verified access token (RFC 9068 claims).

    Frozen, and ``claims`` is a read-only view: the same object is handed to every request that
    presents the same token (the verified-token cache), so nobody may change it.
    """

    sub: str
    scopes: frozenset[str]
    aud: tuple[str, ...]
    exp: float
    iat: float
    sid: str | None
    jti: str | None
    client_id: str | None
    claims: Mapping[str, Any]

    def __init__(  # noqa: PLR0917 (positional, like the dataclass __init__ it replaces)
        self,
        sub: str,
        scopes: frozenset[str],
        aud: tuple[str, ...],
        exp: float,
        iat: float,
        sid: str | None,
        jti: str | None,
        client_id: str | None,
        claims: Mapping[str, Any],
    ) -> None:
        # A frozen dataclass's own __init__ goes through object.__setattr__ once per field; this
        # one sets the slots directly, which halves the cost (one principal per verified token).
        _set_sub(self, sub)
        _set_scopes(self, scopes)
        _set_aud(self, aud)
        _set_exp(self, exp)
        _set_iat(self, iat)
        _set_sid(self, sid)
        _set_jti(self, jti)
        _set_client_id(self, client_id)
        _set_claims(self, claims)

    def has_scopes(self, *required: str) -> bool:
        """True when every scope in ``required`` was granted."""
        return self.scopes.issuperset(required)


(
    _set_sub,
    _set_scopes,
    _set_aud,
    _set_exp,
    _set_iat,
    _set_sid,
    _set_jti,
    _set_client_id,
    _set_claims,
) = (getattr(AccessPrincipal, name).__set__ for name in AccessPrincipal.__slots__)
