"""The browser's side of the web page tests: an app whose cookies a client keeps, the forms
posted as a browser posts them (the CSRF token read from the page), ``Set-Cookie`` read back.

``browser_app(tmp_path, clock)`` starts the services (as ``auth_apps.serving``) over development
settings; ``secure=False`` (the default) turns ``cookie_secure`` off so that an http client keeps
and sends the cookies; ``secure=True`` runs the issuer on https (the client too), as in
production. The page's calls to other services go through ``app.state.page_call_transport``:
``browser_app(..., transport=httpx.MockTransport(handler))``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from auth_apps import ServiceClock, serving
from fastapi import FastAPI

from auth_service.config import Settings

PASSWORD = "correct horse battery staple 42"
HTTP_BASE = "http://auth.test"
HTTPS_BASE = "https://auth.test"
_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]*)">')


def web_settings(tmp_path: Path, *, secure: bool = False, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "development",
        "issuer": HTTPS_BASE if secure else HTTP_BASE,
        "data_dir": tmp_path / "auth-data",
        "argon2_time_cost": 1,
        "argon2_memory_cost": 8192,
        "argon2_parallelism": 1,
        "cookie_secure": secure,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def browser_app(
    tmp_path: Path,
    clock: ServiceClock,
    *,
    secure: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app and a client keeping its cookies, as a browser would."""
    settings = web_settings(tmp_path, secure=secure, **overrides)
    async with serving(settings, clock) as app:
        if transport is not None:
            app.state.page_call_transport = transport
        async with browser_client(app, secure=secure) as http:
            yield app, http


def browser_client(app: FastAPI, *, secure: bool = False, ip: str = "127.0.0.1") -> Any:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 40000)),
        base_url=HTTPS_BASE if secure else HTTP_BASE,
        headers={"User-Agent": "test-browser/1.0"},
    )


def page_csrf(html: str) -> str:
    """The CSRF token a page renders for its script (the ``<meta name="csrf-token">``)."""
    found = _META.search(html)
    assert found is not None, "the page has no csrf-token meta"
    return found.group(1)


def form_csrf(html: str) -> str:
    """The CSRF token a page renders into its forms."""
    found = _FIELD.search(html)
    assert found is not None, "the page has no csrf_token field"
    return found.group(1)


async def post_form(
    http: httpx.AsyncClient, path: str, fields: dict[str, str], *, page: str
) -> httpx.Response:
    """Post ``fields`` to ``path`` as the form of ``page`` (fetched first, for its token)."""
    shown = await http.get(page)
    assert shown.status_code == 200, shown.text
    return await http.post(path, data={"csrf_token": form_csrf(shown.text), **fields})


async def sign_up(
    http: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: str
) -> httpx.Response:
    return await post_form(
        http, "/app/signup", {"email": email, "password": password, **extra}, page="/app/signup"
    )


async def log_in(
    http: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: str
) -> httpx.Response:
    return await post_form(
        http, "/app/login", {"email": email, "password": password, **extra}, page="/app/login"
    )


async def script_post(http: httpx.AsyncClient, path: str) -> httpx.Response:
    """A post as the page's script sends it: the token from the page's meta, as a header."""
    page = await http.get("/app")
    return await http.post(
        path, headers={"X-CSRF-Token": page_csrf(page.text), "Accept": "application/json"}
    )


@dataclass(frozen=True)
class SetCookie:
    name: str
    value: str
    attributes: dict[str, str]  # lower-cased names; a flag's value is ""

    def has(self, flag: str) -> bool:
        return flag.lower() in self.attributes


def set_cookies(response: httpx.Response) -> dict[str, SetCookie]:
    """Each ``Set-Cookie`` of ``response``, by cookie name."""
    found: dict[str, SetCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *rest = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        attributes = {}
        for item in rest:
            key, _, attr = item.partition("=")
            attributes[key.lower()] = attr
        found[name] = SetCookie(name, value.strip('"'), attributes)
    return found
