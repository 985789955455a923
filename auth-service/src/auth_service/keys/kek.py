"""The key-encryption key (KEK): the 32 bytes that seal the private signing keys at rest.

Read from ``GATEPASS_AUTH_KEK`` (base64url or hex text) or ``GATEPASS_AUTH_KEK_FILE`` (32 raw bytes,
or the same text); in development, generated once into the data folder. A key no random generator
makes is refused everywhere, and no message ever shows the key.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
import tempfile
from itertools import pairwise
from pathlib import Path
from typing import Final

from auth_service.config import ConfigError, Settings
from auth_service.keys.sealing import b64url
from gatepass.db import private_dir

logger = logging.getLogger("gatepass.auth.keys")

KEK_BYTES: Final = 32
# Below this many distinct byte values a 32-byte key is refused: 32 random bytes have fewer with a
# chance under 2**-75 (about 30 on average).
KEK_MIN_DISTINCT_BYTES: Final = 12
# A key that repeats itself every this many bytes or fewer is refused (chance 2**-128 or less).
KEK_MAX_PERIOD: Final = 16

_HEX_KEK = re.compile(r"[0-9A-Fa-f]{64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


def load_kek(settings: Settings) -> bytes:
    """The 32-byte key-encryption key (KEK) that seals the private signing keys at rest.

    From ``settings.kek`` or ``settings.kek_file``; in development, generated once into the data
    folder so a local run needs no setup, and reused so restarts keep every session valid. A
    trivially weak key is refused (:func:`_refuse_weak_kek`), in development too.
    """
    if settings.kek is not None and settings.kek_file is not None:
        raise ConfigError(
            "both GATEPASS_AUTH_KEK and GATEPASS_AUTH_KEK_FILE are set; set only one, "
            "so there is no doubt which key-encryption key seals the signing keys"
        )
    if settings.kek is not None:
        source = "GATEPASS_AUTH_KEK"
        kek = _parse_kek_text(settings.kek.get_secret_value(), source)
    elif settings.kek_file is not None:
        source = "GATEPASS_AUTH_KEK_FILE"
        kek = _read_kek_file(settings.kek_file, source)
    elif settings.is_development:
        source = "the development key-encryption key"
        kek = _development_kek(settings.data_dir / "kek")
    else:
        raise _no_kek()
    _refuse_weak_kek(kek, source)
    return kek


def _no_kek() -> ConfigError:
    return ConfigError(
        "no key-encryption key: set GATEPASS_AUTH_KEK_FILE (a file holding 32 bytes, raw or as "
        "base64url/hex text) or GATEPASS_AUTH_KEK, or GATEPASS_AUTH_ENVIRONMENT=development to "
        "generate one into the data folder"
    )


def _refuse_weak_kek(kek: bytes, source: str) -> None:
    """Refuse a key-encryption key no random generator makes: all one byte, a short pattern
    repeated, a counting sequence.

    Each rule fails 32 random bytes with a chance below 2**-75, so a key from ``openssl rand`` or
    ``secrets.token_bytes`` always passes; what fails was typed, copied from an example, or left
    zeroed. The message says which rule, never the key.
    """
    problem = _kek_weakness(kek)
    if problem is not None:
        raise ConfigError(
            f"{source}: the key-encryption key is not random ({problem}); make one from 32 "
            "random bytes, e.g. `openssl rand -hex 32`"
        )


def _kek_weakness(kek: bytes) -> str | None:
    if len(set(kek)) < KEK_MIN_DISTINCT_BYTES:
        return f"fewer than {KEK_MIN_DISTINCT_BYTES} distinct byte values"
    for period in range(1, KEK_MAX_PERIOD + 1):
        if kek[period:] == kek[:-period]:
            return f"a pattern of {period} bytes, repeated"
    steps = {(after - before) % 256 for before, after in pairwise(kek)}
    if len(steps) == 1:
        return "each byte a constant step from the one before"
    return None


def _read_kek_file(path: Path, source: str) -> bytes:
    """A KEK file holds either exactly 32 raw bytes or the key as base64url or hex text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{source}: cannot read the key-encryption key file {path}: {exc.strerror}"
        ) from exc
    if len(data) == KEK_BYTES:
        return data
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: {path} holds neither 32 raw bytes nor base64url or hex text"
        ) from exc
    return _parse_kek_text(text, f"{source} ({path})")


def _parse_kek_text(text: str, source: str) -> bytes:
    """Hex (64 digits) or base64url, padded or not (standard base64 is accepted too)."""
    value = text.strip()
    if _HEX_KEK.fullmatch(value):
        return bytes.fromhex(value)
    unpadded = value.rstrip("=").replace("+", "-").replace("/", "_")
    if not _B64URL.fullmatch(unpadded):
        raise ConfigError(f"{source}: the key-encryption key must be base64url or hex text")
    try:
        raw = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{source}: the key-encryption key is not valid base64url") from exc
    if len(raw) != KEK_BYTES:
        raise ConfigError(
            f"{source}: the key-encryption key must be {KEK_BYTES} bytes, got {len(raw)}"
        )
    return raw


def _development_kek(path: Path) -> bytes:
    """Reuse ``path``, or create it (mode 0600) without racing another process starting too."""
    if not path.exists():
        private_dir(path.parent)
        _create_kek_file(path)
    return _read_kek_file(path, "the development key-encryption key")


def _create_kek_file(path: Path) -> None:
    """Write to a private temporary file, then hard-link it into place: the link fails if another
    process created the key first (we then use theirs), and nobody ever reads a half-written key.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".kek-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(b64url(secrets.token_bytes(KEK_BYTES)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return
        logger.warning(
            "generated a development key-encryption key in %s; set GATEPASS_AUTH_KEK_FILE in "
            "production",
            path,
        )
    finally:
        os.unlink(tmp_name)
