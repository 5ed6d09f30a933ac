#!/usr/bin/env bash
# A real Spark standalone cluster on 127.0.0.1: one master and two workers (1 core each).
#   scripts/cluster.sh up | down | status
# pip's pyspark has no sbin/start-master.sh, so the daemons are started with bin/spark-class.
# Then: make submit-batch SPARK_MASTER=spark://127.0.0.1:7077
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/spark_env.sh
source "$ROOT/scripts/spark_env.sh"

say() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

STATE=$(realpath -m "$ROOT/${STACK_DIR:-.stack}")/spark-cluster
MASTER_PORT=${SPARK_MASTER_PORT:-7077}
MASTER_UI_PORT=${SPARK_MASTER_UI_PORT:-8080}
WORKERS=${SPARK_WORKERS:-2}
WORKER_MEMORY=${SPARK_WORKER_MEMORY:-3g}
WAIT_SECONDS=${STACK_WAIT_SECONDS:-60}
SPARK_CLASS="$ROOT/.venv/bin/spark-class"

# shellcheck source=scripts/proc.sh
source "$ROOT/scripts/proc.sh"

alive_workers() {
  python3 - "$MASTER_UI_PORT" <<'PY' 2>/dev/null || echo 0
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=2) as response:
    print(json.load(response).get("aliveworkers", 0))
PY
}

start_daemon() {  # name, pid file, log file, class, args...
  local name=$1 pid=$2 log=$3
  shift 3
  # Workers inherit this environment; executors inherit the worker's, so S3A on the executors
  # finds the credentials in the environment too. Nothing secret is on these command lines.
  nohup "$SPARK_CLASS" "$@" >"$log" 2>&1 </dev/null &
  echo $! > "$pid"
  say "started $name (pid $(cat "$pid"), log $log)"
}

up() {
  mkdir -p "$STATE"
  if pid_running "$STATE/master.pid"; then
    say "master already running on spark://127.0.0.1:$MASTER_PORT"
  else
    port_in_use "$MASTER_PORT" && die "port $MASTER_PORT is taken; set SPARK_MASTER_PORT"
    start_daemon master "$STATE/master.pid" "$STATE/master.log" \
      org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$MASTER_PORT" --webui-port "$MASTER_UI_PORT"
  fi
  local deadline=$((SECONDS + WAIT_SECONDS))
  until port_in_use "$MASTER_PORT"; do
    pid_running "$STATE/master.pid" || die "the master exited during start-up; see $STATE/master.log"
    [ $SECONDS -lt $deadline ] || die "the master did not listen on 127.0.0.1:$MASTER_PORT within ${WAIT_SECONDS}s; see $STATE/master.log"
    sleep 0.5
  done
  for n in $(seq 1 "$WORKERS"); do
    if pid_running "$STATE/worker-$n.pid"; then continue; fi
    mkdir -p "$STATE/worker-$n"
    start_daemon "worker $n" "$STATE/worker-$n.pid" "$STATE/worker-$n.log" \
      org.apache.spark.deploy.worker.Worker "spark://127.0.0.1:$MASTER_PORT" --host 127.0.0.1 \
      --cores 1 --memory "$WORKER_MEMORY" --webui-port $((MASTER_UI_PORT + n)) --work-dir "$STATE/worker-$n"
  done
  until [ "$(alive_workers)" -ge "$WORKERS" ]; do
    [ $SECONDS -lt $deadline ] || die "only $(alive_workers) of $WORKERS workers registered within ${WAIT_SECONDS}s; see $STATE/worker-*.log"
    sleep 0.5
  done
  say "up: spark://127.0.0.1:$MASTER_PORT with $WORKERS workers (UI http://127.0.0.1:$MASTER_UI_PORT)"
}

down() {
  local any=0
  for pid_file in "$STATE"/worker-*.pid "$STATE/master.pid"; do
    [ -f "$pid_file" ] || continue
    pid_running "$pid_file" && any=1
    stop_pid "$pid_file"
  done
  # Each application's folder holds its copy of the JARs (about 700 MB); its logs stay.
  find "$STATE" -path '*/worker-*/app-*' -name '*.jar' -delete 2>/dev/null || true
  [ "$any" = 1 ] && say "stopped" || say "not running"
}

status() {
  if pid_running "$STATE/master.pid"; then
    say "master running on spark://127.0.0.1:$MASTER_PORT, $(alive_workers) workers alive"
  else
    say "stopped"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: scripts/cluster.sh up|down|status" ;;
esac
