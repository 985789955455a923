"""The key-encryption key: a trivially weak one is refused, the development one is private."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from auth_service.config import ConfigError, Settings
from auth_service.keys import load_kek

STRONG = bytes.fromhex("4f1c9b0e7d2a6385c1e0f9a7b3d54e26a8c71f0b9e2d3a4c5b6f708192a3b4c5")

WEAK = {
    "all-zero": bytes(32),
    "all-ff": b"\xff" * 32,
    "one-byte-repeated": b"k" * 32,
    "two-values": b"\x00\x01" * 16,
    "eleven-values": bytes(i % 11 for i in range(32)),
    "counting-up": bytes(range(32)),
    "counting-from-100": bytes(range(100, 132)),
    "counting-down": bytes(range(255, 223, -1)),
    "step-of-seven": bytes((7 * i + 3) % 256 for i in range(32)),
    "a-16-byte-key-twice": bytes.fromhex("00112233445566778899aabbccddeeff") * 2,
    "ascii-pattern": b"0123456789abcdef" * 2,
    "a-13-byte-pattern": (b"correct-horse" * 3)[:32],
}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"environment": "development", "data_dir": tmp_path / "data"}
    return Settings(**{**values, **overrides})


@pytest.mark.parametrize("kek", WEAK.values(), ids=WEAK.keys())
@pytest.mark.parametrize("form", ["hex", "base64url", "raw-file"])
@pytest.mark.parametrize("environment", ["production", "development"])
def test_a_trivially_weak_kek_is_refused_without_printing_it(
    tmp_path: Path, kek: bytes, form: str, environment: str
) -> None:
    if form == "raw-file":
        path = tmp_path / "kek"
        path.write_bytes(kek)
        overrides: dict[str, Any] = {"kek_file": path}
    else:
        encoded = kek.hex() if form == "hex" else base64.urlsafe_b64encode(kek).decode()
        overrides = {"kek": SecretStr(encoded)}
    settings = make_settings(tmp_path, environment=environment, **overrides)
    with pytest.raises(ConfigError, match="not random") as refused:
        load_kek(settings)
    message = str(refused.value)
    for shown in (kek.hex(), kek.hex().upper(), base64.urlsafe_b64encode(kek).decode().rstrip("=")):
        assert shown not in message
    assert "openssl rand" in message


def test_random_keys_pass(tmp_path: Path) -> None:
    """The rule refuses 32 random bytes with a chance below 2**-75: never, in practice."""
    assert load_kek(make_settings(tmp_path, environment="production", kek=SecretStr(STRONG.hex())))
    for _ in range(300):
        kek = secrets.token_bytes(32)
        settings = make_settings(tmp_path, environment="production", kek=SecretStr(kek.hex()))
        assert load_kek(settings) == kek


def test_the_development_kek_and_its_folder_are_private(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask, under which the folder used to be 0755
    try:
        data = tmp_path / "fresh" / "data"
        load_kek(make_settings(tmp_path, data_dir=data))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "kek").stat().st_mode) == 0o600
