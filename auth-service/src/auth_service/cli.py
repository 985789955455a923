"""``gatepass``: the operator's command line (same settings as the service: ``GATEPASS_AUTH_*``).

gatepass admin create EMAIL          create an admin (an existing account only with
                                     --promote-existing, after saying whose it is)
gatepass users list | roles | disable | enable
gatepass keys list | rotate [--now] [--purpose id] | revoke KID
gatepass clients add ID | list | show ID | disable ID | enable ID | rotate-secret ID | remove ID
gatepass token decode TOKEN          header, payload and signature, apart (not verified)
gatepass db upgrade                  apply migrations

Commands that only read (``users list``, ``keys list``, ``clients list``, ``clients show``,
``token decode``) create nothing: no data folder, no key-encryption key, no database, no
migration, no signing key. Settings that point
at no running service (the defaults, run from the wrong folder) find no KEK or no database there,
and the command says so in one line and exits 2, instead of starting an empty service of its own
beside the real one. The commands that change something start the service's parts as the
service does (:func:`auth_service.app.running`, without its background loops).

Every import beyond typer and rich happens inside the command that needs it: SQLAlchemy,
Alembic, FastAPI, pydantic and the service's modules take seconds to load, and ``gatepass
--help`` or ``token decode`` need none of them.
"""

# The imports inside functions are the point (above): each command loads only what it uses.
# ruff: noqa: PLC0415

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from auth_service.config import Settings
    from auth_service.keys.manager import KeyInfo
    from auth_service.models import User
    from auth_service.registry import RegisteredClient
    from auth_service.state import Services

T = TypeVar("T")


def _group(help_text: str) -> typer.Typer:
    """A command group with plain help: typer's rich help loads rich's markdown, syntax and
    traceback modules, which would make ``--help`` itself the slowest command."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)


app = _group("Operate a gatepass auth service.")
admin_app = _group("Administrators.")
users_app = _group("Users and their roles.")
keys_app = _group("Signing keys.")
clients_app = _group("Registered OAuth clients: services and apps.")
token_app = _group("Inspect tokens.")
db_app = _group("The database.")
for sub, name in (
    (admin_app, "admin"),
    (users_app, "users"),
    (keys_app, "keys"),
    (clients_app, "clients"),
    (token_app, "token"),
    (db_app, "db"),
):
    app.add_typer(sub, name=name)


@cache
def out() -> Console:
    """Standard output, through rich (loaded by the first command that prints)."""
    from rich.console import Console

    return Console()


@cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True)


# How to reach the service that is really running, said wherever the settings find none.
POINT_AT_THE_SERVICE = (
    "For the stack `./dev up` runs, use `./dev gatepass ...`; for another service, set its "
    "GATEPASS_AUTH_DATA_DIR or GATEPASS_AUTH_DATABASE_URL, and its key-encryption key."
)


def _settings() -> Settings:
    """The settings, or what is wrong with them (never a value: some are secrets) and exit 2."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError as SettingsSourceError

    from auth_service.config import Settings
    from gatepass.settings import describe_settings_error

    try:
        return Settings()
    except (ValidationError, SettingsSourceError) as exc:
        err().print("[red]invalid settings:[/red]")
        err().print(describe_settings_error(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None


def _with_services(job: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``job`` on the service's parts, started as the service starts them: migrations, the
    KEK (generated in development), the signing keys (a first one made if there is none)."""
    import asyncio

    from auth_service.app import running
    from auth_service.config import ConfigError
    from gatepass.problems import ProblemError

    async def run() -> T:
        async with running(_settings(), background=False) as svc:
            return await job(svc)

    try:
        return asyncio.run(run())
    except ConfigError as exc:
        err().print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    except ProblemError as exc:
        err().print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc


# --- the read-only commands' access: what is there, or a line saying what is not -----------------


@dataclass(frozen=True)
class Reader:
    """What a read-only command gets: the settings, the KEK and sessions on an existing database."""

    settings: Settings
    kek: bytes
    sessions: async_sessionmaker[AsyncSession]


def _reading(job: Callable[[Reader], Awaitable[T]]) -> T:
    """Run ``job`` on the data the settings name, creating none of it (see the module's doc)."""
    import asyncio

    settings = _settings()
    kek = _existing_kek(settings)
    database = _sqlite_file(settings.resolved_database_url)
    if database is not None and not database.is_file():
        _not_found(f"no database at {database.absolute()}")
    return asyncio.run(_read(settings, kek, job))


def _existing_kek(settings: Settings) -> bytes:
    """The KEK the settings name, checked as the service checks it; never one generated."""
    from auth_service.config import ConfigError
    from auth_service.keys import load_kek

    kek_file = _kek_file(settings)
    if kek_file is not None and not kek_file.is_file():
        _not_found(f"no key-encryption key at {kek_file.absolute()}")
    if settings.kek is None and settings.kek_file is None and not settings.is_development:
        _not_found("no key-encryption key set (GATEPASS_AUTH_KEK_FILE or GATEPASS_AUTH_KEK)")
    try:
        settings.check_production()
        return load_kek(settings)  # in development, reads the file found above
    except ConfigError as exc:
        err().print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


async def _read(settings: Settings, kek: bytes, job: Callable[[Reader], Awaitable[T]]) -> T:
    from auth_service import migrate
    from gatepass.db import create_engine, create_sessionmaker

    engine = create_engine(settings.resolved_database_url)
    try:
        if await migrate.current_revision(engine) is None:
            where = _sqlite_file(settings.resolved_database_url) or "GATEPASS_AUTH_DATABASE_URL"
            _not_found(f"no gatepass tables in the database at {where}")
        return await job(Reader(settings, kek, create_sessionmaker(engine)))
    finally:
        await engine.dispose()


def _kek_file(settings: Settings) -> Path | None:
    """Where the KEK is read from: the KEK file, or in development the data folder's (which the
    service generates on its first start); None when it is given as text or not at all."""
    if settings.kek is not None:
        return None
    if settings.kek_file is not None:
        return settings.kek_file
    return settings.data_dir / "kek" if settings.is_development else None


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL; None for any other database (nothing to look for)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _not_found(what: str) -> NoReturn:
    """One line on stderr (never wrapped: scripts read it) and exit 2: the settings name no
    running service."""
    print(f"gatepass: {what} (nothing was created). {POINT_AT_THE_SERVICE}", file=sys.stderr)
    raise typer.Exit(2)


# --- admin ---------------------------------------------------------------------------------------


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
    from auth_service import accounts

    async def job(svc: Services) -> str:
        existing = await accounts.find_user_by_email(svc, email)
        if existing is None:
            password = _read_password("Password")
            return (await accounts.signup(svc, email, password, roles=["admin"])).id
        if not promote_existing:
            raise _AccountExists(existing)
        _describe(out(), existing, "promoting the existing account")
        roles = sorted({*existing.roles, "admin"})
        await accounts.set_roles(svc, existing.id, roles)
        return f"{existing.id} (existing account, now admin)"

    try:
        created = _with_services(job)
    except _AccountExists as exc:
        _describe(err(), exc.user, "an account with this email already exists")
        err().print(
            "[red]It was NOT made an admin: whoever signed it up chose its password, and it may "
            "not be you.[/red] Check the account above; to make it an admin anyway, run again "
            "with --promote-existing, or choose another email."
        )
        raise typer.Exit(1) from exc
    out().print(f"admin: {created}")


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


# --- users ---------------------------------------------------------------------------------------


@users_app.command("list")
def users_list(limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
    """List users."""
    users, total = _reading(lambda reader: _users_page(reader, limit))
    rows = [
        (u.id, u.email, ",".join(u.roles), str(u.disabled).lower(), _when(u.created_at))
        for u in users
    ]
    _print_table(("id", "email", "roles", "disabled", "created"), rows)
    err().print(f"{len(users)} of {total} users")


async def _users_page(reader: Reader, limit: int) -> tuple[list[User], int]:
    """The first ``limit`` users in the admin API's order (oldest first), and how many there are."""
    from sqlalchemy import func, select

    from auth_service.models import User

    async with reader.sessions() as db:
        total = await db.scalar(select(func.count()).select_from(User)) or 0
        users = await db.scalars(select(User).order_by(User.created_at, User.id).limit(limit))
        return list(users), int(total)


@users_app.command("roles")
def users_roles(user_id: str, roles: list[str]) -> None:
    """Set a user's roles (replaces them); tokens issued before now stop working."""
    from auth_service import accounts

    user = _with_services(lambda svc: accounts.set_roles(svc, user_id, roles))
    out().print(f"{user.id}: {', '.join(user.roles)}")


@users_app.command("disable")
def users_disable(user_id: str) -> None:
    """Disable a user and revoke all of their sessions."""
    from auth_service import accounts

    _with_services(lambda svc: accounts.set_disabled(svc, user_id, True))
    out().print(f"{user_id}: disabled, sessions revoked")


@users_app.command("enable")
def users_enable(user_id: str) -> None:
    """Enable a disabled user."""
    from auth_service import accounts

    _with_services(lambda svc: accounts.set_disabled(svc, user_id, False))
    out().print(f"{user_id}: enabled")


def _print_table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """A table on a terminal; tab-separated lines, never truncated, for scripts and pipes."""
    if not out().is_terminal:
        for row in (headers, *rows):
            print("\t".join(row))
        return
    from rich.table import Table

    table = Table(*headers)
    for row in rows:
        table.add_row(*row)
    out().print(table)


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


# --- keys ----------------------------------------------------------------------------------------


@keys_app.command("list")
def keys_list() -> None:
    """List signing keys, what each signs (access or ID tokens) and its life-cycle state."""
    keys = _reading(_list_keys)
    rows = [
        (
            key.kid,
            key.purpose,
            key.alg,
            key.state,
            _when(key.created_at),
            _when(key.promote_after),
            _when(key.activated_at),
            _when(key.retired_at),
        )
        for key in keys
    ]
    _print_table(
        ("kid", "purpose", "alg", "state", "created", "signs from", "activated", "retired"), rows
    )


async def _list_keys(reader: Reader) -> list[KeyInfo]:
    """The key rows as the key manager describes them; it is built, never started (starting it
    would make a first key, or promote and publish ones that are due)."""
    from auth_service.clock import system_clock
    from auth_service.keys import KeyManager
    from auth_service.metrics import Metrics

    manager = KeyManager(reader.settings, reader.sessions, reader.kek, system_clock, Metrics())
    return await manager.list_keys()


@keys_app.command("rotate")
def keys_rotate(
    now: Annotated[
        bool, typer.Option("--now", help="Sign with a new key at once, unpublished before.")
    ] = False,
    purpose: Annotated[
        str, typer.Option("--purpose", help="access (access tokens) or id (ID tokens).")
    ] = "access",
) -> None:
    """Rotate: publish a new key now and sign with it one JWKS cache lifetime later."""
    from auth_service.keys import PURPOSES

    if purpose not in PURPOSES:
        err().print(f"[red]--purpose: one of {', '.join(PURPOSES)}[/red]")
        raise typer.Exit(2)
    kid = _with_services(lambda svc: svc.keys.rotate(immediately=now, purpose=purpose))
    out().print(f"{kid}: {'signing now' if now else 'published; signs after the publish lead'}")


@keys_app.command("revoke")
def keys_revoke(kid: str) -> None:
    """Emergency: remove a key from the JWKS at once and tell the edges.

    A kid may begin with '-' (it is a base64url thumbprint): put it after '--',
    as in: gatepass keys revoke -- -AbC...
    """
    from auth_service.keys import KeyNotFoundError

    async def job(svc: Services) -> None:
        try:
            await svc.keys.revoke(kid)
        except KeyNotFoundError as exc:
            err().print(f"[red]no key {kid!r}[/red]")
            raise typer.Exit(1) from exc

    _with_services(job)
    out().print(f"{kid}: revoked")


# --- clients -------------------------------------------------------------------------------------


@clients_app.command("add")
def clients_add(
    client_id: str,
    *,
    kind: Annotated[str, typer.Option("--kind", help="service or app.")],
    auth: Annotated[
        str,
        typer.Option("--auth", help="private_key_jwt, client_secret_basic or none (apps only)."),
    ],
    audience: Annotated[
        list[str], typer.Option("--audience", help="An audience it may ask for (repeat).")
    ],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="A scope it may hold (repeat).")
    ] = None,
    resource: Annotated[
        str | None, typer.Option("--resource", help="The audience it serves itself.")
    ] = None,
    jwk_file: Annotated[
        Path | None,
        typer.Option("--jwk-file", help="private_key_jwt: its public JWK, or JWK Set, as JSON."),
    ] = None,
    jwks_uri: Annotated[
        str | None, typer.Option("--jwks-uri", help="private_key_jwt: where its JWK Set is.")
    ] = None,
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option("--redirect-uri", help="app: where its codes may go (repeat; exact)."),
    ] = None,
    post_logout_redirect_uri: Annotated[
        list[str] | None,
        typer.Option(
            "--post-logout-redirect-uri", help="app: where logout may return to (repeat)."
        ),
    ] = None,
) -> None:
    """Register a client. A client_secret_basic client's secret is printed once: store it now."""
    from auth_service import registry

    jwks = None if jwk_file is None else _public_jwks_file(jwk_file)

    async def job(svc: Services) -> tuple[RegisteredClient, str | None]:
        async with svc.sessions() as db:
            return await registry.register(
                db,
                svc.settings,
                client_id=client_id,
                kind=kind,
                auth_method=auth,
                audiences=audience,
                scopes=scope or [],
                resource=resource,
                jwks=jwks,
                jwks_uri=jwks_uri,
                redirect_uris=redirect_uri,
                post_logout_redirect_uris=post_logout_redirect_uri,
                now=svc.clock(),
            )

    client, secret = _with_services(job)
    _show_client(client)
    if secret is not None:
        _show_secret(client.client_id, secret)


def _public_jwks_file(path: Path) -> dict[str, Any]:
    """The JWK Set in ``path`` (a lone JWK becomes a set of one). A private key is refused, with
    no attempt to reduce it to its public part: it belongs on the client's machine alone."""
    from gatepass.core.jwk import PRIVATE_MEMBERS

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        err().print(f"cannot read a JWK from {path}: {type(exc).__name__}", markup=False)
        raise typer.Exit(2) from None
    keys = document.get("keys") if isinstance(document, dict) else None
    jwks = document if isinstance(keys, list) else {"keys": [document]}
    for key in jwks["keys"]:
        if isinstance(key, dict) and PRIVATE_MEMBERS & key.keys():
            err().print(
                f"{path} holds a PRIVATE key. Register the client's public key only (its JWK "
                "without d, p, q, dp, dq, qi or k); the private key stays with the client. "
                "Nothing was registered.",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(1)
    return dict(jwks)


@clients_app.command("list")
def clients_list() -> None:
    """List registered clients (clients in the settings are not listed)."""
    clients = _reading(_registered_clients)
    rows = [
        (
            c.client_id,
            c.kind,
            c.auth_method,
            ",".join(sorted(c.audiences)),
            ",".join(sorted(c.scopes)) or "-",
            c.resource or "-",
            str(c.disabled).lower(),
        )
        for c in clients
    ]
    _print_table(("id", "kind", "auth", "audiences", "scopes", "resource", "disabled"), rows)


async def _registered_clients(reader: Reader) -> list[RegisteredClient]:
    from auth_service import registry

    async with reader.sessions() as db:
        return await registry.listed(db)


@clients_app.command("show")
def clients_show(client_id: str) -> None:
    """Show one registered client (never its secret)."""
    from auth_service import registry

    async def job(reader: Reader) -> RegisteredClient | None:
        async with reader.sessions() as db:
            return await registry.find(db, client_id)

    client = _reading(job)
    if client is None:
        err().print(f"no client {client_id!r}", markup=False, highlight=False)
        raise typer.Exit(1)
    _show_client(client)


@clients_app.command("disable")
def clients_disable(client_id: str) -> None:
    """Disable a client: it cannot authenticate, and the service tokens it holds are revoked."""
    _set_client_disabled(client_id, True)
    out().print(f"{client_id}: disabled, its tokens revoked", markup=False, highlight=False)


@clients_app.command("enable")
def clients_enable(client_id: str) -> None:
    """Enable a disabled client."""
    _set_client_disabled(client_id, False)
    out().print(f"{client_id}: enabled", markup=False, highlight=False)


def _set_client_disabled(client_id: str, disabled: bool) -> None:
    from auth_service import registry

    async def job(svc: Services) -> RegisteredClient:
        async with svc.sessions() as db:
            return await registry.set_disabled(
                db, svc.settings, client_id, disabled, now=svc.clock()
            )

    _with_services(job)


@clients_app.command("rotate-secret")
def clients_rotate_secret(client_id: str) -> None:
    """A new secret for a client_secret_basic client, printed once; the old one stops working."""
    from auth_service import registry

    async def job(svc: Services) -> str:
        async with svc.sessions() as db:
            return await registry.rotate_secret(db, client_id, now=svc.clock())

    _show_secret(client_id, _with_services(job))


@clients_app.command("remove")
def clients_remove(client_id: str) -> None:
    """Remove a client; the service tokens it holds are revoked."""
    from auth_service import registry

    async def job(svc: Services) -> None:
        async with svc.sessions() as db:
            await registry.remove(db, svc.settings, client_id, now=svc.clock())

    _with_services(job)
    out().print(f"{client_id}: removed", markup=False, highlight=False)


def _show_client(client: RegisteredClient) -> None:
    for label, value in (
        ("id", client.client_id),
        ("kind", client.kind),
        ("auth", client.auth_method),
        ("audiences", ", ".join(sorted(client.audiences))),
        ("scopes", ", ".join(sorted(client.scopes)) or "-"),
        ("resource", client.resource or "-"),
        ("keys", _keys_summary(client)),
        ("redirects", ", ".join(client.redirect_uris) or "-"),
        ("logouts", ", ".join(client.post_logout_redirect_uris) or "-"),
        ("disabled", str(client.disabled).lower()),
        ("created", _when(client.created_at)),
    ):
        out().print(f"{label + ':':<10} {value}", markup=False, highlight=False)


def _keys_summary(client: RegisteredClient) -> str:
    if client.jwks_uri is not None:
        return client.jwks_uri
    if client.jwks is not None:
        kids = [str(key.get("kid")) for key in client.jwks.get("keys", [])]
        return "inline: " + ", ".join(kids)
    return "-"


def _show_secret(client_id: str, secret: str) -> None:
    """The secret on standard output (scripts read it), the warning on standard error."""
    out().print(f"client_secret: {secret}", markup=False, highlight=False, soft_wrap=True)
    err().print(
        f"This is the only time the secret of {client_id!r} is shown: only its hash is kept. "
        "Store it now.",
        markup=False,
        highlight=False,
    )


# --- token ---------------------------------------------------------------------------------------


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
        err().print(f"[red]not a JWS compact token: {exc}[/red]")
        raise typer.Exit(1) from exc
    out().print("[bold]header[/bold]")
    out().print_json(data=header)
    out().print("[bold]payload[/bold]")
    out().print_json(data=payload)
    if isinstance(payload, dict):
        for claim in ("iat", "exp"):
            if isinstance(payload.get(claim), int):
                out().print(f"  {claim}: {datetime.fromtimestamp(payload[claim], UTC).isoformat()}")
    out().print("[bold]signature[/bold] (base64url, not verified)")
    out().print(signature)


# --- db ------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the newest."""
    import asyncio

    from auth_service import migrate
    from gatepass.db import create_engine

    async def run() -> str | None:
        engine = create_engine(_settings().resolved_database_url)
        try:
            await migrate.upgrade(engine)
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    out().print(f"database at revision {asyncio.run(run())}")
