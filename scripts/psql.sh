#!/usr/bin/env bash
# psql against POSTGRES_URL. The connection (password included) goes through libpq's
# environment variables, so no secret appears on psql's command line.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(python3 - <<'PY'
import shlex
from jobs.errors import ConfigError
from jobs.postgres_url import target_from_env
try:
    env = target_from_env().libpq_env()
except ConfigError as error:
    print(f"echo {shlex.quote('error: ' + str(error))} >&2; exit 2")
else:
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
PY
)"
exec psql "$@"
