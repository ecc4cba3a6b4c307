#!/usr/bin/env bash
# Stop the servers .ci/start-mongo.sh started (by the pids it recorded) and remove their data.
set -uo pipefail
ROOT=${MONGO_TEST_ROOT:-/tmp/insiders-mongo}
for pidfile in "$ROOT"/*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  # only ever a server this script started (a stale pid may have been reused)
  grep -qa secantusd "/proc/$pid/cmdline" 2>/dev/null || { rm -f "$pidfile"; continue; }
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  rm -f "$pidfile"
done
rm -rf "$ROOT"
