#!/usr/bin/env bash
# spark-sql with Delta, S3A and credentials configured and the tables registered by name:
#   raw.transactions, curated.transactions_enriched, curated.transactions_quarantine
# (also addressable as delta.`s3a://...`). Interactive without arguments; with SQL="..." set,
# runs that statement and exits. Extra arguments are passed to spark-sql.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/spark_env.sh
source "$ROOT/scripts/spark_env.sh"
mkdir -p "$ROOT/build"
init="$ROOT/build/spark-sql-init.sql"
(cd "$ROOT" && "$ROOT/.venv/bin/python" -m scripts.sql_catalog > "$init")
args=(-i "$init")
if [ -n "${SQL:-}" ]; then args+=(-e "$SQL"); fi
cd "$ROOT/build"  # spark-sql leaves derby.log / spark-warehouse in the working directory
exec "$ROOT/.venv/bin/spark-sql" \
  --master "${SPARK_MASTER:-local[2]}" \
  "${SPARK_JAR_ARGS[@]}" \
  --conf "spark.hadoop.fs.s3a.endpoint=$S3_ENDPOINT" \
  --conf "spark.hadoop.fs.s3a.endpoint.region=${AWS_REGION:-us-east-1}" \
  --conf "spark.hadoop.fs.s3a.connection.ssl.enabled=$([ "${S3_ENDPOINT%%://*}" = https ] && echo true || echo false)" \
  --conf spark.sql.catalogImplementation=in-memory \
  --conf spark.ui.showConsoleProgress=false \
  "${args[@]}" "$@"
