#!/bin/sh
# Run by the postgres image once, on an empty data directory
# (/docker-entrypoint-initdb.d): Nimbus's owner and app roles and database.
# The image's own superuser (POSTGRES_USER) is for the DBA, never for Nimbus.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v database="${NIMBUS_DATABASE:-nimbus}" \
    -v owner=nimbus_owner -v owner_password="$NIMBUS_OWNER_PASSWORD" \
    -v app=nimbus_app -v app_password="$NIMBUS_APP_PASSWORD" \
    -f "${NIMBUS_ROLES_SQL:-/nimbus/postgres/roles.sql}"
