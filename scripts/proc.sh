#!/usr/bin/env bash
# Process helpers shared by scripts/stack.sh and scripts/cluster.sh (sourced, not run).

# True when something listens on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True when PIDFILE exists and names a live process.
pid_running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stop the process in PIDFILE: TERM, up to 10 s to exit, then KILL; the pid file is removed.
stop_pid() {
  local pid
  if pid_running "$1"; then
    pid=$(cat "$1")
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}
