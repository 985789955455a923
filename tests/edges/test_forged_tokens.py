"""Forged and tampered tokens get 401 ``invalid_token`` (or 400 for a malformed request), never
a 5xx, at both edges, and none of them makes an edge fetch anything.

Each forged token names the issuer's real ``kid`` where it has one, so it is the verifier's
checks that refuse it, not a lookup miss; the ``reason`` in the problem body says which check.
Tokens with the wrong issuer, the wrong audience or an expired ``exp`` are real ones, signed by
the issuer's key: auth replicas sharing its database (so its keys) issue them.

The verifier's domain: the auth app and both edges run in-process (``tests/edges/inprocess.py``),
the edges fetching the issuer's keys over ASGI. What only a real server shows (raw header bytes
through its HTTP parser, and its header limits) is the smoke test at the end, against the edge
processes the module shares with the other cross-process edge tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from auth_service.clock import Clock, system_clock
from edge_service_mail.app import create_app as create_mail_app
from edge_service_mail.config import MailSettings
from edge_service_video.app import create_app as create_video_app
from edge_service_video.config import VideoSettings
from tests.edges.common import PROBLEM_JSON, describe, problem_reason
from tests.edges.conftest import EDGES, EdgeStack
from tests.edges.inprocess import IssuerTransport, auth_app, edge_app
from tests.support.auth_client import STRONG_PASSWORD, jose_part, new_user
from tests.support.auth_client import login as login_at
from tests.support.forge import (
    AttackerKey,
    access_claims,
    b64url_json,
    hs256_token,
    random_kid,
    replace_payload,
    unsigned_token,
)
from tests.support.inprocess import BASE_URL, auth_settings
from tests.support.metrics import metric_value
from tests.support.trap import RequestTrap

SHORT_TTL = 30  # the auth service's minimum access-token lifetime
AUDIENCES = ["auth", "mail", "video"]
COOLDOWN = 1.0  # the edges' refetch cooldown: an edge that wanted to fetch for a token could
EMAIL = "ann@example.com"


@dataclass(frozen=True)
class Case:
    name: str
    authorization: tuple[bytes, ...]  # the Authorization header values, in order
    statuses: tuple[int, ...] = (401,)
    reason: str | None = None  # the check that must refuse it (None: any)


def token_case(name: str, token: str, reason: str | None = None) -> Case:
    return Case(name, (b"Bearer " + token.encode("latin-1"),), (401,), reason)


def raw_case(name: str, *values: bytes, statuses: tuple[int, ...] = (400,)) -> Case:
    return Case(name, values, statuses, None)


def mismatch(case: Case, response: httpx.Response) -> str | None:
    """Why ``response`` is the wrong answer to ``case`` (None if it is right)."""
    challenge = response.headers.get("www-authenticate", "")
    if response.status_code not in case.statuses:
        return f"expected {case.statuses}, got {describe(response)}"
    if response.status_code == 401:
        if 'error="invalid_token"' not in challenge:
            return f"401 without invalid_token: {describe(response)}"
        if not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
            return f"401 not problem+json: {response.headers.get('content-type')}"
        if case.reason is not None and problem_reason(response) != case.reason:
            return f"expected reason {case.reason}, got {describe(response)}"
    if response.status_code == 400 and 'error="invalid_request"' not in challenge:
        return f"400 without invalid_request: {describe(response)}"
    return None


def forged_cases(
    issuer: str, real_kid: str, issuer_jwk: dict[str, Any], trap: RequestTrap
) -> list[Case]:
    """Tokens only an attacker can make: no signature, someone else's key, forbidden headers."""
    claims = access_claims(issuer, AUDIENCES)
    attacker, attacker_rsa = AttackerKey(), AttackerKey("RS256")
    own_kid = random_kid()
    public_key = jwt.PyJWK(issuer_jwk).key
    pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    jwk_compact = json.dumps(issuer_jwk, separators=(",", ":"), sort_keys=True).encode()
    cases = [
        token_case(f"alg {alg}", unsigned_token(claims, kid=real_kid, alg=alg), "bad_algorithm")
        for alg in ("none", "None", "NONE")
    ]
    cases += [
        token_case(
            f"HS256 keyed with the issuer's {form}",
            hs256_token(claims, secret, kid=real_kid),
            "bad_algorithm",
        )
        for form, secret in (
            ("PEM public key", pem),
            ("PEM public key (no newline)", pem.rstrip(b"\n")),
            ("DER public key", der),
            ("public JWK", json.dumps(issuer_jwk).encode()),
            ("public JWK (compact, sorted)", jwk_compact),
        )
    ]
    cases += [
        token_case(
            "embedded jwk (attacker's key and kid)",
            attacker.sign(claims, kid=own_kid, jwk=attacker.public_jwk(own_kid)),
            "forbidden_header",
        ),
        token_case(
            "embedded jwk under the issuer's kid",
            attacker.sign(claims, kid=real_kid, jwk=attacker.public_jwk(real_kid)),
            "forbidden_header",
        ),
        token_case(
            "jku to loopback",
            attacker.sign(claims, kid=own_kid, jku=f"{trap.base_url}/jwks.json"),
            "forbidden_header",
        ),
        token_case(
            "x5u to loopback",
            attacker.sign(claims, kid=own_kid, x5u=f"{trap.base_url}/cert.pem"),
            "forbidden_header",
        ),
        token_case(
            "x5c chain", attacker.sign(claims, kid=real_kid, x5c=["MIIB"]), "forbidden_header"
        ),
        token_case(
            "crit header",
            attacker.sign(claims, kid=real_kid, crit=["exp"]),
            "forbidden_header",
        ),
        token_case(
            "attacker's ES256 signature under the issuer's kid",
            attacker.sign(claims, kid=real_kid),
            "bad_signature",
        ),
        token_case(
            "RS256 under the issuer's ES256 kid",
            attacker_rsa.sign(claims, kid=real_kid),
            "alg_mismatch",
        ),
        token_case("typ JWT", attacker.sign(claims, kid=real_kid, typ="JWT"), "wrong_typ"),
        token_case(
            "no kid",
            attacker.sign(claims, kid=None),
            "malformed",
        ),
        token_case("malformed kid", attacker.sign(claims, kid="k" * 200), "malformed"),
        token_case(
            "oversize (> 8 KiB)",
            attacker.sign(claims | {"pad": "x" * 9000}, kid=real_kid),
            "oversize",
        ),
    ]
    return cases


def tampered_cases(token: str, other: str) -> list[Case]:
    """Real tokens, changed: each change must break the signature."""
    claims = jose_part(token, 1)
    header, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    return [
        token_case(
            "payload: sub changed",
            replace_payload(token, claims | {"sub": "usr_someone_else"}),
            "bad_signature",
        ),
        token_case(
            "payload: scope widened",
            replace_payload(token, claims | {"scope": f"{claims['scope']} admin video:delete"}),
            "bad_signature",
        ),
        token_case(
            "payload: exp extended",
            replace_payload(token, claims | {"exp": claims["exp"] + 86400}),
            "bad_signature",
        ),
        token_case(
            "signature of another real token",
            f"{header}.{payload}.{other.split('.')[2]}",
            "bad_signature",
        ),
        token_case("signature bit flipped", f"{header}.{payload}.{flipped}", "bad_signature"),
        token_case("signature removed", f"{header}.{payload}."),
        token_case(
            "header: kid replaced by a malformed one",
            f"{b64url_json(jose_part(token, 0) | {'kid': 'k' * 200})}.{payload}.{signature}",
            "malformed",
        ),
    ]


def garbage_cases(token: str, other: str) -> list[Case]:
    """Not tokens at all, or not one token."""
    in_charset = ["garbage", "a.b.c", "...", "a..b", "a.b.c.d", "e30.e30.e30", "e30.e30.", "e30"]
    cases = [token_case(f"garbage {text!r}", text) for text in in_charset]
    cases += [
        raw_case("a space inside the token", b"Bearer not a token"),
        raw_case("JSON instead of a token", b'Bearer {"alg":"none"}'),
        raw_case("bytes that are not ASCII", b"Bearer \xff\xfe\xfd"),
        raw_case("the scheme alone", b"Bearer"),
        raw_case(
            "two Authorization headers", f"Bearer {token}".encode(), f"Bearer {other}".encode()
        ),
        raw_case("a bearer and a basic header", f"Bearer {token}".encode(), b"Basic dXNlcjpwYXNz"),
        # Far beyond the edge's token limit: refused by the verifier or the HTTP parser, not 5xx.
        raw_case(
            "20 KiB of token", b"Bearer " + b"A" * 20_000 + b".e30.e30", statuses=(400, 401, 431)
        ),
    ]
    return cases


@dataclass
class Issued:
    """Real tokens from the issuer and its replicas (all signed with its key), and its JWKS."""

    token: str
    other: str
    expired: str
    other_iss: str
    not_for_edges: str
    jwks: list[dict[str, Any]]


async def login(auth: httpx.AsyncClient) -> str:
    response = await auth.post("/login", json={"email": EMAIL, "password": STRONG_PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def client_of(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


async def replica_token(tmp_path: Path, clock: Clock = system_clock, **overrides: Any) -> str:
    """A token from an auth replica on the issuer's data (so its keys) with other settings."""
    settings = auth_settings(tmp_path, None, **overrides)
    async with auth_app(settings, clock) as app, client_of(app) as http:
        return await login(http)


async def issue(tmp_path: Path, issuer: httpx.AsyncClient) -> Issued:
    signed_up = await issuer.post("/signup", json={"email": EMAIL, "password": STRONG_PASSWORD})
    assert signed_up.status_code == 201, signed_up.text
    token, other = await login(issuer), await login(issuer)
    jwks = (await issuer.get("/.well-known/jwks.json")).json()["keys"]
    # Its exp passed two seconds ago: issued by a replica whose clock runs SHORT_TTL + 2 s behind.
    behind = timedelta(seconds=SHORT_TTL + 2)
    expired = await replica_token(
        tmp_path, lambda: datetime.now(UTC) - behind, access_token_ttl=SHORT_TTL
    )
    other_iss = await replica_token(tmp_path, issuer=f"{BASE_URL}:80")  # the same URL, respelled
    not_for_edges = await replica_token(tmp_path, audiences=["auth"])
    return Issued(token, other, expired, other_iss, not_for_edges, jwks)


@dataclass
class World:
    issuer: httpx.AsyncClient
    transport: IssuerTransport
    edges: dict[str, httpx.AsyncClient]
    issued: Issued
    ready_at: float  # when both edges had fetched the issuer's keys

    async def jwks_requests(self) -> int:
        """JWKS requests the issuer served (200 and 304): what the edges' caches cost it."""
        text = (await self.issuer.get("/metrics")).text
        return int(metric_value(text, "gatepass_auth_jwks_requests_total"))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """The issuer and both edges, in-process. LEEWAY=0 so an expired token is refused the second
    its exp passes; REFETCH_COOLDOWN=1 so an edge that wanted to fetch for a token could."""
    edge_options: dict[str, Any] = {"issuer": BASE_URL, "leeway": 0, "refetch_cooldown": COOLDOWN}
    async with auth_app(auth_settings(tmp_path, None)) as auth, client_of(auth) as issuer:
        issued = await issue(tmp_path, issuer)
        transport = IssuerTransport(auth, httpx.URL(BASE_URL).host)
        mail_settings = MailSettings(data_dir=tmp_path / "mail-data", **edge_options)
        video_settings = VideoSettings(data_dir=tmp_path / "video-data", **edge_options)
        async with (
            edge_app(create_mail_app, mail_settings, transport) as mail,
            edge_app(create_video_app, video_settings, transport) as video,
        ):
            ready_at = time.monotonic()
            yield World(issuer, transport, {"mail": mail, "video": video}, issued, ready_at)


async def test_forged_and_tampered_tokens_get_401_never_5xx_and_cost_no_fetch(
    world: World,
) -> None:
    issued = world.issued
    real_kid = jose_part(issued.token, 0)["kid"]
    issuer_jwk = next(key for key in issued.jwks if key["kid"] == real_kid)
    for replicated in (issued.expired, issued.other_iss, issued.not_for_edges):
        assert jose_part(replicated, 0)["kid"] == real_kid  # the replicas sign with its key
    assert jose_part(issued.other_iss, 1)["iss"] == f"{BASE_URL}:80"

    problems: list[str] = []
    with RequestTrap(body=b'{"keys":[]}') as trap:
        cases = [
            *forged_cases(BASE_URL, real_kid, issuer_jwk, trap),
            *tampered_cases(issued.token, issued.other),
            *garbage_cases(issued.token, issued.other),
            token_case("issued under another issuer name", issued.other_iss, "wrong_issuer"),
            token_case("issued for the auth service only", issued.not_for_edges, "wrong_audience"),
            token_case("expired (issuer-signed)", issued.expired, "expired"),
        ]
        # Every real token used above is valid as it is (the expired one is refused for its exp
        # alone: the reason says so).
        for edge in EDGES:
            for valid in (issued.token, issued.other):
                answer = await world.edges[edge.name].get(
                    edge.protected_path, headers={"Authorization": f"Bearer {valid}"}
                )
                assert answer.status_code == 200, f"{edge.name}: {describe(answer)}"

        # Past the edges' cooldown, which runs from their start-up fetch: from now on an edge
        # that wanted to fetch for a token could, and the issuer's count would show it.
        await asyncio.sleep(max(0.0, world.ready_at + COOLDOWN - time.monotonic()))
        fetches_before = await world.jwks_requests()
        server_errors = []
        for case in cases:
            for edge in EDGES:
                headers = [(b"Authorization", value) for value in case.authorization]
                response = await world.edges[edge.name].get(edge.protected_path, headers=headers)
                if response.status_code >= 500:
                    server_errors.append(f"{edge.name} / {case.name}: {describe(response)}")
                wrong = mismatch(case, response)
                if wrong is not None:
                    problems.append(f"{edge.name} / {case.name}: {wrong}")
        fetches = await world.jwks_requests() - fetches_before

        for edge in EDGES:  # the edges are still healthy, and still let the valid token in
            answer = await world.edges[edge.name].get(
                edge.protected_path, headers={"Authorization": f"Bearer {issued.token}"}
            )
            assert answer.status_code == 200, f"{edge.name}: {describe(answer)}"

    assert not server_errors, "\n".join(server_errors)
    assert not problems, f"{len(problems)} wrong answers:\n" + "\n".join(problems)
    assert trap.hits == [], f"an edge followed a token's jku/x5u: {trap.hits}"
    assert world.transport.elsewhere == [], (
        f"an edge fetched elsewhere: {world.transport.elsewhere}"
    )
    assert fetches == 0, f"forged tokens made the edges fetch the JWKS {fetches} times"


def test_raw_headers_through_a_real_server_get_4xx_never_5xx(edge_stack: EdgeStack) -> None:
    """The edges as processes: the header cases whose bytes a real HTTP parser reads first (not
    ASCII, two headers, far beyond the size limits...), and a forged and a tampered token to show
    the processes refuse what the in-process edges refuse. Valid tokens still pass afterwards."""
    with httpx.Client(base_url=edge_stack.auth.base_url, timeout=30) as client:
        email, _, tokens = new_user(client)
        token, other = tokens["access_token"], login_at(client, email)["access_token"]
    header, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    claims = access_claims(edge_stack.auth.base_url, AUDIENCES)
    cases = [
        *(case for case in garbage_cases(token, other) if case.statuses != (401,)),
        token_case(
            "alg none", unsigned_token(claims, kid=jose_part(token, 0)["kid"]), "bad_algorithm"
        ),
        token_case("signature bit flipped", f"{header}.{payload}.{flipped}", "bad_signature"),
    ]
    problems = []
    with httpx.Client(timeout=30) as client:
        for case in cases:
            for edge in EDGES:
                url = edge_stack.of(edge).url(edge.protected_path)
                headers = [(b"Authorization", value) for value in case.authorization]
                wrong = mismatch(case, client.get(url, headers=headers))
                if wrong is not None:
                    problems.append(f"{edge.name} / {case.name}: {wrong}")
        for edge in EDGES:
            url = edge_stack.of(edge).url(edge.protected_path)
            answer = client.get(url, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, f"{edge.name}: {describe(answer)}"
    assert not problems, f"{len(problems)} wrong answers:\n" + "\n".join(problems)
