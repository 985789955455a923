"""What a verified access token says about its caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
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

    @property
    def is_service(self) -> bool:
        """A service calling with a token of its own (client credentials): no session, no
        ``act``, and ``sub`` is its ``client_id``. A user's token, exchanged or not, is not:
        it has a session. (Client ids never start with ``usr_``, so no user id equals one.)"""
        return (
            self.sid is None
            and "act" not in self.claims
            and self.client_id is not None
            and self.sub == self.client_id
        )

    @property
    def act(self) -> Mapping[str, Any] | None:
        """Who acts for ``sub`` (RFC 8693 ``act``: ``{"sub": <service>}``, an earlier actor
        nested inside), on a token a service got by exchanging the user's; else ``None``."""
        act = self.claims.get("act")
        return MappingProxyType(act) if isinstance(act, dict) else None
