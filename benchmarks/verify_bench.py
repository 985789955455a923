"""Benchmark the verify call alone: gatepass's ``Verifier.verify`` against the signature math.

    python -m benchmarks.verify_bench [--rounds 25] [--tokens 400]

In-process, no HTTP. For each of ES256, RS256 and EdDSA it generates a key (``cryptography``),
mints ``--tokens`` distinct access tokens with PyJWT (``typ: at+jwt``, ``kid``; ``iss``, ``sub``,
``aud``, ``exp``, ``iat``, ``jti``, ``scope``) and builds a ``gatepass.Verifier`` over a
``StaticKeySet`` holding the public JWK. Then it times, per call:

- raw: ``cryptography``'s ``public_key.verify`` of the same signatures, with everything it needs
  prepared beforehand (split signing input, decoded signature, DER for ES256): the floor;
- gatepass cold: ``await Verifier.verify(token)`` with the verified-token cache disabled, so every
  call does the header, the signature and the claims (goal: at most 1.3 x raw);
- gatepass cold, cache on: every token new to the cache (it holds fewer entries than the tokens
  in rotation), so a call also pays the digest, the miss and the insert, as (c) in edge_bench;
- gatepass hot: one token again and again, answered by the cache;
- PyJWT decode: ``jwt.decode(token, key, algorithms, audience, issuer)``;
- PyJWT header + decode: ``get_unverified_header`` to pick the key, then ``decode`` (the naive
  edge route of ``bench_edge_app``).

Method (as ``timeit``): each round times one block of calls per variant (the garbage collector
off during a block), the order of the variants rotating from round to round; the first round is
a warm-up. Printed: the median time per call over the rounds, its interquartile range over the
median (a spread above ~10% means a noisy machine), and "x raw", the median over rounds of the
ratio to the raw verify timed in the same round. Compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sysconfig
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cryptography
import jwt
from cryptography.hazmat.backends.openssl.backend import backend
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import get_default_algorithms

from gatepass import StaticKeySet, TokenCache, Verifier
from gatepass.core._b64 import b64url_decode

ISSUER = "https://auth.bench.test"
AUDIENCE = "mail"
ALGORITHMS = ("ES256", "RS256", "EdDSA")
GOAL = 1.3  # gatepass cold / raw, at most

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
Block = Callable[[], None]  # runs every call of one variant once


@dataclass(frozen=True)
class Material:
    """One algorithm's key, tokens, and the same signatures prepared for the raw verify."""

    alg: str
    kid: str
    private_key: PrivateKey
    jwk: dict[str, Any]
    tokens: list[str]

    @property
    def public_key(self) -> Any:
        return self.private_key.public_key()


def generate(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def material(alg: str, count: int) -> Material:
    key = generate(alg)
    kid = f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
    jwk = get_default_algorithms()[alg].to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, alg=alg, use="sig")
    now = int(time.time())
    headers = {"kid": kid, "typ": "at+jwt"}
    tokens = [
        jwt.encode(
            {
                "iss": ISSUER,
                "sub": f"user_{i % 50}",
                "aud": ["auth", AUDIENCE, "video"],  # as the auth service issues them
                "exp": now + 3600,
                "iat": now,
                "jti": uuid.uuid4().hex,
                "sid": f"ses_{i % 200}",
                "client_id": "gatepass-app",
                "scope": "mail:read mail:send video:read video:upload",
            },
            key,
            algorithm=alg,
            headers=headers,
        )
        for i in range(count)
    ]
    return Material(alg, kid, key, jwk, tokens)


# -- the variants: each returns a block that runs one call per token --------------------------


def raw_block(m: Material) -> Block:
    """``cryptography`` alone, on inputs prepared beforehand."""
    prepared = []
    for token in m.tokens:
        signed, _, signature = token.encode().rpartition(b".")
        prepared.append((signed, b64url_decode(signature)))
    public = m.public_key
    if m.alg == "ES256":
        ecdsa = ec.ECDSA(hashes.SHA256())
        der = [(s, encode_dss_signature(_int(g[:32]), _int(g[32:]))) for s, g in prepared]

        def es256() -> None:
            for signed, signature in der:
                public.verify(signature, signed, ecdsa)

        return es256
    if m.alg == "RS256":
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

        def rs256() -> None:
            for signed, signature in prepared:
                public.verify(signature, signed, pkcs1, sha256)

        return rs256

    def eddsa() -> None:
        for signed, signature in prepared:
            public.verify(signature, signed)

    return eddsa


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def verifier(m: Material, cache: TokenCache | None) -> Verifier:
    keys = StaticKeySet.from_jwks({"keys": [m.jwk]})
    return Verifier(keys, issuer=ISSUER, audience=AUDIENCE, algorithms=[m.alg], cache=cache)


def gatepass_block(loop: asyncio.AbstractEventLoop, v: Verifier, tokens: list[str]) -> Block:
    """``await verifier.verify(token)`` for each token, inside one coroutine on one loop."""

    async def calls() -> None:
        for token in tokens:
            await v.verify(token)

    return lambda: loop.run_until_complete(calls())


def pyjwt_block(m: Material) -> Block:
    key = m.public_key

    def decode() -> None:
        for token in m.tokens:
            jwt.decode(token, key, algorithms=[m.alg], audience=AUDIENCE, issuer=ISSUER)

    return decode


def pyjwt_naive_block(m: Material) -> Block:
    keys = {m.kid: jwt.PyJWK(m.jwk)}

    def decode() -> None:
        for token in m.tokens:
            found = keys[jwt.get_unverified_header(token)["kid"]]
            jwt.decode(
                token,
                found.key,
                algorithms=[found.algorithm_name],
                audience=AUDIENCE,
                issuer=ISSUER,
            )

    return decode


def variants(m: Material, loop: asyncio.AbstractEventLoop) -> dict[str, Block]:
    count = len(m.tokens)
    hot = verifier(m, TokenCache(16))
    return {
        "raw cryptography verify": raw_block(m),
        "gatepass cold (no cache)": gatepass_block(loop, verifier(m, None), m.tokens),
        "gatepass cold (cache miss + insert)": gatepass_block(
            loop, verifier(m, TokenCache(max(1, count // 2))), m.tokens
        ),
        "gatepass hot (cache hit)": gatepass_block(loop, hot, [m.tokens[0]] * count),
        "PyJWT decode": pyjwt_block(m),
        "PyJWT get_unverified_header + decode": pyjwt_naive_block(m),
    }


# -- timing -----------------------------------------------------------------------------------


def timed(block: Block) -> float:
    gc.disable()
    try:
        start = time.perf_counter()
        block()
        return time.perf_counter() - start
    finally:
        gc.enable()


def measure(blocks: dict[str, Block], calls: int, rounds: int) -> dict[str, list[float]]:
    """Per-call seconds of each variant, one figure per round, the order rotating."""
    names = list(blocks)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds + 1):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed = timed(blocks[name]) / calls
            if round_:  # round 0 warms up
                times[name].append(elapsed)
    return times


def iqr_share(values: list[float]) -> float:
    q1, _, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / statistics.median(values)


def report(alg: str, times: dict[str, list[float]]) -> float:
    """Print one algorithm's table; return gatepass cold / raw."""
    raw = times["raw cryptography verify"]
    print(f"{alg}:")
    print(f"  {'variant':40s} {'us/call':>8s} {'calls/s':>9s} {'IQR':>5s} {'x raw':>6s}")
    ratio = {}
    for name, values in times.items():
        median = statistics.median(values)
        ratio[name] = statistics.median(v / r for v, r in zip(values, raw, strict=True))
        print(
            f"  {name:40s} {median * 1e6:8.1f} {1 / median:9,.0f} {iqr_share(values):5.0%} "
            f"{ratio[name]:6.2f}"
        )
    cold = statistics.median(times["gatepass cold (no cache)"])
    overhead = (cold - statistics.median(raw)) * 1e6
    print(f"  gatepass cold path around the signature check: {overhead:.1f} us per call")
    return ratio["gatepass cold (no cache)"]


def python_build() -> str:
    flags = f"{sysconfig.get_config_var('CONFIG_ARGS')} {sysconfig.get_config_var('PY_CFLAGS')}"
    optimised = "--enable-optimizations" in flags or "-fprofile-use" in flags
    lto = "--with-lto" in flags or "-flto" in flags
    return f"PGO {'yes' if optimised else 'no'}, LTO {'yes' if lto else 'no'}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=25, help="timed rounds (default 25)")
    parser.add_argument("--tokens", type=int, default=400, help="calls per block (default 400)")
    parser.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: do not pin)")
    parser.add_argument("--algs", default=",".join(ALGORITHMS))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    print(
        f"python {platform.python_version()} ({python_build()}), cryptography "
        f"{cryptography.__version__} ({backend.openssl_version_text()}), PyJWT {jwt.__version__}"
    )
    print(
        f"{args.tokens} calls per block, {args.rounds} rounds after a warm-up, "
        f"CPU {args.cpu if args.cpu >= 0 else 'not pinned'}; medians per call"
    )
    loop = asyncio.new_event_loop()
    cold: dict[str, float] = {}
    per_call: dict[str, float] = {}
    try:
        for alg in args.algs.split(","):
            m = material(alg.strip(), args.tokens)
            times = measure(variants(m, loop), args.tokens, args.rounds)
            cold[m.alg] = report(m.alg, times)
            per_call[m.alg] = statistics.median(times["gatepass cold (no cache)"])
    finally:
        loop.close()
    print(f"goal: gatepass cold verify <= {GOAL} x the raw verify of the same signature")
    for alg, ratio in cold.items():
        print(f"  {alg:6s} {ratio:5.2f} x raw  {'PASS' if ratio <= GOAL else 'MISS'}")
    ranked = sorted(per_call, key=per_call.__getitem__)
    order = " < ".join(f"{alg} ({per_call[alg] * 1e6:.0f} us)" for alg in ranked)
    print(f"cheapest cold verify for an edge: {order}")


if __name__ == "__main__":
    main()
