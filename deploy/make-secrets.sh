#!/bin/sh
# Make the secrets deploy/compose.yaml requires, once, on the machine that runs it:
#
#   deploy/.env          database passwords (PostgreSQL's own and one per service), the edges'
#                        revocation-feed tokens, and GATEPASS_KEK_FILE; compose reads this file
#                        by itself
#   deploy/secrets/kek   the key-encryption key that seals the signing keys (32 random bytes, hex)
#   deploy/secrets/{mail,video}-client-key.json
#                        each edge's own key (a private JWK, ES256): how it proves who it is at
#                        the auth service's token endpoint, to call the other edge
#   deploy/secrets/clients.json
#                        the auth service's clients file: both edges declared with the public
#                        halves of their keys (no secret in it), made again on every run
#
# All are ignored by git. A secret that exists is never replaced: the passwords are set in the
# PostgreSQL volume on its first start and the KEK seals keys already stored, so changing either
# later locks the services out of their data (start again with `down -v` to throw the data away).
# An edge's key may be replaced at any time: delete it, run this again, restart the stack.
# What was added since deploy/.env was made (the feed tokens, the identity files) is appended to
# it, and a missing key is made: run this again after an upgrade.
set -eu
cd "$(dirname "$0")"
. ./client-keys.sh

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

mkdir -p secrets
chmod 0700 secrets
if [ -e secrets/kek ]; then
    echo "kept deploy/secrets/kek"
else
    random_hex 32 >secrets/kek
    # Compose bind-mounts a secret file as it is: the container's user (uid 10001) must read it.
    # The folder (0700) keeps other users of this machine out.
    chmod 0644 secrets/kek
    echo "wrote deploy/secrets/kek"
fi

if [ -e .env ]; then
    echo "kept deploy/.env"
else
    (
        umask 077
        {
            echo "# Made by deploy/make-secrets.sh. Hex passwords: they go into database URLs as they are."
            echo "POSTGRES_PASSWORD=$(random_hex 24)"
            echo "GATEPASS_AUTH_DB_PASSWORD=$(random_hex 24)"
            echo "GATEPASS_MAIL_DB_PASSWORD=$(random_hex 24)"
            echo "GATEPASS_VIDEO_DB_PASSWORD=$(random_hex 24)"
            echo "GATEPASS_KEK_FILE=./secrets/kek"
        } >.env
    )
    echo "wrote deploy/.env"
fi

# The revocation feed's read tokens, one per edge: appended to an older deploy/.env that lacks them.
for name in GATEPASS_MAIL_FEED_TOKEN GATEPASS_VIDEO_FEED_TOKEN; do
    if ! grep -q "^$name=" .env; then
        echo "$name=$(random_hex 32)" >>.env
        echo "added $name to deploy/.env"
    fi
done

# The edges' identities: a key each (kept once made), and the clients file that declares them,
# made from the keys' public halves each time (so it always matches them).
for edge in mail video; do
    key="secrets/$edge-client-key.json"
    if [ -e "$key" ]; then
        echo "kept deploy/$key"
    else
        make_client_key "$key"
        chmod 0644 "$key" # read by uid 10001 through a bind mount, like the KEK
        echo "wrote deploy/$key"
    fi
done
mail_public="$(public_jwk secrets/mail-client-key.json)"
video_public="$(public_jwk secrets/video-client-key.json)"
clients_file "$mail_public" "$video_public" >secrets/clients.json.new
chmod 0644 secrets/clients.json.new
if cmp -s secrets/clients.json.new secrets/clients.json 2>/dev/null; then
    rm secrets/clients.json.new
    echo "kept deploy/secrets/clients.json"
else
    mv secrets/clients.json.new secrets/clients.json
    echo "wrote deploy/secrets/clients.json"
fi

# Where compose finds those files: appended to an older deploy/.env that lacks them.
for pair in GATEPASS_CLIENTS_FILE=./secrets/clients.json \
    GATEPASS_MAIL_KEY_FILE=./secrets/mail-client-key.json \
    GATEPASS_VIDEO_KEY_FILE=./secrets/video-client-key.json; do
    name="${pair%%=*}"
    if ! grep -q "^$name=" .env; then
        echo "$pair" >>.env
        echo "added $name to deploy/.env"
    fi
done
