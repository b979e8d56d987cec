// The FlyHigh live dashboard's one script. It runs in two places:
// - as a SharedWorker (the same file): it holds the browser's one EventSource on
//   /v1/live and hands every frame to each tab, so any number of tabs cost one
//   HTTP connection (HTTP/1.1 allows six per host; a seventh tab would hang);
// - in the page: it renders what the worker (or, in a browser without shared
//   workers, its own EventSource) delivers.
"use strict";

const HISTORY = 300; // frames kept for the plots: five minutes at one a second
const STALE_AFTER_MS = 3500; // no frame for this long: the page says it is stale

// --- The feed: one EventSource, resumed after the last id it saw. -----------------

function openFeed(onFrame, onState) {
  let source = null;
  let lastId = null;
  let timer = null;
  function connect() {
    // An EventSource resends Last-Event-ID on its own reconnections; after one we
    // had to recreate (the server answered an error), the id goes in the query.
    const url = "/v1/live" + (lastId ? "?last_event_id=" + encodeURIComponent(lastId) : "");
    source = new EventSource(url);
    source.onopen = () => onState("open");
    source.onmessage = (e) => {
      let frame;
      try { frame = JSON.parse(e.data); } catch (_) { return; }
      if (lastId && Number(e.lastEventId) <= Number(lastId)) return; // already seen
      lastId = e.lastEventId || String(frame.id);
      onFrame(frame);
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (503 beyond the stream cap) or not an event stream: try again.
        onState("retrying");
        source.close();
        clearTimeout(timer);
        timer = setTimeout(connect, 2000);
      } else {
        onState("reconnecting");
      }
    };
  }
  connect();
}

// --- SharedWorker side. -------------------------------------------------------------

function workerMain() {
  const ports = new Set();
  const history = [];
  let receivedAt = 0;
  let state = "connecting";
  const send = (msg) => { for (const p of ports) p.postMessage(msg); };
  openFeed(
    (frame) => {
      history.push(frame);
      if (history.length > HISTORY) history.splice(0, history.length - HISTORY);
      receivedAt = Date.now();
      send({ type: "frame", frame, receivedAt });
    },
    (s) => { state = s; send({ type: "state", state }); },
  );
  self.onconnect = (e) => {
    const port = e.ports[0];
    ports.add(port);
    port.onmessage = (m) => { if (m.data === "bye") ports.delete(port); };
    port.start();
    port.postMessage({ type: "history", frames: history, receivedAt, state });
  };
}

// --- Page side. -------------------------------------------------------------------

function pageMain() {
  const $ = (id) => document.getElementById(id);
  const frames = [];
  let latest = null;
  let receivedAt = 0;
  let connState = "connecting";
  let selectedRoute = null;
  let sharedMode = false;
  const seenAlerts = new Set();
  let firstAlerts = true;

  // Formatting.
  const nf = new Intl.NumberFormat("en-GB");
  const fmtInt = (n) => (n == null || isNaN(n) ? "—" : nf.format(Math.round(n)));
  const fmt1 = (n) => (n == null || isNaN(n) ? "—" : n.toFixed(1));
  const fmtMs = (n) => (n == null || isNaN(n) ? "—" : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : fmtInt(n));
  const fmtBytes = (b) => (b == null ? "—" : b >= 1 << 20 ? (b / (1 << 20)).toFixed(1) + " MiB" : b >= 1024 ? (b / 1024).toFixed(0) + " KiB" : b + " B");
  const utc = (iso) => (iso ? new Date(iso).toISOString().slice(11, 19) : "—");
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const get = (o, path) => path.split(".").reduce((v, k) => (v == null ? undefined : v[k]), o);
  const sum = (...xs) => xs.reduce((a, x) => a + (Number(x) || 0), 0);

  // Per-processor counters: events in, dead letters, failed batches.
  const PROCESSORS = [
    { name: "inventory", events: "handler.user_records" },
    { name: "demand", events: "handler.events" },
    { name: "archive", events: "handler.events" },
  ];
  const procEvents = (s, p) => get(s, `processors.${p.name}.${p.events}`);
  const procDead = (s, p) => sum(get(s, `processors.${p.name}.handler.dead_lettered`), get(s, `processors.${p.name}.runner.records_to_failure_destination`));
  const procFailed = (s, p) => sum(get(s, `processors.${p.name}.handler.failed_batches`), get(s, `processors.${p.name}.runner.failed_invocations`));

  // A counter's rate between two frames, per second.
  function rate(a, b, pick) {
    if (!a || !b || !a.stats || !b.stats) return null;
    const dt = (Date.parse(b.generated_at) - Date.parse(a.generated_at)) / 1000;
    const x = pick(b.stats), y = pick(a.stats);
    if (!(dt > 0) || x == null || y == null || x < y) return null; // a restart resets counters
    return (x - y) / dt;
  }
  // The rate over the last few seconds, steadier than frame to frame.
  function recentRate(pick, span = 5) {
    if (frames.length < 2) return null;
    const b = frames[frames.length - 1];
    const a = frames[Math.max(0, frames.length - 1 - span)];
    return rate(a, b, pick);
  }

  function accept(frame) {
    if (latest && frame.id <= latest.id) return;
    frames.push(frame);
    if (frames.length > HISTORY) frames.splice(0, frames.length - HISTORY);
    latest = frame;
  }

  // --- Rendering. ---

  function renderHeader() {
    const s = latest;
    $("source").textContent = s.source || "";
    $("asof").textContent = utc(s.generated_at) + " UTC";
    $("asof").title = s.generated_at;
    const lag = s.stats && s.stats.lag;
    if (lag) {
      const worst = Math.max(...PROCESSORS.map((p) => get(lag, `${p.name}.seconds_behind`) || 0));
      const recs = sum(...PROCESSORS.map((p) => get(lag, `${p.name}.records`)));
      $("lag").textContent = `${worst.toFixed(1)} s · ${fmtInt(recs)} rec`;
    } else if (s.consumers_progress_at) {
      const behind = (Date.parse(s.generated_at) - Date.parse(s.consumers_progress_at)) / 1000;
      $("lag").textContent = `consumers moved ${fmtAgo(behind)} ago`;
    } else {
      $("lag").textContent = "—";
    }
    const errors = s.errors || [];
    $("errors").hidden = errors.length === 0;
    $("errors").textContent = errors.length ? "Could not read: " + errors.join(" · ") : "";
  }

  function fmtAgo(sec) {
    if (!(sec >= 0)) return "—";
    if (sec < 90) return `${sec.toFixed(0)} s`;
    if (sec < 5400) return `${(sec / 60).toFixed(0)} min`;
    return `${(sec / 3600).toFixed(1)} h`;
  }

  function renderFreshness() {
    const pill = $("status");
    const banner = $("stale");
    if (!latest) {
      pill.className = "pill pill-wait";
      pill.textContent = pill.dataset.state = connState === "open" ? "waiting" : connState;
      return;
    }
    const age = Date.now() - receivedAt;
    const interval = latest.interval_ms || 1000;
    const stale = age > Math.max(STALE_AFTER_MS, 3 * interval);
    pill.dataset.state = stale ? "stale" : "live";
    pill.className = "pill " + (stale ? "pill-stale" : "pill-live");
    pill.textContent = stale ? "stale" : "live";
    banner.hidden = !stale;
    if (stale) {
      const why = connState === "open" ? "the server sends nothing" : "the server cannot be reached; reconnecting";
      banner.textContent = `stale: no update for ${Math.round(age / 1000)} s (${why}); figures below are as of ${utc(latest.generated_at)} UTC`;
    }
    document.title = (stale ? "STALE · " : "") + "FlyHigh · Live";
    $("conn").textContent = `stream: ${connState}${sharedMode ? " (shared by this browser's tabs)" : " (this tab's own)"}`;
  }

  function kpi(label, value, sub, cls = "") {
    return `<div class="kpi ${cls}"><div class="label">${esc(label)}</div><div class="value">${value}</div><div class="sub">${sub}</div></div>`;
  }

  function renderKpis() {
    const s = latest.stats;
    const surging = (latest.hot_routes || []).filter((r) => r.surging).length;
    const raised = (latest.alerts || []).filter((a) => a.alert.status !== "cleared").length;
    let html = "";
    if (s) {
      const inRate = recentRate((x) => get(x, "ingest.accepted"));
      const throttled = get(s, "ingest.by_status.429") || 0;
      const buffered = get(s, "producer.buffered_bytes") || 0, budget = get(s, "producer.budget_bytes") || 1;
      const dead = sum(...PROCESSORS.map((p) => procDead(s, p)), get(s, "producer.dead_lettered"));
      const failed = sum(...PROCESSORS.map((p) => procFailed(s, p)));
      const lag = Math.max(...PROCESSORS.map((p) => get(s, `lag.${p.name}.seconds_behind`) || 0));
      html += kpi("Ingest", fmtInt(inRate) + "<small>/s</small>", `${fmtInt(get(s, "ingest.accepted"))} accepted`);
      html += kpi("Throttled (429)", fmtInt(throttled), `${fmtInt(get(s, "ingest.retry"))} events to retry`, throttled > 0 ? "warn" : "");
      html += kpi("Producer buffer", `${((100 * buffered) / budget).toFixed(0)}%`, `${fmtBytes(buffered)} of ${fmtBytes(budget)}`, buffered / budget > 0.5 ? "warn" : "");
      html += kpi("Max lag", `${lag.toFixed(1)} s`, "oldest unhandled record", lag > 10 ? "bad" : lag > 2 ? "warn" : "");
      html += kpi("Dead letters", fmtInt(dead), "quarantined records", dead > 0 ? "bad" : "");
      html += kpi("Failed batches", fmtInt(failed), "retried by the mappings", failed > 0 ? "warn" : "");
    } else {
      html += `<div class="kpi span-metrics" style="grid-column: span 6"><div class="label">Pipeline metrics</div><div class="value" style="font-size:14px">in CloudWatch</div><div class="sub">This source has no service counters: throughput, lag and latency of an AWS deployment are CloudWatch metrics.</div></div>`;
    }
    html += kpi("Surging routes", fmtInt(surging), `of ${fmtInt((latest.hot_routes || []).length)} shown`, surging > 0 ? "bad" : "");
    html += kpi("Alerts", fmtInt(raised), "raised in the last 24 h", raised > 0 ? "warn" : "");
    $("kpis").innerHTML = html;
  }

  function renderRoutes() {
    const rows = latest.hot_routes || [];
    const body = $("routes").tBodies[0];
    if (rows.length === 0) {
      body.innerHTML = `<tr><td colspan="10" class="empty">no demand counted yet</td></tr>`;
      $("routes-window").textContent = "";
      return;
    }
    const r0 = rows[0];
    const minutes = Math.round((Date.parse(r0.window_end) - Date.parse(r0.window_start)) / 60000);
    $("routes-window").textContent = `last ${minutes} min (${utc(r0.window_start).slice(0, 5)}–${utc(r0.window_end).slice(0, 5)} UTC), highest demand against baseline first`;
    const maxRatio = Math.max(3, ...rows.map((r) => r.ratio));
    body.innerHTML = rows.map((r) => {
      const state = r.surging === true ? `<span class="pill pill-surge">surge</span>` : r.surging === false ? `<span class="muted">normal</span>` : `<span class="muted">—</span>`;
      const width = Math.min(100, (100 * r.ratio) / maxRatio).toFixed(1);
      const hot = r.ratio >= 3 ? " hot" : "";
      return `<tr data-route="${esc(r.route)}" class="${r.surging ? "surging" : ""}${r.route === selectedRoute ? " selected" : ""}">` +
        `<td class="route">${esc(r.route)}</td><td class="n">${fmtInt(r.demand)}</td><td class="n">${fmt1(r.baseline)}</td>` +
        `<td><div class="bar${hot}"><span style="width:${width}%"></span><em>${r.ratio.toFixed(1)}×</em></div></td>` +
        `<td class="n">${fmtInt(r.counts.searches)}</td><td class="n">${fmtInt(r.counts.bookings)}</td><td class="n">${fmtInt(r.counts.seats)}</td>` +
        `<td class="n">${fmtInt(r.counts.cancellations)}</td><td class="n">${fmtInt(r.counts.late)}</td><td>${state}</td></tr>`;
    }).join("");
  }

  const RULES = { route_surge: "Route surge", near_sold_out: "Near sold out", sold_out: "Sold out", oversold: "Oversold" };

  function renderAlerts() {
    const alerts = latest.alerts || [];
    $("alerts-count").textContent = alerts.length ? `${alerts.length} latest` : "";
    if (alerts.length === 0) {
      $("alerts").innerHTML = `<li class="empty">no alerts raised</li>`;
      return;
    }
    $("alerts").innerHTML = alerts.map(({ alert: a, published_at }) => {
      const fresh = !firstAlerts && !seenAlerts.has(a.alert_id);
      seenAlerts.add(a.alert_id);
      const sev = a.status === "cleared" ? `<span class="pill pill-cleared">cleared</span>` : `<span class="pill pill-${esc(a.severity)}">${esc(a.severity)}</span>`;
      const what = a.flight_id ? `${esc(a.flight_id)}${a.cabin ? " · " + esc(a.cabin) : ""}` : esc(a.route);
      return `<li class="${fresh ? "fresh" : ""}" data-rule="${esc(a.rule)}" data-route="${esc(a.route)}">` +
        `<div class="alert-head">${sev}<b>${esc(RULES[a.rule] || a.rule)}</b><span>${what}</span>` +
        `<span class="when" title="${esc(a.detected_at)}${published_at ? "" : " (not yet published)"}">${utc(a.detected_at)}</span></div>` +
        `<div class="alert-summary">${esc(a.summary)}</div></li>`;
    }).join("");
    firstAlerts = false;
  }

  // Per-shard records behind, small under the total: "0 · 12 · 0 · 3".
  function perShard(shards) {
    if (!Array.isArray(shards) || shards.length < 2) return "";
    const title = shards.map((x) => `${x.shard_id}: ${x.records} records, ${x.seconds_behind.toFixed(1)} s`).join("\n");
    return `<div class="sub" title="${title}">${shards.map((x) => fmtInt(x.records)).join(" · ")}</div>`;
  }

  function renderProcessors() {
    const s = latest.stats;
    const body = $("processors").tBodies[0];
    if (!s) {
      body.innerHTML = `<tr><td colspan="7" class="empty">metrics live in CloudWatch for this source</td></tr>`;
      $("archive").innerHTML = $("producer").innerHTML = "";
      $("proc-note").textContent = "";
      return;
    }
    $("proc-note").textContent = "lag: records after each processor's checkpoints, in all and per shard";
    body.innerHTML = PROCESSORS.map((p) => {
      const r = recentRate((x) => procEvents(x, p));
      const dead = procDead(s, p), failed = procFailed(s, p);
      return `<tr data-processor="${p.name}"><td><b>${p.name}</b></td><td class="n">${fmt1(r)}</td><td class="n">${fmtInt(procEvents(s, p))}</td>` +
        `<td class="n">${fmtInt(get(s, `lag.${p.name}.records`))}${perShard(get(s, `lag.${p.name}.shards`))}</td><td class="n">${fmt1(get(s, `lag.${p.name}.seconds_behind`))}</td>` +
        `<td class="n${dead ? " oversold" : ""}">${fmtInt(dead)}</td><td class="n">${fmtInt(failed)}</td></tr>`;
    }).join("");
    const a = get(s, "processors.archive.handler") || {};
    $("archive").innerHTML =
      `<dt>Files written</dt><dd>${fmtInt(a.files)}</dd><dt>Rows</dt><dd>${fmtInt(a.rows)}</dd>` +
      `<dt>Bytes</dt><dd>${fmtBytes(a.bytes)}</dd><dt>Hours compacted</dt><dd>${fmtInt(get(s, "processors.hours_compacted"))} in ${fmtInt(get(s, "processors.compactions"))} runs</dd>` +
      `<dt>Evaluator runs</dt><dd>${fmtInt(get(s, "processors.evaluator_runs"))}</dd>`;
    const buffered = get(s, "producer.buffered_bytes") || 0, budget = get(s, "producer.budget_bytes") || 1;
    $("producer").innerHTML =
      `<dt>Buffered</dt><dd>${fmtBytes(buffered)}<div class="meter"><span style="width:${Math.min(100, (100 * buffered) / budget).toFixed(1)}%"></span></div></dd>` +
      `<dt>Written</dt><dd>${fmtInt(get(s, "producer.written"))}</dd>` +
      `<dt>429 answers</dt><dd>${fmtInt(get(s, "ingest.by_status.429") || 0)}</dd>` +
      `<dt>Rejected</dt><dd>${fmtInt(get(s, "ingest.rejected"))}</dd>` +
      `<dt>Requests</dt><dd>${fmtInt(get(s, "ingest.requests"))}</dd>`;
  }

  function renderLatencyTable() {
    const lat = latest.stats && latest.stats.latency_ms;
    const body = $("latency").tBodies[0];
    const stages = lat ? Object.keys(lat) : [];
    if (stages.length === 0) {
      body.innerHTML = `<tr><td colspan="7" class="empty">no latency yet</td></tr>`;
      return;
    }
    body.innerHTML = stages.map((k) => {
      const v = lat[k] || {};
      return `<tr data-stage="${esc(k)}"><td><b>${esc(k)}</b></td><td class="n">${fmtMs(v.p50)}</td><td class="n">${fmtMs(v.p90)}</td><td class="n">${fmtMs(v.p99)}</td>` +
        `<td class="n">${fmtMs(v.p999)}</td><td class="n">${fmtMs(v.max)}</td><td class="n">${fmtInt(v.count)}</td></tr>`;
    }).join("");
  }

  // --- Plots (uPlot). ---

  const COLORS = ["#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285", "#5c940d"];
  const plots = {};

  // 24-hour UTC tick labels; seconds only when the span is short.
  function timeTicks(u, splits) {
    const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
    return splits.map((v) => new Date(v * 1000).toISOString().slice(11, span < 600 ? 19 : 16));
  }

  // The canvas height is fixed: the legend goes below it and the card grows.
  const PLOT_HEIGHT = 190;
  function size(el) {
    return { width: Math.max(200, el.clientWidth), height: PLOT_HEIGHT };
  }

  // (Re)creates a plot when its series change, else only sets its data.
  function plot(key, el, series, data, opts = {}) {
    const sig = series.map((s) => s.label).join("|");
    let p = plots[key];
    if (!p || p.sig !== sig) {
      if (p) p.u.destroy();
      el.innerHTML = "";
      const u = new uPlot({
        ...size(el),
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: opts.log
          ? { distr: 3, log: 10 }
          : { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
        axes: [
          { stroke: "#5d6878", grid: { stroke: "#eef1f5" }, ticks: { stroke: "#e2e7ee" }, label: "time (UTC)", labelSize: 16, values: timeTicks, space: 80 },
          { stroke: "#5d6878", grid: { stroke: "#eef1f5" }, ticks: { stroke: "#e2e7ee" }, label: opts.yLabel, labelSize: 18, size: opts.ySize || 50,
            // A log axis ticks at every 1..9 × 10ⁿ: label the powers of ten only.
            // and every other one when there are more than four (a short plot).
            ...(opts.log ? { values: (u, ticks) => {
              const decade = (v) => { const e = Math.log10(v); return Math.abs(e - Math.round(e)) < 1e-6 ? Math.round(e) : null; };
              const shown = ticks.map(decade).filter((e) => e != null);
              const step = shown.length > 4 ? 2 : 1;
              return ticks.map((v) => {
                const e = decade(v);
                if (e == null || e % step !== 0) return "";
                return e >= 3 ? `${10 ** (e - 3)} s` : `${10 ** e} ms`;
              });
            } } : {}) },
        ],
        series: [{ label: "UTC", value: (u, v) => (v == null ? "—" : new Date(v * 1000).toISOString().slice(11, 19)) }, ...series],
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      }, data, el);
      p = plots[key] = { u, sig, el };
    } else {
      p.u.setData(data);
    }
    // The card may have been laid out after creation (fonts, scrollbars).
    const want = size(el);
    if (want.width !== p.u.width || want.height !== p.u.height) p.u.setSize(want);
  }

  function renderDemandPlot() {
    const series = latest.route_series || [];
    const pick = $("route-pick");
    const routes = series.map((s) => s.route);
    if (!selectedRoute || !routes.includes(selectedRoute)) selectedRoute = routes[0] || null;
    const options = routes.map((r) => `<option${r === selectedRoute ? " selected" : ""}>${esc(r)}</option>`).join("");
    if (pick.dataset.options !== options) { pick.innerHTML = options; pick.dataset.options = options; }
    pick.value = selectedRoute || "";
    const s = series.find((x) => x.route === selectedRoute);
    const el = $("plot-demand");
    if (!s) { el.innerHTML = `<p class="empty">no demand counted yet</p>`; if (plots.demand) { plots.demand.u.destroy(); delete plots.demand; } return; }
    const xs = s.points.map((p) => p[0]);
    const ys = s.points.map((p) => p[1]);
    const base = xs.map(() => s.baseline_per_minute);
    plot("demand", el, [
      { label: `${s.route} demand / min`, stroke: COLORS[1], width: 2, fill: "rgba(217,72,15,0.08)", paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
      { label: "baseline / min", stroke: "#5d6878", width: 1.5, dash: [6, 4], points: { show: false } },
    ], [xs, ys, base], { yLabel: "demand / min" });
  }

  function renderThroughputPlot() {
    const el = $("plot-tput");
    if (!latest.stats) { el.innerHTML = `<p class="empty">metrics live in CloudWatch for this source</p>`; if (plots.tput) { plots.tput.u.destroy(); delete plots.tput; } return; }
    const picks = [
      ["ingest accepted", (x) => get(x, "ingest.accepted")],
      ...PROCESSORS.map((p) => [p.name, (x) => procEvents(x, p)]),
    ];
    // Each point is the rate over the five seconds before it: a client posting
    // every few seconds reads as its rate, not as spikes.
    const xs = [], ys = picks.map(() => []);
    for (let i = 1; i < frames.length; i++) {
      xs.push(Date.parse(frames[i].generated_at) / 1000);
      picks.forEach(([, f], k) => ys[k].push(rate(frames[Math.max(0, i - 5)], frames[i], f)));
    }
    plot("tput", el, picks.map(([label], k) => ({ label, stroke: COLORS[k], width: k === 0 ? 2 : 1.5, spanGaps: false, points: { show: false } })), [xs, ...ys], { yLabel: "events / s" });
  }

  function renderLatencyPlot() {
    const el = $("plot-lat");
    const stages = new Set();
    for (const f of frames) for (const k of Object.keys(get(f, "stats.latency_ms") || {})) stages.add(k);
    $("lat-empty").hidden = stages.size > 0;
    el.hidden = stages.size === 0;
    if (stages.size === 0) return;
    const list = [...stages];
    const xs = frames.map((f) => Date.parse(f.generated_at) / 1000);
    const series = [], data = [xs];
    list.forEach((stage, k) => {
      for (const q of ["p50", "p99"]) {
        series.push({ label: `${stage} ${q}`, stroke: COLORS[k % COLORS.length], width: q === "p99" ? 2 : 1.5, dash: q === "p50" ? [5, 4] : undefined, points: { show: false } });
        // A log scale: zero (nothing recorded yet) is not drawn.
        data.push(frames.map((f) => { const v = get(f, `stats.latency_ms.${stage}.${q}`); return v ? v : null; }));
      }
    });
    plot("lat", el, series, data, { yLabel: "event → stage (log)", log: true, ySize: 64 });
  }

  // --- Flight search. ---

  async function showFlight(id) {
    const out = $("flight");
    id = id.trim().toUpperCase();
    if (!id) return;
    out.innerHTML = `<p class="muted">reading ${esc(id)}…</p>`;
    try {
      const r = await fetch("/v1/flights/" + encodeURIComponent(id));
      const doc = await r.json();
      if (!r.ok) { out.innerHTML = `<p class="error-text">${esc(doc.error || r.statusText)}</p>`; return; }
      const sched = doc.schedule ? `${esc(doc.schedule.origin)} → ${esc(doc.schedule.destination)}, departs ${esc(doc.schedule.departure.replace("T", " ").slice(0, 16))} UTC` : "not in the schedule";
      out.innerHTML = `<p><b>${esc(doc.flight_id)}</b> <span class="muted">${sched}</span></p>` +
        `<table class="grid" id="flight-cabins"><thead><tr><th>Cabin</th><th class="n">Capacity</th><th class="n">Sold</th><th class="n">Available</th><th class="n">Oversold</th></tr></thead><tbody>` +
        doc.cabins.map((c) => `<tr><td>${esc(c.cabin.replace("_", " "))}</td><td class="n">${fmtInt(c.capacity)}</td><td class="n">${fmtInt(c.sold)}</td>` +
          `<td class="n">${fmtInt(c.available)}</td><td class="n${c.oversold > 0 ? " oversold" : ""}">${fmtInt(c.oversold)}</td></tr>`).join("") +
        `</tbody></table><p class="note">read ${utc(new Date().toISOString())} UTC; press Show again to refresh</p>`;
    } catch (e) {
      out.innerHTML = `<p class="error-text">cannot reach the server: ${esc(e.message)}</p>`;
    }
  }

  // --- Wiring. ---

  function render() {
    if (!latest) return;
    const parts = [renderHeader, renderKpis, renderRoutes, renderAlerts, renderProcessors, renderLatencyTable, renderDemandPlot, renderThroughputPlot, renderLatencyPlot];
    for (const part of parts) {
      // One panel's failure (an unexpected field) must not blank the others.
      try { part(); } catch (e) { console.error(part.name, e); }
    }
    renderFreshness();
  }

  let pending = false;
  function scheduleRender() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  }

  function onHistory(list, at) {
    for (const f of list) accept(f);
    if (list.length) receivedAt = at || Date.now();
    scheduleRender();
  }
  function onFrame(f, at) {
    accept(f);
    receivedAt = at || Date.now();
    scheduleRender();
  }
  function onState(s) {
    connState = s;
    renderFreshness();
  }

  if (typeof SharedWorker === "function") {
    try {
      const worker = new SharedWorker("/assets/app.js", { name: "flyhigh-live" });
      sharedMode = true;
      worker.port.onmessage = (e) => {
        const m = e.data;
        if (m.type === "history") { onState(m.state); onHistory(m.frames, m.receivedAt); }
        else if (m.type === "frame") onFrame(m.frame, m.receivedAt);
        else if (m.type === "state") onState(m.state);
      };
      worker.port.start();
      addEventListener("pagehide", () => worker.port.postMessage("bye"));
    } catch (e) {
      sharedMode = false;
    }
  }
  if (!sharedMode) openFeed((f) => onFrame(f, Date.now()), onState);

  setInterval(renderFreshness, 500);
  $("routes").addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-route]");
    if (!tr) return;
    selectedRoute = tr.dataset.route;
    render();
  });
  $("route-pick").addEventListener("change", (e) => { selectedRoute = e.target.value; render(); });
  $("flight-form").addEventListener("submit", (e) => { e.preventDefault(); showFlight($("flight-id").value); });
  addEventListener("resize", () => { for (const p of Object.values(plots)) p.u.setSize(size(p.el)); });

  // For checks: render a snapshot as if it had arrived (e.g. latency fields).
  window.flyhighDashboard = {
    render: (snapshot) => { onFrame(snapshot, Date.now()); render(); },
    frames: () => frames.length,
    latest: () => latest,
  };
}

if (typeof SharedWorkerGlobalScope !== "undefined" && self instanceof SharedWorkerGlobalScope) {
  workerMain();
} else {
  document.readyState === "loading" ? document.addEventListener("DOMContentLoaded", pageMain) : pageMain();
}
