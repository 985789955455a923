"""The README's protected service runs, as written."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx

from gatepass import EdgeAuthSettings
from gatepass.testing import FakeIssuer

README = Path(__file__).parent.parent / "README.md"


def readme_example() -> dict[str, Any]:
    match = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert match is not None
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(match.group(1), str(README), "exec"), namespace)  # noqa: S102 (our own README)
    return namespace


async def test_the_readme_service_works() -> None:
    issuer = FakeIssuer(clock=time.time)  # the example runs on the real clock
    example = readme_example()
    client = issuer.client()
    app = example["create_app"](
        EdgeAuthSettings(issuer=issuer.issuer, audience="mail"), client=client
    )
    reader = {"authorization": f"Bearer {issuer.token(scope='mail:read')}"}
    nobody = {"authorization": f"Bearer {issuer.token(scope='video:read')}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as http,
    ):
        assert (await http.get("/me", headers=reader)).json() == {"sub": "user-1"}
        assert (await http.get("/inbox", headers=reader)).status_code == 200
        assert (await http.get("/inbox", headers=nobody)).status_code == 403
        assert (await http.get("/inbox")).status_code == 401
        assert (await http.get("/readyz")).json()["ready"] is True
    await client.aclose()
    assert callable(example["main"])
