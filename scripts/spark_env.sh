#!/usr/bin/env bash
# Sourced by the Spark launchers: the venv, the cached JARs, SPARK_CONF_DIR, and secrets that
# were given as *_FILE turned into environment variables (S3A reads AWS_* from the environment):
# the launcher is re-run once under scripts/with_secrets.sh.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -x "$ROOT/.venv/bin/python" ] || { echo "error: no .venv; run 'make setup'" >&2; exit 1; }
if [ -z "${ENRICH_SECRETS_LOADED:-}" ]; then  # turn *_FILE secrets into variables, once
  export ENRICH_SECRETS_LOADED=1
  exec "$ROOT/scripts/with_secrets.sh" "$0" "$@"
fi
# One call for every cached path a launcher needs, by the venv's interpreter: a python3 found
# through a version manager's shim (pyenv) starts in ~150 ms against ~45 ms.
{ read -r JAR_DIR; read -r JVM_ARCHIVE; read -r LAUNCHER_CONF_DIR; } \
  < <("$ROOT/.venv/bin/python" -S "$ROOT/scripts/versions.py" jar-dir jvm-archive launcher-conf-dir)
[ -f "$JAR_DIR/.complete" ] || { echo "error: JARs missing in $JAR_DIR; run 'make setup'" >&2; exit 1; }
SPARK_JARS=$(ls "$JAR_DIR"/*.jar | paste -sd, -)
# In local mode the executors live in the driver's JVM, so the JARs go on its class path.
# --jars would copy them (the AWS SDK bundle alone is 655 MB) into a temp folder per run, which
# costs seconds and is left behind when a run is killed. Other masters get them with --jars.
case "${SPARK_MASTER:-local}" in
  local*) SPARK_JAR_ARGS=(--driver-class-path "$(ls "$JAR_DIR"/*.jar | paste -sd: -)") ;;
  *) SPARK_JAR_ARGS=(--jars "$SPARK_JARS") ;;
esac
# ENRICH_SPARK_CONF_DIR: a folder of your own in place of conf/ (start from a copy of it).
export ENRICH_CONF_DIR="${ENRICH_SPARK_CONF_DIR:-$ROOT/conf}"
export SPARK_CONF_DIR="$ENRICH_CONF_DIR"
# Executors run no Python of ours; a cluster may point this at its own interpreter.
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$ROOT/.venv/bin/python}"
export PYSPARK_DRIVER_PYTHON="$ROOT/.venv/bin/python"
: "${S3_ENDPOINT:?S3_ENDPOINT is not set (see conf/local.env)}"
# Local mode and the local cluster listen on loopback only; a remote master needs the driver
# reachable on a real interface, so Spark picks one there.
case "${SPARK_MASTER:-local}" in
  local*|spark://127.0.0.1:*|spark://localhost:*) export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1} ;;
esac
