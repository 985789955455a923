"""The dev overlay's workloads, run by ``podman kube play`` (no Kubernetes cluster runs here).

The overlay is rendered by kustomize with the test images (a kustomization of our own over it);
then what podman 4.3 cannot take as it is, is adapted, and only that:

- each Deployment and StatefulSet becomes one Pod named after it: kube play has no Services, and
  a pod's name resolves on its network, so the Service names the manifests use
  (``gatepass-auth``, ``gatepass-postgres-auth``) reach the right pod. A StatefulSet's
  ``volumeClaimTemplates`` become PersistentVolumeClaims (kube play makes them volumes);
- the containers' ``ports`` go (named probe ports become numbers): podman 4.3 publishes every
  container port on the host, where 5432 or 8000 may well be taken; the test reaches the pods on
  their private network instead;
- the Secrets ``deploy/k8s/make-secrets.sh dev`` prints become podman secrets in the form podman
  4.3 reads, which differs by use: for ``secretKeyRef`` a JSON map of base64 values, for a secret
  volume a whole Secret as JSON, whose ``data`` values it writes into the files as they are
  (undecoded), each file named after its key (``items`` are ignored: the manifests give each
  item the path its key names). So a mounted Secret's values go in as the text the files must
  hold (the KEK's hex, the edges' JWKs, the clients file): what Kubernetes writes too;
- each ``emptyDir`` gets a name of its own: podman 4.3 makes it a named volume called as in the
  pod, so every pod's ``tmp`` would be one volume shared by all;
- Services, autoscalers, disruption budgets, network policies, the Ingress and the Namespace are
  left out: podman has nothing that enforces them (the offline tests check them instead).

Then every pod must become ready, a user signs up and logs in at the auth service and calls both
edges over the pods' private network, the edges call each other with the identities
make-secrets.sh made (an upload at video notifies the uploader in mail, a message at mail points
at the video), and the containers run as the manifests say (non-root, read-only root, no
capabilities). Everything is removed afterwards.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.containers import CONTAINER_TESTS, POSTGRES_IMAGE, REPO, TAG, run, wait_ready
from tests.deploy.peers import check_upload_notice_and_video_in_mail
from tests.support.auth_client import bearer, new_user

pytestmark = CONTAINER_TESTS

Obj = dict[str, Any]

LEFT_OUT = {
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
    "Namespace",
}
PORTS = {"gatepass-auth": 8000, "gatepass-mail": 8001, "gatepass-video": 8002}
READY_TIMEOUT = 180.0


def render_dev_overlay(workdir: Path) -> list[Obj]:
    """The dev overlay with the test images, rendered by kustomize itself."""
    overlay = REPO / "deploy" / "k8s" / "overlays" / "dev"
    images = [{"name": "postgres", "newName": POSTGRES_IMAGE.split(":")[0], "newTag": TAG}]
    images += [
        {"name": f"gatepass-{service}", "newName": f"localhost/gatepass-{service}", "newTag": TAG}
        for service in ("auth", "mail", "video")
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [str(Path(*[".."] * len(workdir.parts[1:])) / overlay.relative_to("/"))],
        "images": images,
    }
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    kustomize = run(["kubectl", "kustomize", str(workdir)]).stdout
    return [doc for doc in yaml.safe_load_all(kustomize) if doc]


def as_pods(objects: list[Obj], suffix: str) -> list[Obj]:
    """Workloads as Pods named after them (and their claims as PVCs), ConfigMaps as they are."""
    out = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            out += [*claims_of(obj, suffix), pod_of(obj, suffix)]
        elif obj["kind"] not in LEFT_OUT:
            out.append(obj)
    return out


def pod_of(workload: Obj, suffix: str) -> Obj:
    name = workload["metadata"]["name"]
    template = workload["spec"]["template"]
    spec = template["spec"]
    for container in spec["containers"]:
        unpublish(container)
    private_empty_dirs(spec, f"{name}-{suffix}")
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        volume = claim["metadata"]["name"]
        source = {"claimName": f"{volume}-{name}-{suffix}"}
        spec.setdefault("volumes", []).append({"name": volume, "persistentVolumeClaim": source})
    metadata = {"name": name, "labels": template["metadata"]["labels"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def claims_of(workload: Obj, suffix: str) -> list[Obj]:
    """A StatefulSet's volume claim templates, as the claims it would make for its one pod."""
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": f"{claim['metadata']['name']}-{workload['metadata']['name']}-{suffix}"
            },
            "spec": claim["spec"],
        }
        for claim in workload["spec"].get("volumeClaimTemplates", [])
    ]


def unpublish(container: Obj) -> None:
    """No ``ports`` (podman would publish them on the host); probes name port numbers instead."""
    numbers = {port["name"]: port["containerPort"] for port in container.pop("ports", [])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if get := container.get(probe, {}).get("httpGet"):
            get["port"] = numbers.get(get["port"], get["port"])


def private_empty_dirs(pod_spec: Obj, prefix: str) -> None:
    renamed = {}
    for volume in pod_spec.get("volumes", []):
        if "emptyDir" in volume:
            renamed[volume["name"]] = volume["name"] = f"{prefix}-{volume['name']}"
    for container in pod_spec["containers"]:
        for mount in container.get("volumeMounts", []):
            mount["name"] = renamed.get(mount["name"], mount["name"])


def mounted_secrets(pods: list[Obj]) -> set[str]:
    """The Secrets pods mount as volumes (the rest are read through ``secretKeyRef``)."""
    return {
        volume["secret"]["secretName"]
        for pod in pods
        if pod["kind"] == "Pod"
        for volume in pod["spec"].get("volumes", [])
        if "secret" in volume
    }


def create_podman_secrets(mounted: set[str]) -> list[str]:
    """The dev Secrets, as podman secrets; returns their names."""
    printed = subprocess.run(
        ["sh", str(REPO / "deploy" / "k8s" / "make-secrets.sh"), "dev"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    names = []
    for secret in (doc for doc in yaml.safe_load_all(printed) if doc):
        name = secret["metadata"]["name"]
        values: dict[str, str] = secret["stringData"]
        if name in mounted:
            stored: Obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}
            stored["data"] = values  # written into the files as they are
        else:
            stored = {
                key: base64.b64encode(value.encode()).decode() for key, value in values.items()
            }
        subprocess.run(
            ["podman", "secret", "create", name, "-"],
            input=json.dumps(stored),
            text=True,
            capture_output=True,
            check=True,
            timeout=30,
        )
        names.append(name)
    return names


def volumes_of(pods: list[Obj]) -> list[str]:
    """The podman volumes the pods make: claims, empty dirs (renamed), mounted secrets."""
    names = [obj["metadata"]["name"] for obj in pods if obj["kind"] == "PersistentVolumeClaim"]
    for pod in pods:
        for volume in pod["spec"].get("volumes", []) if pod["kind"] == "Pod" else []:
            if "emptyDir" in volume:
                names.append(volume["name"])
    return names + sorted(mounted_secrets(pods))


def pod_ip(pod: str, network: str) -> str:
    infra = run(["podman", "pod", "inspect", "--format", "{{.InfraContainerID}}", pod]).stdout
    info = json.loads(run(["podman", "inspect", infra.strip()]).stdout)[0]
    address: str = info["NetworkSettings"]["Networks"][network]["IPAddress"]
    return address


@pytest.fixture
def played(images: dict[str, float], tmp_path: Path) -> Iterator[tuple[list[Obj], str]]:
    suffix = secrets.token_hex(3)
    network = f"gatepass-kube-{suffix}"
    pods = as_pods(render_dev_overlay(tmp_path), suffix)
    kube_file = tmp_path / "dev-pods.yaml"
    kube_file.write_text(yaml.safe_dump_all(pods))
    created: list[str] = []
    try:
        created = create_podman_secrets(mounted_secrets(pods))
        run(["podman", "network", "create", network])
        run(["podman", "kube", "play", "--network", network, str(kube_file)])
        yield pods, network
    finally:
        run(["podman", "kube", "down", str(kube_file)], check=False)
        for volume in volumes_of(pods):
            run(["podman", "volume", "rm", "-f", volume], check=False)
        if created:
            run(["podman", "secret", "rm", *created], check=False)
        run(["podman", "network", "rm", "-f", network], check=False)


def test_the_dev_overlay_runs_under_podman_kube_play(
    played: tuple[list[Obj], str], images: dict[str, float]
) -> None:
    pods, network = played
    names = {obj["metadata"]["name"] for obj in pods if obj["kind"] == "Pod"}
    assert names == {*PORTS, *(f"gatepass-postgres-{s}" for s in ("auth", "mail", "video"))}
    urls = {name: f"http://{pod_ip(name, network)}:{port}" for name, port in PORTS.items()}
    started = time.monotonic()
    for url in urls.values():
        wait_ready(f"{url}/readyz", timeout=READY_TIMEOUT)
    images["kube play: all ready"] = time.monotonic() - started

    with httpx.Client(base_url=urls["gatepass-auth"], timeout=10.0) as auth:
        _, user_id, tokens = new_user(auth, "kube")
    for name, path in (("gatepass-mail", "/inbox"), ("gatepass-video", "/videos")):
        response = httpx.get(f"{urls[name]}{path}", headers=bearer(tokens["access_token"]))
        assert response.status_code == 200, f"{name}: {response.status_code} {response.text}"
    with (
        httpx.Client(base_url=urls["gatepass-mail"], timeout=10.0) as mail,
        httpx.Client(base_url=urls["gatepass-video"], timeout=10.0) as video,
    ):
        check_upload_notice_and_video_in_mail(mail, video, tokens["access_token"], user_id)

    for name in PORTS:
        container = f"{name}-{name.removeprefix('gatepass-')}"
        info = json.loads(run(["podman", "inspect", container]).stdout)[0]
        assert info["Config"]["User"].startswith("10001"), name
        assert info["HostConfig"]["ReadonlyRootfs"] is True, name
        assert not info["EffectiveCaps"], name
