#!/usr/bin/env python3
"""`flyhigh serve` checked from the outside, by a client that is not ours (Python's
standard library; pyarrow reads the archive).

    serve_checks.py http        --flyhigh BIN --work DIR
    serve_checks.py kill9       --flyhigh BIN --work DIR
    serve_checks.py idempotency --flyhigh BIN --work DIR
    serve_checks.py surge       --flyhigh BIN --work DIR

- http: every status of POST /v1/events over real HTTP (mixed batches, oversize,
  unreadable bodies, a wrong key, a source the key may not send, NDJSON, an event
  without an id and its retry), CORS preflights from an allowed and a refused origin,
  /healthz, /readyz, /openapi.json.
- kill9: clients post while `flyhigh serve` is killed with SIGKILL (three times) and
  stopped with SIGTERM (once); it is started again on the same data directory and the clients resend what got no 2xx (as a real
  client does); after a clean stop every acknowledged event is in the inventory, the
  demand counters and the archive exactly once.
- idempotency: the same requests sent once to one service and each twice (once in
  sequence, once concurrently) to another leave the same stores.
- surge: a route with 40 minutes of ordinary demand gets a burst of searches; its
  surge alert must be published within two buckets (two minutes) of the burst's
  first bucket, with the service's own settings (late allowance, evaluator period),
  and `/v1/stats` must report the detection latency.

Exits non-zero with the first failed assertion.
"""

import argparse
import collections
import shutil
import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """A `flyhigh serve` process on a free port."""

    def __init__(self, flyhigh, data, log, *extra, evaluate_every="2"):
        self.port = free_port()
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            [flyhigh, "serve", "--data", data, "--listen", f"127.0.0.1:{self.port}",
             "--evaluate-every-seconds", evaluate_every, "--compact-every-seconds", "3600", *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.proc.poll() is None, f"flyhigh serve exited {self.proc.returncode}; see {log}"
            try:
                if request(self.port, "GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("flyhigh serve did not become ready in 60 s")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=120)
        assert rc == 0, f"flyhigh serve exited {rc} on SIGTERM"

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=30)


def request(port, method, path, body=None, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        try:
            conn.request(method, path, body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError):
            # The server answered (413) before reading the whole body and closed:
            # its answer is still there to read.
            pass
        r = conn.getresponse()
        data = r.read()
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), doc
    finally:
        conn.close()


def post(port, events=None, raw=None, content_type="application/json", key=None):
    body = raw if raw is not None else json.dumps(events).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return request(port, "POST", "/v1/events", body, headers)


def uuid7():
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 68) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def now_ms():
    t = datetime.now(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def flights(data):
    db = sqlite3.connect(f"file:{data}/inventory.sqlite?mode=ro", uri=True)
    rows = db.execute("SELECT flight_id, cabin, origin, destination, departure FROM cabins "
                      "WHERE capacity IS NOT NULL AND departure >= date('now') ORDER BY flight_id, cabin").fetchall()
    db.close()
    assert rows, "the service loaded no schedule"
    return rows


class Traffic:
    """Valid events over the service's scheduled flights: searches, bookings and
    cancellations of earlier bookings, each with a fresh UUIDv7."""

    def __init__(self, cabins, seed):
        self.cabins = cabins
        self.rng = random.Random(seed)
        self.booked = []
        self.n = 0

    def event(self, source="web-app"):
        self.n += 1
        r = self.rng.random()
        head = {"event_id": uuid7(), "schema_version": 1, "occurred_at": now_ms(), "source": source}
        flight_id, cabin, origin, destination, departure = self.rng.choice(self.cabins)
        if r < 0.1 and self.booked:
            booking = self.booked.pop(self.rng.randrange(len(self.booked)))
            return {**head, "event_type": "cancellation", "payload": {
                "booking_id": booking["booking_id"], "customer_id": booking["customer_id"],
                "flight_id": booking["flight_id"], "reason": "customer_request",
                "refund": {"amount": "100.00", "currency": "GBP"}}}
        if r < 0.35:
            payload = {"booking_id": f"BK{self.rng.randrange(36**7):07X}"[:9].upper().ljust(9, "0"),
                       "customer_id": f"c-{self.rng.randrange(1 << 24):06x}", "flight_id": flight_id,
                       "origin": origin, "destination": destination, "cabin": cabin,
                       "seats": self.rng.randint(1, 4), "fare": {"amount": "250.00", "currency": "GBP"}}
            self.booked.append(payload)
            return {**head, "event_type": "booking", "payload": payload}
        return {**head, "event_type": "search", "payload": {
            "session_id": f"s-{self.rng.randrange(1 << 40):010x}", "origin": origin,
            "destination": destination, "departure_date": departure[:10],
            "passengers": self.rng.randint(1, 4), "cabin": cabin}}


def expected(events):
    """What the stores must hold for these events, each once."""
    sold = collections.Counter()
    bookings = {}
    for e in events:
        p = e["payload"]
        if e["event_type"] == "booking" and p["booking_id"] not in bookings:
            bookings[p["booking_id"]] = p
        elif e["event_type"] == "cancellation":
            bookings[p["booking_id"]] = None
    for p in bookings.values():
        if p:
            sold[(p["flight_id"], p["cabin"])] += p["seats"]
    kinds = collections.Counter(e["event_type"] for e in events)
    return sold, kinds


def stores(data):
    """What a stopped service's stores hold: seats sold per cabin, the demand counters
    summed, and the archive's rows per event_id."""
    inv = sqlite3.connect(f"file:{data}/inventory.sqlite?mode=ro", uri=True)
    sold = collections.Counter({(f, c): s for f, c, s in inv.execute(
        "SELECT flight_id, cabin, sold FROM cabins WHERE sold != 0")})
    bookings = sorted(inv.execute("SELECT booking_id, status, flight_id, cabin, seats FROM bookings"))
    dem = sqlite3.connect(f"file:{data}/demand.sqlite?mode=ro", uri=True)
    counters = sorted(dem.execute(
        "SELECT route, bucket, shard_id, searches, passengers, bookings, seats, cancellations "
        "FROM counters"))
    totals = dem.execute("SELECT coalesce(sum(searches),0), coalesce(sum(bookings),0), "
                         "coalesce(sum(cancellations),0) FROM counters").fetchone()
    import pyarrow.dataset as ds
    archive = f"{data}/archive"
    rows = collections.Counter()
    if os.path.isdir(archive) and any(f.endswith(".parquet") for _, _, fs in os.walk(archive) for f in fs):
        table = ds.dataset(archive, format="parquet", partitioning="hive").to_table(columns=["event_id"])
        rows = collections.Counter(str(v) for v in table.column("event_id").to_pylist())
    return {"sold": sold, "bookings": bookings, "counters": counters,
            "totals": {"search": totals[0], "booking": totals[1], "cancellation": totals[2]},
            "archive": rows}


def check_exactly_once(data, acked):
    sold, kinds = expected(acked)
    got = stores(data)
    extra, missing = got["sold"] - sold, sold - got["sold"]
    assert not extra and not missing, (
        f"seats sold differ in {len(extra) + len(missing)} cabins, e.g. "
        f"{list(extra.items())[:3]} extra, {list(missing.items())[:3]} missing")
    for kind in ("search", "booking", "cancellation"):
        assert got["totals"][kind] == kinds[kind], f"demand counts {kind}: {got['totals'][kind]} != {kinds[kind]}"
    ids = [e["event_id"] for e in acked]
    twice = [i for i in ids if got["archive"][i] > 1]
    missing = [i for i in ids if got["archive"][i] == 0]
    assert not missing and not twice, f"archive: {len(missing)} acknowledged events missing, {len(twice)} twice"
    assert sum(got["archive"].values()) == len(ids), (sum(got["archive"].values()), len(ids))
    return got


def check_http(args):
    work = args.work
    os.makedirs(work, exist_ok=True)
    keys = os.path.join(work, "keys")
    with open(keys, "w") as f:
        f.write("# test keys\nweb-77c1e2d3f4a5b6c7 web-app\nios-4f9a0c1d2e3b4a5f ios-app\n")
    data = os.path.join(work, "http-data")
    serve = Serve(args.flyhigh, data, os.path.join(work, "http.log"), "--api-keys", keys,
                  "--cors-origin", "https://app.flyhigh.example")
    key = "web-77c1e2d3f4a5b6c7"
    try:
        traffic = Traffic(flights(data), 1)
        port = serve.port
        assert request(port, "GET", "/healthz")[0] == 200
        status, _, doc = request(port, "GET", "/openapi.json")
        assert status == 200 and doc["openapi"] == "3.1.0" and "/v1/events" in doc["paths"], doc
        events = [traffic.event() for _ in range(3)]
        # No key, a wrong key: 401, nothing written.
        assert post(port, events)[0] == 401
        status, headers, doc = post(port, events, key="web-77c1e2d3f4a5b6c8")
        assert status == 401 and headers.get("www-authenticate") == "Bearer" and "error" in doc, (status, doc)
        # A mixed batch: 422, each event's result in order.
        bad = dict(traffic.event(), source="web-app")
        bad["payload"] = dict(bad["payload"], origin="lhr")
        other_app = traffic.event(source="ios-app")
        batch = [events[0], bad, "not an event", other_app, events[1]]
        status, _, doc = post(port, batch, key=key)
        assert status == 422, (status, doc)
        got = [r["status"] for r in doc["results"]]
        assert got == ["accepted", "rejected", "rejected", "rejected", "accepted"], got
        assert [r["index"] for r in doc["results"]] == [0, 1, 2, 3, 4]
        assert doc["results"][1]["errors"][0]["field"] == "payload.origin", doc["results"][1]
        assert doc["results"][3]["errors"][0]["field"] == "source", doc["results"][3]
        assert (doc["accepted"], doc["rejected"]) == (2, 3), doc
        # The same request again: the valid events are duplicates, nothing new.
        status, _, doc = post(port, [events[0], events[1]], key=key)
        assert status == 200 and [r["status"] for r in doc["results"]] == ["duplicate", "duplicate"], doc
        # NDJSON, and an event without an id: the id comes back, and its retry is a duplicate.
        no_id = traffic.event()
        del no_id["event_id"]
        lines = (json.dumps(events[2]) + "\n\n" + json.dumps(no_id) + "\n").encode()
        status, _, doc = post(port, raw=lines, content_type="application/x-ndjson", key=key)
        assert status == 200, (status, doc)
        assigned = doc["results"][1]
        assert assigned["assigned_event_id"] is True and uuid.UUID(assigned["event_id"]).version == 7, assigned
        status, _, doc = post(port, [dict(no_id, event_id=assigned["event_id"])], key=key)
        assert doc["results"][0]["status"] == "duplicate", doc
        # Unreadable bodies and a content type it does not read: 400 with a hint.
        for raw, ctype in [(b"[{\"event_id\": ", "application/json"), (b"\xff\xfe", "application/json"),
                           (b"a,b\n1,2", "text/csv")]:
            status, _, doc = post(port, raw=raw, content_type=ctype, key=key)
            assert status == 400 and doc["error"] and doc["hint"], (raw, status, doc)
        # Every limit: 413 naming it.
        status, _, doc = post(port, [events[0]] * 1001, key=key)
        assert status == 413 and doc["limit"] == "events_per_request" and doc["max"] == 1000, doc
        big = dict(traffic.event(), padding="x" * 17000)
        status, _, doc = post(port, [events[0], big], key=key)
        assert status == 413 and doc["limit"] == "event_bytes" and doc["index"] == 1, doc
        status, _, doc = post(port, raw=b" " * (4 * 1024 * 1024 + 1), key=key)
        assert status == 413 and doc["limit"] == "request_bytes", doc
        # CORS: the allowed origin gets its headers, another gets none.
        def preflight(origin):
            return request(port, "OPTIONS", "/v1/events", headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization"})
        status, headers, _ = preflight("https://app.flyhigh.example")
        assert headers.get("access-control-allow-origin") == "https://app.flyhigh.example", headers
        assert "authorization" in headers.get("access-control-allow-headers", "").lower(), headers
        status, headers, _ = preflight("https://elsewhere.example")
        assert "access-control-allow-origin" not in headers, headers
        status, _, doc = request(port, "GET", "/v1/stats")
        assert status == 200 and doc["ingest"]["accepted"] == 4, doc["ingest"]
        # The operator commands read the data directory while the service runs.
        deadline = time.time() + 30
        while request(port, "GET", "/v1/stats")[2]["lag"]["inventory"]["records"] > 0 and time.time() < deadline:
            time.sleep(0.1)
        for command in (["inventory", "list", "--sqlite", f"{data}/inventory.sqlite", "--limit", "3", "--json"],
                        ["routes", "top", "--sqlite", f"{data}/demand.sqlite", "--json"],
                        ["alerts", "list", "--sqlite", f"{data}/demand.sqlite", "--json"],
                        ["dead-letters", "list", "--file", f"{data}/dead-letters.jsonl", "--json"],
                        ["archive", "summary", "--dir", f"{data}/archive", "--json"]):
            done = subprocess.run([args.flyhigh, *command], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, (command, done.stderr)
            json.loads(done.stdout)
    finally:
        serve.stop()
    print("http checks ok: 401, 422, 400, 413, duplicates, NDJSON, assigned ids, CORS, openapi")


def kill9(args):
    work = args.work
    data = os.path.join(work, "kill9-data")
    log = os.path.join(work, "kill9.log")
    serve = Serve(args.flyhigh, data, log, "--batch-size", "100")
    traffic = Traffic(flights(data), 9)
    lock = threading.Lock()
    batches = []
    with lock:
        for _ in range(400):
            batches.append([traffic.event() for _ in range(50)])
    acked = {}
    unacked = collections.deque(range(len(batches)))
    stop_posting = threading.Event()
    port = {"value": serve.port}

    def client():
        while not stop_posting.is_set():
            with lock:
                if not unacked:
                    return
                i = unacked.popleft()
            try:
                status, _, doc = post(port["value"], batches[i])
            except OSError:
                status, doc = None, None
            if status == 200:
                with lock:
                    acked[i] = [r["status"] for r in doc["results"]]
            else:
                with lock:
                    unacked.append(i)
                time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    kills = []
    # Three kills, then a clean stop (SIGTERM) and a restart: whatever is posted
    # after it must be processed too (a clean stop finishes no shard).
    for threshold, how in ((60, "kill"), (160, "kill"), (280, "kill"), (340, "stop")):
        deadline = time.time() + 60
        while len(acked) < threshold and time.time() < deadline:
            time.sleep(0.005)
        kills.append(len(acked))
        serve.kill9() if how == "kill" else serve.stop()
        killed_at = time.time()
        serve = Serve(args.flyhigh, data, log, "--batch-size", "100")
        port["value"] = serve.port
        kills[-1] = (kills[-1], round(time.time() - killed_at, 1))
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "clients did not finish"
    assert len(acked) == len(batches), (len(acked), len(batches))
    serve.stop()
    events = [e for b in batches for e in b]
    got = check_exactly_once(data, events)
    duplicates = sum(s.count("duplicate") for s in acked.values())
    print(f"kill -9 ok: killed three times and stopped once (batches acknowledged, seconds to ready again: {kills}) "
          f"of {len(batches)} batches; all {len(events)} events once in the inventory "
          f"({sum(got['sold'].values())} seats), the demand counters and the archive; "
          f"{duplicates} answered duplicate on a resend")


def idempotency(args):
    work = args.work
    once_dir, twice_dir = os.path.join(work, "once-data"), os.path.join(work, "twice-data")
    once = Serve(args.flyhigh, once_dir, os.path.join(work, "once.log"))
    traffic = Traffic(flights(once_dir), 5)
    batches = [[traffic.event() for _ in range(40)] for _ in range(30)]
    twice = Serve(args.flyhigh, twice_dir, os.path.join(work, "twice.log"))
    try:
        for b in batches:
            status, _, doc = post(once.port, b)
            assert status == 200 and doc["accepted"] == len(b), (status, doc)
        for i, b in enumerate(batches):
            if i % 2 == 0:
                first = post(twice.port, b)
                second = post(twice.port, b)
            else:
                answers = []
                ts = [threading.Thread(target=lambda: answers.append(post(twice.port, b))) for _ in range(2)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                first, second = answers
            for status, _, doc in (first, second):
                assert status == 200, (status, doc)
            if i % 2 == 0:
                assert second[2]["duplicate"] == len(b), second[2]
    finally:
        once.stop()
        twice.stop()
    events = [e for b in batches for e in b]
    a = check_exactly_once(once_dir, events)
    b = check_exactly_once(twice_dir, events)
    for part in ("sold", "bookings", "counters", "totals", "archive"):
        assert a[part] == b[part], f"{part} differs between once and twice"
    print(f"idempotency ok: {len(events)} events in {len(batches)} requests, each sent twice "
          f"(half in sequence, half concurrently): the same inventory, counters and archive as once")


def iso_ms(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def search(origin, destination, departure, occurred_at):
    return {"event_id": uuid7(), "schema_version": 1, "occurred_at": iso_ms(occurred_at),
            "source": "web-app", "event_type": "search", "payload": {
                "session_id": f"s-{random.randrange(1 << 40):010x}", "origin": origin,
                "destination": destination, "departure_date": departure[:10],
                "passengers": 1, "cabin": "economy"}}


def surge(args):
    data = os.path.join(args.work, "surge-data")
    log = os.path.join(args.work, "surge-serve.log")
    # The service's own surge timing: its default late allowance and evaluator period.
    serve = Serve(args.flyhigh, data, log, evaluate_every="15")
    try:
        cabins = flights(data)
        routes = sorted({(o, d, dep) for _, _, o, d, dep in cabins})
        origin, destination, departure = routes[0]
        route = f"{origin}-{destination}"
        # 40 minutes of ordinary demand (2 searches a minute), dated in the past: late,
        # but counted, so the route has the history the rule warms up on.
        now = datetime.now(timezone.utc)
        history = [search(origin, destination, departure, now - timedelta(minutes=m, seconds=s))
                   for m in range(1, 41) for s in (10, 40)]
        status, _, doc = post(serve.port, history)
        assert status == 200, f"history: {status} {doc}"
        # The burst starts just after a minute begins: its first bucket is that minute.
        wait = 60 - datetime.now(timezone.utc).second + 2
        time.sleep(wait)
        burst_start = datetime.now(timezone.utc)
        bucket = burst_start.replace(second=0, microsecond=0)
        for _ in range(10):
            status, _, doc = post(serve.port, [search(origin, destination, departure,
                                                      datetime.now(timezone.utc)) for _ in range(20)])
            assert status == 200, f"burst: {status} {doc}"
            time.sleep(1)
        deadline = bucket + timedelta(minutes=4)
        alert = None
        while datetime.now(timezone.utc) < deadline and alert is None:
            time.sleep(1)
            path = os.path.join(data, "alerts.jsonl")
            if os.path.exists(path):
                with open(path) as f:
                    for line in f:
                        a = json.loads(line)
                        if a["rule"] == "route_surge" and a["route"] == route and a["status"] == "raised":
                            alert = a
                            seen = datetime.now(timezone.utc)
        assert alert is not None, f"no surge alert on {route} within 4 minutes of its burst; see {log}"
        raised = datetime.fromisoformat(alert["raised_at"].replace("Z", "+00:00"))
        after = (raised - bucket).total_seconds()
        assert after <= 120, (f"the surge alert on {route} was raised {after:.0f} s after the burst's "
                              f"first bucket began ({bucket:%H:%M}), more than two buckets")
        status, _, stats = request(serve.port, "GET", "/v1/stats")
        detection = stats["latency_ms"]["surge_alert"]
        assert detection["count"] >= 1, f"/v1/stats counted no surge alert: {detection}"
        print(f"surge ok: burst on {route} from {burst_start:%H:%M:%S}, its alert raised {after:.0f} s after "
              f"its first bucket began ({(seen - burst_start).total_seconds():.0f} s after the burst's first event), "
              f"within two buckets; detection (bucket closed → published) p50 {detection['p50'] / 1000:.1f} s, "
              f"max {detection['max'] / 1000:.1f} s; window {alert['window_start']} .. {alert['window_end']}, "
              f"{alert['observed']} searches against a baseline of {alert['baseline']}")
    finally:
        serve.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=["http", "kill9", "idempotency", "surge"])
    parser.add_argument("--flyhigh", default="target/debug/flyhigh")
    parser.add_argument("--work", default="target/serve-checks")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    # Each check starts from empty data directories.
    for name in os.listdir(args.work):
        if name.endswith("-data"):
            shutil.rmtree(os.path.join(args.work, name))
    {"http": check_http, "kill9": kill9, "idempotency": idempotency, "surge": surge}[args.check](args)


if __name__ == "__main__":
    main()
