#!/bin/sh
# Run once by the official postgres image, on its first start with an empty volume: a login role
# and a database per gatepass service (auth, mail, video), each database open to its owner only.
# The passwords come from the container's environment (deploy/compose.yaml).
set -e

for service in auth mail video; do
    var="GATEPASS_$(echo "$service" | tr 'a-z' 'A-Z')_DB_PASSWORD"
    eval "password=\${$var:-}"
    if [ -z "$password" ]; then
        echo "10-gatepass-databases.sh: $var is not set" >&2
        exit 1
    fi
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        --set name="$service" --set password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
    echo "10-gatepass-databases.sh: database and role \"$service\" created"
done
