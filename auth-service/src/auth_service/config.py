"""Settings of the auth service: one class, environment prefix ``GATEPASS_AUTH_``.

Secrets have no working default outside development: in ``production`` (the default) the service
refuses to start without a key-encryption key and an https issuer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from gatepass.db import sqlite_url
from gatepass.settings import ConfigError as ServiceConfigError
from gatepass.settings import ServiceSettings

SigningAlg = Literal["ES256", "RS256", "Ed25519"]

DEFAULT_ROLE_SCOPES: dict[str, list[str]] = {
    "user": ["mail:read", "mail:send", "video:read", "video:upload"],
    "viewer": ["mail:read", "video:read"],
    "moderator": ["mail:read", "mail:send", "video:read", "video:upload", "video:delete"],
    "admin": ["admin", "mail:read", "mail:send", "video:read", "video:upload", "video:delete"],
}


READER_NAME_MAX = 64
_READER_NAME = re.compile(rf"[A-Za-z0-9._:-]{{1,{READER_NAME_MAX}}}")
# RFC 6750 §2.1: what a bearer token may hold, so that it can be sent at all.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
FEED_TOKEN_MIN_LENGTH = 16


class ConfigError(ServiceConfigError):
    """The settings cannot run a service (said at start-up, before anything listens)."""


class Settings(ServiceSettings):
    # ENVIRONMENT, ALLOW_HTTP_ISSUER, API_DOCS, LOG_LEVEL, LOG_JSON, MAX_BODY_BYTES,
    # TRUSTED_PROXIES and the HTTP server's limits come from ServiceSettings (shared with the
    # edges). ALLOW_HTTP_ISSUER: an http issuer in production, said outright, only where no TLS
    # exists at all (a compose stack on one machine); behind TLS the issuer is https anyway.
    model_config = SettingsConfigDict(env_prefix="GATEPASS_AUTH_", extra="ignore")

    issuer: str = "http://127.0.0.1:8000"
    data_dir: Path = Path("./data")
    database_url: str | None = None
    auto_migrate: bool = True

    # Key-encryption key (32 bytes, base64url or hex) for the private signing keys.
    kek: SecretStr | None = None
    kek_file: Path | None = None

    # Tokens. ``EdDSA`` (RFC 9864 deprecates the name) is read as ``Ed25519``. ID tokens have a
    # signing key of their own: OpenID Connect requires RS256 to be available for them.
    signing_alg: SigningAlg = "ES256"
    id_token_signing_alg: SigningAlg = "RS256"  # noqa: S105 - an algorithm's name
    id_token_ttl: int = Field(300, ge=30, le=3600)
    # Authorization codes (RFC 6749 §4.1.2: short-lived, single use).
    authorization_code_ttl: int = Field(60, ge=10, le=600)
    access_token_ttl: int = Field(300, ge=30, le=3600)
    audiences: Annotated[list[str], NoDecode] = ["auth", "mail", "video"]
    self_audience: str = (
        "auth"  # the audience the auth service's own routes (/me, /sessions) accept
    )
    default_client_id: str = "gatepass-app"
    # The audiences a first-party app's user token names when the login asks for none (RFC 8707
    # ``resource`` narrows it): a registered app client's own audiences win over this. Not set:
    # all of ``audiences`` (``default_app_audiences``).
    app_audiences: Annotated[list[str] | None, NoDecode] = None
    # Client-credentials and exchanged tokens: their lifetime (an exchanged one never outlives the
    # token it was exchanged for), and the scopes only services may hold (no role grants them).
    service_token_ttl: int = Field(300, ge=30, le=3600)
    service_scopes: Annotated[list[str], NoDecode] = ["mail:notify", "revocations:read"]
    refresh_reuse_grace: float = Field(10.0, ge=0, le=300)
    # Rotated refresh tokens kept per session for reuse detection; older ones are deleted.
    refresh_history: int = Field(20, ge=1, le=1000)
    session_idle_timeout: int = Field(14 * 24 * 3600, ge=1)
    session_absolute_lifetime: int = Field(90 * 24 * 3600, ge=1)

    # Keys: the JWKS cache lifetime, and how often the signing key changes.
    jwks_max_age: int = Field(600, ge=0, le=86400)
    key_rotation_interval: int = Field(30 * 24 * 3600, ge=60)
    key_check_interval: float = Field(60.0, gt=0)
    key_publish_margin: int = Field(60, ge=0, le=3600)  # extra publish lead beyond one max-age

    # Roles -> scopes
    role_scopes: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_ROLE_SCOPES))
    default_roles: Annotated[list[str], NoDecode] = ["user"]

    # Passwords (argon2id) and the password policy
    argon2_time_cost: int = Field(3, ge=1, le=20)
    argon2_memory_cost: int = Field(65536, ge=1024, le=1048576)  # KiB
    argon2_parallelism: int = Field(4, ge=1, le=16)
    password_min_length: int = Field(8, ge=8, le=64)
    password_max_length: int = Field(128, ge=64, le=1024)
    max_concurrent_hashes: int = Field(4, ge=1, le=64)
    # Callers that may wait for a hashing slot beyond those hashing; more get 503 + Retry-After.
    password_queue_size: int = Field(16, ge=0, le=10000)

    # Login throttling: free failures, then exponential back-off capped at max delay.
    throttle_window: int = Field(900, ge=10)
    throttle_pair_free: int = Field(5, ge=1)
    throttle_ip_free: int = Field(50, ge=1)
    throttle_account_free: int = Field(100, ge=1)
    throttle_base_delay: float = Field(1.0, gt=0)
    throttle_max_delay: float = Field(900.0, gt=0)
    throttle_account_max_delay: float = Field(60.0, gt=0)  # also caps the per-client rule
    # Signup attempts per client address, and failed client authentications per address and
    # per client id, before the same back-off.
    throttle_signup_free: int = Field(20, ge=1)
    throttle_client_ip_free: int = Field(10, ge=1)
    throttle_client_free: int = Field(20, ge=1)

    # Confidential clients (RFC 6749 §2.3.1: HTTP Basic or client_secret in the form): id -> secret.
    # CLIENTS may use the token endpoint; INTROSPECTION_CLIENTS may also introspect (RFC 7662).
    clients: dict[str, SecretStr] = Field(default_factory=dict)
    introspection_clients: dict[str, SecretStr] = Field(default_factory=dict)

    # Clients declared in a file, registered (or brought in line) at every start: client_file.py.
    clients_file: Path | None = None

    # The browser's cookies carry ``Secure`` (and the ``__Host-``/``__Secure-`` name prefixes).
    # Off only in development, for a plain-HTTP loopback issuer.
    cookie_secure: bool = True
    # The web page's buttons that call other services (the page calls them for the signed-in
    # user, with the access token kept in its cookie): a name -> the URL of a GET route.
    page_calls: dict[str, str] = Field(default_factory=dict)

    # Readers of the revocation feed (GET /revocations): name -> bearer token, one per edge (or
    # per group of edges), so that one can be rotated alone. Logs name the reader, never the
    # token. None configured: anonymous in development, nobody at all in production.
    feed_read_tokens: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("audiences", "app_audiences", "service_scopes", "default_roles", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("issuer")
    @classmethod
    def _strip_issuer(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("signing_alg", "id_token_signing_alg", mode="before")
    @classmethod
    def _current_alg_name(cls, value: object) -> object:
        return "Ed25519" if value == "EdDSA" else value  # RFC 9864's name for the same thing

    @model_validator(mode="after")
    def _check(self) -> Settings:
        # The messages name settings, never what they hold (the runner prints them as they are).
        if not set(self.default_roles) <= self.role_scopes.keys():
            raise ValueError("every role in default_roles must be a role of role_scopes")
        if self.self_audience not in self.audiences:
            raise ValueError("audiences must include self_audience")
        if self.app_audiences is not None and (
            not self.app_audiences or not set(self.app_audiences) <= set(self.audiences)
        ):
            raise ValueError("app_audiences must name one or more of audiences")
        for client_id in sorted(self.clients.keys() & self.introspection_clients.keys()):
            if self.clients[client_id] != self.introspection_clients[client_id]:
                raise ValueError(
                    f"the client {client_id!r} has different secrets in clients and "
                    "introspection_clients"
                )
        self._check_feed_read_tokens()
        if not self.cookie_secure and not self.is_development:
            raise ValueError("cookie_secure can be off only in development (plain-HTTP loopback)")
        for name, url in self.page_calls.items():
            if _READER_NAME.fullmatch(name) is None or not url.startswith(("https://", "http://")):
                raise ValueError("page_calls: each name a short word, each URL http(s)")
        return self

    def _check_feed_read_tokens(self) -> None:
        """Each reader a loggable name and a token a client can send (RFC 6750 ``b64token``) long
        enough not to be guessed; no token shared by two names (which would log the wrong one)."""
        seen: set[str] = set()
        for name, token in sorted(self.feed_read_tokens.items()):
            if _READER_NAME.fullmatch(name) is None:
                raise ValueError(
                    "feed_read_tokens: a reader name has letters, digits, '.', '_', ':' or '-' "
                    f"only (at most {READER_NAME_MAX})"
                )
            secret = token.get_secret_value()
            if len(secret) < FEED_TOKEN_MIN_LENGTH or _B64TOKEN.fullmatch(secret) is None:
                raise ValueError(
                    f"feed_read_tokens: the token of {name!r} must have at least "
                    f"{FEED_TOKEN_MIN_LENGTH} characters, letters, digits and -._~+/ only "
                    "(make one with: openssl rand -hex 32)"
                )
            if secret in seen:
                raise ValueError(f"feed_read_tokens: {name!r} shares its token with another reader")
            seen.add(secret)

    @property
    def feed_is_anonymous(self) -> bool:
        """Anyone may read the revocation feed: development, with no reader configured."""
        return self.is_development and not self.feed_read_tokens

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return sqlite_url(self.data_dir, "auth")

    @property
    def default_app_audiences(self) -> list[str]:
        """What a user's token names when nothing narrower is asked for or registered."""
        return list(self.audiences if self.app_audiences is None else self.app_audiences)

    @property
    def userinfo_audience(self) -> str:
        """The audience of ``/userinfo`` alone (an RFC 8707 resource URL): what apps' tokens name
        for it, where the account routes want :attr:`self_audience`."""
        return f"{self.issuer}/userinfo"

    @property
    def known_scopes(self) -> frozenset[str]:
        """Every scope a token can carry: those the roles grant, and the services' own."""
        from_roles = {scope for scopes in self.role_scopes.values() for scope in scopes}
        return frozenset(from_roles | set(self.service_scopes))

    @property
    def confidential_clients(self) -> dict[str, SecretStr]:
        """Every client with a secret: those of ``clients`` and of ``introspection_clients``."""
        return {**self.introspection_clients, **self.clients}

    @property
    def key_publish_lead(self) -> int:
        """How long a new key is published before it signs: one JWKS max-age plus a margin."""
        return self.jwks_max_age + self.key_publish_margin

    def check_production(self) -> None:
        """Refuse settings that only make sense on a developer's machine."""
        if self.is_development:
            return
        if self.kek is None and self.kek_file is None:
            raise ConfigError(
                "no key-encryption key: set GATEPASS_AUTH_KEK_FILE (or GATEPASS_AUTH_KEK), "
                "or GATEPASS_AUTH_ENVIRONMENT=development to generate one into the data folder"
            )
        try:
            self.check_issuer(self.issuer)  # the rule every gatepass service shares
        except ServiceConfigError as exc:
            raise ConfigError(str(exc)) from None  # this service's own error, as callers expect
