#!/usr/bin/env bash
# Containers on our own machines and in CI (see shared/CONTAINERS.md for why each step is here).
#
#   bash .ci/containers.sh setup   one-time machine setup, as root: podman, runc, debootstrap,
#                                  /etc/containers/containers.conf, the local base image
#                                  (localhost/python-base:bookworm) and podman-compose in
#                                  .tools/containers/; each step is skipped when already done
#   bash .ci/containers.sh test    setup, then tests/deploy/ with GATEPASS_CONTAINER_TESTS=1: builds
#                                  the images, runs deploy/compose.yaml and the dev overlay under
#                                  `podman kube play`, removes what it started; extra arguments
#                                  go to pytest
#
# Nothing here is needed on an ordinary machine with Docker: there `docker compose -f
# deploy/compose.yaml up --build` builds FROM python:3.12-slim and pulls postgres:16.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BASE_IMAGE="localhost/python-base:bookworm"
TOOLS=".tools/containers"
PODMAN_COMPOSE_VERSION="1.6.0"
export DEBIAN_FRONTEND=noninteractive

section() { printf '\n=== %s ===\n' "$*"; }

install_packages() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]} == 0)); then
        echo "found: podman $(podman --version | awk '{print $3}'), runc, debootstrap"
        return
    fi
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
}

# crun (podman's default runtime) fails here on cgroups and setrlimit; runc without the default
# ulimits works.
configure_podman() {
    local conf=/etc/containers/containers.conf
    local want
    want=$'[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"'
    if [[ -f "$conf" && "$(cat "$conf")" == "$want" ]]; then
        echo "found: $conf"
        return
    fi
    mkdir -p /etc/containers
    printf '%s\n' "$want" >"$conf"
    echo "wrote $conf"
}

# No registry can be reached, so the Dockerfiles' base (python:3.12-slim) is replaced here by a
# Debian rootfs with Python 3.11 (the host's version too, so host-built wheels fit it).
base_image() {
    if podman image exists "$BASE_IMAGE"; then
        echo "found: $BASE_IMAGE"
        return
    fi
    local rootfs
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
    section "container tools (podman, runc, debootstrap)"
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
    # The tests run uv themselves (to export the lock for the image builds): put the one found
    # here on PATH, since on a fresh machine it lives in .tools/bin only.
    PATH="$PWD/$TOOLS/bin:$(dirname "$uv"):$PATH" GATEPASS_CONTAINER_TESTS=1 \
        GATEPASS_PYTHON_IMAGE="$BASE_IMAGE" "$uv" run --no-sync pytest tests/deploy "$@"
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
