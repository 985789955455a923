"""A client of the auth app over ASGI whose requests come from a chosen address (throttling and
sessions key on it): ``client_from(app, "10.0.0.9")``. The conftest's ``client`` uses it too."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

BASE_URL = "http://auth.test"


def client_from(app: FastAPI, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)
