"""The mail and video services' own identities, for the stacks the tests start as processes.

Each edge gets a private key (``private_key_jwt``) in the test's folder, and the auth service a
clients file declaring both as their packages ask to be registered (``CLIENT`` in each edge's
``app``): the same path a deployment takes, so a stack started by the tests can make the calls
between mail and video.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_service_mail.app import CLIENT as MAIL_CLIENT
from edge_service_video.app import CLIENT as VIDEO_CLIENT
from gatepass.clientkey import ClientRegistration, declared_with_key

REGISTRATIONS: dict[str, ClientRegistration] = {"mail": MAIL_CLIENT, "video": VIDEO_CLIENT}


def clients_file(folder: Path) -> Path:
    """The auth service's clients file for ``folder``'s stack, written with the edges' keys on
    first use (every process of one test shares them)."""
    path = folder / "identities" / "clients.json"
    if not path.exists():
        declared = [
            declared_with_key(registration, key_file(folder, name))
            for name, registration in REGISTRATIONS.items()
        ]
        path.write_text(json.dumps({"clients": declared}))
    return path


def key_file(folder: Path, name: str) -> Path:
    return folder / "identities" / f"{name}-client-key.json"


def auth_identities(folder: Path) -> dict[str, str]:
    """The auth service's setting that registers the edges of ``folder``'s stack."""
    return {"GATEPASS_AUTH_CLIENTS_FILE": str(clients_file(folder))}


def edge_identity(folder: Path, name: str) -> dict[str, str]:
    """Settings (without the edge's prefix) that make edge ``name`` its registered client."""
    clients_file(folder)
    return {
        "CLIENT_ID": REGISTRATIONS[name].client_id,
        "CLIENT_KEY_FILE": str(key_file(folder, name)),
    }
