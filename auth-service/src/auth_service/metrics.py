"""Prometheus metrics of one auth-service app (its own registry: no process globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.logins = Counter(
            "gatepass_auth_logins_total",
            "Login attempts by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.tokens_issued = Counter(
            "gatepass_auth_tokens_issued_total",
            "Access tokens issued, by grant.",
            ["grant"],
            registry=self.registry,
        )
        self.refresh_reuse = Counter(
            "gatepass_auth_refresh_reuse_detected_total",
            "Dead refresh tokens presented: rotated, superseded, or retried too late (session "
            "revoked).",
            registry=self.registry,
        )
        self.signups = Counter(
            "gatepass_auth_signups_total",
            "Signups by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.key_age = Gauge(
            "gatepass_auth_signing_key_age_seconds",
            "Age of the active signing key.",
            registry=self.registry,
        )
        self.keys_published = Gauge(
            "gatepass_auth_jwks_keys",
            "Keys published in the JWKS.",
            registry=self.registry,
        )
        self.jwks_requests = Counter(
            "gatepass_auth_jwks_requests_total",
            "JWKS requests, by answer (200 or 304): what the edges' key caches cost the issuer.",
            ["status"],
            registry=self.registry,
        )
        self.key_rotations = Counter(
            "gatepass_auth_key_rotations_total",
            "Signing-key promotions done by this replica.",
            registry=self.registry,
        )
        self.password_hash_seconds = Histogram(
            "gatepass_auth_password_hash_seconds",
            "Time to hash or verify one password.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6),
            registry=self.registry,
        )
        self.password_queue_depth = Gauge(
            "gatepass_auth_password_queue_depth",
            "Password operations admitted: hashing or waiting for a hashing slot.",
            registry=self.registry,
        )
        self.password_queue_rejections = Counter(
            "gatepass_auth_password_queue_rejections_total",
            "Requests refused with 503 because the password-hashing queue was full.",
            registry=self.registry,
        )
        self.background_errors = Counter(
            "gatepass_auth_background_errors_total",
            "Background job runs (housekeeping, key-maintenance) that raised an error the job "
            "did not expect; logged with its traceback, the job runs again at its next interval.",
            ["job"],
            registry=self.registry,
        )
        self.feed_requests = Counter(
            "gatepass_auth_feed_requests_total",
            "Revocation feed requests, by reader (a configured name, anonymous, or unknown) and "
            "HTTP status.",
            ["reader", "status"],
            registry=self.registry,
        )
        self.client_authentications = Counter(
            "gatepass_auth_client_authentications_total",
            "Client authentications at /token and /introspect, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
