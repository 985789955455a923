"""One trip to the issuer: discovery, a conditional JWKS GET, a size limit, ``Cache-Control``.

A fetch never raises for the issuer's failures: every outcome, good or bad, comes back as a
:class:`FetchResult` with a short ``outcome`` label that the key set counts. Deciding what to do
with a failure (keep the old keys, retry later) is the key set's job, not this module's.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from gatepass.core.jwks import JwksError, ParsedJwks, parse_jwks

log = logging.getLogger("gatepass.core.jwks")

OK = "ok"
NOT_MODIFIED = "not_modified"
_MAX_AGE_RE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE_RE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)


@dataclass(frozen=True)
class FetchResult:
    """What one fetch gave: new keys, a confirmation (304), or why not."""

    outcome: str
    jwks: ParsedJwks | None = None
    etag: str | None = None
    max_age: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome in (OK, NOT_MODIFIED)


class FetchFailed(Exception):
    """Internal: stops a fetch with an outcome label."""

    def __init__(self, outcome: str, detail: str = "") -> None:
        self.outcome = outcome
        super().__init__(f"{outcome}: {detail}" if detail else outcome)


def parse_max_age(cache_control: str | None) -> float | None:
    """Seconds from ``Cache-Control`` (``no-store``/``no-cache``: 0); ``None`` when silent."""
    if not cache_control:
        return None
    if _NO_CACHE_RE.search(cache_control):
        return 0.0
    match = _MAX_AGE_RE.search(cache_control)
    return float(match.group(1)) if match else None


class JwksFetcher:
    """Fetches the JWKS of ``issuer`` (discovered) or at ``jwks_url`` (given).

    ``client`` may be set later (the key set opens its own client when it starts).
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None,
        *,
        issuer: str | None = None,
        jwks_url: str | None = None,
        max_bytes: int = 64 * 1024,
        timeout: float = 10.0,
    ) -> None:
        if issuer is None and jwks_url is None:
            raise ValueError("give an issuer (for discovery) or a jwks_url")
        for url in (issuer, jwks_url):
            if url is not None:
                _check_url(url)
        self.client = client
        self.issuer = issuer
        self.jwks_uri = jwks_url
        self._discovered = jwks_url is None
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def fetch(self, etag: str | None = None) -> FetchResult:
        """Fetch the key set, revalidating with ``etag`` when given."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(etag)
        except FetchFailed as exc:
            log.warning("JWKS fetch failed", extra={"outcome": exc.outcome, "reason": str(exc)})
            return FetchResult(exc.outcome)
        except TimeoutError:
            log.warning("JWKS fetch timed out", extra={"outcome": "timeout"})
            return FetchResult("timeout")

    async def _fetch(self, etag: str | None) -> FetchResult:
        uri = self.jwks_uri or await self._discover()
        headers = {"accept": "application/jwk-set+json, application/json"}
        if etag:
            headers["if-none-match"] = etag
        response, body = await self._get(uri, headers)
        max_age = parse_max_age(response.headers.get("cache-control"))
        if response.status_code == 304:
            return FetchResult(NOT_MODIFIED, etag=etag, max_age=max_age)
        self._check_status(response)
        return FetchResult(OK, _parse(body), response.headers.get("etag"), max_age)

    def _check_status(self, response: httpx.Response) -> None:
        if response.status_code == 404 and self._discovered:
            self.jwks_uri = None  # the issuer may have moved its JWKS: discover again next time
        if response.status_code != 200:
            raise FetchFailed("http_error", f"status {response.status_code}")

    async def _discover(self) -> str:
        assert self.issuer is not None
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            response, body = await self._get(url, {"accept": "application/json"})
        except FetchFailed as exc:
            raise FetchFailed("discovery_error", str(exc)) from exc
        if response.status_code != 200:
            raise FetchFailed("discovery_error", f"status {response.status_code}")
        self.jwks_uri = _jwks_uri(body, self.issuer)
        return self.jwks_uri

    async def _get(self, url: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
        if self.client is None:
            raise RuntimeError("the JWKS fetcher has no HTTP client: start the key set first")
        try:
            async with self.client.stream("GET", url, headers=headers) as response:
                return response, await self._read_limited(response)
        except httpx.TimeoutException as exc:
            raise FetchFailed("timeout", type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise FetchFailed("network_error", type(exc).__name__) from exc

    async def _read_limited(self, response: httpx.Response) -> bytes:
        """The body, refused past ``max_bytes`` (counted after decompression: no gzip bombs)."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchFailed("too_large", f"{declared} bytes declared")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                raise FetchFailed("too_large", f"over {self.max_bytes} bytes")
        return bytes(body)


def _parse(body: bytes) -> ParsedJwks:
    try:
        parsed = parse_jwks(body)
    except JwksError as exc:
        raise FetchFailed("invalid_document", str(exc)) from exc
    if not parsed.keys:
        raise FetchFailed("no_keys", f"skipped: {parsed.skipped}")
    return parsed


def _jwks_uri(body: bytes, issuer: str) -> str:
    """``jwks_uri`` from a discovery document that names the same issuer (OIDC Discovery 4.3)."""
    try:
        document: Any = orjson.loads(body)
    except ValueError as exc:  # not UTF-8, not JSON, or nested over 1,024 deep
        raise FetchFailed("discovery_error", "not JSON") from exc
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise FetchFailed("discovery_error", "the document names another issuer")
    uri = document.get("jwks_uri")
    if not isinstance(uri, str):
        raise FetchFailed("discovery_error", "no jwks_uri")
    try:
        _check_url(uri, https_only=urlsplit(issuer).scheme == "https")
    except ValueError as exc:
        raise FetchFailed("discovery_error", str(exc)) from exc
    return uri


def _check_url(url: str, *, https_only: bool = False) -> None:
    parts = urlsplit(url)
    allowed = ("https",) if https_only else ("https", "http")
    if parts.scheme not in allowed or not parts.netloc:
        raise ValueError(f"not an {' or '.join(allowed)} URL: {url!r}")
