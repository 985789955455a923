"""Images and a compose stack under podman, for the container tests (see deploy/README.md).

No registry can be reached on our machines, so what Docker users get by pulling is made here:

- :func:`base_image`: the Dockerfile's ``PYTHON_IMAGE``: ``GATEPASS_PYTHON_IMAGE`` (CI passes the
  debootstrap image ``.ci/containers.sh`` imports), else ``python:3.12-slim``.
- :func:`fill_wheelhouse`: every locked dependency of the three services as wheels for that
  image's Python and platform, downloaded on the host (hashes checked) into a cache under
  ``.tools/containers/``; :func:`staged_wheelhouse` puts them in ``deploy/wheels/`` for the length
  of a build, so the Dockerfile installs offline.
- :func:`build_image`: ``podman build`` from the repository root, docker format (which keeps
  ``HEALTHCHECK``), keeping no intermediate image; :func:`build_images` builds each service
  with the build arguments ``deploy/compose.yaml`` gives it: the images compose would build.
- :class:`ComposeStack`: ``podman-compose`` with a project name, an env file and cleanup of its
  own; the published ports are on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

__all__ = [
    "CONTAINER_TESTS",
    "POSTGRES_IMAGE",
    "REPO",
    "TAG",
    "CommandError",
    "ComposeStack",
    "ImageSpec",
    "base_image",
    "build_image",
    "build_images",
    "fill_wheelhouse",
    "podman_available",
    "staged_wheelhouse",
    "wait_ready",
]

REPO = Path(__file__).resolve().parents[2]
WHEELS = REPO / "deploy" / "wheels"
CACHE = REPO / ".tools" / "containers" / "wheelhouse"
PACKAGES = ("gatepass-auth", "gatepass-mail", "gatepass-video")
# The Dockerfile pip-installs these next to the locked requirements: uv (to export the lock) and
# hatchling (the members' build backend). Keep UV_VERSION in step with deploy/Dockerfile's ARG.
BUILD_TOOLS = ("uv==0.13.8", "hatchling")
DEFAULT_PYTHON_IMAGE = "python:3.12-slim"
EXPORT = ("uv", "export", "--frozen", "--no-dev", "--no-emit-workspace")
COMMAND_TIMEOUT = 900.0
ENABLE_ENV = "GATEPASS_CONTAINER_TESTS"
# The images the tests build: localhost/gatepass-{auth,mail,video}:test and the PostgreSQL stand-in.
TAG = "test"
POSTGRES_IMAGE = f"localhost/gatepass-test-postgres:{TAG}"
COMPOSE_FILE = REPO / "deploy" / "compose.yaml"
SERVICES = ("auth", "mail", "video")


def podman_available() -> bool:
    return shutil.which("podman") is not None and shutil.which("podman-compose") is not None


CONTAINER_TESTS = [
    pytest.mark.skipif(
        os.environ.get(ENABLE_ENV) != "1",
        reason=f"container tests run with {ENABLE_ENV}=1 (bash .ci/containers.sh test)",
    ),
    pytest.mark.skipif(not podman_available(), reason="needs podman and podman-compose on PATH"),
    # Each run builds four images on two cores, from scratch (no layer cache: see build_image).
    pytest.mark.timeout(1800),
]
"""The marks of every container test: ``pytestmark = CONTAINER_TESTS``."""


class CommandError(RuntimeError):
    """A command failed; the message ends with what it printed."""


def run(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in the repository root, output captured (stdout and stderr together)."""
    result = subprocess.run(
        list(command),
        cwd=REPO,
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-40:])
        raise CommandError(f"{' '.join(command)} exited {result.returncode}:\n{tail}")
    return result


def base_image() -> str:
    return os.environ.get("GATEPASS_PYTHON_IMAGE") or DEFAULT_PYTHON_IMAGE


# --- the wheelhouse ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The Python of an image, as pip's download options name it."""

    python: str  # "3.11"
    machine: str  # "x86_64"
    glibc: tuple[int, int]  # (2, 36)

    @classmethod
    def of_image(cls, image: str) -> Target:
        probe = (
            "import platform, sys; "
            "print(f'{sys.version_info[0]}.{sys.version_info[1]}', platform.machine(), "
            "platform.libc_ver()[1])"
        )
        out = run(["podman", "run", "--rm", image, "python3", "-c", probe]).stdout.split()
        major, minor = out[-1].split(".")[:2]
        return cls(out[-3], out[-2], (int(major), int(minor)))

    def pip_options(self) -> list[str]:
        """``pip download`` options for the wheels this Python installs (manylinux to its glibc)."""
        platforms = [
            f"manylinux_2_{minor}_{self.machine}" for minor in range(17, self.glibc[1] + 1)
        ]
        platforms += [f"manylinux{legacy}_{self.machine}" for legacy in ("2014", "2010", "1")]
        options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python]
        for platform in platforms:
            options += ["--platform", platform]
        return options


def locked_requirements() -> dict[str, str]:
    """Each service's third-party requirements, pinned and hashed, as ``uv export`` gives them."""
    return {
        package: run([*EXPORT, "--package", package, "--no-header", "--quiet"]).stdout
        for package in PACKAGES
    }


def fill_wheelhouse(image: str) -> Path:
    """Download the wheels the images need into the cache; skipped when nothing changed."""
    target = Target.of_image(image)
    requirements = locked_requirements()
    stamp = hashlib.sha256(repr((target, BUILD_TOOLS, requirements)).encode()).hexdigest()
    stamp_file = CACHE / "STAMP"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return CACHE
    CACHE.mkdir(parents=True, exist_ok=True)
    stamp_file.unlink(missing_ok=True)
    download = [*_host_pip(), "download", "--quiet", "-d", str(CACHE), *target.pip_options()]
    for package, text in requirements.items():  # one file each: pip refuses a pin given twice
        req = CACHE / f"{package}.txt"
        req.write_text(text)
        run([*download, "-r", str(req)])
    run([*download, *BUILD_TOOLS])
    stamp_file.write_text(stamp)
    return CACHE


def _host_pip() -> list[str]:
    """The pip of the tools venv ``.ci/containers.sh`` made, else ``python3 -m pip``."""
    tools_pip = REPO / ".tools" / "containers" / "bin" / "pip"
    if tools_pip.exists():
        return [str(tools_pip)]
    return ["python3", "-m", "pip"]


@contextlib.contextmanager
def staged_wheelhouse(cache: Path) -> Iterator[None]:
    """The cached wheels in ``deploy/wheels/`` while the block runs, gone afterwards (also
    those an interrupted run left there)."""
    wheels = sorted(cache.glob("*.whl"))
    try:
        for wheel in wheels:
            shutil.copy2(wheel, WHEELS / wheel.name)
        yield
    finally:
        for wheel in wheels:
            (WHEELS / wheel.name).unlink(missing_ok=True)


# --- images --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSpec:
    tag: str
    containerfile: str  # relative to the repository root
    context: str = "."
    build_args: tuple[tuple[str, str], ...] = ()


def build_image(spec: ImageSpec) -> float:
    """``podman build`` the image; returns the seconds it took.

    No layer is kept but the image's own (``--layers=false``): a cache of every step and every
    build stage would leave more than a gigabyte of untagged images a run; the wheelhouse already
    makes a rebuild quick. The image the tag named before, if no longer tagged, is removed.
    """
    started = time.monotonic()
    previous = image_id(spec.tag)
    command = ["podman", "build", "--format", "docker", "--layers=false", "--force-rm"]
    command += ["-f", spec.containerfile, "-t", spec.tag]
    for key, value in spec.build_args:
        command += ["--build-arg", f"{key}={value}"]
    run([*command, spec.context])
    if previous and previous != image_id(spec.tag):
        run(["podman", "rmi", previous], check=False)  # refused while something still uses it
    return time.monotonic() - started


def image_id(tag: str) -> str | None:
    result = run(["podman", "image", "inspect", "--format", "{{.Id}}", tag], check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def build_images() -> dict[str, float]:
    """The three service images and the PostgreSQL stand-in; the seconds each step took. The four
    builds run at once: much of a build is waiting on the disk, so they overlap well."""
    python_image = base_image()
    started = time.monotonic()
    cache = fill_wheelhouse(python_image)
    timings = {"wheelhouse": time.monotonic() - started}
    specs = {
        "postgres": ImageSpec(
            POSTGRES_IMAGE,
            "tests/deploy/postgres/Containerfile",
            context="tests/deploy/postgres",
            build_args=(("BASE_IMAGE", python_image),),
        ),
        **{service: service_image(service, python_image) for service in SERVICES},
    }
    started = time.monotonic()
    with staged_wheelhouse(cache), ThreadPoolExecutor(max_workers=len(specs)) as pool:
        builds = {name: pool.submit(build_image, spec) for name, spec in specs.items()}
        timings |= {f"build {name}": build.result() for name, build in builds.items()}
    timings["all four builds, at once"] = time.monotonic() - started
    return timings


def service_image(service: str, python_image: str) -> ImageSpec:
    """What ``deploy/compose.yaml`` builds for ``service`` (its Dockerfile, context and build
    arguments), tagged for the tests and on ``python_image``."""
    build = yaml.safe_load(COMPOSE_FILE.read_text())["services"][service]["build"]
    args = {**build["args"], "PYTHON_IMAGE": python_image}  # compose's own is a ${...} default
    context = (COMPOSE_FILE.parent / build["context"]).resolve()
    return ImageSpec(
        f"localhost/gatepass-{service}:{TAG}",
        str((context / build["dockerfile"]).relative_to(REPO)),
        context=str(context.relative_to(REPO)),
        build_args=tuple(sorted((key, str(value)) for key, value in args.items())),
    )


# --- the compose stack ---------------------------------------------------------------------------


class ComposeStack:
    """``deploy/compose.yaml`` run by podman-compose under its own project name.

    ``env`` is the whole of what compose interpolates (written to an env file, so a developer's
    ``deploy/.env`` and exported ``GATEPASS_*`` variables play no part). :meth:`down` removes the
    containers, the network and the volumes.
    """

    def __init__(self, project: str, compose_file: Path, env: Mapping[str, str], workdir: Path):
        self.project = project
        self.compose_file = compose_file
        self.env_file = workdir / "compose.env"
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
        self.env_file.chmod(0o600)
        self.log: list[str] = []

    def compose(self, *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> str:
        command = ["podman-compose", "--env-file", str(self.env_file), "-p", self.project]
        command += ["-f", str(self.compose_file), *args]
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GATEPASS_", "POSTGRES_", "PYTHON_IMAGE"))
        }
        result = run(command, env=env, timeout=timeout, check=check)
        self.log.append(f"$ podman-compose {' '.join(args)}\n{result.stdout}")
        return result.stdout

    def up(self, *, timeout: float) -> None:
        """Start the services in the order of their ``depends_on``, each stage once the one
        before is healthy by its own health check: what Docker Compose does for
        ``condition: service_healthy``, which podman-compose 1.6 on podman 4.3 ignores (and
        a service that starts before its database exits, and is not always restarted)."""
        for stage in self.stages():
            self.compose("up", "-d", "--no-build", "--no-deps", *stage)
            for service in stage:
                self.wait_healthy(service, timeout=timeout)

    def stages(self) -> list[list[str]]:
        """The services in groups, each depending only on those of the groups before it."""
        spec = yaml.safe_load(self.compose_file.read_text())["services"]
        started: set[str] = set()
        stages = []
        while len(started) < len(spec):
            stage = sorted(
                name
                for name, service in spec.items()
                if name not in started and set(service.get("depends_on", ())) <= started
            )
            assert stage, f"depends_on has a cycle among {set(spec) - started}"
            stages.append(stage)
            started.update(stage)
        return stages

    def wait_healthy(self, service: str, *, timeout: float) -> None:
        """Run the service's health check (``podman healthcheck run``) until it passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                run(
                    ["podman", "healthcheck", "run", self.container(service)], check=False
                ).returncode
                == 0
            ):
                return
            time.sleep(1.0)
        raise TimeoutError(f"{service} not healthy after {timeout:.0f} s")

    def down(self) -> None:
        self.compose("down", "-v", "-t", "5", check=False)
        # Whatever podman-compose left (a failed `up` can): containers, volumes, network, pod.
        containers = self._listed("ps", "-a", "--format", "{{.Names}}")
        if containers:
            run(["podman", "rm", "-f", "-t", "0", *containers], check=False)
        volumes = self._listed("volume", "ls", "--format", "{{.Name}}")
        if volumes:
            run(["podman", "volume", "rm", "-f", *volumes], check=False)
        run(["podman", "network", "rm", "-f", f"{self.project}_default"], check=False)
        run(["podman", "pod", "rm", "-f", "--ignore", f"pod_{self.project}"], check=False)

    def _listed(self, *command: str) -> list[str]:
        """Names of the project's objects: ``podman <command>`` filtered by its compose label."""
        return run(["podman", *command, "--filter", self._label()], check=False).stdout.split()

    def _label(self) -> str:
        return f"label=io.podman.compose.project={self.project}"

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def stop(self, service: str) -> None:
        self.compose("stop", service)

    def start(self, service: str) -> None:
        self.compose("start", service)

    def exec(self, service: str, *command: str, env: Mapping[str, str] | None = None) -> str:
        """Run ``command`` in the service's running container (``podman exec``)."""
        options = [f"--env={key}={value}" for key, value in (env or {}).items()]
        return run(["podman", "exec", *options, self.container(service), *command]).stdout

    def inspect(self, service: str) -> dict[str, object]:
        out = run(["podman", "inspect", self.container(service)]).stdout
        info: dict[str, object] = json.loads(out)[0]
        return info

    def state(self, service: str) -> str:
        out = run(
            ["podman", "inspect", "--format", "{{.State.Status}}", self.container(service)],
            check=False,
        ).stdout
        return out.strip()

    def report(self, tail: int = 40) -> str:
        """What podman-compose said, the containers' states and their last log lines."""
        parts = ["\n".join(self.log)[-4000:]]
        parts += [run(["podman", "ps", "-a", "--filter", self._label()], check=False).stdout]
        for service in ("postgres", "auth", "mail", "video"):
            parts.append(f"--- {service} ---\n{self.logs(service, tail)}")
        return "\n".join(parts)

    def logs(self, service: str, tail: int = 80) -> str:
        return run(
            ["podman", "logs", "--tail", str(tail), self.container(service)], check=False
        ).stdout


def wait_ready(url: str, *, timeout: float) -> float:
    """Poll ``url`` until it answers 200; returns the seconds it took. Health checks do not run
    under podman here (no systemd), so readiness is asked of the service itself."""
    started = time.monotonic()
    deadline = started + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2.0)
        except httpx.TransportError as exc:
            last = type(exc).__name__
        else:
            if response.status_code == 200:
                return time.monotonic() - started
            last = f"{response.status_code} {response.text[:200]}"
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s (last: {last})")
