"""``gatepass-client-key FILE``: make a service's client key, for ``private_key_jwt``.

Writes a new private JWK to ``FILE`` (readable by its owner only; an existing file is never
overwritten) and prints the public JWK Set to register at the auth service, for example::

    gatepass-client-key /run/secrets/mail-client-key.json > mail-client.jwks.json
    gatepass clients add mail --kind service --auth private_key_jwt \\
        --jwk-file mail-client.jwks.json --audience video --scope video:read --resource mail

The service then reads the private key from ``FILE`` (``GATEPASS_<SERVICE>_CLIENT_KEY_FILE``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatepass.core.jwk import new_private_jwk, public_of

# Ed25519 under RFC 9864's name (``EdDSA``, its deprecated name, is no choice for a new key).
ALGORITHMS = ("ES256", "Ed25519", "RS256")


def write_private_jwk(path: Path, alg: str = "ES256") -> dict[str, str]:
    """Make a key, write its private JWK to ``path`` (mode 0600, never over an existing file)
    and answer its public JWK."""
    jwk = new_private_jwk(alg)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(jwk, out)
    return public_of(jwk)


@dataclass(frozen=True)
class ClientRegistration:
    """What a service asks the auth service to register it as: each service states it beside
    its code, and a deployment turns it into an entry of the auth service's clients file."""

    client_id: str
    audiences: tuple[str, ...]  # the services it calls
    scopes: tuple[str, ...]  # what it may ask them for
    resource: str | None = None  # the audience it serves itself (users' tokens it exchanges)

    def declaration(self, public_jwk: Mapping[str, Any]) -> dict[str, Any]:
        """This client, authenticating with ``private_key_jwt`` under ``public_jwk``, as the
        auth service's clients file declares it (``GATEPASS_AUTH_CLIENTS_FILE``)."""
        entry: dict[str, Any] = {
            "client_id": self.client_id,
            "kind": "service",
            "auth_method": "private_key_jwt",
            "audiences": list(self.audiences),
            "scopes": list(self.scopes),
            "jwks": {"keys": [public_of(public_jwk)]},
        }
        if self.resource is not None:
            entry["resource"] = self.resource
        return entry


def declared_with_key(registration: ClientRegistration, key_file: Path) -> dict[str, Any]:
    """``registration``'s clients-file entry for the key in ``key_file``, made there first when
    there is none (a stack on one machine: ``./dev up``, the tests' process stacks)."""
    if not key_file.exists():
        write_private_jwk(key_file)
    return registration.declaration(public_of(json.loads(key_file.read_text(encoding="utf-8"))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gatepass-client-key",
        description="Make a service's private key (a JWK file) and print its public JWK Set.",
    )
    parser.add_argument("file", type=Path, help="where to write the private JWK (must not exist)")
    parser.add_argument("--alg", choices=ALGORITHMS, default="ES256")
    args = parser.parse_args(argv)
    try:
        public = write_private_jwk(args.file, args.alg)
    except FileExistsError:
        print(f"gatepass-client-key: {args.file} exists; not overwritten", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gatepass-client-key: cannot write {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    print(json.dumps({"keys": [public]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
