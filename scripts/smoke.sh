#!/usr/bin/env bash
#
# Runs the `flyhigh` CLI as a user would and checks what it reports:
#   1. `demo` on the embedded default (small run), summary JSON checked;
#   2. `inventory show` for every oversold cabin of a demo summary agrees with it
#      (a full-size demo, which oversells), and `inventory list --oversold` finds them;
#   3. the hot-route alerts of a surge day and of an ordinary day (`--no-surge`),
#      `alerts list` and `routes top` on the demo's demand.sqlite;
#   4. the full demo's archive read by pyarrow and DuckDB (scripts/archive_readers.py):
#      rows equal the events produced, no event_id twice, every hour compacted,
#      every query of docs/analytics.md runs; `archive summary` and a second
#      `archive compact` (nothing to do);
#   5. a hostile day (`flyhigh events hostile`, `demo --events-file`) at batch sizes 37
#      and 10,000: every check ok, the surge found, the same alert ids;
#   6. `setup`, `produce`, `consume`, `check` against moto through AWS_ENDPOINT_URL.
# Called by scripts/test.sh with moto started and the AWS test environment exported.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${AWS_ENDPOINT_URL:?run through scripts/test.sh (needs moto)}"
py=${FLYHIGH_PYTHON:-python3}
out=target/smoke
rm -rf "$out"
mkdir -p "$out"
# The same selection as scripts/test.sh builds, so this is a no-op there.
cargo build -q --workspace --all-targets
flyhigh=target/debug/flyhigh

echo "--- demo, 30000 events"
$flyhigh demo --events 30000 --seed 7 --poison-every 10000 --out "$out/demo" --summary-json "$out/demo.json"
"$py" - "$out/demo.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["inventory_check"] == "ok", s["inventory_check"]
assert s["events_produced"]["total"] == 30000, s["events_produced"]
p = s["events_produced"]
assert p["search"] > p["booking"] > p["cancellation"] > 0, p
assert s["events_consumed"] == 30000, s["events_consumed"]
assert s["dead_lettered"] == s["poison_records_injected"] == 3, (s["dead_lettered"], s["poison_records_injected"])
assert s["events_per_second"] > 0
# The producer aggregated (many events per Kinesis record) and gave up on nothing.
assert s["producer"]["dead_lettered"] == 0 and s["producer"]["kinesis_records"] * 10 < 30003, s["producer"]
print("demo summary ok:", {k: s[k] for k in ("events_consumed", "dead_lettered", "events_per_second")})
PY

# Asserts that `flyhigh inventory show` on a demo's SQLite file agrees with the
# demo's summary for every oversold cabin, and `inventory list --oversold` lists
# exactly those; with a third argument `some`, that there is at least one.
check_oversold() {
  "$py" - "$flyhigh" "$1" "$2" "${3:-}" <<'PY'
import json, subprocess, sys
flyhigh, summary, db, need = sys.argv[1:5]
s = json.load(open(summary))
oversold = s["inventory"]["oversold"]
assert len(oversold) == s["inventory"]["oversold_cabins"], (len(oversold), s["inventory"]["oversold_cabins"])
assert need != "some" or oversold, "the demo oversold nothing: the check would be vacuous"
def run(*args):
    return json.loads(subprocess.run([flyhigh, *args, "--sqlite", db, "--json"], check=True, capture_output=True, text=True).stdout)
shown = {}
for flight in sorted({c["flight_id"] for c in oversold}):
    for cabin in run("inventory", "show", flight)["cabins"]:
        shown[(flight, cabin["cabin"])] = cabin
for c in oversold:
    got = shown[(c["flight_id"], c["cabin"])]
    for field in ("capacity", "sold", "oversold"):
        assert got[field] == c[field], (c, got)
    assert got["scheduled"] and got["available"] == 0, got
listed = {(c["flight_id"], c["cabin"]) for c in run("inventory", "list", "--oversold")}
assert listed == {(c["flight_id"], c["cabin"]) for c in oversold}, (listed, oversold)
print(f"inventory show agrees with {summary} for {len(oversold)} oversold cabins")
PY
}
check_oversold "$out/demo.json" "$out/demo/inventory.sqlite"

echo "--- demo, 200000 events (oversells), then inventory show for every oversold cabin"
$flyhigh demo --seed 7 --poison-every 0 --out "$out/demo-full" >"$out/demo-full.log"
check_oversold "$out/demo-full/summary.json" "$out/demo-full/inventory.sqlite" some

echo "--- hot routes: the surge day's alerts, alerts list, routes top"
$flyhigh alerts list --sqlite "$out/demo-full/demand.sqlite" --json >"$out/alerts-list.json"
start=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["demand"]["surge_start"])' "$out/demo-full/summary.json")
# Five minutes into the surge, in event time.
at=$("$py" -c 'import sys,datetime as d; t=d.datetime.fromisoformat(sys.argv[1].replace("Z","+00:00"))+d.timedelta(minutes=5); print(t.strftime("%Y-%m-%dT%H:%M:%SZ"))' "$start")
$flyhigh routes top --sqlite "$out/demo-full/demand.sqlite" --window 15m --at "$at" --limit 3 --json >"$out/routes-top.json"
$flyhigh routes top --sqlite "$out/demo-full/demand.sqlite" --at "$at" --limit 3
"$py" - "$out/demo-full/summary.json" "$out/demo-full/alerts.jsonl" "$out/alerts-list.json" "$out/routes-top.json" <<'PY'
import json, sys, datetime as dt
s = json.load(open(sys.argv[1]))
published = [json.loads(line) for line in open(sys.argv[2])]
listed = json.load(open(sys.argv[3]))
top = json.load(open(sys.argv[4]))
alerts = s["alerts"]
assert alerts["items"] == published, "summary items are the alerts exactly as published"
assert alerts["count"] == len(published) == len(listed), (alerts["count"], len(published), len(listed))
assert all(a["published_at"] for a in listed), "every alert marked published"
surges = [a for a in published if a["rule"] == "route_surge"]
route, start = s["demand"]["surge_route"], s["demand"]["surge_start"]
assert [a["route"] for a in surges] == [route], (surges, route)
t = lambda x: dt.datetime.fromisoformat(x.replace("Z", "+00:00"))
lag = (t(surges[0]["detected_at"]) - t(start)).total_seconds()
assert 0 < lag <= 120, f"detected {lag} s after the surge began"
# Every cabin the inventory reports oversold has its alert; an alert for a cabin no
# longer oversold (a later cancellation brought it back) was true when raised.
oversold = {(c["flight_id"], c["cabin"]) for c in s["inventory"]["oversold"]}
flight_alerts = [a for a in published if a["rule"] == "oversold" and a["status"] == "raised"]
alerted = {(a["flight_id"], a["cabin"]) for a in flight_alerts}
assert oversold and alerted >= oversold, (alerted, oversold)
assert all(a["sold"] > a["capacity"] for a in flight_alerts), flight_alerts
# A clearance names the alert it clears, which was published, and was true when sent.
ids = {a["alert_id"] for a in published}
for c in (a for a in published if a["status"] == "cleared"):
    assert c["clears"] in ids and c["alert_id"] == c["clears"] + ":cleared", c
    assert c["rule"] != "oversold" or c["sold"] <= c["capacity"], c
assert s["demand"]["counts_check"], s["demand"]
assert top[0]["route"] == route and top[0]["ratio"] > 3, top[0]
print("hot routes ok:", {"alerts": alerts["by_rule"], "surge": route, "detected_after_s": lag})
PY

echo "--- archive: the full demo's Parquet read by pyarrow and DuckDB, the documented queries, compaction"
"$py" scripts/archive_readers.py --dir "$out/demo-full/archive" >"$out/archive-readers.json"
$flyhigh archive summary --dir "$out/demo-full/archive" --json >"$out/archive-summary.json"
$flyhigh archive summary --dir "$out/demo-full/archive"
"$py" - "$out/demo-full/summary.json" "$out/archive-readers.json" "$out/archive-summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
seen = json.load(open(sys.argv[2]))
summary = json.load(open(sys.argv[3]))
a = s["archive"]
p = s["events_produced"]
assert a["rows_check"], a
for key in ("files", "rows", "bytes"):
    assert a[key] == summary[key] and a[key] > 0, (key, a[key], summary[key])
for table, event_type in (("searches", "search"), ("bookings", "booking"), ("cancellations", "cancellation")):
    t = seen["tables"][table]
    # Every event once: what pyarrow reads is what was produced, no event_id twice.
    assert t["rows"] == t["distinct_event_ids"] == p[event_type] == a["by_event_type"][event_type]["rows"], (table, t["rows"], p[event_type])
# Compacted: no partition left with a batch file or more than one small file.
assert a["partitions_not_compact"] == [], a["partitions_not_compact"]
assert a["compaction"]["compacted"], a["compaction"]
for name, q in seen["queries"].items():
    assert q["rows"], f"query {name} returned nothing"
top = seen["queries"]["demand_per_route_per_hour"]["rows"][0]
assert top[0] == s["demand"]["surge_route"], (top, s["demand"]["surge_route"])
print("archive ok:", {"files": a["files"], "rows": a["rows"], "bytes_per_event": round(a["bytes"] / a["rows"], 1),
                      "queries": sorted(seen["queries"]), "surge_hour": top[1]})
PY
# A second compaction finds nothing to do, and a rerun of the demo's compaction by
# hand is safe.
$flyhigh archive compact --dir "$out/demo-full/archive" --now 2026-12-03T00:00:00Z --json >"$out/compact-again.json"
"$py" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["compacted"] == [], r; print("compaction rerun: nothing to do")' "$out/compact-again.json"

echo "--- hot routes: an ordinary day raises no surge"
$flyhigh demo --seed 7 --poison-every 0 --no-surge --out "$out/demo-ordinary" >"$out/demo-ordinary.log"
"$py" - "$out/demo-ordinary/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
surges = [a for a in s["alerts"]["items"] if a["rule"] == "route_surge"]
assert not surges and s["demand"]["surge_route"] is None, surges
print("ordinary day ok:", s["alerts"]["by_rule"])
PY

echo "--- a hostile day: skewed clocks, events from 2000 and 2099, a 4,000-hour backlog, 4,000 searches on invented routes, invalid lines; the same alert ids at batch sizes 37 and 10,000"
# Each run must exit 0 with every check ok (inventory, demand counts, archive rows),
# detect the surge on the surge route within two buckets and on no other route, and
# raise the same alert ids at both batch sizes (the full matrix of seeds, days and
# batch sizes is the README's scripts/alert_ids_across_batches.py).
"$py" scripts/alert_ids_across_batches.py --flyhigh "$flyhigh" --seeds 9 --days surge \
  --batch-sizes 37 10000 --only-hostile --out "$out/alert-ids"
"$py" - "$out/alert-ids/s9-surge-h-b37/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
f = s["events_file"]
# The sample's invalid lines are rejected by line and field, and counted; the rest sent.
assert f["rejected"] == 4 and f["sent"] + f["rejected"] == f["lines"], f
assert all(r["line"] > 0 and r["reason"] for r in f["rejections"]), f["rejections"]
assert s["demand"]["handler"]["late"] + s["demand"]["handler"]["early"] > 0, s["demand"]["handler"]
print("hostile day ok:", {"sent": f["sent"], "rejected": f["rejected"], "alerts": s["alerts"]["by_rule"]})
PY

echo "--- schedule: generate, then load into the demo store again (idempotent, keeps sold)"
$flyhigh schedule generate --seed 7 --out "$out/schedule.json"
$flyhigh schedule load --file "$out/schedule.json" --sqlite "$out/demo/inventory.sqlite"
"$py" - "$out/schedule.json" "$out/demo/inventory.sqlite" "$out/demo.json" <<'PY'
import json, sqlite3, sys
schedule = json.load(open(sys.argv[1]))
cabins = sum(len(f["capacity"]) for f in schedule["flights"])
db = sqlite3.connect(sys.argv[2])
with_capacity = db.execute("select count(*) from cabins where capacity is not null").fetchone()[0]
sold = db.execute("select sum(sold) from cabins").fetchone()[0]
demo = json.load(open(sys.argv[3]))
assert with_capacity == cabins, (with_capacity, cabins)
assert sold == demo["inventory"]["seats_sold"], (sold, demo["inventory"]["seats_sold"])
print(f"schedule ok: {cabins} cabins with capacity, {sold} seats sold kept")
PY
$flyhigh check --seed 7 --events 30000 --sqlite "$out/demo/inventory.sqlite"

echo "--- AWS mode against $AWS_ENDPOINT_URL"
suffix=$$-$RANDOM
names=(--stream "smoke-events-$suffix" --table "smoke-inventory-$suffix"
  --dead-letter-queue "smoke-dlq-$suffix" --failure-queue "smoke-failures-$suffix")
$flyhigh setup "${names[@]}" --shards 2
$flyhigh produce "${names[@]}" --events 1500 --seed 11 --poison-every 500 --requests-in-flight 1 --dead-letters "$out/producer-dead-letters.jsonl" --summary-json "$out/produce.json"
$flyhigh consume "${names[@]}" --idle-seconds 3 --shard-concurrency 1 --summary-json "$out/consume.json"
$flyhigh check --events 1500 --seed 11 --table "smoke-inventory-$suffix" --summary-json "$out/check.json"
"$py" - "$out/produce.json" "$out/consume.json" "$out/check.json" <<'PY'
import json, sys
produce, consume, check = (json.load(open(p)) for p in sys.argv[1:4])
assert produce["events_produced"]["total"] == 1500 and produce["records_dead_lettered"] == 0, produce
# The producer aggregates: the consumer reads its Kinesis records and finds the
# 1,500 events and 3 poison records inside them.
assert consume["records_read"] == produce["kinesis_records"] < 1503, (consume["records_read"], produce["kinesis_records"])
assert consume["user_records"] == 1503, consume["user_records"]
assert consume["events_consumed"] == 1500, consume["events_consumed"]
assert consume["dead_lettered"] == 3, consume["dead_lettered"]
assert check["inventory_check"] == "ok", check
print("AWS mode ok:", {"records_read": consume["records_read"], "dead_lettered": consume["dead_lettered"], "inventory_check": check["inventory_check"]})
PY
echo "smoke: 7 passed, 0 failed"
