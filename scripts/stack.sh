#!/usr/bin/env bash
# The local stack: a real PostgreSQL and a real MinIO on 127.0.0.1, state under $STACK_DIR.
#   scripts/stack.sh up | down | status
# Idempotent: `up` on a running stack and `down` on a stopped one do nothing and say so.
# Where a Docker engine answers, docker compose runs it instead (ENRICH_STACK=local: never).
# Expects the environment from scripts/with_env.sh (conf/local.env under your own settings).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

say() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

STACK=$(realpath -m "${STACK_DIR:-.stack}")
PG_DATA="$STACK/postgres/data"
PG_RUN="$STACK/postgres/run"
PG_LOG="$STACK/postgres/postgres.log"
MINIO_DATA="$STACK/minio/data"
MINIO_LOG="$STACK/minio/minio.log"
MINIO_PID="$STACK/minio/minio.pid"
WAIT_SECONDS=${STACK_WAIT_SECONDS:-60}

# The server is made and administered as the admin role; the jobs' role is created by make seed.
pg_field() { python3 -m scripts.stack_env field admin "$1"; }
PG_HOST=$(pg_field host)
PG_PORT=$(pg_field port)
PG_ADMIN=$(pg_field user)
PG_DB=$(pg_field dbname)
S3_HOSTPORT=${S3_ENDPOINT#*://}
S3_HOSTPORT=${S3_HOSTPORT%%/*}
MINIO_PORT=${S3_HOSTPORT##*:}
MINIO_CONSOLE_PORT=$((MINIO_PORT + 1))

case "$PG_HOST" in 127.0.0.1|localhost) ;; *) die "POSTGRES_ADMIN_URL points at $PG_HOST; the local stack only runs on 127.0.0.1 (unset POSTGRES_*_URL to use conf/local.env)";; esac
case "$S3_HOSTPORT" in 127.0.0.1:*|localhost:*) ;; *) die "S3_ENDPOINT points at $S3_ENDPOINT; the local stack only runs on 127.0.0.1";; esac

# PostgreSQL refuses to run as root: run its commands as the 'postgres' system user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# shellcheck source=scripts/proc.sh
source "$ROOT/scripts/proc.sh"

ensure_reachable_by_postgres() {
  [ "$(id -u)" = 0 ] || return 0
  id postgres >/dev/null 2>&1 || die "no 'postgres' system user; run 'make setup' (installs the PostgreSQL server package)"
  # From / down, so only the folder that actually blocks the way is changed.
  local dir="" part
  IFS=/ read -ra parts <<< "${STACK#/}"
  for part in "${parts[@]}"; do
    dir="$dir/$part"
    [ -d "$dir" ] || break
    if ! runuser -u postgres -- test -x "$dir"; then
      say "making $dir traversable so the 'postgres' user can reach $STACK"
      chmod o+x "$dir"
    fi
  done
}

pg_running() { [ -f "$PG_DATA/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

postgres_up() {
  PG_BIN=$(scripts/pg_bindir.sh) || die "PostgreSQL server binaries not found; run 'make setup'"
  mkdir -p "$STACK/postgres"
  ensure_reachable_by_postgres
  if [ "$(id -u)" = 0 ]; then chown postgres "$STACK/postgres"; fi
  if pg_running; then say "PostgreSQL already running on 127.0.0.1:$PG_PORT"; return 0; fi
  port_in_use "$PG_PORT" && die "port $PG_PORT is taken by another program; stop it or change the port in POSTGRES_URL"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    say "initialising PostgreSQL cluster in $PG_DATA"
    local pwfile
    pwfile=$(mktemp)
    python3 -m scripts.stack_env password admin > "$pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_ADMIN" --pwfile="$pwfile" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$STACK/postgres/initdb.log" 2>&1 \
      || { rm -f "$pwfile"; die "initdb failed; see $STACK/postgres/initdb.log"; }
    rm -f "$pwfile"
  fi
  as_pg mkdir -p "$PG_RUN"
  say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$WAIT_SECONDS" \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_RUN" start >/dev/null \
    || die "PostgreSQL did not come up on 127.0.0.1:$PG_PORT within ${WAIT_SECONDS}s; see $PG_LOG"
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; do
    [ $SECONDS -lt $deadline ] || die "PostgreSQL is not accepting TCP connections on 127.0.0.1:$PG_PORT after ${WAIT_SECONDS}s; see $PG_LOG"
    sleep 0.5
  done
  local admin_ok
  admin_ok=$(scripts/psql.sh --role=admin -d postgres -tAc "SELECT 1" 2>&1) || true
  if [ "$admin_ok" != 1 ]; then
    die "cannot log in as the admin role $PG_ADMIN: $admin_ok
  (a .stack made by an older version has another admin; 'make clean-state' starts afresh)"
  fi
  if ! scripts/psql.sh --role=admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    say "creating database $PG_DB"
    scripts/psql.sh --role=admin -d postgres -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null
  fi
}

postgres_down() {
  PG_BIN=$(scripts/pg_bindir.sh) || return 0
  if pg_running; then
    say "stopping PostgreSQL"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$WAIT_SECONDS" stop >/dev/null
  else
    say "PostgreSQL is not running"
  fi
}

minio_running() { pid_running "$MINIO_PID"; }
minio_healthy() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://$S3_HOSTPORT/minio/health/live" 2>/dev/null
}

minio_secret() {
  local value
  value=$(python3 -m scripts.stack_env secret "$1")
  [ -n "$value" ] || die "$1 (or $1_FILE) is not set: MinIO's root user, used only to create the jobs' user"
  printf '%s' "$value"
}

minio_up() {
  local minio_bin
  minio_bin=$(python3 scripts/versions.py minio-bin)
  [ -x "$minio_bin" ] || die "MinIO binary not found at $minio_bin; run 'make setup'"
  mkdir -p "$MINIO_DATA"
  if minio_running && minio_healthy; then
    say "MinIO already running on $S3_ENDPOINT"
  else
    port_in_use "$MINIO_PORT" && die "port $MINIO_PORT is taken by another program; stop it or change S3_ENDPOINT"
    say "starting MinIO on $S3_ENDPOINT (console on 127.0.0.1:$MINIO_CONSOLE_PORT)"
    # Root credentials reach MinIO through its environment only; the jobs get their own user.
    local root_user root_password
    root_user=$(minio_secret MINIO_ROOT_USER)
    root_password=$(minio_secret MINIO_ROOT_PASSWORD)
    MINIO_ROOT_USER=$root_user MINIO_ROOT_PASSWORD=$root_password \
      MINIO_BROWSER=on MINIO_UPDATE=off \
      nohup "$minio_bin" server "$MINIO_DATA" --quiet \
        --address "127.0.0.1:$MINIO_PORT" --console-address "127.0.0.1:$MINIO_CONSOLE_PORT" \
        >"$MINIO_LOG" 2>&1 </dev/null &
    echo $! > "$MINIO_PID"
    local deadline=$((SECONDS + WAIT_SECONDS))
    until minio_healthy; do
      minio_running || die "MinIO exited during start-up; see $MINIO_LOG"
      [ $SECONDS -lt $deadline ] || die "MinIO did not become healthy on $S3_ENDPOINT within ${WAIT_SECONDS}s; see $MINIO_LOG"
      sleep 0.5
    done
  fi
  .venv/bin/python -m scripts.minio_init
}

minio_down() {
  if minio_running; then say "stopping MinIO"; else say "MinIO is not running"; fi
  stop_pid "$MINIO_PID"
}

status() {
  PG_BIN=$(scripts/pg_bindir.sh 2>/dev/null || true)
  if [ -n "$PG_BIN" ] && pg_running; then say "PostgreSQL: running on 127.0.0.1:$PG_PORT (data $PG_DATA)"; else say "PostgreSQL: stopped"; fi
  if minio_running && minio_healthy; then say "MinIO: running on $S3_ENDPOINT (data $MINIO_DATA)"; else say "MinIO: stopped"; fi
}

# With a Docker engine, docker compose runs the same stack (ENRICH_STACK=local forces ours).
if [ "${ENRICH_STACK:-auto}" != local ] && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  compose=(docker compose --env-file "$ROOT/conf/local.env" -f "$ROOT/docker-compose.yml")
  case "${1:-}" in
    up) say "Docker engine found: starting the stack with docker compose"
        "${compose[@]}" up -d --wait postgres minio minio-init spark-master spark-worker-1 spark-worker-2 ;;
    down) "${compose[@]}" down ;;
    status) "${compose[@]}" ps ;;
    *) die "usage: scripts/stack.sh up|down|status" ;;
  esac
  exit 0
fi

case "${1:-}" in
  up) postgres_up; minio_up; say "up: PostgreSQL 127.0.0.1:$PG_PORT, MinIO $S3_ENDPOINT, state in $STACK" ;;
  down) minio_down; postgres_down ;;
  status) status ;;
  # One server at a time: what the fault suite uses to take a server away mid-run.
  postgres-up) postgres_up ;;
  postgres-down) postgres_down ;;
  minio-up) minio_up ;;
  minio-down) minio_down ;;
  *) die "usage: scripts/stack.sh up|down|status|postgres-up|postgres-down|minio-up|minio-down" ;;
esac
