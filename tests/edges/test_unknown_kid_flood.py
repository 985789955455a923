"""A flood of tokens with random ``kid``s costs the issuer at most one JWKS fetch per cooldown.

Counted at the issuer (``gatepass_auth_jwks_requests_total``, 200 and 304), not by the edge's
own account: that is what the flood costs the auth service. Real processes: the package's shared
stack, whose edges have a one-second cooldown.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter

import httpx

from tests.edges.common import PROBLEM_JSON, problem_reason
from tests.edges.conftest import EDGES, STACK_EDGES, Edge, EdgeStack
from tests.support.auth_client import bearer
from tests.support.forge import AttackerKey, access_claims, random_kid
from tests.support.metrics import issuer_jwks_requests, metric_value, scrape
from tests.support.procs import ServiceProcess

REQUESTS = 1000
COOLDOWN = float(STACK_EDGES["REFETCH_COOLDOWN"])
DURATION = 3.5 * COOLDOWN  # the flood is spread evenly over this long: three and a half cooldowns
CONCURRENCY = 20  # clients, each with one connection and one request in flight
# The stack keeps the edges' default JWKS lifetimes (the issuer says max-age=600): no background
# refresh happens during the test, so every fetch the issuer sees was caused by the flood.


async def flood(edge: Edge, service: ServiceProcess, tokens: list[str]) -> list[httpx.Response]:
    """``tokens`` to the edge's protected route, token ``i`` not before ``i * DURATION / n``.

    CONCURRENCY clients of one connection each (one client with a large pool spends more time
    in its pool than the edge spends answering).
    """
    url = service.url(edge.protected_path)
    began = time.monotonic()
    gap = DURATION / len(tokens)
    responses: list[httpx.Response] = []

    async def client_loop(first: int) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            for index in range(first, len(tokens), CONCURRENCY):
                await asyncio.sleep(max(0.0, began + index * gap - time.monotonic()))
                responses.append(await client.get(url, headers=bearer(tokens[index])))

    await asyncio.gather(*(client_loop(first) for first in range(CONCURRENCY)))
    return responses


def test_random_kids_cost_the_issuer_at_most_one_fetch_per_cooldown(edge_stack: EdgeStack) -> None:
    auth = edge_stack.auth
    attacker = AttackerKey()
    with httpx.Client(timeout=30) as client:
        for edge in EDGES:
            service = edge_stack.of(edge)
            # Well-formed tokens for this edge from the right issuer, each with a kid of its own.
            claims = access_claims(auth.base_url, ["auth", "mail", "video"])
            tokens = [attacker.sign(claims, kid=random_kid()) for _ in range(REQUESTS)]
            rejected_before = metric_value(
                scrape(client, service.base_url),
                "gatepass_edge_token_rejections_total",
                {"reason": "unknown_kid"},
            )

            began = time.monotonic()  # the window the issuer's count covers, and a bit more
            fetches_before = issuer_jwks_requests(client, auth.base_url)
            responses = asyncio.run(flood(edge, service, tokens))
            fetches = issuer_jwks_requests(client, auth.base_url) - fetches_before
            elapsed = time.monotonic() - began

            assert len(responses) == REQUESTS
            statuses = Counter(response.status_code for response in responses)
            assert statuses == {401: REQUESTS}, f"{edge.name}: {statuses}"
            reasons = Counter(problem_reason(response) for response in responses)
            assert reasons == {"unknown_kid": REQUESTS}, f"{edge.name}: {reasons}"
            assert all(
                'error="invalid_token"' in response.headers["www-authenticate"]
                and response.headers["content-type"].startswith(PROBLEM_JSON)
                for response in responses
            ), edge.name
            # The bound: fetches start at least COOLDOWN apart (failed ones count too), so a run
            # of `elapsed` seconds holds at most ceil(elapsed / COOLDOWN) + 1 of them.
            bound = math.ceil(elapsed / COOLDOWN) + 1
            assert fetches <= bound, (
                f"{edge.name}: {REQUESTS} random kids over {elapsed:.1f} s cost the issuer "
                f"{fetches} JWKS fetches; at most {bound} allowed (cooldown {COOLDOWN:g} s)"
            )
            # And the edge does look again once each cooldown is over (an edge that never
            # refetched on an unknown kid would miss an emergency rotation).
            assert fetches >= 2, f"{edge.name}: {fetches} fetches in {elapsed:.1f} s"
            rejected = metric_value(
                scrape(client, service.base_url),
                "gatepass_edge_token_rejections_total",
                {"reason": "unknown_kid"},
            )
            assert rejected - rejected_before == REQUESTS, edge.name
