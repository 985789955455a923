"""``PeerUrl``: a setting that is another service's base URL (the mail edge's ``video_url``).

Paths are joined to it, so it must be an http(s) URL with a host and nothing after its path; a
wrong one is refused without repeating the value (it may hold a password)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from gatepass.settings import PeerUrl, describe_settings_error

SECRET = "s3cret-0123456789"
PROBLEM = "must be an http or https URL with a host, and no user, query or fragment"


class Calls(BaseModel):
    peer_url: PeerUrl


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("http://video.test", "http://video.test"),
        ("https://video.example:8443/", "https://video.example:8443"),
        ("http://127.0.0.1:8002/api//", "http://127.0.0.1:8002/api"),
    ],
)
def test_a_base_url_is_kept_without_its_trailing_slash(given: str, kept: str) -> None:
    assert Calls(peer_url=given).peer_url == kept


@pytest.mark.parametrize(
    "given",
    [
        "ftp://video.test",
        "video.test:8002",
        "http://",
        f"http://user:{SECRET}@video.test",
        f"http://video.test/?{SECRET}",
        f"http://video.test/#{SECRET}",
        f"http://video.test:{SECRET}",
        f"http://[{SECRET}",
    ],
)
def test_anything_else_is_refused_without_its_value(given: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Calls(peer_url=given)
    message = describe_settings_error(refused.value)  # what the runner prints
    assert message == f"  peer_url: Value error, {PROBLEM}"
    assert SECRET not in str(refused.value.errors(include_input=False))
