#!/usr/bin/env bash
#
# moto server for running one integration test by hand:
#
#   scripts/moto.sh start        # background moto on a free 127.0.0.1 port
#   source target/moto.env       # FLYHIGH_MOTO_URL and the AWS test environment
#   cargo test -p flyhigh-aws --test <name>
#   scripts/moto.sh stop
#
# `scripts/moto.sh env` prints the exports; `scripts/moto.sh reset` clears
# moto's state (POST /moto-api/reset). `start [PORT]` takes a fixed port.
# The server logs to target/test-logs/moto-dev.log; its pid is in target/moto.pid.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
FLYHIGH_ROOT=$(pwd)
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

pid_file=target/moto.pid
env_file=target/moto.env

# Prints the recorded pid when that process is still our moto server.
running_pid() {
  local pid
  [[ -f $pid_file ]] || return 1
  pid=$(<"$pid_file")
  _svc_alive "$pid" || return 1
  grep -q moto_server "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

cmd_start() {
  local pid
  if pid=$(running_pid); then
    echo "moto already running (pid $pid); source $env_file"
    return 0
  fi
  ensure_venv
  mkdir -p target
  if ! start_moto "${1:-}" "$FLYHIGH_LOG_DIR/moto-dev.log"; then
    stop_services
    return 1
  fi
  pid=${_FLYHIGH_SERVICES[-1]#*:}
  printf '%s\n' "$pid" >"$pid_file"
  {
    echo "# Written by scripts/moto.sh start; moto_server pid $pid."
    for var in FLYHIGH_MOTO_URL AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY \
      AWS_REGION AWS_DEFAULT_REGION AWS_EC2_METADATA_DISABLED FLYHIGH_PYTHON; do
      printf 'export %s=%q\n' "$var" "${!var}"
    done
    echo "unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN"
  } >"$env_file"
  echo "moto running (pid $pid) at $FLYHIGH_MOTO_URL"
  echo "run: source $env_file"
}

cmd_stop() {
  local pid
  if pid=$(running_pid); then
    stop_pid_tree moto "$pid" "$(_svc_grace moto)"
  else
    echo "moto is not running"
  fi
  rm -f "$pid_file" "$env_file"
}

cmd_env() {
  running_pid >/dev/null || { echo "moto is not running; scripts/moto.sh start" >&2; return 1; }
  cat "$env_file"
}

cmd_reset() {
  running_pid >/dev/null || { echo "moto is not running" >&2; return 1; }
  # shellcheck disable=SC1090
  source "$env_file"
  curl -sf -X POST "$FLYHIGH_MOTO_URL/moto-api/reset" >/dev/null
  echo "moto state cleared"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  reset) cmd_reset ;;
  *)
    echo "usage: scripts/moto.sh start [PORT] | stop | env | reset" >&2
    exit 2
    ;;
esac
