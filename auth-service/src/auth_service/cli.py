"""``gatepass``: the operator's command line (same settings as the service: ``GATEPASS_AUTH_*``).

gatepass admin create EMAIL          create an admin (an existing account only with
                                     --promote-existing, after saying whose it is)
gatepass users list | roles | disable | enable
gatepass keys list | rotate [--now] | revoke KID
gatepass token decode TOKEN          header, payload and signature, apart (not verified)
gatepass db upgrade                  apply migrations
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError as SettingsSourceError
from rich.console import Console
from rich.table import Table

from auth_service import accounts, migrate
from auth_service.app import running
from auth_service.config import ConfigError, Settings
from auth_service.keys import KeyNotFoundError
from auth_service.models import User
from auth_service.state import Services
from gatepass.db import create_engine
from gatepass.problems import ProblemError
from gatepass.settings import describe_settings_error

T = TypeVar("T")

app = typer.Typer(help="Operate a gatepass auth service.", no_args_is_help=True)
admin_app = typer.Typer(help="Administrators.", no_args_is_help=True)
users_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys.", no_args_is_help=True)
token_app = typer.Typer(help="Inspect tokens.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
for sub, name in (
    (admin_app, "admin"),
    (users_app, "users"),
    (keys_app, "keys"),
    (token_app, "token"),
    (db_app, "db"),
):
    app.add_typer(sub, name=name)

out = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    """The settings, or what is wrong with them (never a value: some are secrets) and exit 2."""
    try:
        return Settings()
    except (ValidationError, SettingsSourceError) as exc:
        err.print("[red]invalid settings:[/red]")
        err.print(describe_settings_error(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None


def _with_services(job: Callable[[Services], Awaitable[T]]) -> T:
    async def run() -> T:
        async with running(_settings(), background=False) as svc:
            return await job(svc)

    try:
        return asyncio.run(run())
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    except ProblemError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc


def _read_password(prompt: str) -> str:
    env = os.environ.get("GATEPASS_ADMIN_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))


@admin_app.command("create")
def admin_create(
    email: str,
    promote_existing: Annotated[
        bool,
        typer.Option(
            "--promote-existing",
            help="If an account with this email exists, make it an admin (after showing whose "
            "it is). Without it an existing account is refused: anyone may have signed it up.",
        ),
    ] = False,
) -> None:
    """Create an admin. The password comes from GATEPASS_ADMIN_PASSWORD, stdin or a prompt.

    An account that already has this email is never promoted silently: whoever signed it up
    chose its password, and it may not be the operator. The command refuses (exit 1) unless
    --promote-existing is given, and then says whose account it promotes.
    """

    async def job(svc: Services) -> str:
        existing = await accounts.find_user_by_email(svc, email)
        if existing is None:
            password = _read_password("Password")
            return (await accounts.signup(svc, email, password, roles=["admin"])).id
        if not promote_existing:
            raise _AccountExists(existing)
        _describe(out, existing, "promoting the existing account")
        roles = sorted({*existing.roles, "admin"})
        await accounts.set_roles(svc, existing.id, roles)
        return f"{existing.id} (existing account, now admin)"

    try:
        created = _with_services(job)
    except _AccountExists as exc:
        _describe(err, exc.user, "an account with this email already exists")
        err.print(
            "[red]It was NOT made an admin: whoever signed it up chose its password, and it may "
            "not be you.[/red] Check the account above; to make it an admin anyway, run again "
            "with --promote-existing, or choose another email."
        )
        raise typer.Exit(1) from exc
    out.print(f"admin: {created}")


class _AccountExists(Exception):
    """``admin create`` found the email taken and was not told to promote that account."""

    def __init__(self, user: User) -> None:
        super().__init__("an account with this email already exists")
        self.user = user


def _describe(console: Console, user: User, what: str) -> None:
    """Whose account it is: id, email, created, roles."""
    console.print(f"{what}:")
    for label, value in (
        ("id", user.id),
        ("email", user.email),
        ("created", _when(user.created_at)),
        ("roles", ", ".join(user.roles) or "-"),
        ("disabled", str(user.disabled).lower()),
    ):
        console.print(f"  {label + ':':<9} {value}", markup=False, highlight=False)


@users_app.command("list")
def users_list(limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
    """List users."""
    page = _with_services(lambda svc: accounts.list_users(svc, limit=limit))
    rows = [
        (u.id, u.email, ",".join(u.roles), str(u.disabled).lower(), _when(u.created_at))
        for u in page.users
    ]
    _print_table(("id", "email", "roles", "disabled", "created"), rows)
    err.print(f"{len(page.users)} of {page.total} users")


@users_app.command("roles")
def users_roles(user_id: str, roles: list[str]) -> None:
    """Set a user's roles (replaces them); tokens issued before now stop working."""
    user = _with_services(lambda svc: accounts.set_roles(svc, user_id, roles))
    out.print(f"{user.id}: {', '.join(user.roles)}")


@users_app.command("disable")
def users_disable(user_id: str) -> None:
    """Disable a user and revoke all of their sessions."""
    _with_services(lambda svc: accounts.set_disabled(svc, user_id, True))
    out.print(f"{user_id}: disabled, sessions revoked")


@users_app.command("enable")
def users_enable(user_id: str) -> None:
    """Enable a disabled user."""
    _with_services(lambda svc: accounts.set_disabled(svc, user_id, False))
    out.print(f"{user_id}: enabled")


def _print_table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """A table on a terminal; tab-separated lines, never truncated, for scripts and pipes."""
    if not out.is_terminal:
        for row in (headers, *rows):
            print("\t".join(row))
        return
    table = Table(*headers)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


@keys_app.command("list")
def keys_list() -> None:
    """List signing keys and their life-cycle state."""
    keys = _with_services(lambda svc: svc.keys.list_keys())
    rows = [
        (
            key.kid,
            key.alg,
            key.state,
            _when(key.created_at),
            _when(key.promote_after),
            _when(key.activated_at),
            _when(key.retired_at),
        )
        for key in keys
    ]
    _print_table(("kid", "alg", "state", "created", "signs from", "activated", "retired"), rows)


@keys_app.command("rotate")
def keys_rotate(
    now: Annotated[
        bool, typer.Option("--now", help="Sign with a new key at once, unpublished before.")
    ] = False,
) -> None:
    """Rotate: publish a new key now and sign with it one JWKS cache lifetime later."""
    kid = _with_services(lambda svc: svc.keys.rotate(immediately=now))
    out.print(f"{kid}: {'signing now' if now else 'published; signs after the publish lead'}")


@keys_app.command("revoke")
def keys_revoke(kid: str) -> None:
    """Emergency: remove a key from the JWKS at once and tell the edges."""

    async def job(svc: Services) -> None:
        try:
            await svc.keys.revoke(kid)
        except KeyNotFoundError as exc:
            err.print(f"[red]no key {kid!r}[/red]")
            raise typer.Exit(1) from exc

    _with_services(job)
    out.print(f"{kid}: revoked")


def _b64json(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def decode_parts(token: str) -> tuple[Any, Any, str]:
    """Split a compact JWS into its decoded header and payload and its raw signature."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ValueError("a JWS compact token has three dot-separated parts")
    return _b64json(parts[0]), _b64json(parts[1]), parts[2]


@token_app.command("decode")
def token_decode(source: Annotated[str, typer.Argument(help="the token, or - for stdin")]) -> None:
    """Show a token's header, payload and signature apart. This does NOT verify it."""
    text = sys.stdin.read() if source == "-" else source
    try:
        header, payload, signature = decode_parts(text)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        err.print(f"[red]not a JWS compact token: {exc}[/red]")
        raise typer.Exit(1) from exc
    out.print("[bold]header[/bold]")
    out.print_json(data=header)
    out.print("[bold]payload[/bold]")
    out.print_json(data=payload)
    if isinstance(payload, dict):
        for claim in ("iat", "exp"):
            if isinstance(payload.get(claim), int):
                out.print(f"  {claim}: {datetime.fromtimestamp(payload[claim], UTC).isoformat()}")
    out.print("[bold]signature[/bold] (base64url, not verified)")
    out.print(signature)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the newest."""

    async def run() -> str | None:
        engine = create_engine(_settings().resolved_database_url)
        try:
            await migrate.upgrade(engine)
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    out.print(f"database at revision {asyncio.run(run())}")
