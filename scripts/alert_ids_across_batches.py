#!/usr/bin/env python3
"""Runs `flyhigh demo` at several batch sizes and checks that the alert ids do not change.

For every seed, day (surge, ordinary) and events file (none, the hostile sample of
`flyhigh events hostile`), the demo runs once per batch size. Each run must exit 0
with every check ok (inventory, demand counts, archive rows); the alert ids of one
(seed, day, file) must be the same at every batch size; a surge day must raise one
`route_surge`, on the simulated surge route, within two minutes of its start, and an
ordinary day none. Prints one line per run and a table; exits 1 on any difference.

    scripts/alert_ids_across_batches.py --flyhigh target/release/flyhigh \\
        --seeds 7 9 42 --batch-sizes 37 500 10000 --hostile
"""

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path


def run_demo(flyhigh, out, seed, events, batch, surge, events_file):
    cmd = [flyhigh, "demo", "--seed", str(seed), "--events", str(events),
           "--batch-size", str(batch), "--poison-every", "0", "--out", str(out)]
    if not surge:
        cmd.append("--no-surge")
    if events_file:
        cmd += ["--events-file", str(events_file)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    took = time.monotonic() - t0
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return proc, summary, took


def parse_time(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flyhigh", default="target/release/flyhigh")
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 9, 42])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[37, 500, 10000])
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--days", nargs="+", choices=["surge", "ordinary"], default=["surge", "ordinary"])
    ap.add_argument("--hostile", action="store_true", help="also with the hostile events file")
    ap.add_argument("--only-hostile", action="store_true", help="only with the hostile events file")
    ap.add_argument("--out", default="target/alert-ids")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = [] if args.only_hostile else [None]
    if args.hostile or args.only_hostile:
        hostile = out / "hostile.ndjson"
        subprocess.run([args.flyhigh, "events", "hostile", "--out", str(hostile)], check=True,
                       stdout=subprocess.DEVNULL)
        files.append(hostile)

    failures = []
    rows = []
    for seed in args.seeds:
        for day in args.days:
            for events_file in files:
                label = f"seed {seed} {day}{' + hostile' if events_file else ''}"
                ids_by_batch = {}
                for batch in args.batch_sizes:
                    run_out = out / f"s{seed}-{day}-{'h' if events_file else 'p'}-b{batch}"
                    proc, s, took = run_demo(args.flyhigh, run_out, seed, args.events, batch,
                                             day == "surge", events_file)
                    if proc.returncode != 0 or s is None:
                        failures.append(f"{label} batch {batch}: exit {proc.returncode}: {proc.stderr[-500:]}")
                        continue
                    checks = {
                        "inventory": s["inventory_check"] == "ok",
                        "demand_counts": s["demand"]["counts_check"],
                        "archive_rows": s["archive"]["rows_check"],
                    }
                    for name, ok in checks.items():
                        if not ok:
                            failures.append(f"{label} batch {batch}: {name} check failed")
                    items = s["alerts"]["items"]
                    ids = sorted(a["alert_id"] for a in items)
                    ids_by_batch[batch] = ids
                    surges = [a for a in items if a["rule"] == "route_surge"]
                    if day == "surge":
                        route, start = s["demand"]["surge_route"], s["demand"]["surge_start"]
                        lags = [(parse_time(a["detected_at"]) - parse_time(start)).total_seconds()
                                for a in surges]
                        if [a["route"] for a in surges] != [route] or not all(0 < l <= 120 for l in lags):
                            failures.append(f"{label} batch {batch}: surges {[(a['route'], a['detected_at']) for a in surges]}"
                                            f" for {route} from {start}")
                    elif surges:
                        failures.append(f"{label} batch {batch}: {len(surges)} surges on an ordinary day")
                    flight = sum(1 for a in items if a["rule"] != "route_surge")
                    cleared = s["alerts"].get("cleared", 0)
                    print(f"{label:<26} batch {batch:>6}: {len(ids):>3} alerts ({len(surges)} surge, {flight} flight,"
                          f" {cleared} cleared), checks {'ok' if all(checks.values()) else 'FAILED'},"
                          f" {s['events_produced']['total']} events, {took:.1f} s", flush=True)
                distinct = {tuple(v) for v in ids_by_batch.values()}
                same = len(distinct) == 1 and len(ids_by_batch) == len(args.batch_sizes)
                if len(distinct) > 1:
                    base_batch, base = next(iter(ids_by_batch.items()))
                    for batch, ids in ids_by_batch.items():
                        if ids != base:
                            failures.append(f"{label}: batch {batch} differs from batch {base_batch}:"
                                            f" only in {batch}: {sorted(set(ids) - set(base))[:5]},"
                                            f" only in {base_batch}: {sorted(set(base) - set(ids))[:5]}")
                rows.append((label, {b: len(v) for b, v in ids_by_batch.items()}, same))

    print()
    print(f"{'run':<26} " + " ".join(f"{b:>7}" for b in args.batch_sizes) + "  identical ids")
    for label, counts, same in rows:
        print(f"{label:<26} " + " ".join(f"{counts.get(b, '-'):>7}" for b in args.batch_sizes)
              + f"  {'yes' if same else 'NO'}")
    if failures:
        print("\nFAILED:", *failures, sep="\n  ")
        return 1
    print("\nevery run ok; alert ids identical at every batch size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
