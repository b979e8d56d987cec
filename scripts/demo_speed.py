#!/usr/bin/env python3
"""What `flyhigh demo` costs, per processor, measured in one run against its
baselines: the same build runs the demo with no processor (the simulator and the
producer alone), with a decode-only mapping (what every processor pays before its
own work: taking each batch apart, checking the KPL aggregate's MD5, decoding and
validating every event), with each processor alone, and with all three; each
configuration RUNS times, interleaved, and the median is kept.

    scripts/demo_speed.py [--flyhigh target/release/flyhigh] [--events 200000] [--runs 3]
                          [--json FILE]

Prints, per configuration, events/s end to end and CPU (user + system, every thread)
per event, and per processor its CPU per event above the no-processor run, beside the
decode-only baseline's. Throughput is compared as a ratio to the inventory-only run.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

CONFIGS = ["none", "decode", "inventory", "demand", "archive", "all"]


def run_once(flyhigh, events, processors, out):
    summary = f"{out}/summary-{processors}.json"
    proc = subprocess.run([flyhigh, "demo", "--events", str(events), "--processors", processors,
                           "--out", f"{out}/{processors}", "--summary-json", summary],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if proc.returncode != 0:
        sys.exit(f"flyhigh demo --processors {processors} failed (exit {proc.returncode})")
    with open(summary) as f:
        s = json.load(f)
    return {"events_per_second": s["events_per_second"], "cpu_us_per_event": s["cpu_us_per_event"],
            "elapsed_seconds": s["elapsed_seconds"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flyhigh", default="target/release/flyhigh")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    samples = {c: [] for c in CONFIGS}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.runs):
            for config in CONFIGS:
                samples[config].append(run_once(args.flyhigh, args.events, config, out))
    median = {c: {k: statistics.median(s[k] for s in samples[c]) for k in samples[c][0]} for c in CONFIGS}
    base = median["none"]["cpu_us_per_event"]
    print(f"flyhigh demo, {args.events:,} events, median of {args.runs} interleaved runs")
    print()
    print("| processors | events/s end to end | vs inventory alone | CPU µs/event | above no processor |")
    print("|---|---:|---:|---:|---:|")
    for c in CONFIGS:
        m = median[c]
        ratio = m["events_per_second"] / median["inventory"]["events_per_second"]
        print(f"| {c} | {m['events_per_second']:,.0f} | {ratio:.2f}× | {m['cpu_us_per_event']:.1f} | "
              f"{m['cpu_us_per_event'] - base:+.1f} |")
    decode = median["decode"]["cpu_us_per_event"] - base
    print()
    print(f"decode-only baseline: {decode:.1f} µs of CPU per event per mapping")
    for p in ["inventory", "demand", "archive"]:
        cost = median[p]["cpu_us_per_event"] - base
        print(f"{p:<9}: {cost:.1f} µs per event = decode {decode:.1f} + its own work {cost - decode:.1f} "
              f"({cost / decode:.1f}× the decode baseline)" if decode > 0 else f"{p}: {cost:.1f} µs per event")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"events": args.events, "runs": args.runs, "median": median, "samples": samples}, f, indent=2)


if __name__ == "__main__":
    main()
