"""Settings of an edge's token verification, from environment variables with the edge's prefix.

Each edge has its own prefix (``GATEPASS_MAIL_``, ``GATEPASS_VIDEO_``). Either build these settings
for a prefix::

    settings = edge_auth_settings("GATEPASS_MAIL_", audience="mail")

or make them part of the edge's one settings class::

    class MailSettings(EdgeAuthSettings):
        model_config = SettingsConfigDict(env_prefix="GATEPASS_MAIL_", extra="ignore")
        audience: str = "mail"

And how every gatepass service (the auth service and each edge) runs, with the service's prefix:
:class:`ServiceSettings` (environment, API docs, logs, the HTTP server's limits, trusted proxies).

An edge that calls another service names it with a :data:`PeerUrl` setting (the mail edge's
``video_url``): an http(s) base URL, kept without its trailing ``/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SettingsSourceError

from gatepass.core.feed import FeedConfig
from gatepass.core.keyset import KeySetConfig
from gatepass.core.oauth import ClientIdentity

# Ed25519 under both its names: RFC 9864's, and the deprecated ``EdDSA`` older issuers still use.
AlgorithmName = Literal["ES256", "RS256", "Ed25519", "EdDSA"]
Environment = Literal["development", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
IPNetwork = IPv4Network | IPv6Network
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 b64token


class ConfigError(Exception):
    """Settings that parse but cannot run a service: one message at start-up, then exit code 2.

    A service's own start-up checks raise it (or a subclass); the message names the setting and
    what is wrong with it, never the value (it may be a secret).
    """


class ServiceSettings(BaseSettings):
    """How a gatepass service runs: the auth service and every edge, each with its own prefix.

    ``environment`` decides defaults that differ between a developer's machine and production
    (here: the API docs) and what production refuses (:meth:`check_production`, which the runner
    calls before anything listens); ``trusted_proxies`` the only peers whose ``X-Forwarded-For``
    is read; the rest bounds what one connection may cost the HTTP server
    (:mod:`gatepass.server`).
    """

    model_config = SettingsConfigDict(extra="ignore")

    environment: Environment = "production"
    # An http issuer in production: only on a private network without TLS (see check_issuer).
    allow_http_issuer: bool = False
    # /docs, /redoc and /openapi.json: None means on in development, off in production.
    api_docs: bool | None = None
    log_level: LogLevel = "INFO"
    log_json: bool = False
    max_body_bytes: int = Field(64 * 1024, ge=1024)

    # Peers (addresses or CIDR networks) allowed to say who the client is in X-Forwarded-For.
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    # The HTTP server: request line plus headers at most this many bytes (else 431); how long
    # headers, then a body, may take to arrive (from the connection, or the request's first
    # byte); how long an idle keep-alive connection is kept; and how many connections (idle or
    # not) and running requests there may be before new ones get 503.
    max_header_bytes: int = Field(32 * 1024, ge=4 * 1024, le=1024 * 1024)
    header_timeout: float = Field(10.0, gt=0, le=300)
    body_timeout: float = Field(30.0, gt=0, le=3600)
    keep_alive_timeout: int = Field(5, ge=1, le=300)
    concurrency_limit: int = Field(512, ge=1, le=100_000)
    # Seconds the database has to answer a readiness probe (``/readyz``) before it says 503.
    readiness_timeout: float = Field(2.0, gt=0, le=60)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        """``info`` from the environment means ``INFO``."""
        return value.upper() if isinstance(value, str) else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: Any) -> Any:
        """``10.0.0.0/8, 192.0.2.7`` from the environment; a list or tuple from code."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return proxy_networks(value)
        return value

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def docs_enabled(self) -> bool:
        """``/docs``, ``/redoc``, ``/openapi.json``: as set, else only in development."""
        return self.is_development if self.api_docs is None else self.api_docs

    def check_production(self) -> None:
        """Raise :class:`ConfigError` for settings only a developer's machine may have. The
        runner calls it before anything listens; a service with more to refuse extends it."""

    def check_issuer(self, issuer: str) -> None:
        """In production the issuer must be https unless ``ALLOW_HTTP_ISSUER`` is set (a private
        network without TLS): over plain http, anyone on the path can hand out their own keys
        (an edge fetches the issuer's JWKS) and so forge tokens."""
        if self.is_development or self.allow_http_issuer or issuer.startswith("https://"):
            return
        prefix = self.model_config.get("env_prefix", "")
        raise ConfigError(
            f"{prefix}ISSUER must be an https URL in production; set {prefix}ENVIRONMENT="
            f"development for local use, or {prefix}ALLOW_HTTP_ISSUER=true on a private network "
            "without TLS"
        )


def proxy_networks(entries: Iterable[object]) -> tuple[IPNetwork, ...]:
    """Each entry an IP address (one host) or a CIDR network with no host bits set.

    The error names the entry's position, not its text (a setting's value is never echoed).
    """
    networks: list[IPNetwork] = []
    for position, entry in enumerate(entries, start=1):
        if isinstance(entry, IPv4Network | IPv6Network):
            networks.append(entry)
            continue
        try:
            networks.append(ip_network(str(entry).strip(), strict=True))
        except ValueError:
            raise ValueError(
                f"entry {position} is not an IP address or a CIDR network (like 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def peer_url(value: str) -> str:
    """``value`` without a trailing ``/``, if it is an http(s) URL naming a host and nothing
    after its path: paths are joined to it, so a query, a fragment or a user would land in
    every call. The message never repeats the value (settings errors do not echo)."""
    problem = "must be an http or https URL with a host, and no user, query or fragment"
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is not a number raises, with the value in its message
    except ValueError:
        raise ValueError(problem) from None
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise ValueError(problem)
    return value.rstrip("/")


PeerUrl = Annotated[str, AfterValidator(peer_url)]
"""A setting that is another service's base URL (checked by :func:`peer_url`)."""


def describe_settings_error(exc: ValidationError | SettingsSourceError) -> str:
    """One line a problem: the setting and what is wrong, never the value (it may be secret).

    Only the setting's own name is said of where: below it, pydantic's location holds keys of
    the value itself (``clients.<client id>``, ``role_scopes.<role>``)."""
    if isinstance(exc, SettingsSourceError):
        # "error parsing value for field ... from source ...": names the field, not the value.
        return f"  {exc}"
    lines: dict[str, None] = {}  # two entries of one setting wrong alike: one line
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        where = str(error["loc"][0]) if error["loc"] else "settings"
        lines[f"  {where}: {error['msg']}"] = None
    return "\n".join(lines)


class EdgeAuthSettings(BaseSettings):
    """How an edge verifies access tokens. Times are seconds."""

    model_config = SettingsConfigDict(env_prefix="GATEPASS_EDGE_", extra="ignore")

    issuer: str = "http://127.0.0.1:8000"
    audience: str
    jwks_url: str | None = None
    algorithms: Annotated[tuple[AlgorithmName, ...], NoDecode] = (
        "ES256",
        "RS256",
        "Ed25519",
        "EdDSA",
    )
    leeway: float = Field(60.0, ge=0, le=300)
    max_token_bytes: int = Field(8 * 1024, ge=1024, le=64 * 1024)

    max_staleness: float = Field(12 * 3600.0, gt=0)
    refetch_cooldown: float = Field(30.0, ge=1)
    jwks_min_ttl: float = Field(60.0, gt=0)
    jwks_default_ttl: float = Field(300.0, gt=0)
    jwks_max_ttl: float = Field(24 * 3600.0, gt=0)
    negative_cache_ttl: float = Field(300.0, ge=0)
    jwks_max_bytes: int = Field(64 * 1024, ge=1024)
    fetch_timeout: float = Field(5.0, gt=0)
    last_known_good_path: Path | None = None

    token_cache_size: int = Field(10_000, ge=0)
    cookie_name: str | None = None
    csrf_cookie_name: str | None = "gatepass_csrf"
    csrf_header_name: str = "X-CSRF-Token"
    realm: str | None = None

    # The revocation feed (when the issuer's discovery lists one): the bearer token it wants,
    # fail closed (503) after this long without an answer (None: never), the long poll.
    # feed_url: the feed's address when discovery's is not the one to use (as jwks_url).
    revocation_feed: bool = True
    feed_url: str | None = None
    feed_token: SecretStr | None = None
    feed_max_lag: float | None = Field(None, gt=0)
    feed_wait: float = Field(25.0, ge=0, le=30)
    # Without a feed token but with an identity (below), the feed is read with a service token
    # for this audience (the auth service's own), scope revocations:read.
    feed_audience: str = Field("auth", min_length=1)

    # The edge's own identity (a registered service client), to call other services: the
    # client id, and its private JWK (a JSON file: private_key_jwt) or its secret
    # (client_secret_basic). Calls to other services: a timeout, and how many more attempts an
    # idempotent call gets after a network error or a 502/503/504.
    client_id: str | None = Field(None, min_length=1)
    client_key_file: Path | None = None
    client_secret: SecretStr | None = None
    # The token endpoint's address when discovery's is not the one to use (as jwks_url): in
    # containers the issuer's public URL need not resolve, so it is reached over the private
    # network. Client assertions then name the issuer (RFC 7523 section 3), not this address.
    token_url: str | None = None
    call_timeout: float = Field(3.0, gt=0, le=60)
    call_retries: int = Field(2, ge=0, le=5)

    @field_validator("feed_token")
    @classmethod
    def _check_feed_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _BEARER_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("must be a bearer token: letters, digits and -._~+/ (then = only)")
        return value

    @field_validator("algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: Any) -> Any:
        """``ES256,RS256`` from the environment, a list or tuple from code."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.algorithms:
            raise ValueError("algorithms must name at least one algorithm")
        self.keyset_config()  # the TTL bounds must be in order
        if self.feed_max_lag is not None and self.feed_max_lag <= self.feed_wait:
            raise ValueError(
                "feed_max_lag must be longer than feed_wait: a quiet long poll answers only "
                "after feed_wait seconds"
            )
        if self.client_key_file is not None and self.client_secret is not None:
            raise ValueError("set client_key_file or client_secret, not both")
        if self.client_id is None and (self.client_key_file or self.client_secret):
            raise ValueError("client_key_file and client_secret need a client_id")
        return self

    @property
    def has_identity(self) -> bool:
        """A client id with a key file or a secret: the edge can get tokens of its own."""
        has_credential = self.client_key_file is not None or self.client_secret is not None
        return self.client_id is not None and has_credential

    def client_identity(self) -> ClientIdentity | None:
        """The edge's identity at the token endpoint; ``None`` without one (a client id alone
        is none). Reads the key file: :class:`ConfigError` naming the setting (never the path
        or anything in the file) if it cannot be read or holds no usable private JWK."""
        if self.client_id is None:
            return None
        if self.client_secret is not None:
            return ClientIdentity.from_secret(self.client_id, self.client_secret.get_secret_value())
        if self.client_key_file is None:
            return None
        setting = f"{self.model_config.get('env_prefix', '')}CLIENT_KEY_FILE"
        try:
            return ClientIdentity.from_key_file(self.client_id, self.client_key_file)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(f"{setting}: the key file cannot be read ({reason})") from None
        except ValueError as exc:  # the message names what is wrong, never a value
            raise ConfigError(f"{setting}: {exc}") from None

    def keyset_config(self) -> KeySetConfig:
        """These settings as the key set's configuration."""
        return KeySetConfig(
            min_ttl=self.jwks_min_ttl,
            default_ttl=self.jwks_default_ttl,
            max_ttl=self.jwks_max_ttl,
            max_staleness=self.max_staleness,
            cooldown=self.refetch_cooldown,
            negative_ttl=self.negative_cache_ttl,
            max_bytes=self.jwks_max_bytes,
            fetch_timeout=self.fetch_timeout,
        )

    def feed_config(self) -> FeedConfig:
        """These settings as the revocation feed follower's configuration."""
        return FeedConfig(
            enabled=self.revocation_feed,
            hold=self.leeway,
            wait=self.feed_wait,
            max_lag=self.feed_max_lag,
            fetch_timeout=self.fetch_timeout,
        )

    @property
    def feed_bearer(self) -> str | None:
        """The feed token itself (kept a ``SecretStr`` everywhere else: never in a repr)."""
        return None if self.feed_token is None else self.feed_token.get_secret_value()

    @property
    def effective_realm(self) -> str:
        """The ``realm`` of ``WWW-Authenticate``: set, or the audience."""
        return self.realm or self.audience


def edge_auth_settings(prefix: str, **values: Any) -> EdgeAuthSettings:
    """Settings read from ``{prefix}ISSUER``, ``{prefix}AUDIENCE``...; ``values`` win over them."""
    return EdgeAuthSettings(_env_prefix=prefix, **values)
