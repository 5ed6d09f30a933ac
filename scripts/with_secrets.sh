#!/usr/bin/env bash
# Runs a command with secrets given as files (docker/Kubernetes secrets) turned into the
# environment variables the programs read: for each NAME below, NAME_FILE wins over NAME.
#   scripts/with_secrets.sh COMMAND [ARGS...]
# S3A and the AWS SDK read AWS_* from the environment; the jobs also read POSTGRES_PASSWORD.
set -euo pipefail
for name in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY POSTGRES_PASSWORD; do
  file_var="${name}_FILE"
  if [ -n "${!file_var:-}" ]; then
    [ -r "${!file_var}" ] || { echo "error: $file_var ${!file_var} cannot be read" >&2; exit 2; }
    export "$name=$(cat "${!file_var}")"
    unset "$file_var"
  fi
done
exec "$@"
