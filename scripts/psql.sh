#!/usr/bin/env bash
# psql as one of the project's database roles: scripts/psql.sh [--role=reporting|pipeline|admin] [psql args]
#   reporting (the default) is read-only: POSTGRES_REPORTING_URL; pipeline is the jobs' role:
#   POSTGRES_URL; admin seeds and migrates: POSTGRES_ADMIN_URL. The connection, password
#   included, goes through libpq's environment variables: no secret on psql's command line.
set -euo pipefail
cd "$(dirname "$0")/.."
role=reporting
case "${1:-}" in --role=*) role=${1#--role=}; shift ;; esac
eval "$(python3 -m scripts.stack_env libpq "$role")"
exec psql "$@"
