"""Fixtures for the mail service's tests: ``mail``, the app in-process on a fresh SQLite file,
taking tokens from ``issuer``, an issuer in a box (keys generated per test, never committed)."""

from __future__ import annotations

from edge_service_mail.app import create_app
from edge_service_mail.config import MailSettings
from gatepass.edgetest import edge_fixtures

issuer, mail = edge_fixtures(create_app, MailSettings, name="mail")
