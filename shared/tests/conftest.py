"""Fixtures for the gatepass library tests: a manual clock, an issuer in a box, generated keys.

No key is ever committed: every key is generated here, per test or once per session for the slow
RSA ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gatepass.testing import FakeIssuer, ManualClock


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def issuer(clock: ManualClock) -> FakeIssuer:
    return FakeIssuer(clock=clock)


@pytest.fixture
async def client(issuer: FakeIssuer) -> AsyncIterator[httpx.AsyncClient]:
    async with issuer.client() as client:
        yield client
