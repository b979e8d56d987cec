# shellcheck shell=bash
#
# Local services for the test suite: the Python tool venv, moto server,
# kinesalite and `cargo lambda watch`. Sourced by scripts/test.sh,
# scripts/moto.sh and scripts/kinesalite.sh; it defines functions and variables
# only and never changes shell options.
#
# Everything binds to 127.0.0.1 on a free port (never `localhost`: S3
# virtual-host addressing breaks) and logs to target/test-logs/.
#
# What tests get in their environment after start_moto / start_kinesalite /
# start_lambda_watch:
#   FLYHIGH_MOTO_URL     http://127.0.0.1:PORT of moto server
#   FLYHIGH_MOTO_PID     its pid (tests read its peak RSS, VmHWM, in /proc)
#   FLYHIGH_KINESALITE_URL
#                        http://127.0.0.1:PORT of kinesalite (Kinesis only, in
#                        memory): for concurrent and high-volume Kinesis tests,
#                        which moto gets wrong (it loses records under concurrent
#                        PutRecords). Not in AWS_ENDPOINT_URL, which stays moto;
#                        a test passes this URL to its Kinesis client explicitly.
#   FLYHIGH_LAMBDA_URL_<PACKAGE>
#                        http://127.0.0.1:PORT of the `cargo lambda watch` serving
#                        that Lambda package (name in upper case, - as _, e.g.
#                        FLYHIGH_LAMBDA_URL_DEMAND_LAMBDA); invoke its function with
#                        POST $URL/2015-03-31/functions/<bin>/invocations
#   FLYHIGH_LAMBDA_URL   the first package's (inventory-lambda)
#   FLYHIGH_PYTHON       the venv's python (has pyarrow and duckdb)
#   FLYHIGH_INGEST_PROXY_PORT
#                        the 127.0.0.1 port ingest-lambda sends Kinesis calls to
#                        (its AWS_ENDPOINT_URL_KINESIS): free when the watch starts;
#                        the ingest test binds a FaultProxy there in front of
#                        FLYHIGH_KINESALITE_URL (a function's environment is fixed
#                        when its watch starts, the proxy's faults are not)
#   FLYHIGH_INGEST_STREAM FLYHIGH_INGEST_LEDGER_TABLE FLYHIGH_INGEST_CALLER_SOURCES
#   FLYHIGH_INGEST_REQUEST_BUDGET_MS
#                        ingest-lambda's STREAM_NAME (in kinesalite), LEDGER_TABLE
#                        (in moto), CALLER_SOURCES and REQUEST_BUDGET_MS (the test
#                        creates the stream and the table before invoking it)
#   INVENTORY_TABLE DEAD_LETTER_QUEUE_URL DEMAND_TABLE ALERTS_TABLE ALERTS_TOPIC_ARN
#   ARCHIVE_BUCKET CHECKPOINT_TABLE
#                        the DynamoDB tables, SQS queue URL, SNS topic and S3 bucket the Lambda functions
#                        are configured with (the same variables in their
#                        environment; the test creates them in moto before invoking)
#   AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
#   AWS_DEFAULT_REGION AWS_EC2_METADATA_DISABLED   (static test credentials, moto)
#
# `cargo lambda watch` (cargo-lambda 1.9.2), as verified on this machine:
#   * -A/--invoke-address and -P/--invoke-port set where it listens. One port
#     serves both the invoke API (/2015-03-31/functions/<name>/invocations) and
#     the Lambda Runtime API the function polls (under /.rt/<name>, passed to the
#     function as AWS_LAMBDA_RUNTIME_API). Without TLS options no other port is used.
#   * The function name in the URL is the binary name. With several binaries in
#     the workspace it serves each by name and the default function `_` is
#     disabled; with --package restricting it to one package, `_` works too, but
#     `_` and `<bin>` are separate instances (separate processes).
#   * It builds nothing itself: on an invocation (or at start, when it has a
#     single function and no --wait) it runs, via watchexec,
#     `cargo run --color never --manifest-path Cargo.toml --package P --bin NAME [--locked]`
#     in the workspace, so it uses the workspace target/ dir, and the first
#     invocation waits for that compile. test.sh pre-builds with
#     build_lambdas (same package selection, hence the same features and
#     artifacts), after which `cargo run` reports "Finished ... 0.01s".
#   * It passes every --package it was given to that `cargo run`, which takes
#     one ("the argument '--package' cannot be used multiple times"), so one
#     `cargo lambda watch` serves one package: start_lambda_watch starts one per
#     Lambda package, each on its own port.
#   * --package matters: `cargo run --bin X` without it unifies features over
#     the whole workspace; with it the Lambda gets exactly its own features, as
#     when it is deployed (seen: without it, aws-sdk-kinesis, which only the CLI
#     uses, was compiled for the Lambda).
#   * Without --ignore-changes it restarts (kills the running compile or function
#     and starts again) whenever a non-ignored file in the workspace changes;
#     tests write files, so we turn that off.
#   * Each function instance runs in its own process group (watchexec). SIGTERM
#     to cargo-lambda stops all instances and exits in about 2 s; stop_services
#     still collects the whole process tree first and SIGKILLs leftovers.
#   * Its log (and the functions' stdout/stderr and cargo output) go to
#     target/test-logs/lambda-watch.log.
#   * Environment: the function inherits cargo-lambda's environment (checked with
#     a probe function echoing AWS_ENDPOINT_URL and AWS_REGION), plus
#     AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_RUNTIME_API and friends.
#   * End to end: the real inventory-lambda, pre-built, answered an invocation
#     through this setup (cargo run found it fresh and only started it; a later
#     invocation reuses the running instance and answers in milliseconds).
#   * An invocation of a name that is not a binary returns 404 with the list of
#     functions; a name that is a binary of another package waits for the timeout.

FLYHIGH_ROOT=${FLYHIGH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
FLYHIGH_VENV=${FLYHIGH_VENV:-$FLYHIGH_ROOT/.venv}
# The pinned kinesalite (package.json + package-lock.json); npm installs it into
# node_modules/ there.
FLYHIGH_KINESALITE_DIR=${FLYHIGH_KINESALITE_DIR:-$FLYHIGH_ROOT/scripts/kinesalite}
FLYHIGH_BROWSER_DIR=${FLYHIGH_BROWSER_DIR:-$FLYHIGH_ROOT/scripts/browser}
FLYHIGH_LOG_DIR=${FLYHIGH_LOG_DIR:-$FLYHIGH_ROOT/target/test-logs}
# The packages whose binaries `cargo lambda watch` serves.
FLYHIGH_LAMBDA_PACKAGES=(inventory-lambda demand-lambda alerts-lambda archive-lambda compact-lambda ingest-lambda)
# Resources the Lambda functions are configured with. A function reads them
# once at cold start, so they are fixed for the whole run; a test that invokes
# it creates them in moto first (it finds them in its own environment).
FLYHIGH_LAMBDA_INVENTORY_TABLE=${FLYHIGH_LAMBDA_INVENTORY_TABLE:-flyhigh-lambda-inventory}
FLYHIGH_LAMBDA_DLQ_NAME=${FLYHIGH_LAMBDA_DLQ_NAME:-flyhigh-lambda-dlq}
FLYHIGH_LAMBDA_DEMAND_TABLE=${FLYHIGH_LAMBDA_DEMAND_TABLE:-flyhigh-lambda-demand}
FLYHIGH_LAMBDA_ALERTS_TABLE=${FLYHIGH_LAMBDA_ALERTS_TABLE:-flyhigh-lambda-alerts}
FLYHIGH_LAMBDA_ALERTS_TOPIC=${FLYHIGH_LAMBDA_ALERTS_TOPIC:-flyhigh-lambda-alerts}
FLYHIGH_LAMBDA_ARCHIVE_BUCKET=${FLYHIGH_LAMBDA_ARCHIVE_BUCKET:-flyhigh-lambda-archive}
FLYHIGH_LAMBDA_CHECKPOINT_TABLE=${FLYHIGH_LAMBDA_CHECKPOINT_TABLE:-flyhigh-lambda-archive-checkpoints}
FLYHIGH_LAMBDA_INGEST_STREAM=${FLYHIGH_LAMBDA_INGEST_STREAM:-flyhigh-lambda-ingest}
FLYHIGH_LAMBDA_INGEST_LEDGER_TABLE=${FLYHIGH_LAMBDA_INGEST_LEDGER_TABLE:-flyhigh-lambda-ingest-ledger}
# Two apps, each sending only its own source (JWT claim client_id).
FLYHIGH_LAMBDA_INGEST_CALLER_SOURCES=${FLYHIGH_LAMBDA_INGEST_CALLER_SOURCES:-'{"ios-client": ["ios-app"], "web-client": ["web-app"]}'}
# Short, so that a request whose events the proxy throttles is answered quickly.
FLYHIGH_LAMBDA_INGEST_REQUEST_BUDGET_MS=${FLYHIGH_LAMBDA_INGEST_REQUEST_BUDGET_MS:-2000}
# Seconds to wait for a service to come up, and for one to stop after SIGTERM.
FLYHIGH_START_TIMEOUT=${FLYHIGH_START_TIMEOUT:-30}
FLYHIGH_STOP_TIMEOUT=${FLYHIGH_STOP_TIMEOUT:-10}

# "name:pid" of every service started by this shell, in start order.
_FLYHIGH_SERVICES=()

_svc_log() { printf '[services] %s\n' "$*" >&2; }

# The bootstrap interpreter, used to create the venv.
_svc_python() { printf '%s\n' "${PYTHON:-python3}"; }

# Creates .venv if it is missing or broken, and installs requirements-test.txt
# into it when the file changed since the last successful install (a sha256
# stamp in .venv; a clean clone has no usable mtimes).
ensure_venv() {
  local req="$FLYHIGH_ROOT/requirements-test.txt"
  local stamp="$FLYHIGH_VENV/.requirements-test.sha256"
  local want
  if ! "$FLYHIGH_VENV/bin/python" -c '' >/dev/null 2>&1; then
    _svc_log "creating $FLYHIGH_VENV"
    rm -rf "$FLYHIGH_VENV"
    "$(_svc_python)" -m venv "$FLYHIGH_VENV" || return 1
  fi
  want=$(sha256sum <"$req" | cut -d' ' -f1) || return 1
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
    _svc_log "venv up to date with requirements-test.txt"
  else
    _svc_log "installing requirements-test.txt into $FLYHIGH_VENV"
    rm -f "$stamp"
    PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
      "$FLYHIGH_VENV/bin/python" -m pip install -q -r "$req" || return 1
    printf '%s\n' "$want" >"$stamp"
  fi
  export FLYHIGH_PYTHON="$FLYHIGH_VENV/bin/python"
  case ":$PATH:" in
    *":$FLYHIGH_VENV/bin:"*) ;;
    *) export PATH="$FLYHIGH_VENV/bin:$PATH" ;;
  esac
}

# Installs the pinned kinesalite into $FLYHIGH_KINESALITE_DIR/node_modules with
# `npm ci` when package-lock.json changed since the last successful install (a
# sha256 stamp in node_modules, as for the venv). Needs node and npm (>= 7).
#
# --omit=optional leaves out leveldown, kinesalite's only native dependency: it
# is loaded only for an on-disk store (--path), and the tests run in memory.
# --ignore-scripts: nothing left needs an install script, so no compiler or
# node-gyp is ever involved. From an empty npm cache this takes about 2 s.
ensure_kinesalite() {
  local dir=$FLYHIGH_KINESALITE_DIR
  local stamp="$dir/node_modules/.package-lock.sha256"
  local want
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    _svc_log "kinesalite needs node and npm (Node.js >= 16) on PATH"
    return 1
  fi
  want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1) || return 1
  if [[ -f $stamp && $(<"$stamp") == "$want" && -f $dir/node_modules/kinesalite/index.js ]]; then
    _svc_log "kinesalite up to date with scripts/kinesalite/package-lock.json"
  else
    _svc_log "installing kinesalite into ${dir#"$FLYHIGH_ROOT"/}/node_modules (npm ci)"
    # npm ci starts by removing node_modules, stamp included.
    (cd "$dir" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error) ||
      return 1
    printf '%s\n' "$want" >"$stamp"
  fi
}

# The dashboard check's browser: Debian's chromium (apt-get, about a minute, only
# when /usr/bin/chromium is missing; Playwright's own browser download does not
# work here) and the pinned playwright-core that drives it
# (scripts/browser/package-lock.json, installed only when that changed).
ensure_browser_tools() {
  local dir=$FLYHIGH_BROWSER_DIR
  local stamp="$dir/node_modules/.package-lock.sha256"
  local want sudo=()
  if [[ ! -x /usr/bin/chromium ]]; then
    ((EUID == 0)) || sudo=(sudo)
    _svc_log "installing chromium (apt-get install -y chromium)"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y chromium >/dev/null ||
      { "${sudo[@]}" apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y chromium >/dev/null; } ||
      return 1
  fi
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    _svc_log "the dashboard check needs node and npm on PATH"
    return 1
  fi
  want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1) || return 1
  if [[ -f $stamp && $(<"$stamp") == "$want" && -f $dir/node_modules/playwright-core/index.mjs ]]; then
    _svc_log "playwright-core up to date with scripts/browser/package-lock.json"
  else
    _svc_log "installing playwright-core into ${dir#"$FLYHIGH_ROOT"/}/node_modules (npm ci)"
    (cd "$dir" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error) ||
      return 1
    printf '%s\n' "$want" >"$stamp"
  fi
}

# Prints a TCP port that is free on 127.0.0.1 right now.
free_port() {
  "$(_svc_python)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Prints a TCP port free on 127.0.0.1 right now, below the kernel's ephemeral
# range: for a port chosen now and bound later (FLYHIGH_INGEST_PROXY_PORT), which
# a test's bind to port 0, or an outgoing connection, must not take meanwhile.
free_port_outside_ephemeral() {
  "$(_svc_python)" -c '
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(1000):
    port = random.randrange(10000, max(10001, low))
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free port below the ephemeral range")
'
}

# Exports the standard AWS environment for tests, pointing at moto.
export_aws_test_env() {
  : "${FLYHIGH_MOTO_URL:?start moto first}"
  export AWS_ENDPOINT_URL="$FLYHIGH_MOTO_URL"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true
  # A developer's own profile or session must never reach the tests.
  unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN
}

# True when something accepts TCP connections on 127.0.0.1:$1.
_svc_port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True when the process exists and is not a zombie.
_svc_alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $stat && $stat != Z* ]]
}

# Prints every descendant pid of $1, depth first.
_svc_descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    printf '%s\n' "$child"
    _svc_descendants "$child"
  done
}

# _svc_spawn NAME LOG DIR CMD...: starts CMD in DIR, in the background, as the
# leader of a new session and process group, stdin closed, output to LOG.
# Records it for stop_services; sets REPLY to its pid.
_svc_spawn() {
  local name=$1 log=$2 dir=$3
  shift 3
  mkdir -p "$(dirname "$log")"
  if [[ $- == *m* ]]; then
    # Job control already gives a background job its own process group, and
    # setsid would fork (then $! would not be the service).
    (cd "$dir" && exec "$@") </dev/null >"$log" 2>&1 &
  else
    (cd "$dir" && exec setsid "$@") </dev/null >"$log" 2>&1 &
  fi
  REPLY=$!
  _FLYHIGH_SERVICES+=("$name:$REPLY")
}

# _svc_wait_until DESCRIPTION PID LOG CMD...: polls CMD until it succeeds, for
# at most FLYHIGH_START_TIMEOUT seconds; fails early if PID exits.
_svc_wait_until() {
  local what=$1 pid=$2 log=$3
  shift 3
  local deadline=$((SECONDS + FLYHIGH_START_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! _svc_alive "$pid"; then
      _svc_log "$what exited before it was ready; last lines of $log:"
      tail -n 30 "$log" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      _svc_log "$what not ready after ${FLYHIGH_START_TIMEOUT}s; last lines of $log:"
      tail -n 30 "$log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

# start_moto [PORT] [LOG]: starts moto server and exports FLYHIGH_MOTO_URL,
# FLYHIGH_MOTO_PID and the AWS test environment.
#
# Not the plain `moto_server` command but scripts/moto_server.py, which starts
# the same server after patching moto 5.2's DynamoDB TransactWriteItems: as
# released it deep-copies the whole table once per item of a transaction (a
# two-consumer run of 20,000 events grew moto past 7 GiB) and its rollback
# restores a snapshot that erases what other request threads committed
# meanwhile (a lost update real DynamoDB never makes). The launcher copies each
# table once per transaction and serializes DynamoDB requests with one lock; it
# refuses to start (and start_moto fails) when moto's internals differ from what
# it patches. See the file for details and docs/testing.md for the numbers.
start_moto() {
  local port=${1:-} log=${2:-$FLYHIGH_LOG_DIR/moto.log} pid
  [[ -n $port ]] || port=$(free_port) || return 1
  _svc_spawn moto "$log" "$FLYHIGH_ROOT" \
    "$FLYHIGH_VENV/bin/python" "$FLYHIGH_ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port"
  pid=$REPLY
  _svc_wait_until "moto_server (pid $pid, port $port)" "$pid" "$log" \
    curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$port/moto-api/" || return 1
  export FLYHIGH_MOTO_URL="http://127.0.0.1:$port"
  # Tests read the server's peak memory from /proc/$FLYHIGH_MOTO_PID/status.
  export FLYHIGH_MOTO_PID=$pid
  export_aws_test_env
  _svc_log "moto_server pid $pid at $FLYHIGH_MOTO_URL (log: ${log#"$FLYHIGH_ROOT"/})"
}

# A Kinesis ListStreams call on 127.0.0.1:$1, as the SDK sends it (kinesalite
# checks that a SigV4-shaped Authorization header is present, not the
# signature); fails unless it answers 200.
_svc_kinesis_list_streams() {
  curl -sf --max-time 2 -o /dev/null -X POST "http://127.0.0.1:$1/" \
    -H 'Content-Type: application/x-amz-json-1.1' \
    -H 'X-Amz-Target: Kinesis_20131202.ListStreams' \
    -H 'X-Amz-Date: 20260101T000000Z' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=0' \
    -d '{}'
}

# start_kinesalite [PORT] [LOG]: starts kinesalite in memory on 127.0.0.1 and
# exports FLYHIGH_KINESALITE_URL. Call ensure_kinesalite first.
#
# Options: streams become ACTIVE (and are deleted, resharded) at once instead of
# after 500 ms, so tests do not wait; the shard limit (default 10 open shards
# over all streams, like a new AWS account) is raised because a test run creates
# many streams in one server and never needs the limit error.
start_kinesalite() {
  local port=${1:-} log=${2:-$FLYHIGH_LOG_DIR/kinesalite.log} pid
  [[ -n $port ]] || port=$(free_port) || return 1
  [[ -f $FLYHIGH_KINESALITE_DIR/node_modules/kinesalite/index.js ]] || {
    _svc_log "kinesalite is not installed; run ensure_kinesalite first"
    return 1
  }
  _svc_spawn kinesalite "$log" "$FLYHIGH_KINESALITE_DIR" node server.js --port "$port" \
    --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0 \
    --shardLimit "${FLYHIGH_KINESALITE_SHARD_LIMIT:-100000}"
  pid=$REPLY
  _svc_wait_until "kinesalite (pid $pid, port $port)" "$pid" "$log" \
    _svc_kinesis_list_streams "$port" || return 1
  export FLYHIGH_KINESALITE_URL="http://127.0.0.1:$port"
  _svc_log "kinesalite pid $pid at $FLYHIGH_KINESALITE_URL (log: ${log#"$FLYHIGH_ROOT"/})"
}

# Builds exactly what `cargo lambda watch` runs: each Lambda package on its own
# (`cargo build --package P`), so with its own features, as `cargo run
# --package P` resolves them.
build_lambdas() {
  local p locked=()
  [[ -f $FLYHIGH_ROOT/Cargo.lock ]] && locked=(--locked)
  for p in "${FLYHIGH_LAMBDA_PACKAGES[@]}"; do
    cargo build --package "$p" "${locked[@]}" || return 1
  done
}

# start_lambda_watch: starts one `cargo lambda watch` per Lambda package, each on
# a free port, with the AWS environment of moto, and exports
# FLYHIGH_LAMBDA_URL_<PACKAGE> and FLYHIGH_LAMBDA_URL. They compile nothing until
# a function is invoked (--wait).
start_lambda_watch() {
  : "${FLYHIGH_MOTO_URL:?start moto first}"
  local port log pid p var
  export_aws_test_env
  # The functions' configuration, exported to the tests under the same names.
  # moto's queue URLs are <endpoint>/<account>/<name>, account 123456789012, and
  # its ARNs name that account and AWS_REGION.
  export INVENTORY_TABLE="$FLYHIGH_LAMBDA_INVENTORY_TABLE"
  export DEAD_LETTER_QUEUE_URL="$FLYHIGH_MOTO_URL/123456789012/$FLYHIGH_LAMBDA_DLQ_NAME"
  export DEMAND_TABLE="$FLYHIGH_LAMBDA_DEMAND_TABLE"
  export ALERTS_TABLE="$FLYHIGH_LAMBDA_ALERTS_TABLE"
  export ALERTS_TOPIC_ARN="arn:aws:sns:$AWS_REGION:123456789012:$FLYHIGH_LAMBDA_ALERTS_TOPIC"
  export ARCHIVE_BUCKET="$FLYHIGH_LAMBDA_ARCHIVE_BUCKET"
  export CHECKPOINT_TABLE="$FLYHIGH_LAMBDA_CHECKPOINT_TABLE"
  # Given to the functions explicitly (on top of the environment they inherit).
  local env_file=$FLYHIGH_LOG_DIR/lambda.env
  mkdir -p "$FLYHIGH_LOG_DIR"
  {
    echo "INVENTORY_TABLE=$INVENTORY_TABLE"
    echo "DEAD_LETTER_QUEUE_URL=$DEAD_LETTER_QUEUE_URL"
    echo "DEMAND_TABLE=$DEMAND_TABLE"
    echo "ALERTS_TABLE=$ALERTS_TABLE"
    echo "ALERTS_TOPIC_ARN=$ALERTS_TOPIC_ARN"
    echo "ARCHIVE_BUCKET=$ARCHIVE_BUCKET"
    echo "ARCHIVE_PREFIX=archive"
    echo "CHECKPOINT_TABLE=$CHECKPOINT_TABLE"
    echo "RUST_LOG=${FLYHIGH_LAMBDA_RUST_LOG:-info}"
  } >"$env_file"
  # ingest-lambda: Kinesis through the ingest test's FaultProxy on a port chosen
  # now (nothing listens there until the test binds it), DynamoDB in moto.
  FLYHIGH_INGEST_PROXY_PORT=$(free_port_outside_ephemeral) || return 1
  export FLYHIGH_INGEST_PROXY_PORT
  export FLYHIGH_INGEST_STREAM="$FLYHIGH_LAMBDA_INGEST_STREAM"
  export FLYHIGH_INGEST_LEDGER_TABLE="$FLYHIGH_LAMBDA_INGEST_LEDGER_TABLE"
  export FLYHIGH_INGEST_CALLER_SOURCES="$FLYHIGH_LAMBDA_INGEST_CALLER_SOURCES"
  export FLYHIGH_INGEST_REQUEST_BUDGET_MS="$FLYHIGH_LAMBDA_INGEST_REQUEST_BUDGET_MS"
  unset FLYHIGH_LAMBDA_URL
  local -a started=()
  for p in "${FLYHIGH_LAMBDA_PACKAGES[@]}"; do
    port=$(free_port) || return 1
    log=$FLYHIGH_LOG_DIR/lambda-watch-$p.log
    # Variables of this package's function only (`env` in front of cargo-lambda,
    # whose environment the function inherits).
    local only=()
    if [[ $p == ingest-lambda ]]; then
      only=(env
        "AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$FLYHIGH_INGEST_PROXY_PORT"
        "STREAM_NAME=$FLYHIGH_INGEST_STREAM"
        "LEDGER_TABLE=$FLYHIGH_INGEST_LEDGER_TABLE"
        "CALLER_SOURCES=$FLYHIGH_INGEST_CALLER_SOURCES"
        "REQUEST_BUDGET_MS=$FLYHIGH_INGEST_REQUEST_BUDGET_MS")
    fi
    local args=(lambda watch
      --invoke-address 127.0.0.1 --invoke-port "$port"
      --wait --ignore-changes --color never
      --manifest-path "$FLYHIGH_ROOT/Cargo.toml"
      --package "$p" --env-file "$env_file")
    [[ -f $FLYHIGH_ROOT/Cargo.lock ]] && args+=(--locked)
    _svc_spawn "lambda-watch-$p" "$log" "$FLYHIGH_ROOT" "${only[@]}" "$FLYHIGH_VENV/bin/cargo-lambda" "${args[@]}"
    started+=("$p $REPLY $port $log")
  done
  # Each watch reads the workspace's metadata before it listens (about 15 s here,
  # more with several at once): all start together, then each is waited for.
  local FLYHIGH_START_TIMEOUT=${FLYHIGH_LAMBDA_START_TIMEOUT:-180}
  local entry
  for entry in "${started[@]}"; do
    read -r p pid port log <<<"$entry"
    # A TCP connect, not an HTTP request: every path it does not route (even
    # GET /) is a function-URL call that starts and invokes the default function.
    _svc_wait_until "cargo lambda watch $p (pid $pid, port $port)" "$pid" "$log" \
      _svc_port_open "$port" || return 1
    var=FLYHIGH_LAMBDA_URL_$(printf '%s' "$p" | tr '[:lower:]-' '[:upper:]_')
    export "$var=http://127.0.0.1:$port"
    : "${FLYHIGH_LAMBDA_URL:=http://127.0.0.1:$port}"
    export FLYHIGH_LAMBDA_URL
    _svc_log "cargo lambda watch pid $pid at http://127.0.0.1:$port serving $p ($var; log: ${log#"$FLYHIGH_ROOT"/})"
  done
}

# stop_pid_tree NAME PID [GRACE]: SIGTERM to PID's process group and every
# descendant (watchexec puts function instances in their own groups), waits up
# to GRACE seconds (default FLYHIGH_STOP_TIMEOUT), then SIGKILLs what is left.
# Never fails.
stop_pid_tree() {
  local name=$1 pid=$2 grace=${3:-$FLYHIGH_STOP_TIMEOUT} p deadline
  local -a left
  local -A tree=()
  _svc_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  tree[$pid]=1
  for p in $(_svc_descendants "$pid"); do tree[$p]=1; done
  kill -TERM -- "-$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while :; do
    # Children may still appear while it shuts down; keep collecting them.
    for p in $(_svc_descendants "$pid"); do tree[$p]=1; done
    left=()
    for p in "${!tree[@]}"; do _svc_alive "$p" && left+=("$p"); done
    ((${#left[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      _svc_log "$name: still running ${grace}s after SIGTERM, SIGKILL ${left[*]}"
      for p in "${left[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
      kill -KILL "${left[@]}" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true
  _svc_log "$name (pid $pid) stopped"
}

# Grace period after SIGTERM for a service. moto handles SIGTERM with
# sys.exit, but after a heavy test run the interpreter spends many seconds
# freeing its in-memory state (seen: still exiting 13 s later, main thread busy
# with an empty Python stack); that state is disposable, so it gets little time.
_svc_grace() {
  case $1 in
    moto) printf '%s\n' "${FLYHIGH_MOTO_STOP_TIMEOUT:-3}" ;;
    *) printf '%s\n' "$FLYHIGH_STOP_TIMEOUT" ;;
  esac
}

# Stops every service this shell started, newest first, and waits for them.
stop_services() {
  local i entry name
  for ((i = ${#_FLYHIGH_SERVICES[@]} - 1; i >= 0; i--)); do
    entry=${_FLYHIGH_SERVICES[i]}
    name=${entry%%:*}
    stop_pid_tree "$name" "${entry#*:}" "$(_svc_grace "$name")"
  done
  _FLYHIGH_SERVICES=()
}
