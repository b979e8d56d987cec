#!/usr/bin/env bash
#
# kinesalite (in-memory Kinesis emulator) for running one test by hand:
#
#   scripts/kinesalite.sh start      # background kinesalite on a free 127.0.0.1 port
#   source target/kinesalite.env     # FLYHIGH_KINESALITE_URL
#   cargo test -p flyhigh-testkit
#   scripts/kinesalite.sh stop
#
# `scripts/kinesalite.sh env` prints the exports; `start [PORT]` takes a fixed
# port. It can run next to scripts/moto.sh: the env file sets only
# FLYHIGH_KINESALITE_URL (tests pass it to their client explicitly) and leaves
# AWS_ENDPOINT_URL to moto. Stopping it discards every stream.
# The server logs to target/test-logs/kinesalite-dev.log; its pid is in
# target/kinesalite.pid.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
FLYHIGH_ROOT=$(pwd)
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

pid_file=target/kinesalite.pid
env_file=target/kinesalite.env

# Prints the recorded pid when that process is still our kinesalite.
running_pid() {
  local pid
  [[ -f $pid_file ]] || return 1
  pid=$(<"$pid_file")
  _svc_alive "$pid" || return 1
  grep -q kinesalite "/proc/$pid/cwd/package.json" 2>/dev/null || return 1
  grep -qa server.js "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

cmd_start() {
  local pid
  if pid=$(running_pid); then
    echo "kinesalite already running (pid $pid); source $env_file"
    return 0
  fi
  ensure_kinesalite
  mkdir -p target
  if ! start_kinesalite "${1:-}" "$FLYHIGH_LOG_DIR/kinesalite-dev.log"; then
    stop_services
    return 1
  fi
  pid=${_FLYHIGH_SERVICES[-1]#*:}
  printf '%s\n' "$pid" >"$pid_file"
  {
    echo "# Written by scripts/kinesalite.sh start; kinesalite pid $pid."
    printf 'export %s=%q\n' FLYHIGH_KINESALITE_URL "$FLYHIGH_KINESALITE_URL"
  } >"$env_file"
  echo "kinesalite running (pid $pid) at $FLYHIGH_KINESALITE_URL"
  echo "run: source $env_file"
}

cmd_stop() {
  local pid
  if pid=$(running_pid); then
    stop_pid_tree kinesalite "$pid" "$(_svc_grace kinesalite)"
  else
    echo "kinesalite is not running"
  fi
  rm -f "$pid_file" "$env_file"
}

cmd_env() {
  running_pid >/dev/null || { echo "kinesalite is not running; scripts/kinesalite.sh start" >&2; return 1; }
  cat "$env_file"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  *)
    echo "usage: scripts/kinesalite.sh start [PORT] | stop | env" >&2
    exit 2
    ;;
esac
