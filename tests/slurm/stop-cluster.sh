#!/usr/bin/env bash
# Stop the daemons started by start-cluster.sh (by the pids in their pid files only).
set -uo pipefail

stop() {  # name pidfile
  local pid
  [[ -s $2 ]] || return 0
  pid=$(cat "$2")
  if kill -0 "$pid" 2>/dev/null; then
    echo "[stop-cluster] stopping $1 ($pid)"
    kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  rm -f "$2"
}

# jobs still running would be killed by slurmd anyway; cancel them cleanly first
command -v scancel >/dev/null && scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
stop slurmd /run/slurmd.pid
stop slurmctld /run/slurmctld.pid
stop munged /run/munge/munged.pid
