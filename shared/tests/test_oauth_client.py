"""The service's own tokens (gatepass.core.oauth): assertions, the token endpoint, the caches.

Against the fake issuer's token endpoint (``FakeIssuer(token_endpoint=True)``), on a manual
clock; retries sleep through a recorder, so nothing here waits on real time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import OKPAlgorithm

from gatepass import (
    ClientIdentity,
    Exchanger,
    ServiceTokens,
    TokenEndpoint,
    TokenEndpointUnavailableError,
    TokenRequestError,
)
from gatepass.core.jwk import PrivateKey
from gatepass.core.oauth import REFUSAL_MIN_AGE, TokenAuth
from gatepass.testing import FakeIssuer, ManualClock, generate_key, private_jwk

CLIENT = "mail-service"
DISCOVERY = "/.well-known/openid-configuration"


class Sleeps:
    """A ``sleep`` that records how long it was asked to wait, and does not."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


@pytest.fixture
def issuer(clock: ManualClock) -> FakeIssuer:
    return FakeIssuer(clock=clock, token_endpoint=True)


@pytest.fixture
def es256_identity() -> ClientIdentity:
    return ClientIdentity.from_jwk(CLIENT, private_jwk(generate_key("ES256"), "k1", "ES256"))


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def endpoint(
    client: httpx.AsyncClient,
    issuer: FakeIssuer,
    clock: ManualClock,
    es256_identity: ClientIdentity,
    sleeps: Sleeps,
) -> TokenEndpoint:
    return TokenEndpoint(
        client, issuer=issuer.issuer, identity=es256_identity, clock=clock, sleep=sleeps
    )


def user_token(issuer: FakeIssuer, **claims: Any) -> str:
    values: dict[str, Any] = {
        "sub": "usr_alice",
        "sid": "ses_1",
        "aud": ["mail"],
        "scope": "mail:read video:read",
    }
    values.update(claims)
    return issuer.token(**values)


# -- the client assertion (RFC 7523) ----------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256", "Ed25519", "EdDSA"])
def test_the_assertion_verifies_with_pyjwt(alg: str, rsa_key: rsa.RSAPrivateKey) -> None:
    """Signed under the key's own name: ``Ed25519`` (RFC 9864) for a new key, ``EdDSA`` for a key
    registered under the older name (PyJWT knows the algorithm by that name alone)."""
    key: PrivateKey = rsa_key if alg == "RS256" else generate_key(alg)
    identity = ClientIdentity.from_jwk(CLIENT, private_jwk(key, f"{alg}-kid", alg))
    now = time.time()
    token_url = "https://auth.example.test/token"
    first = identity.assertion(token_url, now)
    assert jwt.get_unverified_header(first)["alg"] == alg
    jws = jwt.PyJWS()
    if alg == "Ed25519":
        jws.register_algorithm("Ed25519", OKPAlgorithm())
    claims = json.loads(jws.decode(first, key.public_key(), algorithms=[alg]))
    assert claims["iss"] == claims["sub"] == CLIENT
    assert claims["aud"] == token_url
    assert claims["iat"] == int(now)
    assert claims["exp"] == int(now) + 60
    assert jwt.get_unverified_header(first) == {"alg": alg, "kid": f"{alg}-kid", "typ": "JWT"}
    second = json.loads(
        jws.decode(identity.assertion(token_url, now), key.public_key(), algorithms=[alg])
    )
    assert len(claims["jti"]) >= 16
    assert second["jti"] != claims["jti"]  # single use: a new one each request


def test_an_es256_signature_is_raw_r_and_s() -> None:
    key = generate_key("ES256")
    identity = ClientIdentity.from_jwk(CLIENT, private_jwk(key, "k1", "ES256"))
    signature = identity.assertion("https://auth.example.test/token", time.time()).split(".")[2]
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64  # not DER


def test_the_rsa_primes_may_be_left_out(rsa_key: rsa.RSAPrivateKey) -> None:
    jwk = private_jwk(rsa_key, "r1", "RS256")
    for name in ("p", "q", "dp", "dq", "qi"):
        del jwk[name]
    assertion = ClientIdentity.from_jwk(CLIENT, jwk).assertion("https://a.test/token", time.time())
    jwt.decode(
        assertion, rsa_key.public_key(), algorithms=["RS256"], audience="https://a.test/token"
    )


def _without(jwk: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in jwk.items() if key != name}


def _other_d(jwk: dict[str, Any]) -> dict[str, Any]:
    other = private_jwk(generate_key("ES256"), "k1", "ES256")
    return {**jwk, "d": other["d"]}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda jwk: _without(jwk, "kid"), "'kid'"),
        (lambda jwk: {**jwk, "alg": "HS256"}, "'alg'"),
        (lambda jwk: _without(jwk, "alg"), "'alg'"),
        (lambda jwk: {**jwk, "alg": "EdDSA"}, "'kty'"),
        (lambda jwk: _without(jwk, "d"), "public key"),
        (lambda jwk: {**jwk, "use": "enc"}, "'use'"),
        (_other_d, "not a valid ES256 key"),
        (lambda jwk: {**jwk, "d": jwk["d"] + "!"}, "not a valid ES256 key"),
    ],
    ids=["no-kid", "hmac", "no-alg", "alg-kty", "public", "enc", "wrong-d", "bad-base64"],
)
def test_an_unusable_jwk_is_refused_without_its_values(
    change: Callable[[dict[str, Any]], dict[str, Any]], says: str
) -> None:
    jwk = private_jwk(generate_key("ES256"), "k1", "ES256")
    changed = change(jwk)
    with pytest.raises(ValueError, match=says) as refused:
        ClientIdentity.from_jwk(CLIENT, changed)
    for name in ("d", "x", "y"):
        if name in changed:
            assert changed[name][:12] not in str(refused.value)


def test_a_weak_rsa_key_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    with pytest.raises(ValueError, match="not a valid RS256 key"):
        ClientIdentity.from_jwk(CLIENT, private_jwk(weak, "r1", "RS256"))


def test_a_key_file(tmp_path: Path) -> None:
    key = generate_key("EdDSA")
    single = tmp_path / "key.json"
    single.write_text(json.dumps(private_jwk(key, "e1", "EdDSA")))
    in_a_set = tmp_path / "set.json"
    in_a_set.write_text(json.dumps({"keys": [private_jwk(key, "e1", "EdDSA")]}))
    for path in (single, in_a_set):
        identity = ClientIdentity.from_key_file(CLIENT, path)
        assertion = identity.assertion("https://a.test/token", time.time())
        jwt.decode(
            assertion, key.public_key(), algorithms=["EdDSA"], audience="https://a.test/token"
        )
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        ClientIdentity.from_key_file(CLIENT, tmp_path / "bad.json")
    with pytest.raises(OSError):  # noqa: PT011 (FileNotFoundError, said by the settings)
        ClientIdentity.from_key_file(CLIENT, tmp_path / "missing.json")


def test_the_identity_never_shows_its_secret() -> None:
    identity = ClientIdentity.from_secret(CLIENT, "s3cret-value")
    assert "s3cret" not in repr(identity)
    assert identity.method == "client_secret_basic"


# -- the token endpoint -----------------------------------------------------------------------


async def test_client_credentials_through_discovery(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock
) -> None:
    issued = await endpoint.client_credentials(audience=["mail"], scope=["mail:notify"])
    claims = issuer.decode(issued.access_token)
    assert claims["sub"] == claims["client_id"] == CLIENT
    assert "sid" not in claims
    assert "act" not in claims
    assert claims["aud"] == ["mail"]
    assert issued.scope == {"mail:notify"}
    assert issued.expires_at == clock() + 300
    assert "access_token" not in repr(issued)
    assert issued.access_token not in repr(issued)
    grant = issuer.token_grants[0]
    assert (grant["grant_type"], grant["auth_method"], grant["client_id"]) == (
        "client_credentials",
        "private_key_jwt",
        CLIENT,
    )
    assertion = jwt.decode(grant["client_assertion"], options={"verify_signature": False})
    assert assertion["aud"] == issuer.token_url  # the endpoint's URL, from discovery
    await endpoint.client_credentials(audience=["mail"], scope=["mail:notify"])
    assert issuer.count(DISCOVERY) == 1  # read once
    assert issuer.count("/token") == 2


async def test_a_given_token_url_needs_no_discovery(
    client: httpx.AsyncClient, issuer: FakeIssuer, es256_identity: ClientIdentity
) -> None:
    endpoint = TokenEndpoint(
        client, issuer=issuer.issuer, identity=es256_identity, token_url=issuer.token_url
    )
    await endpoint.client_credentials(audience=["video"], scope=[])
    assert issuer.count(DISCOVERY) == 0


async def test_a_secret_goes_in_basic_form_encoded(
    client: httpx.AsyncClient, issuer: FakeIssuer
) -> None:
    identity = ClientIdentity.from_secret("svc:1", "p@ss word")
    endpoint = TokenEndpoint(client, issuer=issuer.issuer, identity=identity)
    await endpoint.client_credentials(audience=["mail"], scope=["mail:notify"])
    request = next(r for r in issuer.requests if r.url.path == "/token")
    expected = base64.b64encode(b"svc%3A1:p%40ss+word").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert b"p%40ss" not in request.content  # not in the body too
    assert issuer.token_grants[0]["client_id"] == "svc:1"


async def test_an_exchange(endpoint: TokenEndpoint, issuer: FakeIssuer) -> None:
    subject = user_token(issuer, act={"sub": "gateway"})
    issued = await endpoint.exchange(subject, audience="video", scope=["video:read"])
    claims = issuer.decode(issued.access_token)
    assert (claims["sub"], claims["sid"], claims["client_id"]) == ("usr_alice", "ses_1", CLIENT)
    assert claims["act"] == {"sub": CLIENT, "act": {"sub": "gateway"}}
    assert claims["aud"] == ["video"]
    assert claims["scope"] == "video:read"
    form = urllib.parse.parse_qs(
        next(r for r in issuer.requests if r.url.path == "/token").content.decode()
    )
    assert form["subject_token_type"] == ["urn:ietf:params:oauth:token-type:access_token"]
    assert form["audience"] == ["video"]


@pytest.mark.parametrize("code", ["invalid_scope", "invalid_target", "invalid_grant"])
async def test_an_oauth_error_carries_its_code_and_no_token(
    endpoint: TokenEndpoint, issuer: FakeIssuer, code: str
) -> None:
    issuer.token_error = code
    subject = user_token(issuer)
    with pytest.raises(TokenRequestError) as refused:
        await endpoint.exchange(subject, audience="video", scope=["video:read"])
    assert (refused.value.error, refused.value.status) == (code, 400)
    assert code in str(refused.value)
    assert subject not in str(refused.value)
    assert issuer.count("/token") == 1  # a refusal is not retried


async def test_an_exchange_for_a_scope_the_user_lacks_is_refused(
    endpoint: TokenEndpoint, issuer: FakeIssuer
) -> None:
    with pytest.raises(TokenRequestError) as refused:
        await endpoint.exchange(user_token(issuer), audience="video", scope=["video:delete"])
    assert refused.value.error == "invalid_scope"


@pytest.mark.parametrize(
    ("failure", "outcome"),
    [(503, "http_error"), (httpx.ConnectError("refused"), "network_error")],
    ids=["503", "network"],
)
async def test_retries_are_bounded_and_short(
    endpoint: TokenEndpoint,
    issuer: FakeIssuer,
    sleeps: Sleeps,
    failure: int | Exception,
    outcome: str,
) -> None:
    issuer.token_fail_with = failure
    with pytest.raises(TokenEndpointUnavailableError) as failed:
        await endpoint.client_credentials(audience=["mail"], scope=["mail:notify"])
    assert failed.value.outcome == outcome
    assert issuer.count("/token") == 3  # the try and its two retries
    assert len(sleeps.asked) == 2
    assert 0.05 <= sleeps.asked[0] <= 0.1
    assert 0.1 <= sleeps.asked[1] <= 0.2
    issuer.token_fail_with = None
    await endpoint.client_credentials(audience=["mail"], scope=["mail:notify"])  # recovers


async def test_a_failure_then_a_success_is_a_token(
    issuer: FakeIssuer, es256_identity: ClientIdentity, sleeps: Sleeps
) -> None:
    failures = [httpx.Response(502)]

    async def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token" and failures:
            return failures.pop()
        return await issuer.transport().handle_async_request(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(flaky)) as client:
        endpoint = TokenEndpoint(
            client, issuer=issuer.issuer, identity=es256_identity, sleep=sleeps
        )
        await endpoint.client_credentials(audience=["mail"], scope=["mail:notify"])
    assert issuer.count("/token") == 1  # the 502 never reached the fake
    assert len(sleeps.asked) == 1


async def test_no_retries_when_told(
    client: httpx.AsyncClient, issuer: FakeIssuer, es256_identity: ClientIdentity
) -> None:
    issuer.token_fail_with = 500
    endpoint = TokenEndpoint(client, issuer=issuer.issuer, identity=es256_identity, retries=0)
    with pytest.raises(TokenEndpointUnavailableError):
        await endpoint.client_credentials(audience=["mail"], scope=[])
    assert issuer.count("/token") == 1


async def test_an_issuer_without_a_token_endpoint(
    clock: ManualClock, es256_identity: ClientIdentity
) -> None:
    issuer = FakeIssuer(clock=clock)  # discovery lists none
    async with issuer.client() as client:
        endpoint = TokenEndpoint(client, issuer=issuer.issuer, identity=es256_identity)
        with pytest.raises(TokenEndpointUnavailableError, match="lists no token endpoint"):
            await endpoint.client_credentials(audience=["mail"], scope=[])


def answering(body: Any, status: int = 200) -> httpx.AsyncClient:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(status, content=content))
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        {"token_type": "Bearer"},
        {"access_token": "abc def", "token_type": "Bearer"},
        {"access_token": "abc", "token_type": "DPoP"},
        {"access_token": "abc", "token_type": "Bearer", "expires_in": "300"},
        {"access_token": "abc", "token_type": "Bearer", "expires_in": True},
        {"access_token": "abc", "token_type": "Bearer", "expires_in": 0},
        {"access_token": "abc", "token_type": "Bearer", "scope": ["a"]},
    ],
    ids=[
        "not-json",
        "no-token",
        "token-chars",
        "dpop",
        "text-ttl",
        "bool-ttl",
        "zero-ttl",
        "scope",
    ],
)
async def test_an_answer_off_the_contract_is_unusable(
    body: Any, es256_identity: ClientIdentity
) -> None:
    async with answering(body) as client:
        endpoint = TokenEndpoint(
            client,
            issuer="https://auth.example.test",
            identity=es256_identity,
            token_url="https://auth.example.test/token",
        )
        with pytest.raises(TokenEndpointUnavailableError) as failed:
            await endpoint.client_credentials(audience=["mail"], scope=["mail:notify"])
    assert failed.value.outcome == "invalid_answer"


async def test_missing_expiry_and_scope_have_defaults(
    clock: ManualClock, es256_identity: ClientIdentity
) -> None:
    async with answering({"access_token": "abc.def", "token_type": "bearer"}) as client:
        endpoint = TokenEndpoint(
            client,
            issuer="https://auth.example.test",
            identity=es256_identity,
            token_url="https://auth.example.test/token",
            clock=clock,
        )
        issued = await endpoint.client_credentials(audience=["mail"], scope=["mail:notify"])
    assert issued.expires_at == clock() + 60
    assert issued.scope == {"mail:notify"}  # RFC 6749 5.1: the scope asked for


@pytest.mark.parametrize(
    ("status", "body"),
    [(404, {"error": "not_found_here"}), (400, {"message": "no"}), (401, b"<html>")],
)
async def test_a_4xx_without_an_oauth_error_is_unavailable(
    status: int, body: Any, es256_identity: ClientIdentity
) -> None:
    async with answering(body, status) as client:
        endpoint = TokenEndpoint(
            client,
            issuer="https://auth.example.test",
            identity=es256_identity,
            token_url="https://auth.example.test/token",
        )
        with pytest.raises(TokenEndpointUnavailableError) as failed:
            await endpoint.client_credentials(audience=["mail"], scope=[])
    assert failed.value.outcome == "http_error"


# -- ServiceTokens ----------------------------------------------------------------------------


def service_tokens(
    endpoint: TokenEndpoint, clock: ManualClock, jitter: float = 0.5
) -> ServiceTokens:
    return ServiceTokens(
        endpoint, audience=["mail"], scope=["mail:notify"], clock=clock, random=lambda: jitter
    )


async def test_the_service_token_is_cached(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock
) -> None:
    tokens = service_tokens(endpoint, clock)
    first = await tokens.get()
    clock.advance(100)
    assert await tokens.get() == first
    assert issuer.count("/token") == 1


@pytest.mark.parametrize("jitter", [0.0, 1.0])
async def test_renewed_once_70_to_80_percent_of_its_life_passed(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock, jitter: float
) -> None:
    tokens = service_tokens(endpoint, clock, jitter)
    first = await tokens.get()
    clock.advance(0.7 * 300 - 1)
    assert await tokens.get() == first
    assert issuer.count("/token") == 1
    clock.advance(0.1 * 300 + 2)  # past 80 %: renewed, while the first is still valid
    second = await tokens.get()
    assert second != first
    assert issuer.count("/token") == 2
    assert issuer.decode(second)["exp"] == clock() + 300


async def test_twenty_callers_share_one_request(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock
) -> None:
    tokens = service_tokens(endpoint, clock)
    issuer.token_gate = asyncio.Event()
    callers = [asyncio.create_task(tokens.get()) for _ in range(20)]
    async with asyncio.timeout(10):
        while issuer.count("/token") == 0:
            await asyncio.sleep(0)
    for _ in range(10):  # give every caller the chance to start a second request
        await asyncio.sleep(0)
    issuer.token_gate.set()
    results = await asyncio.gather(*callers)
    assert len(set(results)) == 1
    assert issuer.count("/token") == 1


async def test_a_cancelled_caller_does_not_cancel_the_renewal(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock
) -> None:
    tokens = service_tokens(endpoint, clock)
    issuer.token_gate = asyncio.Event()
    impatient = asyncio.create_task(tokens.get())
    patient = asyncio.create_task(tokens.get())
    async with asyncio.timeout(10):
        while issuer.count("/token") == 0:
            await asyncio.sleep(0)
    impatient.cancel()
    issuer.token_gate.set()
    assert await patient
    assert issuer.count("/token") == 1


async def test_the_old_token_serves_while_the_endpoint_fails(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock
) -> None:
    tokens = service_tokens(endpoint, clock)
    old = await tokens.get()
    clock.advance(250)  # due for renewal, 50 s of life left
    issuer.token_fail_with = 503
    assert await tokens.get() == old
    assert issuer.count("/token") == 1 + 3  # one failed renewal: a try and two retries
    assert await tokens.get() == old  # within the backoff: not asked again
    assert issuer.count("/token") == 4
    clock.advance(1)  # the first backoff is 0.5 to 1 s: tried again
    assert await tokens.get() == old
    assert issuer.count("/token") == 7
    issuer.token_fail_with = None
    clock.advance(2)
    new = await tokens.get()
    assert new != old
    assert issuer.count("/token") == 8


async def test_without_a_valid_token_the_failure_is_raised(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock
) -> None:
    tokens = service_tokens(endpoint, clock)
    await tokens.get()
    issuer.token_fail_with = 503
    clock.advance(296)  # within the last 5 s of its life: not used any more
    with pytest.raises(TokenEndpointUnavailableError):
        await tokens.get()
    issuer.token_error = "invalid_client"
    issuer.token_fail_with = None
    with pytest.raises(TokenRequestError) as refused:
        await tokens.get()
    assert refused.value.error == "invalid_client"


async def test_the_auth_attaches_the_token(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock
) -> None:
    tokens = service_tokens(endpoint, clock)
    seen: list[str] = []

    def peer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(peer)) as http:
        await http.get("https://mail.example.test/x", auth=tokens.auth())
        await http.get("https://mail.example.test/x", auth=tokens.auth())
    assert seen == [f"Bearer {await tokens.get()}"] * 2
    assert issuer.count("/token") == 1
    with pytest.raises(RuntimeError, match="AsyncClient"):
        httpx.Client(transport=httpx.MockTransport(peer)).get("https://m.test", auth=tokens.auth())


async def test_a_refused_service_token_is_forgotten_once_old_enough(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock
) -> None:
    """Handed back after a 401 from its audience: forgotten, so the next caller gets a new one;
    but not a token younger than ``REFUSAL_MIN_AGE`` (a peer refusing every token must not
    turn each call into a token request), nor one the cache no longer holds."""
    tokens = service_tokens(endpoint, clock)
    first = await tokens.get()
    clock.advance(REFUSAL_MIN_AGE - 1)
    assert not tokens.refused(first)
    assert await tokens.get() == first
    clock.advance(2)
    assert not tokens.refused("another token")
    assert tokens.refused(first)
    second = await tokens.get()
    assert second != first
    assert issuer.count("/token") == 2
    assert not tokens.refused(first)  # no longer held
    auth = tokens.auth()
    assert isinstance(auth, TokenAuth)
    assert not auth.refused(second)  # through the auth: too young


async def test_a_refused_exchanged_token_is_forgotten_once_old_enough(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock
) -> None:
    exchanger = Exchanger(endpoint, clock=clock)
    subject = user_token(issuer, ttl=1000)
    first = await exchanger.get(subject, audience="video", scope=["video:read"])
    clock.advance(REFUSAL_MIN_AGE - 1)
    assert not exchanger.refused(subject, audience="video", scope=["video:read"], token=first)
    clock.advance(2)
    assert not exchanger.refused(subject, audience="mail", scope=["video:read"], token=first)
    auth = exchanger.auth(subject, audience="video", scope=["video:read"])
    assert isinstance(auth, TokenAuth)
    assert auth.refused(first)
    second = await exchanger.get(subject, audience="video", scope=["video:read"])
    assert second != first
    assert issuer.count("/token") == 2


# -- Exchanger --------------------------------------------------------------------------------


async def test_exchanges_are_cached_per_token_audience_and_scopes(
    endpoint: TokenEndpoint, issuer: FakeIssuer
) -> None:
    exchanger = Exchanger(endpoint, clock=issuer.clock)
    alice, bob = user_token(issuer), user_token(issuer, sub="usr_bob", sid="ses_2")
    first = await exchanger.get(alice, audience="video", scope=["video:read"])
    assert issuer.decode(first)["act"] == {"sub": CLIENT}
    same = [
        await exchanger.get(alice, audience="video", scope=["video:read"]),
        await exchanger.get(alice, audience="video", scope=["video:read", "video:read"]),
    ]
    assert same == [first, first]
    assert issuer.count("/token") == 1
    await exchanger.get(alice, audience="video", scope=["video:read", "mail:read"])
    await exchanger.get(alice, audience="mail", scope=["video:read"])
    other = await exchanger.get(bob, audience="video", scope=["video:read"])
    assert issuer.decode(other)["sub"] == "usr_bob"
    assert issuer.count("/token") == 4
    assert len(exchanger) == 4
    assert await exchanger.get(alice, audience="video", scope=["mail:read", "video:read"])
    assert issuer.count("/token") == 4  # the scopes in another order: the same entry


async def test_an_entry_serves_until_its_expiry_minus_the_margin(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock
) -> None:
    exchanger = Exchanger(endpoint, clock=clock, margin=30)
    subject = user_token(issuer, ttl=1000)
    first = await exchanger.get(subject, audience="video", scope=["video:read"])
    clock.advance(269)
    assert await exchanger.get(subject, audience="video", scope=["video:read"]) == first
    clock.advance(2)
    assert await exchanger.get(subject, audience="video", scope=["video:read"]) != first
    assert issuer.count("/token") == 2


async def test_a_short_lived_token_is_kept_for_half_its_life(
    endpoint: TokenEndpoint, issuer: FakeIssuer, clock: ManualClock
) -> None:
    """A user token near its end makes an exchanged token shorter than twice the margin: it
    serves until half its life has passed, not never."""
    exchanger = Exchanger(endpoint, clock=clock, margin=30)
    subject = user_token(issuer, ttl=20)  # the exchanged token never outlives it
    token = await exchanger.get(subject, audience="video", scope=["video:read"])
    assert issuer.decode(token)["exp"] == clock() + 20
    clock.advance(9)
    assert await exchanger.get(subject, audience="video", scope=["video:read"]) == token
    assert issuer.count("/token") == 1
    clock.advance(2)  # past half its life: exchanged again, for the 9 s the user has left
    renewed = await exchanger.get(subject, audience="video", scope=["video:read"])
    assert renewed != token
    assert issuer.decode(renewed)["exp"] == clock() + 9
    clock.advance(4)
    assert await exchanger.get(subject, audience="video", scope=["video:read"]) == renewed
    assert issuer.count("/token") == 2
    assert len(exchanger) == 1


async def test_the_cache_is_a_bounded_lru(endpoint: TokenEndpoint, issuer: FakeIssuer) -> None:
    exchanger = Exchanger(endpoint, capacity=2, clock=issuer.clock)
    subjects = [user_token(issuer, sid=f"ses_{n}") for n in range(3)]
    for subject in subjects[:2]:
        await exchanger.get(subject, audience="video", scope=["video:read"])
    await exchanger.get(subjects[0], audience="video", scope=["video:read"])  # now the newest
    await exchanger.get(subjects[2], audience="video", scope=["video:read"])  # evicts [1]
    assert len(exchanger) == 2
    assert issuer.count("/token") == 3
    await exchanger.get(subjects[0], audience="video", scope=["video:read"])
    assert issuer.count("/token") == 3
    await exchanger.get(subjects[1], audience="video", scope=["video:read"])
    assert issuer.count("/token") == 4


async def test_one_exchange_in_flight_per_key(endpoint: TokenEndpoint, issuer: FakeIssuer) -> None:
    exchanger = Exchanger(endpoint, clock=issuer.clock)
    alice, bob = user_token(issuer), user_token(issuer, sub="usr_bob", sid="ses_2")
    issuer.token_gate = asyncio.Event()

    def many(subject: str) -> list[Awaitable[str]]:
        return [exchanger.get(subject, audience="video", scope=["video:read"]) for _ in range(10)]

    callers = [asyncio.ensure_future(call) for call in many(alice) + many(bob)]
    async with asyncio.timeout(10):
        while issuer.count("/token") < 2:
            await asyncio.sleep(0)
    for _ in range(10):
        await asyncio.sleep(0)
    issuer.token_gate.set()
    results = await asyncio.gather(*callers)
    assert len(set(results[:10])) == len(set(results[10:])) == 1
    assert results[0] != results[10]
    assert issuer.count("/token") == 2


async def test_a_failed_exchange_is_not_remembered(
    endpoint: TokenEndpoint, issuer: FakeIssuer
) -> None:
    exchanger = Exchanger(endpoint, clock=issuer.clock)
    subject = user_token(issuer)
    issuer.token_error = "invalid_grant"
    with pytest.raises(TokenRequestError):
        await exchanger.get(subject, audience="video", scope=["video:read"])
    issuer.token_error = None
    assert await exchanger.get(subject, audience="video", scope=["video:read"])
    assert issuer.count("/token") == 2


async def test_the_exchanger_keeps_no_user_token(
    endpoint: TokenEndpoint, issuer: FakeIssuer
) -> None:
    exchanger = Exchanger(endpoint, clock=issuer.clock)
    subject = user_token(issuer)
    await exchanger.get(subject, audience="video", scope=["video:read"])
    keys = list(exchanger._cache)
    assert keys
    assert all(subject not in repr(key) and subject.encode() not in key[0] for key in keys)
