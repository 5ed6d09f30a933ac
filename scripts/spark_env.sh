#!/usr/bin/env bash
# Sourced by the Spark launchers: the venv, the cached JARs, SPARK_CONF_DIR, and secrets that
# were given as *_FILE turned into environment variables (S3A reads AWS_* from the environment).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -x "$ROOT/.venv/bin/python" ] || { echo "error: no .venv; run 'make setup'" >&2; exit 1; }
JAR_DIR=$(python3 "$ROOT/scripts/versions.py" jar-dir)
[ -f "$JAR_DIR/.complete" ] || { echo "error: JARs missing in $JAR_DIR; run 'make setup'" >&2; exit 1; }
SPARK_JARS=$(ls "$JAR_DIR"/*.jar | paste -sd, -)
export SPARK_CONF_DIR="$ROOT/conf"
export PYSPARK_PYTHON="$ROOT/.venv/bin/python"
export PYSPARK_DRIVER_PYTHON="$ROOT/.venv/bin/python"
for name in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
  file_var="${name}_FILE"
  if [ -n "${!file_var:-}" ]; then
    [ -r "${!file_var}" ] || { echo "error: $file_var ${!file_var} cannot be read" >&2; exit 2; }
    export "$name=$(cat "${!file_var}")"
  fi
done
: "${S3_ENDPOINT:?S3_ENDPOINT is not set (see conf/local.env)}"
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
