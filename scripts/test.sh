#!/usr/bin/env bash
#
# The project's one test command: `scripts/test.sh` (CI runs it through .ci/run).
#
# On a fresh machine it needs only rustup cargo, python3 with pip, node with
# npm and network access to the package registries. It
#   1. creates .venv and installs requirements-test.txt (moto, cargo-lambda,
#      pyarrow, duckdb) when that file changed, and installs the pinned
#      kinesalite (scripts/kinesalite/package-lock.json) when that changed,
#   2. starts moto server, kinesalite and `cargo lambda watch` on free
#      127.0.0.1 ports,
#   3. builds and tests the workspace with the services' addresses exported
#      (see scripts/lib/services.sh for the variable names),
#   4. runs the producer soaks (memory under 100% throttling, 20 s; the same with
#      a 5-second record TTL, 30 s; partial throttling after a throttle-free
#      baseline: 30% of records at random, then a per-shard allowance of 0.7 of
#      the offered load, about 70 s with their drains), the `flyhigh serve` checks
#      (scripts/serve_checks.py: HTTP, kill -9 and a clean stop, idempotency, a
#      surge's alert within two buckets, about 3 minutes), the dashboard in a
#      real browser (scripts/dashboard_check.mjs; installs Debian's chromium and
#      the pinned playwright-core when missing) and scripts/smoke.sh when there
#      is one,
# and stops the services on every exit path. Exits non-zero when any step
# fails. Service logs: target/test-logs/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
FLYHIGH_ROOT=$(pwd)
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

started_at=$SECONDS
export RUST_BACKTRACE=1
if [[ ${CI:-} == true ]]; then
  export CARGO_TERM_COLOR=never
  # A clean clone gains nothing from incremental caches, which would add several
  # GB to target/ (disk is what a CI machine has least of).
  export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
fi

header() { printf '\n==> %s\n' "$*"; }

elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

results=()
failed=0

# step NAME CMD...: runs CMD under a header, records whether it passed and how
# long it took.
step() {
  local name=$1 t0=$SECONDS rc=0
  shift
  header "$name: $*"
  "$@" || rc=$?
  if ((rc == 0)); then
    results+=("ok     $(elapsed $((SECONDS - t0)))  $name")
  else
    results+=("FAILED $(elapsed $((SECONDS - t0)))  $name (exit $rc)")
    failed=1
  fi
  return "$rc"
}

skip() { results+=("skip            $1"); }

# Stops the services on every exit path (set before anything starts, so a
# failure while starting still stops what did start), then prints the summary.
# shellcheck disable=SC2329 # invoked by the EXIT trap
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  header "stopping services"
  stop_services
  header "summary"
  ((${#results[@]} == 0)) || printf '  %s\n' "${results[@]}"
  printf 'total %s; service logs in target/test-logs/\n' "$(elapsed $((SECONDS - started_at)))"
  # Disk is the resource a failed link points to first (SIGBUS from ld).
  printf 'target/ holds %s; %s free on its disk\n' \
    "$(du -sh target 2>/dev/null | cut -f1)" "$(df -h --output=avail target 2>/dev/null | tail -1 | tr -d ' ')"
  if ((rc == 0)); then echo "all steps passed"; else echo "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "python test tools (.venv)" ensure_venv || exit 1
step "node test tools (scripts/kinesalite)" ensure_kinesalite || exit 1
step "moto server" start_moto || exit 1
step "kinesalite" start_kinesalite || exit 1
step "cargo lambda watch" start_lambda_watch || exit 1

locked=()
if [[ -f Cargo.lock ]]; then
  locked=(--locked)
fi
if step "build" cargo build --workspace --all-targets "${locked[@]}" &&
  step "build lambdas as cargo lambda watch runs them" build_lambdas; then
  step "tests" cargo test --workspace --all-targets "${locked[@]}" || true
  step "doc tests" cargo test --workspace --doc "${locked[@]}" || true
  step "infra lint" cfn-lint infra/*.yaml || true
  # Memory under 100% throttling: peak RSS within the producer's budget + 64 MiB
  # and `send` held back (the 60-second run is in the README's benchmark section).
  # The binary from the workspace build above (`cargo run -p` would rebuild the
  # producer with that one package's features).
  step "producer soak, 100% throttled, 20 s" target/debug/producer-load soak --seconds 20 || true
  # The same bound while records expire (5 s TTL) and are dead-lettered to the
  # file as they go: every accepted record must be in the file.
  step "producer soak, 100% throttled with 5 s TTL, 30 s" target/debug/producer-load soak --seconds 30 --ttl-secs 5 || true
  # 4,000 events/s offered after a 10-second baseline without faults, then 30% of
  # records throttled at random, then each shard allowed 0.7 of its offered bytes
  # (as Kinesis throttles): nothing lost (what is left after a 15-second drain is
  # dead-lettered, in the file), requests/s within the retry-storm bound, and at
  # least half the allowance written.
  step "producer partial throttling, 30% random and a 0.7 shard allowance, 15 s each" target/debug/producer-load partial --seconds 15 --drain-seconds 15 || true
  # `flyhigh serve` from a client that is not ours (Python's standard library): every
  # status over real HTTP; SIGKILL three times and SIGTERM once while six clients
  # post, restart, the clients resend what got no 2xx, and every event is in the inventory, the demand
  # counters and the archive exactly once; every request sent twice (in sequence and
  # concurrently) leaves the same stores as sent once.
  step "serve: the ingest API over HTTP" "$FLYHIGH_PYTHON" scripts/serve_checks.py http || true
  step "serve: kill -9 while clients post" "$FLYHIGH_PYTHON" scripts/serve_checks.py kill9 || true
  step "serve: every request twice" "$FLYHIGH_PYTHON" scripts/serve_checks.py idempotency || true
  step "serve: a surge alerted within two buckets" "$FLYHIGH_PYTHON" scripts/serve_checks.py surge || true
  # The dashboard in a real browser (Debian's chromium driven by playwright-core):
  # hot routes and a surge alert appear without a reload, stale within seconds of
  # SIGTERM, resumed after a restart, eight tabs on one shared stream, no request
  # off 127.0.0.1; screenshot in target/test-logs/dashboard.png.
  if step "browser tools (chromium, scripts/browser)" ensure_browser_tools; then
    step "serve: the dashboard in a browser" node scripts/dashboard_check.mjs --flyhigh target/debug/flyhigh --out target/test-logs || true
  fi
  if [[ -x scripts/smoke.sh ]]; then
    step "smoke" scripts/smoke.sh || true
  elif [[ -e scripts/smoke.sh ]]; then
    # A lost executable bit must not silently skip a test.
    results+=("FAILED         smoke (scripts/smoke.sh is not executable)")
    failed=1
  else
    skip "smoke (no scripts/smoke.sh)"
  fi
else
  skip "tests, doc tests, smoke (build failed)"
fi

exit "$failed"
