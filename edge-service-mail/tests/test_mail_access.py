"""Who gets in: the mail routes and their scopes, proved by the access tests every edge shares
(tokens and scopes on every route, the public routes, probes, limits: gatepass.edgetest)."""

from __future__ import annotations

from edge_service_mail.app import create_app
from edge_service_mail.config import MailSettings
from gatepass.edgetest import EdgeAccessTests, EdgeKit, Route

DRAFT = {"to": "usr_bob", "subject": "s", "body": "b"}
NOTICE = {"to": "usr_bob", "subject": "s", "body": "b"}


class TestMailAccess(EdgeAccessTests):
    kit = EdgeKit(
        create_app,
        MailSettings,
        audience="mail",
        scopes=frozenset({"mail:read", "mail:send", "mail:notify"}),
        public=("/about",),
        routes=(
            Route("GET", "/inbox", "mail:read"),
            Route("GET", "/sent", "mail:read"),
            Route("POST", "/messages", "mail:send", body=DRAFT),
            Route("GET", "/messages/{message_id}", "mail:read"),
            Route("DELETE", "/messages/{message_id}", "mail:read"),
            # Services only: the shared tests call with users' tokens, refused as such before
            # their scopes are looked at. Its scope and callers: test_mail_notifications.py.
            Route("POST", "/notifications", None, body=NOTICE),
        ),
    )
