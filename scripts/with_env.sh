#!/usr/bin/env bash
# Runs a command with conf/local.env loaded underneath the caller's environment: a variable
# that is already set (even to an empty string) is kept, so your own settings always win.
# Secrets travel in the environment only, never on a command line.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENV_FILE=${ENRICH_ENV_FILE:-$ROOT/conf/local.env}
if [ -f "$ENV_FILE" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    key=${line%%=*}
    value=${line#*=}
    if [ -z "${!key+set}" ]; then export "$key=$value"; fi
  done < "$ENV_FILE"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$@"
