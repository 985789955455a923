"""The verified-token cache: a hot token skips the signature math, and never outlives its rights."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from gatepass import (
    AccessPrincipal,
    ExpiredTokenError,
    KeySetConfig,
    KeysUnavailableError,
    RemoteKeySet,
    StaticKeySet,
    TokenCache,
    Verifier,
)
from gatepass.core.jwks import Es256Key
from gatepass.core.tokencache import token_digest
from gatepass.testing import FakeIssuer, ManualClock


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every ES256 signature check."""
    calls: list[str] = []
    original: Callable[[Es256Key, bytes, bytes], bool] = Es256Key.verify

    def counting(self: Es256Key, signing_input: bytes, signature: bytes) -> bool:
        calls.append(self.kid)
        return original(self, signing_input, signature)

    monkeypatch.setattr(Es256Key, "verify", counting)
    return calls


@pytest.fixture
async def keyset(
    client: httpx.AsyncClient, issuer: FakeIssuer, clock: ManualClock
) -> AsyncIterator[RemoteKeySet]:
    config = KeySetConfig()
    async with RemoteKeySet(
        client, issuer=issuer.issuer, config=config, clock=clock, sleep=clock.sleep
    ) as keyset:
        yield keyset


@pytest.fixture
def verifier(keyset: RemoteKeySet, issuer: FakeIssuer, clock: ManualClock) -> Verifier:
    return Verifier(
        keyset,
        issuer=issuer.issuer,
        audience="mail",
        clock=clock,
        cache=TokenCache(100),
        stats=keyset.stats,
    )


async def test_a_hot_token_skips_the_signature(
    verifier: Verifier, issuer: FakeIssuer, signature_checks: list[str]
) -> None:
    token = issuer.token()
    first = await verifier.verify(token)
    second = await verifier.verify(token)
    assert second is first
    assert len(signature_checks) == 1
    assert (verifier.stats.verified, verifier.stats.cache_hits) == (2, 1)


async def test_an_entry_lives_until_exp_plus_leeway(
    verifier: Verifier, issuer: FakeIssuer, clock: ManualClock, signature_checks: list[str]
) -> None:
    token = issuer.token(ttl=300)
    await verifier.verify(token)
    clock.advance(359)
    await verifier.verify(token)
    assert len(signature_checks) == 1
    clock.advance(1)
    with pytest.raises(ExpiredTokenError):
        await verifier.verify(token)
    assert verifier.cache is not None
    assert len(verifier.cache) == 0


async def test_entries_leave_with_their_key(
    verifier: Verifier, keyset: RemoteKeySet, issuer: FakeIssuer, signature_checks: list[str]
) -> None:
    old = issuer.default_kid
    token = issuer.token()
    await verifier.verify(token)
    issuer.add_key()
    issuer.remove_key(old)
    await keyset.refresh()
    assert verifier.cache is not None
    assert len(verifier.cache) == 0


async def test_entries_leave_with_a_revoked_key(
    verifier: Verifier, keyset: RemoteKeySet, issuer: FakeIssuer
) -> None:
    await verifier.verify(issuer.token())
    keyset.revoke_key(issuer.default_kid)
    assert verifier.cache is not None
    assert len(verifier.cache) == 0


async def test_a_cached_token_stops_with_its_keys_at_the_maximum_staleness(
    verifier: Verifier, keyset: RemoteKeySet, issuer: FakeIssuer, clock: ManualClock
) -> None:
    token = issuer.token(ttl=48 * 3600)  # outlives the staleness bound, so only the keys stop it
    await verifier.verify(token)
    issuer.fail_with = httpx.ConnectError("issuer down")
    clock.advance(keyset.config.max_staleness - 1)
    assert (await verifier.verify(token)).sub  # the outage is bridged from the cache...
    clock.advance(2)
    with pytest.raises(KeysUnavailableError):  # ...until the keys themselves are too old
        await verifier.verify(token)


async def test_failed_tokens_are_not_cached(verifier: Verifier, issuer: FakeIssuer) -> None:
    with pytest.raises(ExpiredTokenError):
        await verifier.verify(issuer.token(ttl=-100))
    assert verifier.cache is not None
    assert len(verifier.cache) == 0


def principal(sub: str = "u1", sid: str | None = "s1", jti: str | None = "j1") -> AccessPrincipal:
    return AccessPrincipal(sub, frozenset(), ("mail",), 2e9, 1e9, sid, jti, None, {})


def test_drop_by_session_subject_token_id_and_key() -> None:
    cache = TokenCache(10)
    cache.put(token_digest("a"), principal("u1", "s1", "j1"), "k1", 2e9)
    cache.put(token_digest("b"), principal("u1", "s2", "j2"), "k1", 2e9)
    cache.put(token_digest("c"), principal("u2", "s3", "j3"), "k2", 2e9)
    cache.put(token_digest("d"), principal("u3", None, None), "k2", 2e9)
    assert cache.drop_sid("s1") == 1
    assert cache.get(token_digest("a"), 0) is None
    assert cache.drop_sub("u1") == 1
    assert cache.drop_jti("j3") == 1
    assert cache.drop_sid("nope") == 0
    assert len(cache) == 1
    assert cache.drop_kids(["k2"]) == 1
    assert len(cache) == 0
    assert cache._by_sid == {}
    assert cache._by_sub == {}


def test_least_recently_used_leave_first() -> None:
    cache = TokenCache(3)
    for name in "abc":
        cache.put(token_digest(name), principal(name, name, name), "k", 2e9)
    assert cache.get(token_digest("a"), 0) is not None  # a is now the most recent
    cache.put(token_digest("d"), principal("d", "d", "d"), "k", 2e9)
    assert cache.get(token_digest("b"), 0) is None
    assert cache.get(token_digest("a"), 0) is not None
    assert len(cache) == 3
    assert "b" not in cache._by_sid


def test_putting_twice_keeps_one_entry() -> None:
    cache = TokenCache(3)
    cache.put(token_digest("a"), principal(), "k", 2e9)
    cache.put(token_digest("a"), principal(), "k", 2e9)
    assert len(cache) == 1
    cache.clear()
    assert len(cache) == 0


def test_the_key_is_a_digest_never_the_token() -> None:
    assert token_digest("a.b.c") != token_digest("a.b.c ")
    assert token_digest("\ud800") != token_digest("?")
    assert len(token_digest("x" * 10_000)) == 64  # BLAKE2b
    assert token_digest("a.b.c") == token_digest(b"a.b.c")  # the header's bytes: same key
    with pytest.raises(ValueError, match="max_entries"):
        TokenCache(0)


async def test_static_key_set_and_cache(issuer: FakeIssuer, clock: ManualClock) -> None:
    keys = StaticKeySet.from_jwks(issuer.jwks())
    verifier = Verifier(
        keys, issuer=issuer.issuer, audience="mail", clock=clock, cache=TokenCache()
    )
    token = issuer.token()
    assert await verifier.verify(token) is await verifier.verify(token)
