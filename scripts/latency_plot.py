#!/usr/bin/env python3
"""Latency against offered rate, as the OpenMessaging benchmark reports it: a fresh
`flyhigh serve` per rate, `flyhigh load` offering that rate for a fixed time (an open
model: requests go out on schedule whatever the answers), and the percentiles of
each stage read from both sides (the client's acknowledgement latency, the service's
event → committed per processor).

    scripts/latency_plot.py run  [--flyhigh target/release/flyhigh] [--rates 1000,5000,...]
                                 [--seconds 60] [--out docs/latency]
    scripts/latency_plot.py plot [--out docs/latency]

`run` writes one `load-RATE.json` per rate (flyhigh load's --summary-json) into OUT
and then plots; `plot` draws OUT/latency.svg from the JSON files there and prints the
table. Standard library only: the SVG is written by hand.
"""

import argparse
import glob
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

# (label, where in the summary, colour, dashed)
SERIES = [
    ("ack p50 (client)", ("ack_latency_ms", "p50"), "#1f77b4", True),
    ("ack p99 (client)", ("ack_latency_ms", "p99"), "#1f77b4", False),
    ("inventory p99", ("server_latency_ms", "inventory", "p99"), "#2ca02c", False),
    ("demand p99", ("server_latency_ms", "demand", "p99"), "#ff7f0e", False),
    ("archive p99", ("server_latency_ms", "archive", "p99"), "#9467bd", False),
    ("inventory p999", ("server_latency_ms", "inventory", "p999"), "#2ca02c", True),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args):
    os.makedirs(args.out, exist_ok=True)
    for rate in [int(r) for r in args.rates.split(",")]:
        data = os.path.join("target", "latency-serve", str(rate))
        shutil.rmtree(data, ignore_errors=True)
        port = free_port()
        log = open(os.path.join(args.out, f"serve-{rate}.log"), "wb")
        serve = subprocess.Popen([args.flyhigh, "serve", "--data", data, "--listen", f"127.0.0.1:{port}"],
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                    break
                except OSError:
                    if time.time() > deadline or serve.poll() is not None:
                        sys.exit(f"flyhigh serve did not start; see {log.name}")
                    time.sleep(0.1)
            out = os.path.join(args.out, f"load-{rate}.json")
            subprocess.run([args.flyhigh, "load", "--url", f"http://127.0.0.1:{port}/v1/events",
                            "--rate", str(rate), "--seconds", str(args.seconds), "--summary-json", out],
                           check=True)
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=300)
            shutil.rmtree(data, ignore_errors=True)
    plot(args)


def value(doc, path):
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def plot(args):
    runs = []
    for path in glob.glob(os.path.join(args.out, "load-*.json")):
        with open(path) as f:
            runs.append(json.load(f))
    if not runs:
        sys.exit(f"no load-*.json in {args.out}: run `scripts/latency_plot.py run` first")
    runs.sort(key=lambda r: r["rate"])
    print("| offered events/s | accepted events/s | ack p50 | ack p99 | inventory p99 | demand p99 | archive p99 | inventory p999 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        cells = [value(r, s[1]) for s in SERIES]
        shown = ["-" if c is None else f"{c:,.1f} ms" for c in [cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]]]
        print(f"| {r['rate']:,} | {r['achieved']['accepted_per_second']:,.0f} | " + " | ".join(shown) + " |")
    svg = chart(runs)
    path = os.path.join(args.out, "latency.svg")
    with open(path, "w") as f:
        f.write(svg)
    print(f"plot written to {path}")


def chart(runs):
    width, height = 860, 480
    left, right, top, bottom = 80, 220, 50, 60
    pw, ph = width - left - right, height - top - bottom
    rates = [r["rate"] for r in runs]
    values = [value(r, s[1]) for r in runs for s in SERIES]
    values = [v for v in values if v]
    lo = 10 ** math.floor(math.log10(max(min(values), 0.1)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    x_lo, x_hi = 0, max(rates) * 1.05

    def x(rate):
        return left + (rate - x_lo) / (x_hi - x_lo) * pw

    def y(ms):
        ms = max(ms, lo)
        return top + ph - (math.log10(ms) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="Helvetica, Arial, sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="24" font-size="16" font-weight="bold">'
           'flyhigh serve: latency against offered load (2 cores, one process)</text>']
    decade = lo
    while decade <= hi:
        for m in (1, 2, 5):
            v = decade * m
            if lo <= v <= hi:
                yy = y(v)
                out.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" '
                           f'stroke="#ddd" stroke-width="{1 if m == 1 else 0.5}"/>')
                label = f"{v:g}"
                out.append(f'<text x="{left - 8}" y="{yy + 4:.1f}" text-anchor="end">{label}</text>')
        decade *= 10
    step = 10 ** math.floor(math.log10(x_hi / 2))
    for mult in (1, 2, 5):
        if x_hi / (step * mult) <= 8:
            step *= mult
            break
    t = 0
    while t <= x_hi:
        xx = x(t)
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>')
        out.append(f'<text x="{xx:.1f}" y="{top + ph + 18}" text-anchor="middle">{t:,.0f}</text>')
        t += step
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 18}" text-anchor="middle">offered events per second '
               '(open model, 50 events per request)</text>')
    out.append(f'<text transform="translate(22 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
               'latency, ms (log scale): event → stage</text>')
    for i, (label, path, colour, dashed) in enumerate(SERIES):
        points = [(x(r["rate"]), y(v)) for r in runs if (v := value(r, path))]
        if not points:
            continue
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="'
                   + " ".join(f"{px:.1f},{py:.1f}" for px, py in points) + '"/>')
        for px, py in points:
            out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>')
        ly = top + 10 + i * 22
        out.append(f'<line x1="{left + pw + 16}" x2="{left + pw + 46}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{left + pw + 52}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["run", "plot"])
    parser.add_argument("--flyhigh", default="target/release/flyhigh")
    parser.add_argument("--rates", default="1000,2500,5000,10000,20000,30000")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--out", default="docs/latency")
    args = parser.parse_args()
    {"run": run, "plot": plot}[args.mode](args)


if __name__ == "__main__":
    main()
