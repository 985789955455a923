"""Run gatepass on this machine and show it working: what ``./dev up`` runs.

The auth service (8000) and the mail (8001) and video (8002) edges run as child processes on
127.0.0.1 with SQLite and generated keys under ``./data``, started in order, each once the one
before it is ready (the edges fetch the auth service's JWKS). Mail and video are registered
clients of the auth service (a key each in their data folder, and a clients file for the auth
service: :func:`identities`), so they can call each other.

Once everything is ready this prints where to look, then walks through the system with two users
the operator gives different roles: signup, login, the access token taken apart, a video uploaded
(video tells the uploader's inbox, with a token of its own) and listed, a delete the edge forbids
(from the token alone), mail sent with the video attached (mail asks video on the sender's behalf,
with her token exchanged) and read with the video's title, a send the edge forbids, a delete it
allows, a refresh, the JWKS and the device list, and last another team's app signing Alice in
through OpenID Connect (the authorization code flow with PKCE, as a browser would follow it, the
ID token checked against the JWKS, then userinfo). (Both open their inbox first: the mail edge
delivers only to a user who has used it once.) Then it follows the
services' logs until Ctrl-C, which stops every child: SIGTERM, then SIGKILL after 10 s. Passwords
and refresh tokens are never printed whole; the logs also go to ``data/logs/``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt

from edge_service_mail.app import CLIENT as MAIL_CLIENT
from edge_service_video.app import CLIENT as VIDEO_CLIENT
from gatepass.clientkey import declared_with_key
from gatepass.launch import LOOPBACK, Service, ServiceStartError, base_url, python_service

REPO = Path(__file__).resolve().parent.parent
HOST = LOOPBACK
READY_PATH = "/readyz"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
INDENT = "    "
# Another team's app, registered in the clients file: a public client (no secret; PKCE proves
# the code's redemption). Nothing listens at its callback: the walk-through reads the code off
# the redirect the way the app's server would.
DEMO_APP = "demo-app"
DEMO_CALLBACK = "http://127.0.0.1:8080/callback"


class StackError(Exception):
    """Something the developer has to look at; the message says what, with the service's words."""


# --- child processes ---------------------------------------------------------------------------


def service(name: str, module: str, port: int, settings: Mapping[str, str]) -> Service:
    """``python -m <module>`` on ``port``, logging to ``data/logs/<name>.log``.

    It gets the developer's environment (a setting exported in the shell applies) under
    ``settings``; ``env`` is what the operator command runs with too.
    """
    return Service(
        name,
        python_service(module, port, HOST),
        base_url=base_url(port, HOST),
        log=REPO / "data" / "logs" / f"{name}.log",
        env={**os.environ, "PYTHONUNBUFFERED": "1", **settings},
        cwd=REPO,
    )


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


def explain(exc: ServiceStartError) -> StackError:
    """A service that died or never got ready, in its own last words."""
    lines = "\n".join(INDENT + line for line in exc.tail.splitlines()) or INDENT + "(no output)"
    return StackError(
        f"{exc.name} {exc.problem}. Its last lines "
        f"(all of it: {exc.log_path.relative_to(REPO)}):\n{lines}"
    )


def identities() -> dict[str, dict[str, str]]:
    """The services' own identities: a private key per edge in its data folder (made on the first
    run), and the auth service's clients file registering each edge as its package asks
    (``CLIENT`` in each edge's ``app``), rewritten from those keys at every start."""
    declared: list[dict[str, Any]] = []
    settings: dict[str, dict[str, str]] = {}
    for name, registration in (("mail", MAIL_CLIENT), ("video", VIDEO_CLIENT)):
        declared.append(declared_with_key(registration, REPO / "data" / name / "client-key.json"))
        prefix = f"GATEPASS_{name.upper()}_"
        settings[name] = {
            f"{prefix}CLIENT_ID": registration.client_id,
            f"{prefix}CLIENT_KEY_FILE": f"./data/{name}/client-key.json",
        }
    declared.append(
        {
            "client_id": DEMO_APP,
            "kind": "app",
            "auth_method": "none",
            "audiences": ["mail"],
            "scopes": ["mail:read"],
            "redirect_uris": [DEMO_CALLBACK],
            "post_logout_redirect_uris": [DEMO_CALLBACK.replace("/callback", "/signed-out")],
        }
    )
    clients_file = REPO / "data" / "auth" / "clients.json"
    clients_file.parent.mkdir(parents=True, exist_ok=True)
    clients_file.write_text(json.dumps({"clients": declared}, indent=2), encoding="utf-8")
    settings["auth"] = {"GATEPASS_AUTH_CLIENTS_FILE": "./data/auth/clients.json"}
    return settings


def children(args: argparse.Namespace) -> list[Service]:
    """The services to run, in start order. Edges come after auth: they fetch its JWKS.

    Mail and video call each other (mail asks video on a user's behalf, video tells mail with
    its own identity), each as the client the auth service's clients file registers."""
    issuer = f"http://{HOST}:{args.auth_port}"
    own = identities()
    auth = service(
        "auth",
        "auth_service",
        args.auth_port,
        {
            "GATEPASS_AUTH_ENVIRONMENT": "development",
            "GATEPASS_AUTH_DATA_DIR": "./data/auth",
            "GATEPASS_AUTH_ISSUER": issuer,
            # The web page at /app: plain-HTTP loopback cookies, and the edges its buttons call.
            "GATEPASS_AUTH_COOKIE_SECURE": "false",
            "GATEPASS_AUTH_PAGE_CALLS": json.dumps(
                {
                    "mail": base_url(args.mail_port, HOST) + "/inbox",
                    "video": base_url(args.video_port, HOST) + "/videos",
                }
            ),
            **own["auth"],
        },
    )
    mail = service(
        "mail",
        "edge_service_mail",
        args.mail_port,
        {
            "GATEPASS_MAIL_ENVIRONMENT": "development",  # API docs at /docs
            "GATEPASS_MAIL_ISSUER": issuer,
            "GATEPASS_MAIL_DATA_DIR": "./data/mail",
            "GATEPASS_MAIL_VIDEO_URL": base_url(args.video_port, HOST),
            **own["mail"],
        },
    )
    video = service(
        "video",
        "edge_service_video",
        args.video_port,
        {
            "GATEPASS_VIDEO_ENVIRONMENT": "development",  # API docs at /docs
            "GATEPASS_VIDEO_ISSUER": issuer,
            "GATEPASS_VIDEO_DATA_DIR": "./data/video",
            "GATEPASS_VIDEO_MAIL_URL": base_url(args.mail_port, HOST),
            **own["video"],
        },
    )
    return [auth, mail, video]


@contextmanager
def running(stack: list[Service]) -> Iterator[None]:
    """Start each service and wait until it is ready; stop them all, last first, on the way out.

    Each leads its own process group, which keeps the terminal's Ctrl-C away from it: we stop
    them ourselves, in order (SIGTERM, then SIGKILL after ``STOP_TIMEOUT``).
    """
    try:
        for child in stack:
            print(f"starting {child.name} on {child.base_url} ...", flush=True)
            ensure_port_free(child.name, child.port)
            child.start()
            child.wait_ready(READY_PATH, READY_TIMEOUT)
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan a child
        for child in reversed(stack):
            if child.running:
                print(f"stopping {child.name} ...", flush=True)
            overdue = f"{child.name} did not stop within {STOP_TIMEOUT:g} s; killing it"
            child.stop(STOP_TIMEOUT, before_kill=partial(print, overdue, flush=True))


class Echo:
    """Prints what a service logs from now on, each line after its name."""

    def __init__(self, child: Service) -> None:
        self.child = child
        self.offset = child.log_path.stat().st_size

    def pump(self) -> None:
        """Print the complete lines logged since the last call."""
        with self.child.log_path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1
        self.offset += complete
        for line in chunk[:complete].decode("utf-8", errors="replace").splitlines():
            print(f"{self.child.name:<6}| {line}", flush=True)


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


@dataclass
class Person:
    """A demo user: who they are, what role the operator gives them, and their tokens."""

    name: str
    role: str
    email: str = ""
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    user_id: str = ""
    tokens: dict[str, Any] = field(default_factory=dict)

    @property
    def access(self) -> dict[str, str]:
        return bearer(self.tokens["access_token"])


class Demo:
    """The scripted tour: each step prints the request, the status and what is worth seeing.

    Two users with different roles show the point of the system: the edges decide locally, from
    the token alone, that Alice (moderator) may delete a video and Bob (viewer) may only read.
    """

    def __init__(self, urls: Mapping[str, str], operator_env: Mapping[str, str]) -> None:
        self.urls = urls
        self.operator_env = operator_env
        self.client = httpx.Client(timeout=30.0)
        run = secrets.token_hex(3)
        self.alice = Person("Alice", "moderator", email=f"alice-{run}@example.com")
        self.bob = Person("Bob", "viewer", email=f"bob-{run}@example.com")
        self.secrets = [self.alice.password, self.bob.password]
        self.step = 0

    def run(self) -> None:
        alice, bob = self.alice, self.bob
        for person in (alice, bob):
            self.signup(person)
        self.assign_roles()
        for person in (alice, bob):
            self.login(person)
        self.decode(alice.tokens["access_token"])
        for person in (alice, bob):
            self.open_inbox(person)
        video = self.upload(alice)
        self.read_inbox(alice)
        self.list_videos(bob)
        self.forbidden_delete(bob, video)
        message = self.send_mail(alice, bob, video)
        self.read_inbox(bob)
        self.read_message(bob, message)
        self.forbidden_send(bob)
        self.delete_video(alice, video)
        self.refresh(alice)
        self.jwks()
        self.sessions(alice)
        self.code_flow(alice)
        print("\nWalk-through done.", flush=True)

    def title(self, text: str) -> None:
        self.step += 1
        print(f"\n[{self.step}] {text}", flush=True)

    def call(
        self, service: str, method: str, path: str, *, expect: int | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request. An answer other than ``expect`` (default: any 2xx) stops the tour."""
        response = self.client.request(method, self.urls[service] + path, **kwargs)
        show(f"{method} {service}{path} -> {response.status_code} {response.reason_phrase}")
        if response.status_code == expect or (expect is None and response.is_success):
            return response
        body = response.text
        for secret in self.secrets:
            body = body.replace(secret, "***")
        raise StackError(f"{method} {path} answered {response.status_code}: {body}")

    def signup(self, person: Person) -> None:
        self.title(f"{person.name} signs up as {person.email} (random password, not shown)")
        body = {"email": person.email, "password": person.password}
        person.user_id = self.call("auth", "POST", "/signup", json=body).json()["id"]
        show(f"user id: {person.user_id}  (opaque: tokens never carry the email)")

    def assign_roles(self) -> None:
        self.title("The operator gives roles: Alice moderator, Bob viewer (gatepass users roles)")
        for person in (self.alice, self.bob):
            operator(self.operator_env, "users", "roles", person.user_id, person.role)
            show(f"gatepass users roles {person.user_id} {person.role}")
        show("role -> scopes: moderator may upload and delete videos; viewer may only read")

    def login(self, person: Person) -> None:
        self.title(f"{person.name} logs in: a session, an access token and a refresh token")
        body = {"email": person.email, "password": person.password}
        person.tokens = self.show_tokens(self.call("auth", "POST", "/login", json=body).json())

    def show_tokens(self, tokens: dict[str, Any]) -> dict[str, Any]:
        self.secrets.append(tokens["refresh_token"])
        show(
            f"scope:         {tokens.get('scope')}",
            f"expires_in:    {tokens.get('expires_in')} s, session {tokens.get('session_id')}",
            f"access_token:  {short(tokens['access_token'])}",
            f"refresh_token: {short(tokens['refresh_token'], 6)}  (opaque; only its hash is kept)",
        )
        return tokens

    def decode(self, access_token: str) -> None:
        self.title("Alice's access token taken apart (display only: the signature is NOT checked)")
        header, payload, signature = access_token.split(".")
        show("header:")
        show_json(b64url_json(header))
        show("payload (anyone holding the token can read this, so no personal data):")
        show_json(b64url_json(payload))
        show(f"signature: {len(b64url_bytes(signature))} bytes, checked by each edge with the JWKS")

    def upload(self, person: Person) -> str:
        self.title(f"{person.name} uploads a video: POST video/videos (scope video:upload)")
        body = {"title": "Welcome to gatepass", "description": "verified at the edge"}
        video = self.call("video", "POST", "/videos", json=body, headers=person.access).json()
        show(f"video {video['id']} owned by {video['owner']}")
        show(
            f"notified: {video.get('notified')}  (video told mail with a token of its own: "
            "client credentials, aud mail, scope mail:notify)"
        )
        return str(video["id"])

    def list_videos(self, person: Person) -> None:
        self.title(f"{person.name} lists the catalogue: GET video/videos (scope video:read)")
        listing = self.call("video", "GET", "/videos", headers=person.access).json()
        items = listing.get("items", listing) if isinstance(listing, dict) else listing
        for video in items[:5]:
            show(f"{video['id']}  {video['title']!r} by {video['owner']}")

    def forbidden_delete(self, person: Person, video_id: str) -> None:
        self.title(f"{person.name} tries to delete Alice's video: not the owner, no video:delete")
        response = self.call(
            "video", "DELETE", f"/videos/{video_id}", expect=403, headers=person.access
        )
        show(f"WWW-Authenticate: {response.headers.get('www-authenticate')}")
        show(f"detail: {response.json().get('detail')}")

    def open_inbox(self, person: Person) -> None:
        self.title(f"{person.name} opens the mail service: GET mail/inbox")
        inbox = self.call("mail", "GET", "/inbox", headers=person.access).json()
        show(f"{len(inbox['items'])} messages; the first request made {person.name}'s mailbox")
        show("mail goes only to a user with a mailbox (else 422 unknown_recipient)")

    def send_mail(self, sender: Person, recipient: Person, video_id: str) -> str:
        self.title(
            f"{sender.name} mails {recipient.name} with her video attached: POST mail/messages "
            "(scope mail:send)"
        )
        body = {
            "to": recipient.user_id,
            "subject": "Hello",
            "body": "Tokens verified locally.",
            "video_id": video_id,
        }
        message = self.call("mail", "POST", "/messages", json=body, headers=sender.access).json()
        show(f"message {message['id']} sent")
        show(
            f"mail asked video whether {sender.name} may see the video, on her behalf: her token "
            "exchanged (RFC 8693) for one with aud video, scope video:read, act mail"
        )
        return str(message["id"])

    def read_message(self, person: Person, message_id: str) -> None:
        self.title(
            f"{person.name} opens it: GET mail/messages/{{id}} (the video's title from video)"
        )
        message = self.call("mail", "GET", f"/messages/{message_id}", headers=person.access).json()
        show(f"{message['subject']!r}: {message['body']!r}")
        video = message.get("video") or {}
        show(f"attached video {video.get('id')}: {video.get('title')!r}")

    def read_inbox(self, person: Person) -> None:
        self.title(f"{person.name} reads the inbox: GET mail/inbox (scope mail:read, own only)")
        inbox = self.call("mail", "GET", "/inbox", headers=person.access).json()
        items = inbox.get("items", inbox) if isinstance(inbox, dict) else inbox
        for message in items[:5]:
            show(f"from {message['from']}: {message['subject']!r}")

    def forbidden_send(self, person: Person) -> None:
        self.title(f"{person.name} tries to send mail: a viewer has no mail:send")
        body = {"to": self.alice.user_id, "subject": "Hi", "body": "?"}
        response = self.call(
            "mail", "POST", "/messages", expect=403, json=body, headers=person.access
        )
        show(f"WWW-Authenticate: {response.headers.get('www-authenticate')}")

    def delete_video(self, person: Person, video_id: str) -> None:
        self.title(f"{person.name} deletes her video: DELETE video/videos/{{id}} (video:delete)")
        self.call("video", "DELETE", f"/videos/{video_id}", expect=204, headers=person.access)

    def refresh(self, person: Person) -> None:
        self.title(f"{person.name} refreshes: POST auth/token (the refresh token rotates)")
        form = {"grant_type": "refresh_token", "refresh_token": person.tokens["refresh_token"]}
        person.tokens = self.show_tokens(self.call("auth", "POST", "/token", data=form).json())
        show("the old refresh token is spent: reused after the grace window, it ends the session")

    def jwks(self) -> None:
        self.title("The public keys the edges verify with: GET auth/.well-known/jwks.json")
        keys = self.call("auth", "GET", "/.well-known/jwks.json").json()["keys"]
        for key in keys:
            show(f"kid {key['kid']}  alg {key['alg']}  use {key['use']}")

    def sessions(self, person: Person) -> None:
        self.title(f"{person.name}'s devices: GET auth/sessions")
        for row in self.call("auth", "GET", "/sessions", headers=person.access).json():
            marker = " (this one)" if row.get("current") else ""
            show(
                f"{row['id']}{marker}: {row.get('user_agent')} from {row.get('ip')}, "
                f"last used {row.get('last_used_at')}"
            )

    def code_flow(self, person: Person) -> None:
        """OpenID Connect's authorization code flow with PKCE, followed as a browser would (a
        cookie jar of its own), the app's side done by hand."""
        self.title(f"Another team's app signs {person.name} in with OpenID Connect (code + PKCE)")
        auth = self.urls["auth"]
        metadata = self.call("auth", "GET", "/.well-known/openid-configuration").json()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        query = {
            "response_type": "code",
            "client_id": DEMO_APP,
            "redirect_uri": DEMO_CALLBACK,
            "scope": "openid email mail:read",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        with httpx.Client(timeout=30.0) as browser:
            page = browser.get(f"{metadata['authorization_endpoint']}?{urlencode(query)}")
            page = browser.get(auth + page.headers["location"]) if page.is_redirect else page
            show(f"GET /authorize -> the hosted sign-in page ({page.status_code})")
            form = {
                "email": person.email,
                "password": person.password,
                "csrf_token": hidden_field(page.text, "csrf_token"),
                "return_to": hidden_field(page.text, "return_to"),
            }
            answer = browser.post(f"{auth}/app/login", data=form)
            while answer.is_redirect and not answer.headers["location"].startswith(DEMO_CALLBACK):
                answer = browser.get(httpx.URL(auth).join(answer.headers["location"]))
        location = answer.headers.get("location", "")
        show(f"{person.name} signs in; the browser is sent back to {location.split('?')[0]}")
        params = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
        if params.get("state") != state or params.get("iss") != metadata["issuer"]:
            raise StackError(f"the authorization response is not this request's: {location}")
        form = {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": DEMO_CALLBACK,
            "client_id": DEMO_APP,
            "code_verifier": verifier,
        }
        tokens = self.call("auth", "POST", "/token", data=form).json()
        self.secrets.append(tokens["refresh_token"])
        show("the app redeems the code with its PKCE verifier: an access token and an ID token")
        signing_key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(
            tokens["id_token"]
        )
        claims = jwt.decode(
            tokens["id_token"],
            signing_key,
            algorithms=metadata["id_token_signing_alg_values_supported"],
            audience=DEMO_APP,
            issuer=metadata["issuer"],
        )
        if claims.get("nonce") != nonce:
            raise StackError("the ID token's nonce is not the request's")
        alg = jwt.get_unverified_header(tokens["id_token"])["alg"]
        show(f"ID token ({alg}), checked with the JWKS:")
        show_json({name: claims[name] for name in ("iss", "sub", "aud", "auth_time", "sid")})
        info = self.call("auth", "GET", "/userinfo", headers=bearer(tokens["access_token"])).json()
        show(f"userinfo: sub {info['sub']}, email {info.get('email')}")


def hidden_field(page: str, name: str) -> str:
    """A hidden form field's value in a page we rendered ourselves."""
    marker = f'name="{name}" value="'
    start = page.find(marker)
    if start < 0:
        raise StackError(f"the sign-in page has no {name} field")
    start += len(marker)
    return html.unescape(page[start : page.index('"', start)])


def operator(env: Mapping[str, str], *args: str) -> None:
    """Run the operator command ``gatepass`` with the auth service's settings."""
    command = [str(Path(sys.executable).with_name("gatepass")), *args]
    result = subprocess.run(  # noqa: S603 - our own console script
        command, env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise StackError(f"gatepass {' '.join(args)} failed: {result.stderr.strip()}")


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


# --- main --------------------------------------------------------------------------------------


def print_urls(stack: list[Service]) -> None:
    auth = stack[0].base_url
    print(f"\ngatepass is running (logs in {stack[0].log_path.parent.relative_to(REPO)}/):")
    show(
        f"auth service      {auth}   API docs {auth}/docs",
        f"JWKS              {auth}/.well-known/jwks.json",
        f"OIDC discovery    {auth}/.well-known/openid-configuration",
        f"web page          {auth}/app   (sign up, sign in, your token taken apart, devices)",
    )
    for child in stack[1:]:
        show(f"{child.name + ' edge':17s} {child.base_url}   API docs {child.base_url}/docs")
    show("each service: /healthz  /readyz  /metrics")


def follow_logs(stack: list[Service]) -> None:
    """Echo every child's output until Ctrl-C; a child that dies ends the run with its log tail."""
    print("\nFollowing the logs. Press Ctrl-C to stop.\n", flush=True)
    echoes = [Echo(child) for child in stack]
    while True:
        for echo in echoes:
            echo.pump()
            echo.child.raise_if_exited("while running")
        time.sleep(0.25)


def run_demo(stack: list[Service]) -> bool:
    """The walk-through; if a step fails, say so and keep the services up to look into it."""
    urls = {child.name: child.base_url for child in stack}
    demo = Demo(urls, stack[0].env)
    try:
        demo.run()
    except (StackError, httpx.HTTPError) as exc:
        print(f"\nThe walk-through stopped: {exc}", file=sys.stderr, flush=True)
        return False
    finally:
        demo.client.close()
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./dev up", description="Run gatepass locally and walk through its main flows."
    )
    parser.add_argument("--auth-port", type=int, default=8000, help="auth service port (8000)")
    parser.add_argument("--mail-port", type=int, default=8001, help="mail edge port (8001)")
    parser.add_argument("--video-port", type=int, default=8002, help="video edge port (8002)")
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
            print_urls(stack)
            demo_ok = args.no_demo or run_demo(stack)
            if args.once:
                return 0 if demo_ok else 1
            follow_logs(stack)
    except ServiceStartError as exc:
        print(f"\ndevstack: {explain(exc)}", file=sys.stderr)
        return 1
    except StackError as exc:
        print(f"\ndevstack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
