"""Forged and tampered tokens get 401 ``invalid_token`` (or 400 for a malformed request), never
a 5xx, at both edges, and none of them makes an edge fetch anything.

Each forged token names the issuer's real ``kid`` where it has one, so it is the verifier's
checks that refuse it, not a lookup miss; the ``reason`` in the problem body says which check.
Tokens with the wrong issuer, the wrong audience or an expired ``exp`` are real ones, signed by
the issuer's key: auth replicas sharing its database (so its keys) issue them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.edges.common import PROBLEM_JSON, describe, problem_reason
from tests.edges.conftest import EDGES, EdgePairFactory
from tests.support.auth_client import jose_part, login, new_user
from tests.support.forge import (
    AttackerKey,
    access_claims,
    b64url_json,
    hs256_token,
    random_kid,
    replace_payload,
    unsigned_token,
)
from tests.support.metrics import issuer_jwks_requests
from tests.support.procs import ServiceFactory
from tests.support.trap import RequestTrap

SHORT_TTL = 30  # the auth service's minimum access-token lifetime
AUDIENCES = ["auth", "mail", "video"]


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


def test_forged_and_tampered_tokens_get_401_never_5xx_and_cost_no_fetch(
    start_auth: ServiceFactory, start_edges: EdgePairFactory, auth_port: int
) -> None:
    auth = start_auth()
    # LEEWAY=0 so an expired token is refused the second its exp passes. REFETCH_COOLDOWN=1 so
    # an edge that wanted to fetch for any of these tokens could: the count at the issuer shows it.
    mail, video = start_edges({"LEEWAY": "0", "REFETCH_COOLDOWN": "1"})
    services = {"mail": mail, "video": video}
    # Replicas of the issuer (same database, so same keys): short-lived tokens, tokens naming
    # the issuer by another spelling of its URL, tokens for the auth service alone.
    short_lived = start_auth({"GATEPASS_AUTH_ACCESS_TOKEN_TTL": str(SHORT_TTL)})
    with httpx.Client(base_url=auth.base_url, timeout=10) as client:
        email, _, tokens = new_user(client)
        other = login(client, email)["access_token"]
        jwks = client.get("/.well-known/jwks.json").json()["keys"]
    with httpx.Client(base_url=short_lived.base_url, timeout=10) as client:
        expiring = login(client, email)["access_token"]
    expires_at = jose_part(expiring, 1)["exp"]
    wrong_issuer = start_auth({"GATEPASS_AUTH_ISSUER": f"http://localhost:{auth_port}"})
    auth_only = start_auth({"GATEPASS_AUTH_AUDIENCES": "auth"})
    with httpx.Client(base_url=wrong_issuer.base_url, timeout=10) as client:
        other_iss = login(client, email)["access_token"]
    with httpx.Client(base_url=auth_only.base_url, timeout=10) as client:
        not_for_edges = login(client, email)["access_token"]
    token = tokens["access_token"]
    real_kid = jose_part(token, 0)["kid"]
    issuer_jwk = next(key for key in jwks if key["kid"] == real_kid)
    assert jose_part(other_iss, 0)["kid"] == real_kid  # the replicas sign with the same key
    assert jose_part(other_iss, 1)["iss"] == f"http://localhost:{auth_port}"

    problems: list[str] = []
    with RequestTrap(body=b'{"keys":[]}') as trap, httpx.Client(timeout=10) as client:
        cases = [
            *forged_cases(auth.base_url, real_kid, issuer_jwk, trap),
            *tampered_cases(token, other),
            *garbage_cases(token, other),
            token_case("issued under another issuer name", other_iss, "wrong_issuer"),
            token_case("issued for the auth service only", not_for_edges, "wrong_audience"),
        ]
        # Every real token used above is valid as it is, and the short-lived one too, for now.
        for edge in EDGES:
            url = services[edge.name].url(edge.protected_path)
            for valid in (token, other, expiring):
                answer = client.get(url, headers={"Authorization": f"Bearer {valid}"})
                assert answer.status_code == 200, f"{edge.name}: {describe(answer)}"

        fetches_before = issuer_jwks_requests(client, auth.base_url)
        server_errors = []
        for case in cases:
            for edge in EDGES:
                url = services[edge.name].url(edge.protected_path)
                headers = [(b"Authorization", value) for value in case.authorization]
                response = client.get(url, headers=headers)
                if response.status_code >= 500:
                    server_errors.append(f"{edge.name} / {case.name}: {describe(response)}")
                wrong = mismatch(case, response)
                if wrong is not None:
                    problems.append(f"{edge.name} / {case.name}: {wrong}")
        fetches = issuer_jwks_requests(client, auth.base_url) - fetches_before

        # The short-lived token, once its exp has passed (no leeway at the edges).
        time.sleep(max(0.0, expires_at + 1 - time.time()))
        expired = token_case("expired (issuer-signed)", expiring, "expired")
        for edge in EDGES:
            url = services[edge.name].url(edge.protected_path)
            response = client.get(url, headers={"Authorization": f"Bearer {expiring}"})
            wrong = mismatch(expired, response)
            if wrong is not None:
                problems.append(f"{edge.name} / {expired.name}: {wrong}")
        for edge in EDGES:  # the edges are still healthy, and still let the valid token in
            url = services[edge.name].url(edge.protected_path)
            answer = client.get(url, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, f"{edge.name}: {describe(answer)}"

    assert not server_errors, "\n".join(server_errors)
    assert not problems, f"{len(problems)} wrong answers:\n" + "\n".join(problems)
    assert trap.hits == [], f"an edge followed a token's jku/x5u: {trap.hits}"
    assert fetches == 0, f"forged tokens made the edges fetch the JWKS {fetches} times"
