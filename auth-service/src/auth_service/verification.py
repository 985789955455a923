"""How the auth service verifies its own access tokens: with the verifier every edge uses.

The issuer holds its keys, so it fetches nothing: :class:`ManagerKeys` gives the shared
:class:`~gatepass.core.verifier.Verifier` the keys the key manager publishes, parsed from the very
JWKS document the edges fetch. The verifier then applies the edges' rules (algorithm allow-list,
each key only with its own ``alg``, ``typ`` ``at+jwt``, ``kid``, ``iss``, ``aud``, ``exp`` and
``iat`` with the same leeway, size limit, refused headers), so the auth service accepts exactly
the tokens an edge of its own audience accepts.

The keys are read from the manager at every verification, never from a copy kept here: a key
that is revoked or removed leaves the manager's published set at once (it reloads after its own
change; another replica's change reaches it within a snapshot lifetime), and a token that key
signed is refused from the next request on.

No web framework here: the manager and the settings are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from gatepass.core.errors import UnknownKidError
from gatepass.core.jwks import VerificationKey, parse_jwks
from gatepass.core.keyset import KeysRemovedListener
from gatepass.core.verifier import Verifier

if TYPE_CHECKING:
    from auth_service.clock import Clock
    from auth_service.config import Settings
    from auth_service.keys import JwksDocument

__all__ = ["ManagerKeys", "PublishedKeys", "access_token_verifier"]


class PublishedKeys(Protocol):
    """What the key source needs of :class:`auth_service.keys.KeyManager`."""

    async def jwks(self) -> JwksDocument:
        """The JWKS document as published right now (the manager's current snapshot)."""
        ...


class ManagerKeys:
    """A :class:`~gatepass.core.keyset.KeySource` over the keys a key manager publishes."""

    def __init__(self, manager: PublishedKeys) -> None:
        self._manager = manager
        self._keys: Mapping[str, VerificationKey] = {}
        self._listeners: list[KeysRemovedListener] = []

    def peek(self, kid: str, now: float) -> VerificationKey | None:
        """Never a key: what the manager publishes can only be read with an await (:meth:`get`),
        and a key remembered here could outlive its revocation."""
        return None

    async def get(self, kid: str) -> VerificationKey:
        """The published key ``kid``, else :class:`UnknownKidError` (a 401, as at an edge)."""
        key = (await self._published()).get(kid)
        if key is None:
            raise UnknownKidError
        return key

    def add_listener(self, listener: KeysRemovedListener) -> None:
        """Call ``listener`` with the ``kid``s that left the published set since the last read."""
        self._listeners.append(listener)

    async def _published(self) -> Mapping[str, VerificationKey]:
        keys = _parsed(await self._manager.jwks())
        if keys is not self._keys:
            removed = frozenset(self._keys.keys() - keys.keys())
            self._keys = keys
            for listener in self._listeners if removed else ():
                listener(removed)
        return keys


@lru_cache(maxsize=8)
def _parsed(document: JwksDocument) -> Mapping[str, VerificationKey]:
    """The keys of one published document, parsed once per document (parsing is not free and the
    document changes only at a rotation). Remembered by content, so nothing remembered can differ
    from what the manager publishes now."""
    return parse_jwks(document.body).keys


def access_token_verifier(
    manager: PublishedKeys, settings: Settings, clock: Clock, *, audience: str | None = None
) -> Verifier:
    """The verifier of the auth service's own routes (``/me``, ``/sessions``, ``/admin``): our
    issuer, our own audience (unless another is named), the edges' defaults for everything else.
    Build one per app: it remembers the headers it has validated."""
    return Verifier(
        ManagerKeys(manager),
        issuer=settings.issuer,
        audience=audience or settings.self_audience,
        clock=lambda: clock().timestamp(),
    )
