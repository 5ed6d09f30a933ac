#!/usr/bin/env bash
# Installs everything the project needs, once, into a cache outside the clone keyed by version:
# the Python virtualenv, the JVM jars, the MinIO server binary, and PostgreSQL server binaries.
# Safe to run any number of times; a second run with nothing to do takes about a second.
#   scripts/setup.sh [python] [jars] [jvm-archive] [minio] [postgres] [monitoring]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

did_work=0
say() { did_work=1; printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || die "python3 (3.11) is required"
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || die "Python 3.11 is required (found $("$PY" --version))"
command -v java >/dev/null || die "a Java runtime (17 or newer) is required for Spark"

version() { "$PY" scripts/versions.py "$1"; }
COMPONENTS=" ${*:-python jars jvm-archive minio postgres monitoring} "
want() { [[ $COMPONENTS == *" $1 "* ]]; }
CACHE=$(version cache-dir)
mkdir -p "$CACHE"

apt_updated=0
apt_install() {
  [ "$(id -u)" = 0 ] || die "need to install Debian packages '$*' but not running as root; install them and rerun"
  if [ "$apt_updated" = 0 ]; then apt-get update -qq >&2; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# --- Python virtualenv --------------------------------------------------------------------
VENV="$CACHE/venv-$(version venv-key)"
if want python && [ ! -f "$VENV/.complete" ]; then
  say "creating Python virtualenv $VENV (first time only)"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >&2
  version python-requirements > "$VENV/requirements.txt"
  "$VENV/bin/pip" install -q -r "$VENV/requirements.txt" >&2
  touch "$VENV/.complete"
fi
want python && ln -sfn "$VENV" .venv

# --- JVM jars ------------------------------------------------------------------------------
JAR_DIR=$(version jar-dir)
if want jars && [ ! -f "$JAR_DIR/.complete" ]; then
  command -v mvn >/dev/null || apt_install maven
  say "resolving JARs into $JAR_DIR (first time only)"
  mkdir -p "$JAR_DIR"
  while read -r coordinate; do
    say "  $coordinate"
    mvn -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      -Dartifact="$coordinate" -DoutputDirectory="$JAR_DIR" -Dmdep.overWriteReleases=true \
      > "$JAR_DIR/mvn.log" 2>&1 \
      || { tail -20 "$JAR_DIR/mvn.log" >&2; die "could not download $coordinate from Maven Central"; }
  done < <(version jars)
  touch "$JAR_DIR/.complete"
fi

# --- The driver JVM's class archive (class data sharing) ------------------------------------
# One training run records the classes a job loads; every local spark-submit then maps them
# instead of loading them from the JARs (scripts/submit.sh). Optional: without it jobs only
# start slower.
# The launcher's SPARK_CONF_DIR (scripts/submit.sh): an empty folder, made here so that a job
# run by a user who cannot write the cache finds it.
want jars && mkdir -p "$(version launcher-conf-dir)"
if want jvm-archive; then
  ARCHIVE=$(version jvm-archive)
  if [ ! -f "$ARCHIVE" ]; then
    say "recording the Spark driver's classes into $ARCHIVE (first time only, about two minutes)"
    rm -f "$CACHE"/jvm-archive-*.partial-*  # left by a setup that was stopped
    partial="$ARCHIVE.partial-$$"
    # S3A and JDBC are only touched at an unreachable address, with made-up credentials.
    trained=0
    ENRICH_JVM_ARCHIVE_DUMP="$partial" S3_ENDPOINT=http://127.0.0.1:9 \
      AWS_ACCESS_KEY_ID=training AWS_SECRET_ACCESS_KEY=training \
      scripts/submit.sh scripts/jvm_training.py > "$CACHE/jvm-training.log" 2>&1 || trained=$?
    # The driver JVM writes the archive as it exits (a minute or more on 2 cores). The training
    # waits for it (end_driver_jvm), unless cut short: then wait here too, up to 5 minutes.
    archive_being_written() { pgrep -f -- "-XX:ArchiveClassesAtExit=$partial" > /dev/null; }
    for _ in $(seq 1 300); do
      archive_being_written || break
      sleep 1
    done
    if [ "$trained" = 0 ] && [ -s "$partial" ] && ! archive_being_written; then
      rm -f "$CACHE"/jvm-archive-*.jsa
      mv "$partial" "$ARCHIVE"
    else
      rm -f "$partial"
      say "warning: no class archive (see $CACHE/jvm-training.log); jobs will start slower"
    fi
  fi
fi

# --- MinIO server (community edition is source-only) -----------------------------------------
MINIO_BIN=$(version minio-bin)
if want minio && [ ! -x "$MINIO_BIN" ]; then
  command -v go >/dev/null || die "Go is required to build MinIO from source"
  say "building MinIO $(version minio-release) with go install (first time only, a few minutes)"
  GOBIN=$(dirname "$MINIO_BIN") go install "$(version minio-module)" >&2 || die "go install of MinIO failed"
fi

# --- PostgreSQL server and client ------------------------------------------------------------
if want postgres; then
  if ! scripts/pg_bindir.sh >/dev/null 2>&1; then
    say "installing PostgreSQL server ($(version postgres-package)) from Debian packages"
    apt_install "$(version postgres-package)"
  fi
  command -v psql >/dev/null || apt_install postgresql-client
fi

# --- Monitoring servers (make monitor-up) and promtool ------------------------------------------
if want monitoring; then
  for binary in prometheus promtool prometheus-pushgateway prometheus-postgres-exporter; do
    if ! command -v "$binary" >/dev/null; then
      say "installing the monitoring servers from Debian packages ($(version monitoring-packages))"
      # shellcheck disable=SC2046  # a list of package names
      apt_install $(version monitoring-packages)
      break
    fi
  done
fi

# --- compose-go checker (tests validate docker-compose.yml with it; no Docker engine here) ---
COMPOSECHECK=$(version composecheck-bin)
if want postgres && [ ! -x "$COMPOSECHECK" ] && command -v go >/dev/null; then
  say "building the compose file checker (compose-go, first time only)"
  (cd tools/composecheck && go build -o "$COMPOSECHECK" .) >&2 || die "building tools/composecheck failed"
fi
[ "$did_work" = 0 ] || say "ready (${COMPONENTS# })"
