#!/usr/bin/env bash
# spark-submit one of the jobs: scripts/submit.sh JOB [job arguments...]
#   JOB is a module in jobs/ (batch_enrich, ingest), or a .py file (the bench's Spark floor).
#   SPARK_MASTER (default local[2]) and
#   SPARK_DRIVER_MEMORY (default 2g) choose where and how big. Nothing secret is on this command
#   line: credentials reach the job through the environment.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/spark_env.sh
source "$ROOT/scripts/spark_env.sh"
job=${1:?usage: scripts/submit.sh JOB [args...]}
shift
case "$job" in *.py) script=$job ;; *) script="$ROOT/jobs/$job.py" ;; esac
[ -f "$script" ] || { echo "error: no job $script" >&2; exit 2; }
"$ROOT/.venv/bin/python" "$ROOT/scripts/package.py" >/dev/null
exec "$ROOT/.venv/bin/spark-submit" \
  --master "${SPARK_MASTER:-local[2]}" \
  --driver-memory "${SPARK_DRIVER_MEMORY:-2g}" \
  "${SPARK_JAR_ARGS[@]}" \
  --py-files "$ROOT/build/jobs.zip" \
  "$script" "$@"
