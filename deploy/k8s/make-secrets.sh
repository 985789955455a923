#!/bin/sh
# Print the Secrets an overlay expects, with fresh random values, for `kubectl create -f -`:
#
#   deploy/k8s/make-secrets.sh dev | kubectl create -f -
#   GATEPASS_AUTH_DATABASE_URL=postgresql+asyncpg://auth:...@db1:5432/auth \
#   GATEPASS_MAIL_DATABASE_URL=... GATEPASS_VIDEO_DATABASE_URL=... \
#       deploy/k8s/make-secrets.sh prod | kubectl create -f -
#
# `clients` after the overlay prints only the services' identities: each edge's own key
# (gatepass-{mail,video}-client, a private JWK) and the auth service's clients file declaring
# both with the public halves (gatepass-auth-clients). For a deployment made before the edges
# had identities, or to replace their keys (any time; restart auth, then the edges):
#
#   deploy/k8s/make-secrets.sh dev clients | kubectl apply -f -
#
# It prints keys: it refuses to write to a terminal. Needs openssl (deploy/client-keys.sh).
# Values go in double quotes: a database URL must not hold `"` or `\`.
# `create`, not `apply`: it refuses to replace a Secret that exists. A new key-encryption key over
# an old one would make every stored signing key unreadable (everyone logged out, the auth
# service refusing to start), and new database passwords would not match the databases.
# In production prefer your secret manager (External Secrets, Sealed Secrets, SOPS, Vault) with
# the same names and keys; and keep a copy of the KEK somewhere safe: it is the one thing that
# cannot be made again.
set -eu
. "$(dirname "$0")/../client-keys.sh"

usage() {
    echo "usage: $0 dev|prod [clients]   (prod reads GATEPASS_{AUTH,MAIL,VIDEO}_DATABASE_URL)" >&2
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
# hence single-quoted, as every JSON value here: JSON holds double quotes, never single ones).
feed_tokens() {
    mail="$(random_hex 32)"
    video="$(random_hex 32)"
    secret gatepass-feed-tokens "mail=$mail" "video=$video"
    printf '  readers: '"'"'{"mail": "%s", "video": "%s"}'"'"'\n' "$mail" "$video"
}

# The edges' identities. The private keys exist only in a folder of this run's own, removed on
# the way out, and in what is printed.
client_identities() {
    keys="$(mktemp -d)"
    trap 'rm -rf "$keys"' EXIT
    make_client_key "$keys/mail.json"
    make_client_key "$keys/video.json"
    for edge in mail video; do
        secret "gatepass-$edge-client"
        printf '  client-key.json: '"'"'%s'"'"'\n' "$(cat "$keys/$edge.json")"
    done
    mail_public="$(public_jwk "$keys/mail.json")"
    video_public="$(public_jwk "$keys/video.json")"
    secret gatepass-auth-clients
    printf '  clients.json: '"'"'%s'"'"'\n' "$(clients_file "$mail_public" "$video_public")"
    rm -rf "$keys"
}

case "${1-}" in
    dev) namespace=gatepass-dev ;;
    prod) namespace=gatepass ;;
    *) usage ;;
esac
case "${2-}" in
    "") only_clients=false ;;
    clients) only_clients=true ;;
    *) usage ;;
esac
[ $# -le 2 ] || usage
if [ -t 1 ]; then
    echo "$0: this prints secrets: pipe it into kubectl create -f - (or a file only you read)" >&2
    exit 2
fi
if [ "$only_clients" = true ]; then
    client_identities
    exit 0
fi
if [ "$namespace" = gatepass-dev ]; then
    secret gatepass-auth-kek "kek=$(random_hex 32)"
    for service in auth mail video; do
        password="$(random_hex 24)"
        secret "gatepass-$service-postgres" "password=$password"
        secret "gatepass-$service-database" \
            "url=postgresql+asyncpg://$service:$password@gatepass-postgres-$service:5432/$service"
    done
else
    : "${GATEPASS_AUTH_DATABASE_URL:?set GATEPASS_AUTH_DATABASE_URL (postgresql+asyncpg://...)}"
    : "${GATEPASS_MAIL_DATABASE_URL:?set GATEPASS_MAIL_DATABASE_URL (postgresql+asyncpg://...)}"
    : "${GATEPASS_VIDEO_DATABASE_URL:?set GATEPASS_VIDEO_DATABASE_URL (postgresql+asyncpg://...)}"
    secret gatepass-auth-kek "kek=$(random_hex 32)"
    secret gatepass-auth-database "url=$GATEPASS_AUTH_DATABASE_URL"
    secret gatepass-mail-database "url=$GATEPASS_MAIL_DATABASE_URL"
    secret gatepass-video-database "url=$GATEPASS_VIDEO_DATABASE_URL"
fi
feed_tokens
client_identities
