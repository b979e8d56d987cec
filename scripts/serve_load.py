#!/usr/bin/env python3
"""`flyhigh load` against a fresh `flyhigh serve`, both on this machine: for each
offered rate, the ack latency, what was accepted, whether all three processors kept
up (their lag sampled every 2 s from /v1/stats: records after each processor's
checkpoints and the oldest one's age), and the service's peak RSS.

    scripts/serve_load.py --flyhigh target/release/flyhigh --rates 1000 10000 20000 \
        --seconds 60 --batch 50 --out target/serve-load.json

Each rate gets its own data directory and service. The processors "kept up" when no
processor was ever more than 10 s behind during the second half of the load (the lag
did not grow) and each caught up with the stream within 60 s of its end.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from serve_checks import free_port  # noqa: E402


def stats(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/stats", timeout=10) as r:
        return json.load(r)


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def run(args, rate):
    data = os.path.join(args.work, f"serve-{rate}")
    shutil.rmtree(data, ignore_errors=True)
    port = free_port()
    log = open(os.path.join(args.work, f"serve-{rate}.log"), "wb")
    serve = subprocess.Popen([args.flyhigh, "serve", "--data", data, "--listen", f"127.0.0.1:{port}"],
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                stats(port)
                break
            except OSError:
                time.sleep(0.1)
        summary = os.path.join(args.work, f"load-{rate}.json")
        load = subprocess.Popen([args.flyhigh, "load", "--url", f"http://127.0.0.1:{port}/v1/events",
                                 "--rate", str(rate), "--seconds", str(args.seconds), "--batch", str(args.batch),
                                 "--summary-json", summary], stdout=subprocess.DEVNULL)
        lags = []
        t0 = time.time()
        while load.poll() is None:
            time.sleep(2)
            s = stats(port)
            lags.append((round(time.time() - t0, 1),
                         {p: (v["records"], v["seconds_behind"]) for p, v in s["lag"].items()}))
        assert load.returncode == 0, f"flyhigh load exited {load.returncode}"
        at_end = stats(port)["lag"]
        caught_up_in = None
        for i in range(600):
            s = stats(port)
            if max(v["records"] for v in s["lag"].values()) == 0:
                caught_up_in = round(i * 0.1, 1)
                break
            time.sleep(0.1)
        rss = peak_rss_mib(serve.pid)
        result = json.load(open(summary))
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=300)
    second_half = [l for t, l in lags if t >= args.seconds / 2]
    worst_behind = max((v[1] for l in second_half for v in l.values()), default=0.0)
    return {
        "rate": rate,
        "events": result["events"],
        "achieved": result["achieved"],
        "ack_latency_ms": result["ack_latency_ms"],
        "requests_by_status": result["requests"]["by_status"],
        "lag_at_end": at_end,
        "lag_samples": lags,
        "caught_up_seconds_after_load": caught_up_in,
        "worst_seconds_behind_second_half": worst_behind,
        "kept_up": caught_up_in is not None and worst_behind <= 10,
        "serve_peak_rss_mib": rss,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flyhigh", default="target/release/flyhigh")
    p.add_argument("--rates", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--work", default="target/serve-load")
    p.add_argument("--out", default="target/serve-load.json")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    results = []
    for rate in args.rates:
        r = run(args, rate)
        results.append(r)
        l = r["ack_latency_ms"]
        print(f"{rate:>7} events/s offered: accepted {r['events']['accepted']}, retry {r['events']['retry']}, "
              f"failed {r['events']['failed']}; ack p50 {l['p50']} ms p99 {l['p99']} ms p99.9 {l['p999']} ms "
              f"max {l['max']} ms; worst lag in the second half {r['worst_seconds_behind_second_half']:.1f} s, caught up {r['caught_up_seconds_after_load']} s "
              f"later; kept up: {r['kept_up']}; serve peak RSS {r['serve_peak_rss_mib']:.0f} MiB", flush=True)
    json.dump(results, open(args.out, "w"), indent=2)


if __name__ == "__main__":
    main()
