"""What one running auth service holds, handed to routes through small dependencies."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from auth_service.clock import Clock, Sleep
from auth_service.config import Settings
from auth_service.metrics import Metrics

if TYPE_CHECKING:
    from auth_service.feed import Feed
    from auth_service.keys import KeyManager
    from auth_service.passwords import PasswordService
    from auth_service.registry import ClientCache, ClientKeys
    from auth_service.throttle import LoginThrottler
    from gatepass.core.verifier import Verifier


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    metrics: Metrics
    keys: KeyManager
    passwords: PasswordService
    throttle: LoginThrottler
    sleep: Sleep = asyncio.sleep
    # The refresh-token tag key (tokens.derive_refresh_key): required, and kept out of any repr.
    refresh_key: bytes = field(kw_only=True, repr=False)
    # The access-token verifier of the protected routes, built once (verification.py).
    verifier: Verifier = field(kw_only=True)
    # The verifier of /userinfo: apps' tokens name it, not the account routes' audience.
    userinfo_verifier: Verifier = field(kw_only=True)
    # One per configured audience (``verifier`` among them): how each service verifies the tokens
    # it is called with, for token exchange and introspection (grants.verifier_for).
    audience_verifiers: Mapping[str, Verifier] = field(kw_only=True)
    # The revocation feed of this process: its reads, long polls and their wake-ups (feed.py).
    feed: Feed = field(kw_only=True)
    # The public keys of private_key_jwt clients, jwks_uri fetches cached (registry.py).
    client_keys: ClientKeys = field(kw_only=True)
    # Registered clients as client authentication reads them (registry.ClientCache).
    client_cache: ClientCache = field(kw_only=True)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


Svc = Annotated[Services, Depends(get_services)]
