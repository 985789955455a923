#!/bin/sh
# Make the secrets deploy/compose.yaml requires, once, on the machine that runs it:
#
#   deploy/.env          database passwords (PostgreSQL's own and one per service), the edges'
#                        revocation-feed tokens, and GATEPASS_KEK_FILE; compose reads this file
#                        by itself
#   deploy/secrets/kek   the key-encryption key that seals the signing keys (32 random bytes, hex)
#
# Both are ignored by git. An existing file is never overwritten: the passwords are set in the
# PostgreSQL volume on its first start and the KEK seals keys already stored, so changing either
# later locks the services out of their data (start again with `down -v` to throw the data away).
# A setting added since the file was made (the feed tokens) is appended to it.
set -eu
cd "$(dirname "$0")"

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
