"""Client authentication of registered clients (``auth_service.clients.token_caller``): a secret
the service made (client_secret_basic, in the header or the form), a signed assertion
(private_key_jwt, RFC 7523: keys inline or fetched from a jwks_uri), a public app naming itself.

In-process on a real SQLite file, with the service's fake clock: most cases call
:func:`token_caller` directly (what the token endpoint's grants call); a few go through
``POST /revoke``, which authenticates its caller the same way, for the HTTP answer itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from api_users import jose_part
from asgi_clients import BASE_URL
from auth_apps import serving
from cryptography.hazmat.primitives.asymmetric import ec
from fake_clock import FakeClock
from jwt.algorithms import ECAlgorithm
from service_clients import (
    TOKEN_URL,
    Signer,
    add_client,
    asserted,
    login_body,
    new_key,
    register,
    register_signer,
    set_disabled,
    token_request,
)

from auth_service import registry
from auth_service.clients import ASSERTION_TYPE, TokenCaller, token_caller, token_client
from auth_service.config import Settings
from auth_service.errors import OAuthError
from auth_service.registry import ClientKeys
from auth_service.state import Services

IP = "192.0.2.10"


def basic(client_id: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def caller(
    svc: Services, form: dict[str, str], headers: dict[str, str] | None = None
) -> TokenCaller:
    return await token_caller(svc, token_request(headers), form, IP)


async def refused(
    svc: Services, form: dict[str, str], headers: dict[str, str] | None = None
) -> OAuthError:
    with pytest.raises(OAuthError) as error:
        await caller(svc, form, headers)
    return error.value


@pytest.fixture
async def signer(services: Services, clock: FakeClock) -> Signer:
    return await register_signer(services, clock)


def outcome(svc: Services, name: str) -> float:
    sample = svc.metrics.registry.get_sample_value
    return sample("gatepass_auth_client_authentications_total", {"outcome": name}) or 0.0


# --- private_key_jwt -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
async def test_a_signed_assertion_authenticates_its_client(
    services: Services, clock: FakeClock, alg: str
) -> None:
    signer = await register_signer(services, clock, alg=alg)
    who = await caller(services, asserted(signer.assertion()))
    assert (who.client_id, who.authenticated) == ("video", True)
    assert who.registered is not None
    assert who.registered.scopes == {"mail:notify"}
    assert outcome(services, "ok") == 1.0


@pytest.mark.parametrize(
    "aud",
    [BASE_URL, f"{BASE_URL}/revoke", f"{BASE_URL}/introspect", ["https://other.test", TOKEN_URL]],
)
async def test_the_audience_is_the_issuer_or_one_of_its_endpoints(
    services: Services, signer: Signer, aud: Any
) -> None:
    who = await caller(services, asserted(signer.assertion(aud=aud)))
    assert who.client_id == "video"


async def test_the_form_may_name_the_client_too(services: Services, signer: Signer) -> None:
    who = await caller(services, asserted(signer.assertion(), client_id="video"))
    assert who.client_id == "video"
    error = await refused(services, asserted(signer.assertion(), client_id="mail"))
    assert error.error == "invalid_client"


def _claims_refused() -> list[tuple[str, Callable[[int], dict[str, Any]]]]:
    """Claims an assertion is refused for, made from the clock's now (whole seconds)."""
    return [
        ("expired", lambda now: {"iat": now - 200, "exp": now - 31}),
        ("not yet valid", lambda now: {"nbf": now + 31}),
        ("issued in the future", lambda now: {"iat": now + 31, "exp": now + 90}),
        ("lives too long", lambda now: {"iat": None, "exp": now + 331}),
        ("issued too long ago", lambda now: {"iat": now - 331, "exp": now + 3600}),
        ("no exp", lambda _now: {"exp": None}),
        ("exp not a number", lambda now: {"exp": str(now + 60)}),
        ("exp not finite", lambda _now: {"exp": float("nan")}),
        ("nbf not finite", lambda _now: {"nbf": float("nan")}),
        ("wrong audience", lambda _now: {"aud": "https://other.test/token"}),
        ("no audience", lambda _now: {"aud": None}),
        ("iss is not sub", lambda _now: {"iss": "mail"}),
        ("sub is another client", lambda _now: {"iss": "mail", "sub": "mail"}),
        ("no jti", lambda _now: {"jti": None}),
        ("jti too long", lambda _now: {"jti": "j" * 257}),
    ]


@pytest.mark.parametrize(
    ("case", "claims"), _claims_refused(), ids=[c for c, _ in _claims_refused()]
)
async def test_an_assertion_with_bad_claims_is_refused(
    services: Services,
    signer: Signer,
    clock: FakeClock,
    case: str,
    claims: Callable[[int], dict[str, Any]],
) -> None:
    await register_signer(services, clock, "mail")  # so that "sub is another client" is real
    assertion = signer.assertion(**claims(int(clock().timestamp())))
    error = await refused(services, asserted(assertion))
    assert (error.error, error.status) == ("invalid_client", 401), case
    assert error.headers["WWW-Authenticate"].startswith("Basic")
    assert outcome(services, "invalid") == 1.0


async def test_an_assertion_with_a_far_exp_is_good_for_five_minutes_from_its_iat(
    services: Services, signer: Signer, clock: FakeClock
) -> None:
    """authlib, for one, sets exp an hour ahead: accepted, but only as long as a short one."""
    assertion = signer.assertion(exp=int(clock().timestamp()) + 3600)
    who = await caller(services, asserted(assertion))
    assert who.authenticated
    error = await refused(services, asserted(assertion))  # single use, all the same
    assert error.error == "invalid_client"
    clock.advance(331)
    late = signer.assertion(iat=int(clock().timestamp()) - 331, exp=int(clock().timestamp()) + 60)
    error = await refused(services, asserted(late))
    assert error.error == "invalid_client"


async def test_the_leeway_is_thirty_seconds_either_way(
    services: Services, signer: Signer, clock: FakeClock
) -> None:
    now = int(clock().timestamp())
    cases: list[dict[str, Any]] = [
        {"iat": now - 100, "exp": now - 29},  # expired 29 s ago
        {"nbf": now + 29, "iat": now + 29, "exp": now + 90},  # valid in 29 s
        {"exp": now + 329},  # 300 s of life, and the leeway
    ]
    for claims in cases:
        assert (await caller(services, asserted(signer.assertion(**claims)))).authenticated


async def test_a_forged_assertion_is_refused(services: Services, signer: Signer) -> None:
    forger = Signer("video", signer.kid, "ES256", new_key("ES256"), signer.clock)
    error = await refused(services, asserted(forger.assertion()))
    assert error.error == "invalid_client"


async def test_alg_none_and_hmac_are_refused(services: Services, signer: Signer) -> None:
    claims = signer.claims()
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": signer.kid})
    # The classic confusion: an HMAC keyed with the public key's own bytes.
    public = json.dumps(signer.public_jwk()).encode()
    header = {"alg": "HS256", "typ": "JWT", "kid": signer.kid}
    signing_input = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
        for part in (header, claims)
    )
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    hs256 = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    for assertion in (unsigned, hs256):
        error = await refused(services, asserted(assertion))
        assert error.error == "invalid_client"


async def test_an_unknown_kid_is_refused(services: Services, signer: Signer) -> None:
    error = await refused(services, asserted(signer.assertion(headers={"kid": "other"})))
    assert error.error == "invalid_client"


async def test_an_assertion_is_used_once(services: Services, signer: Signer) -> None:
    assertion = signer.assertion()
    assert (await caller(services, asserted(assertion))).authenticated
    error = await refused(services, asserted(assertion))
    assert (error.error, error.status) == ("invalid_client", 401)
    # Another jti is another assertion.
    assert (await caller(services, asserted(signer.assertion()))).authenticated


async def test_the_same_jti_from_two_clients_is_no_replay(
    services: Services, signer: Signer, clock: FakeClock
) -> None:
    mail = await register_signer(services, clock, "mail")
    assert (await caller(services, asserted(signer.assertion(jti="same")))).authenticated
    assert (await caller(services, asserted(mail.assertion(jti="same")))).authenticated


async def test_remembered_jtis_are_forgotten_after_they_expire(
    services: Services, signer: Signer, clock: FakeClock
) -> None:
    await caller(services, asserted(signer.assertion()))
    async with services.sessions() as db:
        assert await registry.forget_expired_assertions(db, clock()) == 0
        clock.advance(60 + 30 + 1)  # its exp, and the leeway
        assert await registry.forget_expired_assertions(db, clock()) == 1
        await db.commit()


async def test_a_disabled_client_cannot_authenticate(services: Services, signer: Signer) -> None:
    await set_disabled(services, "video", True)
    error = await refused(services, asserted(signer.assertion()))
    assert error.error == "invalid_client"


async def test_malformed_assertions_are_refused_alike(services: Services, signer: Signer) -> None:
    for form in (
        asserted("not.a.jwt"),
        asserted(""),
        asserted(signer.assertion(pad="x" * 9000)),  # over 8 KiB
        {"client_assertion": signer.assertion()},  # no type
        {"client_assertion_type": "urn:other", "client_assertion": signer.assertion()},
        {"client_assertion_type": ASSERTION_TYPE},  # no assertion
    ):
        error = await refused(services, form)
        assert (error.error, error.status) == ("invalid_client", 401)


async def test_an_assertion_and_a_secret_at_once_is_a_bad_request(
    services: Services, signer: Signer
) -> None:
    error = await refused(services, asserted(signer.assertion()), basic("video", "x"))
    assert (error.error, error.status) == ("invalid_request", 400)


async def test_assertions_answer_over_http_as_secrets_do(
    client: httpx.AsyncClient, signer: Signer
) -> None:
    good = await client.post("/revoke", data={"token": "x", **asserted(signer.assertion())})
    assert good.status_code == 200, good.text
    bad = await client.post(
        "/revoke", data={"token": "x", **asserted(signer.assertion(aud="https://elsewhere"))}
    )
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
    assert bad.headers["WWW-Authenticate"].startswith("Basic")


async def test_failed_assertions_are_throttled(services: Services, signer: Signer) -> None:
    """Failures count as wrong secrets do: past the allowance, 429 with Retry-After. A good
    assertion still passes: nobody can guess one, so failures in the client's name (anyone can
    make them) must not lock the client out."""
    for _ in range(services.settings.throttle_client_ip_free):
        await refused(services, asserted(signer.assertion(aud="https://elsewhere")))
    error = await refused(services, asserted(signer.assertion(aud="https://elsewhere")))
    assert error.status == 429
    assert int(error.headers["Retry-After"]) >= 1
    assert (await caller(services, asserted(signer.assertion()))).authenticated


# --- jwks_uri ------------------------------------------------------------------------------------


@dataclass
class PublishedKeys:
    """A client's JWK Set as its jwks_uri serves it; counts the fetches."""

    keys: list[dict[str, Any]]
    status: int = 200
    padding: int = 0
    fetches: list[str] = field(default_factory=list)

    def handler(self, req: httpx.Request) -> httpx.Response:
        self.fetches.append(str(req.url))
        body: dict[str, Any] = {"keys": self.keys}
        if self.padding:
            body["padding"] = "x" * self.padding
        return httpx.Response(self.status, json=body)


JWKS_URI = "https://video.example.test/jwks.json"


async def uri_signer(svc: Services, clock: FakeClock, published: PublishedKeys) -> Signer:
    await svc.client_keys.aclose()
    svc.client_keys = ClientKeys(clock, transport=httpx.MockTransport(published.handler))
    signer = Signer("video", "v1", "ES256", new_key("ES256"), clock)
    published.keys.append(signer.public_jwk())
    await add_client(
        svc,
        client_id="video",
        kind="service",
        auth_method="private_key_jwt",
        audiences=["mail"],
        scopes=["mail:notify"],
        jwks_uri=JWKS_URI,
    )
    return signer


async def test_keys_are_fetched_from_the_jwks_uri_and_cached(
    services: Services, clock: FakeClock
) -> None:
    published = PublishedKeys([])
    signer = await uri_signer(services, clock, published)
    for _ in range(3):
        assert (await caller(services, asserted(signer.assertion()))).authenticated
    assert published.fetches == [JWKS_URI]
    clock.advance(ClientKeys.MAX_AGE)  # old enough to be fetched again
    assert (await caller(services, asserted(signer.assertion()))).authenticated
    assert len(published.fetches) == 2


async def test_an_unknown_kid_fetches_again_at_most_every_thirty_seconds(
    services: Services, clock: FakeClock
) -> None:
    published = PublishedKeys([])
    signer = await uri_signer(services, clock, published)
    assert (await caller(services, asserted(signer.assertion()))).authenticated
    rotated = Signer("video", "v2", "ES256", new_key("ES256"), clock)
    published.keys.append(rotated.public_jwk())

    clock.advance(ClientKeys.MIN_INTERVAL - 1)
    await refused(services, asserted(rotated.assertion()))  # too soon to fetch again
    assert len(published.fetches) == 1
    clock.advance(1)
    assert (await caller(services, asserted(rotated.assertion()))).authenticated
    assert len(published.fetches) == 2
    # A kid nobody published makes no fetch within the interval.
    await refused(services, asserted(rotated.assertion(headers={"kid": "v9"})))
    assert len(published.fetches) == 2


async def test_a_failed_fetch_keeps_the_keys_it_had(services: Services, clock: FakeClock) -> None:
    published = PublishedKeys([])
    signer = await uri_signer(services, clock, published)
    assert (await caller(services, asserted(signer.assertion()))).authenticated
    published.status = 503
    clock.advance(ClientKeys.MAX_AGE)
    assert (await caller(services, asserted(signer.assertion()))).authenticated
    assert len(published.fetches) == 2


@pytest.mark.parametrize(
    "published",
    [
        PublishedKeys([], status=404),
        PublishedKeys([], padding=70_000),  # over the size limit
    ],
    ids=["404", "too large"],
)
async def test_no_keys_from_the_jwks_uri_refuses_the_assertion(
    services: Services, clock: FakeClock, published: PublishedKeys
) -> None:
    signer = await uri_signer(services, clock, published)
    error = await refused(services, asserted(signer.assertion()))
    assert error.error == "invalid_client"


async def test_a_slow_jwks_uri_is_cut_off(services: Services, clock: FakeClock) -> None:
    published = PublishedKeys([])
    signer = await uri_signer(services, clock, published)

    async def slow(req: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)  # fifty times the timeout below
        return published.handler(req)

    await services.client_keys.aclose()
    services.client_keys = ClientKeys(clock, transport=httpx.MockTransport(slow), timeout=0.1)
    error = await refused(services, asserted(signer.assertion()))
    assert error.error == "invalid_client"


async def test_a_published_private_key_is_never_used(services: Services, clock: FakeClock) -> None:
    published = PublishedKeys([])
    signer = await uri_signer(services, clock, published)
    assert isinstance(signer.key, ec.EllipticCurvePrivateKey)
    private = ECAlgorithm.to_jwk(signer.key, as_dict=True)
    published.keys[0] = {**private, "kid": signer.kid}
    error = await refused(services, asserted(signer.assertion()))
    assert error.error == "invalid_client"


# --- secrets and public clients ------------------------------------------------------------------


async def register_secret_client(svc: Services, client_id: str) -> str:
    return (await register(svc, client_id, audiences=["video"], scopes=["video:read"])).secret


async def test_a_registered_secret_authenticates_in_the_header_or_the_form(
    services: Services,
) -> None:
    secret = await register_secret_client(services, "mail")
    by_header = await caller(services, {}, basic("mail", secret))
    by_form = await caller(services, {"client_id": "mail", "client_secret": secret})
    for who in (by_header, by_form):
        assert (who.client_id, who.authenticated) == ("mail", True)
        assert who.registered is not None
        assert who.registered.kind == "service"


async def test_a_wrong_secret_or_an_unknown_client_is_refused_alike(
    client: httpx.AsyncClient, services: Services
) -> None:
    secret = await register_secret_client(services, "mail")
    for client_id, given in (("mail", secret + "x"), ("nobody", secret), ("mail", "")):
        response = await client.post("/revoke", data={"token": "x"}, auth=(client_id, given))
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.headers["WWW-Authenticate"] == 'Basic realm="gatepass"'
        assert secret not in response.text
    ok = await client.post("/revoke", data={"token": "x"}, auth=("mail", secret))
    assert ok.status_code == 200


async def test_a_rotated_secret_replaces_the_old_one(services: Services, clock: FakeClock) -> None:
    old = await register_secret_client(services, "mail")
    async with services.sessions() as db:
        new = await registry.rotate_secret(db, "mail", now=clock())
    assert (await refused(services, {}, basic("mail", old))).error == "invalid_client"
    assert (await caller(services, {}, basic("mail", new))).authenticated


async def test_a_client_authenticates_only_by_its_own_method(
    services: Services, signer: Signer
) -> None:
    secret = await register_secret_client(services, "mail")
    # The private_key_jwt client with a secret; the secret client with nothing at all.
    assert (await refused(services, {}, basic("video", secret))).error == "invalid_client"
    assert (await refused(services, {"client_id": "mail"})).error == "invalid_client"
    assert (await refused(services, {"client_id": "video"})).error == "invalid_client"


async def test_a_disabled_secret_client_is_refused(services: Services) -> None:
    secret = await register_secret_client(services, "mail")
    await set_disabled(services, "mail", True)
    assert (await refused(services, {}, basic("mail", secret))).error == "invalid_client"


async def test_a_public_app_names_itself(services: Services) -> None:
    await add_client(
        services,
        client_id="webapp",
        kind="app",
        auth_method="none",
        audiences=["auth", "mail"],
        scopes=[],
    )
    who = await caller(services, {"client_id": "webapp"})
    assert (who.client_id, who.authenticated) == ("webapp", False)
    assert who.registered is not None
    assert who.registered.confidential is False
    nobody = await caller(services, {})
    assert nobody == TokenCaller(None, None, False)
    # Unregistered and not configured: a public client as before the registry.
    assert (
        await token_client(services, token_request(), {"client_id": "legacy-app"}, IP)
        == "legacy-app"
    )
    await set_disabled(services, "webapp", True)
    assert (await refused(services, {"client_id": "webapp"})).error == "invalid_client"


# --- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_two_concurrent_uses_of_one_jti_admit_one(
    postgres_url: str, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    """Two replicas (here: two sessions of one pool) get the same assertion at once: the second
    insert of its jti waits for the first to commit, then fails: one is admitted."""
    settings = settings_for(database_url=postgres_url)
    async with serving(settings, clock) as app:
        svc: Services = app.state.services
        signer = await register_signer(svc, clock, "video-" + secrets.token_hex(4))
        form = asserted(signer.assertion())
        for _ in range(5):
            outcomes = await asyncio.gather(
                caller(svc, form), caller(svc, form), return_exceptions=True
            )
            admitted = [o for o in outcomes if isinstance(o, TokenCaller)]
            errors = [o for o in outcomes if isinstance(o, OAuthError)]
            assert len(admitted) == 1, outcomes
            assert [e.error for e in errors] == ["invalid_client"]
            form = asserted(signer.assertion())


@pytest.mark.postgres
async def test_disabling_a_client_with_a_long_id_records_its_event(
    postgres_url: str, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    """A revocation event names a client id of up to 100 characters (migration 0005)."""
    settings = settings_for(database_url=postgres_url)
    client_id = "c" * 92 + secrets.token_hex(4)
    async with serving(settings, clock) as app:
        svc: Services = app.state.services
        await register_signer(svc, clock, client_id)
        async with svc.sessions() as db:
            await registry.set_disabled(db, svc.settings, client_id, True, now=clock())
        page = await svc.feed.read(None)
    assert {"kind": "user", "sub": client_id} in [
        {"kind": e["kind"], "sub": e.get("sub")} for e in page.events
    ]


async def test_a_login_naming_a_registered_confidential_client_must_authenticate_it(
    client: httpx.AsyncClient, services: Services, clock: FakeClock
) -> None:
    secret = await register_secret_client(services, "backend")
    await register_signer(services, clock, "worker")
    body = await login_body(client, client_id="backend")
    unproven = await client.post("/login", json=body)
    assert unproven.status_code == 401
    assert unproven.json()["code"] == "invalid_client"
    wrong = await client.post("/login", json=body, auth=("backend", secret + "x"))
    assert wrong.status_code == 401
    proven = await client.post("/login", json=body, auth=("backend", secret))
    assert proven.status_code == 200, proven.text
    assert jose_part(proven.json()["access_token"], 1)["client_id"] == "backend"
    # A private_key_jwt client cannot prove itself at a password login.
    worker = await client.post("/login", json={**body, "client_id": "worker"})
    assert worker.status_code == 401
