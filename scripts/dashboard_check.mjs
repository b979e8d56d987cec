#!/usr/bin/env node
// The dashboard of `flyhigh serve` in a real browser: Debian's chromium driven by the
// pinned playwright-core in scripts/browser (never a browser Playwright downloads).
//
//   node scripts/dashboard_check.mjs [--flyhigh target/debug/flyhigh] [--out target/test-logs]
//
// 1. starts `flyhigh serve` on a free port with a fresh data directory and opens the
//    page at 1440x900;
// 2. posts a burst of searches on one route (clearing the surge rule's floor and
//    ratio), background searches on four others and a booking, all dated now, after
//    one search dated 40 minutes ago: the evaluator judges a route only after 30
//    buckets of its history (the warm-up), and the history starts at the route's
//    first counted bucket;
// 3. without a reload: the route tops the hot-routes panel, its surge alert appears
//    (the evaluator judges a bucket once it is the late allowance, 2 minutes, behind
//    the wall clock, so this takes minutes; the time is printed), the flight search
//    shows the booked seats, "data as of" advances; a full-page screenshot goes to
//    OUT/dashboard.png;
// 4. a snapshot with per-stage latency (a fixture, as /v1/stats will carry it) renders
//    the latency table and plot; without it the page says "no latency yet";
// 5. eight tabs at once all update (one shared event stream, not eight connections
//    against HTTP/1.1's six per host);
// 6. SIGTERM: the page says "stale" within seconds;
//    serve restarted on the same port and data: the page resumes without a reload;
// 7. no request left 127.0.0.1 during all of it.
//
// Exits non-zero with the first failed check; serve's log is OUT/dashboard-serve.log.

import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const { chromium } = await import(path.join(here, "browser/node_modules/playwright-core/index.mjs"));

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const FLYHIGH = path.resolve(args.flyhigh || "target/debug/flyhigh");
const OUT = path.resolve(args.out || "target/test-logs");
const ALERT_TIMEOUT_S = Number(args["alert-timeout"] || 300);
const HOT = { origin: "LHR", destination: "JFK" };
const BACKGROUND = [["CDG", "LHR"], ["FRA", "LHR"], ["AMS", "LHR"], ["LHR", "DUB"]];
fs.mkdirSync(OUT, { recursive: true });

const t0 = Date.now();
const log = (...m) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s]`, ...m);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
class CheckFailed extends Error {}
function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// --- flyhigh serve ---------------------------------------------------------------

const serveLog = path.join(OUT, "dashboard-serve.log");
fs.writeFileSync(serveLog, "");
const data = fs.mkdtempSync(path.join(os.tmpdir(), "flyhigh-dashboard-"));
let serve = null;

async function startServe(port) {
  const out = fs.openSync(serveLog, "a");
  const proc = spawn(FLYHIGH, ["serve", "--data", data, "--listen", `127.0.0.1:${port}`,
    "--evaluate-every-seconds", "5", "--compact-every-seconds", "3600"], { stdio: ["ignore", out, out] });
  let exited = null;
  proc.on("exit", (code, signal) => { exited = { code, signal }; });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    check(exited === null, `flyhigh serve exited (${JSON.stringify(exited)}); see ${serveLog}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (r.status === 200) return { proc, exitedRef: () => exited };
    } catch (_) { /* not listening yet */ }
    await sleep(100);
  }
  throw new CheckFailed(`flyhigh serve did not become ready in 60 s; see ${serveLog}`);
}

async function stopServe(s) {
  s.proc.kill("SIGTERM");
  const deadline = Date.now() + 120_000;
  while (s.exitedRef() === null && Date.now() < deadline) await sleep(100);
  const e = s.exitedRef();
  check(e !== null, "flyhigh serve did not stop within 120 s of SIGTERM");
  check(e.code === 0, `flyhigh serve exited ${JSON.stringify(e)} on SIGTERM; see ${serveLog}`);
}

// --- events -----------------------------------------------------------------------

function uuid7() {
  const b = crypto.randomBytes(16);
  const ms = BigInt(Date.now());
  for (let i = 0; i < 6; i++) b[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
const iso = (ms) => new Date(ms).toISOString(); // millisecond precision, Z
const today = () => new Date().toISOString().slice(0, 10);

function search(origin, destination, occurredMs = Date.now()) {
  return {
    event_id: uuid7(), schema_version: 1, occurred_at: iso(occurredMs), source: "web-app", event_type: "search",
    payload: { session_id: `s-${crypto.randomBytes(5).toString("hex")}`, origin, destination,
      departure_date: today(), passengers: 1 + crypto.randomInt(3), cabin: "economy" },
  };
}

async function post(port, events) {
  const r = await fetch(`http://127.0.0.1:${port}/v1/events`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(events),
  });
  const body = await r.text();
  check(r.status === 200, `POST /v1/events answered ${r.status}: ${body.slice(0, 300)}`);
}

// --- the page ---------------------------------------------------------------------

async function waitFor(what, timeoutMs, probe, everyMs = 250) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeoutMs) {
    last = await probe();
    if (last && last.ok) return { ...last, seconds: (Date.now() - start) / 1000 };
    await sleep(everyMs);
  }
  throw new CheckFailed(`${what}: not within ${timeoutMs / 1000} s (last seen: ${JSON.stringify(last && last.seen)})`);
}

const asOf = (page) => page.evaluate(() => document.getElementById("asof").textContent);
const statusOf = (page) => page.evaluate(() => document.getElementById("status").dataset.state);

async function asOfAdvances(page, what, timeoutMs = 10_000) {
  const before = await asOf(page);
  return waitFor(what, timeoutMs, async () => {
    const now = await asOf(page);
    return { ok: now !== before && now !== "—", seen: { before, now } };
  });
}

let context = null;
let port = 0;
let keepGoing = true; // the background traffic, until the alert (or a failure)
const offHost = [];

async function main() {
  check(fs.existsSync(FLYHIGH), `${FLYHIGH} does not exist: build it first (cargo build -p flyhigh)`);
  check(fs.existsSync("/usr/bin/chromium"), "/usr/bin/chromium is missing: apt-get install -y chromium");
  port = await freePort();
  serve = await startServe(port);
  const origin = `http://127.0.0.1:${port}`;
  log(`flyhigh serve on ${origin}, data in ${data}`);

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "flyhigh-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1440, height: 900 },
    // Without the background-networking flags chromium's own connections are
    // refused on a closed network and it stalls.
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  context.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(origin + "/") && !u.startsWith("data:")) offHost.push(u);
  });
  const pageErrors = [];
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(origin + "/");
  const first = await waitFor("the page shows live data", 20_000, async () => {
    const s = await statusOf(page);
    return { ok: s === "live", seen: s };
  });
  log(`page live after ${first.seconds.toFixed(1)} s`);
  const csp = (await fetch(origin + "/")).headers.get("content-security-policy") || "";
  check(csp.includes("default-src 'self'"), `the page has no same-origin content security policy: ${csp}`);

  // Traffic: the warm-up search 40 minutes back, then the burst and background.
  await post(port, [search(HOT.origin, HOT.destination, Date.now() - 40 * 60_000)]);
  const flight = `FH0100-${today().replaceAll("-", "")}`;
  const fr = await fetch(`${origin}/v1/flights/${flight}`);
  const ftext = await fr.text();
  check(fr.status === 200, `GET /v1/flights/${flight} answered ${fr.status}: ${ftext}`);
  const fdoc = JSON.parse(ftext);
  const cabin = fdoc.cabins.find((c) => c.cabin === "economy") || fdoc.cabins[0];
  check(cabin && fdoc.schedule, `flight ${flight} has no scheduled cabin: ${JSON.stringify(fdoc)}`);
  const soldBefore = cabin.sold;
  await post(port, [{
    event_id: uuid7(), schema_version: 1, occurred_at: iso(Date.now()), source: "web-app", event_type: "booking",
    payload: { booking_id: `BK${crypto.randomBytes(4).toString("hex").toUpperCase()}`, customer_id: "c-dashboard",
      flight_id: flight, origin: fdoc.schedule.origin, destination: fdoc.schedule.destination,
      cabin: cabin.cabin, seats: 2, fare: { amount: "250.00", currency: "GBP" } },
  }]);
  const burstStart = Date.now();
  let sent = 0;
  const burst = (async () => {
    // 12 rounds over about 100 s: 15 searches on the hot route and 2 on each other.
    for (let round = 0; round < 12; round++) {
      const events = [];
      for (let i = 0; i < 15; i++) events.push(search(HOT.origin, HOT.destination));
      for (const [o, d] of BACKGROUND) for (let i = 0; i < 2; i++) events.push(search(o, d));
      await post(port, events);
      sent += events.length;
      await sleep(8_000);
    }
  })();
  burst.catch(() => {}); // awaited below; a failure there is reported then

  // Background traffic until the alert is on the page: the evaluator's horizon
  // follows the shards' progress (arrival times), and shards that received nothing
  // for less than ten minutes hold it back, so without traffic the burst's buckets
  // would wait ten minutes to be judged.
  const background = (async () => {
    while (keepGoing) {
      await post(port, BACKGROUND.map(([o, d]) => search(o, d)));
      sent += BACKGROUND.length;
      await sleep(3_000);
    }
  })();
  background.catch(() => {});

  const hotRoute = `${HOT.origin}-${HOT.destination}`;
  const tops = await waitFor("the burst's route tops the hot-routes panel", 60_000, async () => {
    const rows = await page.evaluate(() => [...document.querySelectorAll("#routes tbody tr[data-route]")].map((r) => r.dataset.route));
    return { ok: rows[0] === hotRoute && rows.length > BACKGROUND.length, seen: rows.slice(0, 5) };
  });
  log(`${hotRoute} tops the hot routes after ${tops.seconds.toFixed(1)} s (${tops.seen.join(", ")})`);

  // The flight search, from the page's own form.
  await page.fill("#flight-id", flight.toLowerCase());
  await page.click("#flight-form button");
  const sold = await waitFor("the flight search shows the booked seats", 30_000, async () => {
    // Submit again until the inventory processor has the booking.
    const cells = await page.evaluate((c) => {
      const row = [...document.querySelectorAll("#flight-cabins tbody tr")].find((r) => r.cells[0].textContent === c.replace("_", " "));
      return row ? [...row.cells].map((td) => td.textContent) : null;
    }, cabin.cabin);
    const ok = cells && Number(cells[2].replace(/,/g, "")) >= soldBefore + 2;
    if (!ok) await page.click("#flight-form button");
    return { ok, seen: cells };
  }, 1000);
  log(`flight ${flight} ${cabin.cabin}: capacity ${sold.seen[1]}, sold ${sold.seen[2]}, available ${sold.seen[3]} (was sold ${soldBefore})`);

  const advancing = await asOfAdvances(page, "data as of advances");
  log(`data as of advances (${advancing.seen.before} -> ${advancing.seen.now})`);

  const alert = await waitFor(`the ${hotRoute} surge alert appears`, ALERT_TIMEOUT_S * 1000, async () => {
    const found = await page.evaluate((r) => !!document.querySelector(`#alerts li[data-rule="route_surge"][data-route="${r}"]`), hotRoute);
    return { ok: found, seen: await page.evaluate(() => document.getElementById("alerts").innerText.slice(0, 200)) };
  }, 1000);
  log(`surge alert for ${hotRoute} on the page ${((Date.now() - burstStart) / 1000).toFixed(0)} s after the burst began`);
  await burst;
  keepGoing = false;
  await background;
  const surging = await page.evaluate((r) => document.querySelector(`#routes tr[data-route="${r}"] .pill-surge`) !== null, hotRoute);
  check(surging, `${hotRoute} is not marked as surging in the hot-routes panel once its alert is raised`);
  log(`${sent} events posted; ${hotRoute} marked surging`);

  // The panels with real data, before the fixture below adds a latency frame.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(OUT, "dashboard.png"), fullPage: true });
  log(`screenshot: ${path.join(OUT, "dashboard.png")}`);

  // Latency: absent until /v1/stats carries it; a fixture renders the panel.
  const hasLatency = await page.evaluate(() => !!(window.flyhighDashboard.latest().stats || {}).latency_ms);
  if (!hasLatency) {
    const text = await page.evaluate(() => document.querySelector("#latency tbody").innerText);
    check(text.includes("no latency yet"), `without latency the table should say so, it shows: ${text}`);
  }
  const rendered = await page.evaluate(() => {
    const d = window.flyhighDashboard;
    const latest = d.latest();
    const stage = (p50) => ({ count: 1000, p50, p90: p50 * 2, p99: p50 * 4, p999: p50 * 6, max: p50 * 9 });
    d.render({ ...latest, id: latest.id + 1, generated_at: new Date().toISOString(),
      stats: { ...latest.stats, latency_ms: { ack: stage(3.2), inventory: stage(41), demand: stage(38), archive: stage(120), alert: stage(900) } } });
    return {
      rows: [...document.querySelectorAll("#latency tbody tr[data-stage]")].map((r) => [...r.cells].map((c) => c.textContent)),
      plot: !!document.querySelector("#plot-lat canvas") && !document.getElementById("plot-lat").hidden,
      legend: [...document.querySelectorAll("#plot-lat .u-legend .u-label")].map((e) => e.textContent),
    };
  });
  check(rendered.rows.length === 5 && rendered.rows[0][0] === "ack" && rendered.rows[0][3] === "12.8",
    `the latency table from the fixture: ${JSON.stringify(rendered.rows)}`);
  check(rendered.plot && rendered.legend.includes("ack p99") && rendered.legend.includes("alert p50"),
    `the latency plot from the fixture: ${JSON.stringify(rendered)}`);
  log(`latency fixture rendered: ${rendered.rows.length} stages in the table, ${rendered.legend.length - 1} plotted series`);
  await sleep(1500); // the next real frame replaces the fixture in the tables


  // Eight tabs at once.
  const tabs = await Promise.all(Array.from({ length: 8 }, () => context.newPage()));
  await Promise.all(tabs.map((t) => t.goto(origin + "/", { waitUntil: "domcontentloaded" })));
  const tabResults = await Promise.all(tabs.map(async (t, i) => {
    const live = await waitFor(`tab ${i + 1} of 8 shows live data`, 20_000, async () => {
      const s = await statusOf(t);
      return { ok: s === "live", seen: s };
    });
    await asOfAdvances(t, `tab ${i + 1} of 8 updates`);
    return live.seconds;
  }));
  log(`8 more tabs all live and updating (slowest after ${Math.max(...tabResults).toFixed(1)} s)`);
  const streamModes = await Promise.all(tabs.map((t) => t.evaluate(() => document.getElementById("conn").textContent)));
  check(streamModes.every((m) => m.includes("shared")), `tabs not sharing one stream: ${JSON.stringify(streamModes)}`);
  await Promise.all(tabs.map((t) => t.close()));

  // Staleness: stop serve, the page must say so within a few seconds. (Serve sends
  // frames while it drains, so "as of" is read once the page says stale.)
  await stopServe(serve);
  const stoppedAt = Date.now();
  const stale = await waitFor("the page says stale after serve stopped", 10_000, async () => {
    const s = await statusOf(page);
    const banner = await page.evaluate(() => { const b = document.getElementById("stale"); return b.hidden ? "" : b.textContent; });
    return { ok: s === "stale" && banner.startsWith("stale: no update for"), seen: { s, banner } };
  });
  log(`stale ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s after SIGTERM: "${stale.seen.banner}"`);
  const lastAsOf = await asOf(page);
  await sleep(2000);
  check((await asOf(page)) === lastAsOf, "data as of moved while serve was stopped");
  await page.screenshot({ path: path.join(OUT, "dashboard-stale.png") });

  // Restart on the same port and data: the same page resumes.
  serve = await startServe(port);
  const resumed = await waitFor("the page resumes after the restart", 30_000, async () => {
    const s = await statusOf(page);
    const now = await asOf(page);
    return { ok: s === "live" && now !== lastAsOf, seen: { s, now, lastAsOf } };
  });
  log(`resumed without a reload ${resumed.seconds.toFixed(1)} s after serve was ready again`);
  await asOfAdvances(page, "data as of advances after the restart");

  check(pageErrors.length === 0, `script errors on the page: ${pageErrors.join(" | ")}`);
  check(offHost.length === 0, `requests left 127.0.0.1:${port}: ${offHost.slice(0, 5).join(", ")}`);
  log("no request left the server's origin; no script errors");
}

let failed = false;
try {
  await main();
  log("dashboard check passed");
} catch (e) {
  failed = true;
  console.error(`\nFAILED: ${e instanceof CheckFailed ? e.message : e.stack || e}`);
  try {
    const page = context && context.pages()[0];
    if (page) {
      await page.screenshot({ path: path.join(OUT, "dashboard-failure.png") });
      console.error(`page at the failure: ${path.join(OUT, "dashboard-failure.png")}`);
    }
  } catch (_) { /* the browser may be gone */ }
  const tail = fs.readFileSync(serveLog, "utf8").split("\n").slice(-20).join("\n");
  console.error(`last lines of ${serveLog}:\n${tail}`);
} finally {
  keepGoing = false;
  if (context) await context.close().catch(() => {});
  if (serve && serve.exitedRef() === null) {
    serve.proc.kill("SIGTERM");
    await sleep(2000);
    if (serve.exitedRef() === null) serve.proc.kill("SIGKILL");
  }
  fs.rmSync(data, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
