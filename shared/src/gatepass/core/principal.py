"""What a verified access token says about its caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
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

    def has_scopes(self, *required: str) -> bool:
        """True when every scope in ``required`` was granted."""
        return self.scopes.issuperset(required)
