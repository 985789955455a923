"""One trip to the issuer: discovery, a conditional JWKS GET, a size limit, ``Cache-Control``.

Discovery is read once and kept (:class:`Discovery`): the JWKS fetch needs its ``jwks_uri``, the
revocation feed follower its ``gatepass_revocation_feed_endpoint``, and one read serves both.
:func:`read_discovery` is the one reader: a service's token client (:mod:`gatepass.core.oauth`)
uses it too, for the ``token_endpoint``.

A fetch never raises for the issuer's failures: every outcome, good or bad, comes back as a
:class:`FetchResult` with a short ``outcome`` label that the key set counts. Deciding what to do
with a failure (keep the old keys, retry later) is the key set's job, not this module's.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from gatepass.core.jwks import JwksError, ParsedJwks, parse_jwks

log = logging.getLogger("gatepass.core.jwks")

FEED_ENDPOINT = "gatepass_revocation_feed_endpoint"
TOKEN_ENDPOINT = "token_endpoint"  # noqa: S105 - a discovery member
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


@dataclass(frozen=True)
class Discovery:
    """What an edge uses of the issuer's discovery document."""

    jwks_uri: str
    feed_uri: str | None  # gatepass_revocation_feed_endpoint, if the issuer lists one
    token_endpoint: str | None = None  # if the issuer lists one


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
        self.discovery: Discovery | None = None
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

    async def discover(self) -> Discovery | None:
        """Read the discovery document now (for the feed follower); ``None`` if that failed.

        With a ``jwks_url`` given, the JWKS stays where it is: only the feed is looked up.
        """
        try:
            async with asyncio.timeout(self.timeout):
                await self._read_discovery()
        except FetchFailed as exc:
            log.warning("discovery failed", extra={"outcome": exc.outcome, "reason": str(exc)})
            return None
        except TimeoutError:
            log.warning("discovery timed out", extra={"outcome": "timeout"})
            return None
        return self.discovery

    async def _discover(self) -> str:
        return (await self._read_discovery()).jwks_uri

    async def _read_discovery(self) -> Discovery:
        if self.issuer is None:  # a jwks_url and no issuer: nothing to discover, no feed
            assert self.jwks_uri is not None
            self.discovery = Discovery(self.jwks_uri, None)
            return self.discovery
        if self.client is None:
            raise RuntimeError("the JWKS fetcher has no HTTP client: start the key set first")
        self.discovery = await read_discovery(self.client, self.issuer, self.max_bytes)
        if self._discovered:
            self.jwks_uri = self.discovery.jwks_uri
        return self.discovery

    async def _get(self, url: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
        if self.client is None:
            raise RuntimeError("the JWKS fetcher has no HTTP client: start the key set first")
        return await get_limited(self.client, url, headers, self.max_bytes)


async def read_discovery(client: httpx.AsyncClient, issuer: str, max_bytes: int) -> Discovery:
    """The issuer's discovery document (``{issuer}/.well-known/openid-configuration``), checked:
    it must name ``issuer`` itself. :class:`FetchFailed` (``discovery_error``) otherwise."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response, body = await get_limited(client, url, {"accept": "application/json"}, max_bytes)
    except FetchFailed as exc:
        raise FetchFailed("discovery_error", str(exc)) from exc
    if response.status_code != 200:
        raise FetchFailed("discovery_error", f"status {response.status_code}")
    return _discovery(body, issuer)


async def get_limited(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    max_bytes: int,
    *,
    params: dict[str, str] | None = None,
    client_timeout: float | None = None,
) -> tuple[httpx.Response, bytes]:
    """GET ``url``: the response and its body, or :class:`FetchFailed` for a network failure or
    a body over ``max_bytes`` (counted after decompression: no gzip bombs). ``client_timeout``:
    the client's timeouts for this request (a long poll needs more than the default)."""
    return await request_limited(
        client, "GET", url, headers, max_bytes, params=params, client_timeout=client_timeout
    )


async def request_limited(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    headers: dict[str, str],
    max_bytes: int,
    *,
    params: dict[str, str] | None = None,
    data: Mapping[str, str | Sequence[str]] | None = None,
    client_timeout: float | None = None,
) -> tuple[httpx.Response, bytes]:
    """:func:`get_limited` for any method; ``data``: a form body (a sequence: the name repeats)."""
    per_request = (
        httpx.USE_CLIENT_DEFAULT if client_timeout is None else httpx.Timeout(client_timeout)
    )
    try:
        async with client.stream(
            method, url, params=params, data=data, headers=headers, timeout=per_request
        ) as response:
            return response, await _read_limited(response, max_bytes)
    except httpx.TimeoutException as exc:
        raise FetchFailed("timeout", type(exc).__name__) from exc
    except httpx.HTTPError as exc:
        raise FetchFailed("network_error", type(exc).__name__) from exc


async def _read_limited(response: httpx.Response, max_bytes: int) -> bytes:
    """The body, refused past ``max_bytes``, before reading when ``Content-Length`` says so."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed("too_large", f"{declared} bytes declared")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FetchFailed("too_large", f"over {max_bytes} bytes")
    return bytes(body)


def _parse(body: bytes) -> ParsedJwks:
    try:
        parsed = parse_jwks(body)
    except JwksError as exc:
        raise FetchFailed("invalid_document", str(exc)) from exc
    if not parsed.keys:
        raise FetchFailed("no_keys", f"skipped: {parsed.skipped}")
    return parsed


def _discovery(body: bytes, issuer: str) -> Discovery:
    """A discovery document that names the same issuer (OIDC Discovery 4.3): its ``jwks_uri``,
    and the revocation feed if it lists a usable one (else a warning: the edge runs without)."""
    try:
        document: Any = orjson.loads(body)
    except ValueError as exc:  # not UTF-8, not JSON, or nested over 1,024 deep
        raise FetchFailed("discovery_error", "not JSON") from exc
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise FetchFailed("discovery_error", "the document names another issuer")
    https_only = urlsplit(issuer).scheme == "https"
    uri = document.get("jwks_uri")
    if not isinstance(uri, str):
        raise FetchFailed("discovery_error", "no jwks_uri")
    try:
        _check_url(uri, https_only=https_only)
    except ValueError as exc:
        raise FetchFailed("discovery_error", str(exc)) from exc
    feed = _optional_uri(document.get(FEED_ENDPOINT), https_only, "revocation feed endpoint")
    token = _optional_uri(document.get(TOKEN_ENDPOINT), https_only, "token endpoint")
    return Discovery(uri, feed, token)


def _optional_uri(value: object, https_only: bool, what: str) -> str | None:
    """A listed endpoint the edge can do without: a URL, else ``None`` (and a warning)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            _check_url(value, https_only=https_only)
        except ValueError:
            pass
        else:
            return value
    log.warning("ignoring a %s that is not a usable URL", what)
    return None


def _check_url(url: str, *, https_only: bool = False) -> None:
    parts = urlsplit(url)
    allowed = ("https",) if https_only else ("https", "http")
    if parts.scheme not in allowed or not parts.netloc:
        raise ValueError(f"not an {' or '.join(allowed)} URL: {url!r}")
