"""Client authentication alone: :func:`auth_service.clients.authenticate` needs only a throttle
and the metrics, so a fake throttle stands in for the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from auth_service.clients import Credentials, authenticate
from auth_service.errors import OAuthError
from auth_service.metrics import Metrics
from auth_service.throttle import Throttled

CLIENTS = {"billing": SecretStr("s3cret value")}
IP = "192.0.2.7"


class FakeThrottle:
    """Runs the secret check as the real throttle does; remembers whom it counted."""

    def __init__(self, retry_after: int | None = None) -> None:
        self.retry_after = retry_after
        self.counted: list[str | None] = []

    async def check_client(self, client_id: str | None, ip: str, check: Callable[[], bool]) -> bool:
        self.counted.append(client_id)
        if self.retry_after is not None:
            raise Throttled(self.retry_after)
        return check()


def outcomes(metrics: Metrics) -> dict[str, float]:
    names = ("ok", "invalid", "throttled")
    sample = metrics.registry.get_sample_value
    return {
        name: sample("gatepass_auth_client_authentications_total", {"outcome": name}) or 0.0
        for name in names
    }


async def check(throttle: Any, metrics: Metrics, client_id: str, secret: str) -> str:
    return await authenticate(throttle, metrics, Credentials(client_id, secret), IP, CLIENTS)


async def test_the_right_secret_names_the_client() -> None:
    throttle, metrics = FakeThrottle(), Metrics()
    assert await check(throttle, metrics, "billing", "s3cret value") == "billing"
    assert throttle.counted == ["billing"]
    assert outcomes(metrics) == {"ok": 1.0, "invalid": 0.0, "throttled": 0.0}


@pytest.mark.parametrize(("client_id", "counted_as"), [("billing", "billing"), ("nobody", None)])
async def test_a_wrong_secret_or_an_unknown_client_is_a_401(
    client_id: str, counted_as: str | None
) -> None:
    throttle, metrics = FakeThrottle(), Metrics()
    with pytest.raises(OAuthError) as refused:
        await check(throttle, metrics, client_id, "s3cret valuf")
    assert (refused.value.error, refused.value.status) == ("invalid_client", 401)
    assert throttle.counted == [counted_as]  # an unknown id gets no counter of its own
    assert outcomes(metrics)["invalid"] == 1.0


async def test_a_throttled_client_gets_429_with_retry_after() -> None:
    metrics = Metrics()
    with pytest.raises(OAuthError) as refused:
        await check(FakeThrottle(retry_after=8), metrics, "billing", "s3cret value")
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "8"
    assert outcomes(metrics)["throttled"] == 1.0
