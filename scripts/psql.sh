#!/usr/bin/env bash
# psql as one of the project's database roles: scripts/psql.sh [--role=reporting|pipeline|admin] [psql args]
#   reporting (the default) is read-only: POSTGRES_REPORTING_URL; pipeline is the jobs' role:
#   POSTGRES_URL; admin seeds and migrates: POSTGRES_ADMIN_URL. The connection, password
#   included, goes through libpq's environment variables: no secret on psql's command line.
set -euo pipefail
cd "$(dirname "$0")/.."
role=reporting
case "${1:-}" in --role=*) role=${1#--role=}; shift ;; esac
eval "$(python3 - "$role" <<'PY'
import shlex
import sys
from jobs.errors import ConfigError
from jobs.postgres_url import ROLE_VARIABLES, target_from_env
role = sys.argv[1]
if role not in ROLE_VARIABLES:
    print(f"echo {shlex.quote(f'error: unknown role {role!r}; use one of ' + ', '.join(ROLE_VARIABLES))} >&2; exit 2")
    sys.exit()
try:
    env = target_from_env(role=role).libpq_env()
except ConfigError as error:
    print(f"echo {shlex.quote('error: ' + str(error))} >&2; exit 2")
else:
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
PY
)"
exec psql "$@"
