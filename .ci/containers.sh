#!/usr/bin/env bash
# Containers on our own machines and in CI (deploy/README.md, "Machines that cannot pull", says why
# each step is here).
#
#   bash .ci/containers.sh setup   one-time machine setup, as root: podman and what it needs to
#                                  run containers as root (nothing more: no recommended packages),
#                                  debootstrap, /etc/containers/containers.conf, the local base
#                                  image (localhost/python-base:bookworm) and podman-compose in
#                                  .tools/containers/; each step is skipped when already done
#   bash .ci/containers.sh test    setup, then the container tests of tests/deploy/ with
#                                  GATEPASS_CONTAINER_TESTS=1: builds the images, runs
#                                  deploy/compose.yaml and the dev overlay under `podman kube
#                                  play`, removes what it started (the folder's offline checks of
#                                  the manifests run in ./dev test, not again here); extra arguments
#                                  go to pytest. Then, pass or fail, removes the images the tests
#                                  built and any dangling image that appeared meanwhile; the base
#                                  image stays, as part of the setup
#
# Nothing here is needed on an ordinary machine with Docker: there `docker compose -f
# deploy/compose.yaml up --build` builds FROM python:3.12-slim and pulls postgres:16.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BASE_IMAGE="localhost/python-base:bookworm"
TOOLS=".tools/containers"
PODMAN_COMPOSE_VERSION="1.6.0"
# What the container tests tag (tests/deploy/containers.py: TAG, POSTGRES_IMAGE).
TEST_IMAGES=(
    localhost/gatepass-auth:test
    localhost/gatepass-mail:test
    localhost/gatepass-video:test
    localhost/gatepass-test-postgres:test
)
# Rootful podman and nothing it merely recommends (buildah, criu, rootless helpers such as uidmap,
# which would upgrade login and passwd). runc: the runtime (see configure_podman). netavark and
# aardvark-dns: the network backend and the DNS that lets compose services reach each other by
# name (without them apt picks containernetworking-plugins, which has no DNS). iptables: how
# netavark publishes ports. catatonit: the pause process of the pods `podman kube play` makes.
# debootstrap: the base image (it checks Debian's signatures with gpgv and debian-archive-keyring,
# which apt itself depends on).
PACKAGES=(podman runc netavark aardvark-dns iptables catatonit debootstrap)
export DEBIAN_FRONTEND=noninteractive

section() { printf '\n=== %s ===\n' "$*"; }

installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == "installed" ]]
}

install_packages() {
    local missing=() package
    for package in "${PACKAGES[@]}"; do
        installed "$package" || missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        echo "found: ${PACKAGES[*]}"
        return
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# crun (podman's default runtime) fails here on cgroups and setrlimit; runc without the default
# ulimits works. The network backend is said outright: netavark, whose aardvark-dns resolves
# service names.
configure_podman() {
    local conf=/etc/containers/containers.conf
    local want
    want=$'[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n[network]\nnetwork_backend = "netavark"'
    if [[ -f "$conf" && "$(cat "$conf")" == "$want" ]]; then
        echo "found: $conf"
        return
    fi
    mkdir -p /etc/containers
    printf '%s\n' "$want" >"$conf"
    echo "wrote $conf"
}

# No registry can be reached, so the Dockerfile's base (python:3.12-slim) is replaced here by a
# Debian rootfs with Python 3.11 (the host's version too, so host-built wheels fit it).
base_image() {
    if podman image exists "$BASE_IMAGE"; then
        echo "found: $BASE_IMAGE"
        return
    fi
    local rootfs rc=0
    rootfs="$(mktemp -d /var/tmp/gatepass-rootfs.XXXXXX)"
    echo "debootstrap bookworm (about a minute)"
    if debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" >"$rootfs.log" 2>&1; then
        tar -C "$rootfs" -c . | podman import --quiet - "$BASE_IMAGE" >/dev/null || rc=$?
    else
        rc=$?
        tail -n 30 "$rootfs.log" >&2
    fi
    rm -rf "$rootfs" "$rootfs.log"
    ((rc == 0)) || return "$rc"
    echo "imported $BASE_IMAGE"
}

podman_compose() {
    if [[ -x "$TOOLS/bin/podman-compose" ]] \
        && "$TOOLS/bin/podman-compose" --version 2>/dev/null | grep -q "$PODMAN_COMPOSE_VERSION"; then
        echo "found: $TOOLS/bin/podman-compose $PODMAN_COMPOSE_VERSION"
        return
    fi
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet "podman-compose==$PODMAN_COMPOSE_VERSION"
    echo "installed podman-compose $PODMAN_COMPOSE_VERSION into $TOOLS"
}

setup() {
    section "container tools (${PACKAGES[*]})"
    install_packages
    configure_podman
    section "base image $BASE_IMAGE"
    base_image
    section "podman-compose"
    podman_compose
}

run_tests() {
    section "container tests (tests/deploy)"
    local uv
    uv="$(command -v uv || echo "$PWD/.tools/bin/uv")"
    [[ -x "$uv" ]] || die "uv not found (./dev sync installs it into .tools/)"
    DANGLING_BEFORE="$(dangling_images)"
    trap remove_images EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # The tests run uv themselves (to export the lock for the image builds): put the one found
    # here on PATH, since on a fresh machine it lives in .tools/bin only.
    PATH="$PWD/$TOOLS/bin:$(dirname "$uv"):$PATH" GATEPASS_CONTAINER_TESTS=1 \
        GATEPASS_PYTHON_IMAGE="$BASE_IMAGE" "$uv" run --no-sync pytest \
        tests/deploy/test_compose.py tests/deploy/test_kube_play.py "$@"
}

dangling_images() {
    podman images --quiet --no-trunc --filter dangling=true | sort -u
}

# The images the tests built, then the dangling ones that were not there before they ran (what an
# interrupted build or a rebuild left untagged; the tests' builds keep no layers of their own).
# Each is removed on its own, so one refused keeps none of the others. Dangling images that were
# there before are not ours to remove. The exit status stays the tests'.
remove_images() {
    local image
    section "removing the images the tests built"
    for image in "${TEST_IMAGES[@]}"; do
        if podman image exists "$image"; then
            podman rmi --force "$image" >/dev/null && echo "removed $image"
        fi
    done
    for image in $(comm -13 <(printf '%s\n' "$DANGLING_BEFORE") <(dangling_images)); do
        podman rmi "$image" >/dev/null 2>&1 && echo "removed dangling ${image#sha256:}"
    done
    return 0
}

die() {
    printf 'containers.sh: %s\n' "$*" >&2
    exit 1
}

main() {
    local command="${1:-test}"
    (($# > 0)) && shift
    case "$command" in
        setup) setup ;;
        test)
            setup
            run_tests "$@"
            ;;
        *) die "unknown command: $command (setup | test)" ;;
    esac
}

main "$@"
