"""Run gatepass on this machine and show it working: what ``./dev up`` runs.

Each service runs as a child process on 127.0.0.1 with SQLite and generated keys under ``./data``.
Today that is the auth service; the mail (8001) and video (8002) edges join as more :class:`Child`
entries in :func:`children`, started in order, each once the one before it is ready.

Once everything is ready this prints where to look, walks through the main flows with httpx
(signup, login, ``/me``, the access token taken apart, refresh, the JWKS, the session list) and then
follows the services' logs until Ctrl-C, which stops every child: SIGTERM, then SIGKILL after 10 s.
Passwords and refresh tokens are never printed whole; the logs also go to ``data/logs/``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
TAIL_LINES = 30
INDENT = "    "


class StackError(Exception):
    """Something the developer has to look at; the message says what, with the service's words."""


# --- child processes ---------------------------------------------------------------------------


@dataclass
class Child:
    """One service as a child process; its output goes to ``data/logs/<name>.log``.

    A reader thread copies each output line to the log file and keeps the last few in memory, so a
    service that dies can be explained in its own words; once the demo is over it echoes them too.
    """

    name: str
    module: str
    port: int
    env: Mapping[str, str]
    ready_path: str = "/readyz"
    process: subprocess.Popen[str] | None = field(default=None, init=False)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES), init=False)
    echo: threading.Event = field(default_factory=threading.Event, init=False)
    reader: threading.Thread | None = field(default=None, init=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return REPO / "data" / "logs" / f"{self.name}.log"

    def start(self) -> None:
        """Start ``python -m <module>``, leading its own process group.

        Its own group keeps the terminal's Ctrl-C away from it: we stop it ourselves, in order.
        """
        ensure_port_free(self.name, self.port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", self.module, "--host", HOST, "--port", str(self.port)],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._copy_output, name=self.name, daemon=True)
        self.reader.start()

    def _copy_output(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        with self.log_path.open("w", encoding="utf-8") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                self.tail.append(line.rstrip("\n"))
                if self.echo.is_set():
                    print(f"{self.name:<6}| {line}", end="", flush=True)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``ready_path`` until 200; fail at once, with the log tail, if the child exits."""
        url = self.base_url + self.ready_path
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                self.raise_if_exited("before it was ready")
                last = probe(client, url)
                if last == "200":
                    return
                time.sleep(0.25)
        raise StackError(f"{self.name} was not ready after {timeout:g} s ({url}: {last})")

    def raise_if_exited(self, when: str) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is None:
            return
        if self.reader is not None:
            self.reader.join(timeout=2)  # let it copy the last words
        lines = "\n".join(INDENT + line for line in self.tail) or INDENT + "(no output)"
        raise StackError(
            f"{self.name} exited with status {code} {when}. Its last lines "
            f"(all of it: {self.log_path.relative_to(REPO)}):\n{lines}"
        )

    def stop(self) -> None:
        """SIGTERM so it can close cleanly, SIGKILL if it has not within ``STOP_TIMEOUT``."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"{self.name} did not stop within {STOP_TIMEOUT:g} s; killing it", flush=True)
            self._signal(signal.SIGKILL)
            self.process.wait()

    def _signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            return


def probe(client: httpx.Client, url: str) -> str:
    """One readiness probe: the status code as text, or why there was none."""
    try:
        return str(client.get(url).status_code)
    except httpx.TransportError as exc:
        return type(exc).__name__


def ensure_port_free(name: str, port: int) -> None:
    """Refuse a taken port up front: else we might poll someone else's server and call it ours."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise StackError(
                f"port {port} on {HOST} is taken ({exc.strerror}), so {name} cannot listen there. "
                f"Stop whatever uses it, or pick another port (./dev up --help)."
            ) from None


def children(args: argparse.Namespace) -> list[Child]:
    """The services to run, in start order. Edges come after auth: they fetch its JWKS."""
    issuer = f"http://{HOST}:{args.auth_port}"
    auth = Child(
        name="auth",
        module="auth_service",
        port=args.auth_port,
        env={
            "GATEPASS_AUTH_ENVIRONMENT": "development",
            "GATEPASS_AUTH_DATA_DIR": "./data/auth",
            "GATEPASS_AUTH_ISSUER": issuer,
        },
    )
    # Later: Child("mail", "edge_service_mail", 8001, {"GATEPASS_MAIL_ISSUER": issuer, ...}),
    # and Child("video", "edge_service_video", 8002, {"GATEPASS_VIDEO_ISSUER": issuer, ...}).
    return [auth]


@contextmanager
def running(stack: list[Child]) -> Iterator[None]:
    """Start each child and wait until it is ready; stop them all, last first, on the way out."""
    try:
        for child in stack:
            print(f"starting {child.name} on {child.base_url} ...", flush=True)
            child.start()
            child.wait_ready()
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan a child
        for child in reversed(stack):
            if child.process is not None and child.process.poll() is None:
                print(f"stopping {child.name} ...", flush=True)
            child.stop()


# --- the walk-through --------------------------------------------------------------------------


def short(token: str, keep: int = 20) -> str:
    """Enough of a token to recognise it, not enough to use it."""
    return f"{token[:keep]}… ({len(token)} chars)"


def b64url_json(segment: str) -> Any:
    return json.loads(b64url_bytes(segment))


def b64url_bytes(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def show(*lines: str) -> None:
    for line in lines:
        print(INDENT + line)


def show_json(value: Any) -> None:
    show(*json.dumps(value, indent=2, ensure_ascii=False).splitlines())


class Demo:
    """The scripted tour: each step prints the request, the status and what is worth seeing."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.email = f"demo-{secrets.token_hex(4)}@example.com"
        self.password = secrets.token_urlsafe(24)
        self.secrets = [self.password]
        self.step = 0

    def run(self) -> None:
        self.signup()
        tokens = self.login()
        self.me(tokens["access_token"])
        self.decode(tokens["access_token"])
        tokens = self.refresh(tokens["refresh_token"])
        self.jwks(tokens["access_token"])
        self.sessions(tokens["access_token"])
        print("\nWalk-through done.", flush=True)

    def title(self, text: str) -> None:
        self.step += 1
        print(f"\n[{self.step}] {text}", flush=True)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a non-2xx answer stops the tour with the service's (redacted) reply."""
        response = self.client.request(method, path, **kwargs)
        show(f"{method} {path} -> {response.status_code} {response.reason_phrase}")
        if response.is_success:
            return response
        body = response.text
        for secret in self.secrets:
            body = body.replace(secret, "***")
        raise StackError(f"{method} {path} answered {response.status_code}: {body}")

    def signup(self) -> None:
        self.title(f"Sign up {self.email} (random password, {len(self.password)} chars, not shown)")
        response = self.call(
            "POST", "/signup", json={"email": self.email, "password": self.password}
        )
        show_json(response.json())

    def login(self) -> dict[str, Any]:
        self.title("Log in: a new session (one per device), an access token and a refresh token")
        response = self.call(
            "POST", "/login", json={"email": self.email, "password": self.password}
        )
        return self.show_tokens(response.json())

    def show_tokens(self, tokens: dict[str, Any]) -> dict[str, Any]:
        self.secrets.append(tokens["refresh_token"])
        show(
            f"token_type:    {tokens.get('token_type')}, expires_in: {tokens.get('expires_in')} s",
            f"scope:         {tokens.get('scope')}",
            f"session_id:    {tokens.get('session_id')}",
            f"access_token:  {short(tokens['access_token'])}",
            f"refresh_token: {short(tokens['refresh_token'], 6)}  (opaque; only its hash is kept)",
        )
        return tokens

    def me(self, access_token: str) -> None:
        self.title("GET /me with Authorization: Bearer <access token>")
        show_json(self.call("GET", "/me", headers=bearer(access_token)).json())

    def decode(self, access_token: str) -> None:
        self.title("The access token taken apart (display only: the signature is NOT checked here)")
        try:
            header, payload, signature = access_token.split(".")
            show("header:")
            show_json(b64url_json(header))
            show("payload (anyone holding the token can read this, so no personal data):")
            claims = b64url_json(payload)
            show_json(claims)
            show(f"signature: {len(b64url_bytes(signature))} bytes, checked by edges with the JWKS")
        except (ValueError, binascii.Error) as exc:
            raise StackError(f"the access token is not a JWS compact token: {exc}") from None
        if isinstance(claims, dict) and isinstance(claims.get("exp"), int):
            expires = datetime.fromtimestamp(claims["exp"], UTC)
            show(f"expires at {expires:%H:%M:%S} UTC")

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        self.title("Refresh: POST /token grant_type=refresh_token (the refresh token rotates)")
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        tokens = self.show_tokens(self.call("POST", "/token", data=form).json())
        show("the old refresh token is spent: reused after the grace window, it ends the session")
        return tokens

    def jwks(self, access_token: str) -> None:
        self.title("The public keys edges verify with: GET /.well-known/jwks.json")
        keys = self.call("GET", "/.well-known/jwks.json").json().get("keys", [])
        signing_kid = b64url_json(access_token.partition(".")[0]).get("kid")
        for key in keys:
            mark = "  <- signed the token above" if key.get("kid") == signing_kid else ""
            show(f"kid {key.get('kid')}  alg {key.get('alg')}  use {key.get('use')}{mark}")

    def sessions(self, access_token: str) -> None:
        self.title("This user's devices: GET /sessions")
        rows = self.call("GET", "/sessions", headers=bearer(access_token)).json()
        for row in rows if isinstance(rows, list) else [rows]:
            current = " (this one)" if row.get("current") else ""
            show(
                f"{row.get('id')}{current}: {row.get('user_agent')} from {row.get('ip')}, "
                f"created {row.get('created_at')}, last used {row.get('last_used_at')}"
            )


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


# --- main --------------------------------------------------------------------------------------


def print_urls(auth: Child) -> None:
    base = auth.base_url
    print(f"\ngatepass is running (logs in {auth.log_path.parent.relative_to(REPO)}/):")
    show(
        f"auth service      {base}",
        f"API docs          {base}/docs",
        f"JWKS              {base}/.well-known/jwks.json",
        f"OIDC discovery    {base}/.well-known/openid-configuration",
        f"health / ready    {base}/healthz  {base}/readyz",
        f"metrics           {base}/metrics",
    )


def follow_logs(stack: list[Child]) -> None:
    """Echo every child's output until Ctrl-C; a child that dies ends the run with its log tail."""
    print("\nFollowing the logs. Press Ctrl-C to stop.\n", flush=True)
    for child in stack:
        child.echo.set()
    while True:
        for child in stack:
            child.raise_if_exited("while running")
        time.sleep(0.5)


def run_demo(auth: Child) -> bool:
    """The walk-through; if a step fails, say so and keep the services up to look into it."""
    try:
        with httpx.Client(base_url=auth.base_url, timeout=30.0) as client:
            Demo(client).run()
    except (StackError, httpx.HTTPError) as exc:
        print(f"\nThe walk-through stopped: {exc}", file=sys.stderr, flush=True)
        return False
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./dev up", description="Run gatepass locally and walk through its main flows."
    )
    parser.add_argument("--auth-port", type=int, default=8000, help="auth service port (8000)")
    parser.add_argument("--no-demo", action="store_true", help="skip the walk-through")
    parser.add_argument(
        "--once", action="store_true", help="exit after the walk-through (a smoke test)"
    )
    return parser.parse_args(argv)


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    """``kill`` us like Ctrl-C, so the children are stopped rather than orphaned."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, on_sigterm)
    stack = children(args)
    try:
        with running(stack):
            print_urls(stack[0])
            demo_ok = args.no_demo or run_demo(stack[0])
            if args.once:
                return 0 if demo_ok else 1
            follow_logs(stack)
    except StackError as exc:
        print(f"\ndevstack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
