#!/bin/sh
# docker compose's PostgreSQL, first start only (run by the image's entrypoint from
# /docker-entrypoint-initdb.d): reference_sql/*.sql applied as scripts/seed.sh applies them,
# 000_roles.sql as the admin (POSTGRES_USER), the rest as the owner role. The pipeline and
# reporting roles' passwords come from compose secrets, through psql's environment.
set -eu
ENRICH_PIPELINE_PASSWORD=$(cat /run/secrets/postgres_password)
ENRICH_REPORTING_PASSWORD=$(cat /run/secrets/postgres_reporting_password)
ENRICH_MONITORING_PASSWORD=$(cat /run/secrets/postgres_monitoring_password)
export ENRICH_PIPELINE_PASSWORD ENRICH_REPORTING_PASSWORD ENRICH_MONITORING_PASSWORD
for file in /reference_sql/*.sql; do
  echo "postgres-init: $file"
  case "$file" in
    */000_*) set -- ;;
    *) set -- -c 'SET ROLE enrich_owner' ;;
  esac
  psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner_role=enrich_owner -v pipeline_role=enrich_pipeline -v reporting_role=enrich_reporting \
    -v monitoring_role=enrich_monitoring \
    "$@" -f "$file"
done
unset ENRICH_PIPELINE_PASSWORD ENRICH_REPORTING_PASSWORD ENRICH_MONITORING_PASSWORD
