#!/bin/sh
# Print the Secrets an overlay expects, with fresh random values, for `kubectl create -f -`:
#
#   deploy/k8s/make-secrets.sh dev | kubectl create -f -
#   GATEPASS_AUTH_DATABASE_URL=postgresql+asyncpg://auth:...@db1:5432/auth \
#   GATEPASS_MAIL_DATABASE_URL=... GATEPASS_VIDEO_DATABASE_URL=... \
#       deploy/k8s/make-secrets.sh prod | kubectl create -f -
#
# Values go in double quotes: a database URL must not hold `"` or `\`.
# `create`, not `apply`: it refuses to replace a Secret that exists. A new key-encryption key over
# an old one would make every stored signing key unreadable (everyone logged out, the auth
# service refusing to start), and new database passwords would not match the databases.
# In production prefer your secret manager (External Secrets, Sealed Secrets, SOPS, Vault) with
# the same names and keys; and keep a copy of the KEK somewhere safe: it is the one thing that
# cannot be made again.
set -eu

usage() {
    echo "usage: $0 dev|prod   (prod reads GATEPASS_{AUTH,MAIL,VIDEO}_DATABASE_URL)" >&2
    exit 2
}

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

secret() { # secret NAME KEY=VALUE...
    name="$1"
    shift
    printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n' \
        "$name" "$namespace"
    printf '  labels:\n    app.kubernetes.io/part-of: gatepass\ntype: Opaque\nstringData:\n'
    for pair in "$@"; do
        printf '  %s: "%s"\n' "${pair%%=*}" "${pair#*=}"
    done
}

# The revocation feed's read tokens: one per edge, and the auth service's list of them (JSON,
# hence single-quoted: the one value with double quotes in it).
feed_tokens() {
    mail="$(random_hex 32)"
    video="$(random_hex 32)"
    secret gatepass-feed-tokens "mail=$mail" "video=$video"
    printf '  readers: '"'"'{"mail": "%s", "video": "%s"}'"'"'\n' "$mail" "$video"
}

[ $# -eq 1 ] || usage
case "$1" in
    dev)
        namespace=gatepass-dev
        secret gatepass-auth-kek "kek=$(random_hex 32)"
        for service in auth mail video; do
            password="$(random_hex 24)"
            secret "gatepass-$service-postgres" "password=$password"
            secret "gatepass-$service-database" \
                "url=postgresql+asyncpg://$service:$password@gatepass-postgres-$service:5432/$service"
        done
        ;;
    prod)
        namespace=gatepass
        : "${GATEPASS_AUTH_DATABASE_URL:?set GATEPASS_AUTH_DATABASE_URL (postgresql+asyncpg://...)}"
        : "${GATEPASS_MAIL_DATABASE_URL:?set GATEPASS_MAIL_DATABASE_URL (postgresql+asyncpg://...)}"
        : "${GATEPASS_VIDEO_DATABASE_URL:?set GATEPASS_VIDEO_DATABASE_URL (postgresql+asyncpg://...)}"
        secret gatepass-auth-kek "kek=$(random_hex 32)"
        secret gatepass-auth-database "url=$GATEPASS_AUTH_DATABASE_URL"
        secret gatepass-mail-database "url=$GATEPASS_MAIL_DATABASE_URL"
        secret gatepass-video-database "url=$GATEPASS_VIDEO_DATABASE_URL"
        ;;
    *) usage ;;
esac
feed_tokens
