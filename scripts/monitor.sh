#!/usr/bin/env bash
# Monitoring on the local stack: a Prometheus server, a Pushgateway (the runs push their metrics
# to it) and the PostgreSQL exporter (as the monitoring role), all on 127.0.0.1, state under
# $STACK_DIR/monitor. Debian's packages (make setup installs them).
#   scripts/monitor.sh up | down | status
# Expects the environment from scripts/with_env.sh; the exporter's password reaches it through
# its environment (DATA_SOURCE_PASS), never its command line.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { printf 'monitor: %s\n' "$*" >&2; }
die() { printf 'monitor: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/proc.sh
source "$ROOT/scripts/proc.sh"

STATE=$(realpath -m "${STACK_DIR:-.stack}")/monitor
WAIT_SECONDS=${STACK_WAIT_SECONDS:-60}
hostport() { local v=${1#*://}; printf '%s' "${v%%/*}"; }
PROMETHEUS_ADDRESS=$(hostport "${PROMETHEUS_URL:?PROMETHEUS_URL is not set (conf/local.env)}")
PUSHGATEWAY_ADDRESS=$(hostport "${PUSHGATEWAY_URL:?PUSHGATEWAY_URL is not set (conf/local.env)}")
EXPORTER_ADDRESS=${POSTGRES_EXPORTER_ADDRESS:?POSTGRES_EXPORTER_ADDRESS is not set (conf/local.env)}
for address in "$PROMETHEUS_ADDRESS" "$PUSHGATEWAY_ADDRESS" "$EXPORTER_ADDRESS"; do
  case "$address" in 127.0.0.1:*) ;; *) die "$address: the local monitoring only runs on 127.0.0.1" ;; esac
done

binary() { command -v "$1" || die "$1 not found; run 'make setup' (installs Debian's $2)"; }
healthy() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null; }

# start NAME HEALTH_URL COMMAND...: started in the background unless it already answers.
start() {
  local name=$1 health=$2; shift 2
  local pidfile="$STATE/$name.pid" log="$STATE/$name.log"
  if pid_running "$pidfile" && healthy "$health"; then say "$name already running"; return 0; fi
  local port=${health#http://127.0.0.1:}; port=${port%%/*}
  port_in_use "$port" && die "port $port is taken by another program; stop it or change conf/local.env"
  say "starting $name on 127.0.0.1:$port"
  nohup "$@" >"$log" 2>&1 </dev/null &
  echo $! > "$pidfile"
  local deadline=$((SECONDS + WAIT_SECONDS))
  until healthy "$health"; do
    pid_running "$pidfile" || die "$name exited during start-up; see $log"
    [ $SECONDS -lt $deadline ] || die "$name did not answer on $health within ${WAIT_SECONDS}s; see $log"
    sleep 0.3
  done
}

up() {
  mkdir -p "$STATE/prometheus"
  start pushgateway "http://$PUSHGATEWAY_ADDRESS/-/ready" \
    "$(binary prometheus-pushgateway prometheus-pushgateway)" --web.listen-address="$PUSHGATEWAY_ADDRESS"
  local field user
  field() { python3 -m scripts.stack_env field monitoring "$1"; }
  user=$(field user)
  DATA_SOURCE_URI="$(field host):$(field port)/$(field dbname)?sslmode=${POSTGRES_MONITORING_SSLMODE:-disable}" \
  DATA_SOURCE_USER=$user \
  DATA_SOURCE_PASS=$(python3 -m scripts.stack_env password monitoring) \
    start postgres-exporter "http://$EXPORTER_ADDRESS/metrics" \
      "$(binary prometheus-postgres-exporter prometheus-postgres-exporter)" \
      --web.listen-address="$EXPORTER_ADDRESS"
  # The shipped configuration names the default ports; other ports get a rewritten copy.
  sed -e "s/127.0.0.1:29091/$PUSHGATEWAY_ADDRESS/" -e "s/127.0.0.1:29187/$EXPORTER_ADDRESS/" \
    conf/prometheus/prometheus.yml > "$STATE/prometheus.yml"
  cp conf/prometheus/alerts.yml "$STATE/alerts.yml"
  start prometheus "http://$PROMETHEUS_ADDRESS/-/ready" \
    "$(binary prometheus prometheus)" --config.file="$STATE/prometheus.yml" \
    --storage.tsdb.path="$STATE/prometheus" --web.listen-address="$PROMETHEUS_ADDRESS" \
    --storage.tsdb.retention.time=15d
  say "up: Prometheus $PROMETHEUS_URL, Pushgateway $PUSHGATEWAY_URL, PostgreSQL exporter http://$EXPORTER_ADDRESS (as $user)"
}

down() {
  for name in prometheus postgres-exporter pushgateway; do
    if pid_running "$STATE/$name.pid"; then say "stopping $name"; fi
    stop_pid "$STATE/$name.pid"
  done
}

status() {
  for name in prometheus pushgateway postgres-exporter; do
    if pid_running "$STATE/$name.pid"; then say "$name running"; else say "$name stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: scripts/monitor.sh up|down|status" ;;
esac
