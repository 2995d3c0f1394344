// The dashboard: sign-in, the history ring (GET /api/v1/memory/history),
// live samples (GET /api/v1/memory/history/stream, Server-Sent Events read
// with fetch so the token travels in a header), and snapshots polled every
// few seconds (size classes, contexts, the debugger). Plots are uPlot's.
"use strict";
(function () {
  const TOKEN_KEY = "rustydb.token";
  const THEME_KEY = "rustydb.theme";
  const $ = (id) => document.getElementById(id);
  const state = {
    cols: null,        // history columns (object of arrays)
    meta: null,        // the rest of GET /api/v1/memory/history
    lastSeq: 0,
    range: 300,        // seconds shown
    plots: {},         // name -> uPlot
    classes: null,     // latest size classes
    abort: null,
    timers: [],
    firstPlotMs: null,
  };
  window.__dashboard = state;

  // ---------------------------------------------------------------- formats
  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
  function bytes(v) {
    if (v == null) return "–";
    let i = 0, x = Math.abs(v);
    while (x >= 1024 && i < UNITS.length - 1) { x /= 1024; i++; }
    return (v < 0 ? "-" : "") + (i === 0 ? x.toFixed(0) : x.toFixed(x < 10 ? 2 : 1)) + " " + UNITS[i];
  }
  const num = (v, d = 1) => v == null ? "–" : (Math.abs(v) >= 1000 ? Math.round(v).toLocaleString() : v.toFixed(d));
  const FMT = {
    bytes,
    ratio: (v) => v == null ? "–" : v.toFixed(2) + "×",
    percent: (v) => v == null ? "–" : v.toFixed(1) + " %",
    perSec: (v) => v == null ? "–" : num(v) + "/s",
    ms: (v) => v == null ? "–" : (v < 1 ? v.toFixed(3) : num(v, 1)) + " ms",
    count: (v) => v == null ? "–" : Math.round(v).toLocaleString(),
    pages: (v) => v == null ? "–" : Math.round(v).toLocaleString() + " pages",
  };
  const AXIS_LABEL = { bytes: "bytes", ratio: "mapped ÷ in use", percent: "% of budget", perSec: "per second",
    ms: "milliseconds", count: "count", pages: "pages" };

  // ---------------------------------------------------------------- HTTP
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
  function auth(extra) { return Object.assign({ Authorization: "Bearer " + token() }, extra || {}); }
  async function api(path) {
    const r = await fetch(path, { headers: auth(), cache: "no-store" });
    if (r.status === 401) { signOut("The token was not accepted."); throw new Error("401"); }
    if (!r.ok) throw new Error(path + ": " + r.status);
    return r.json();
  }

  // ---------------------------------------------------------------- theme
  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function applyTheme(t) {
    if (t) document.documentElement.dataset.theme = t;
    else delete document.documentElement.dataset.theme;
  }
  (function initTheme() {
    const saved = localStorage.getItem(THEME_KEY);
    const dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    applyTheme(saved || (dark ? "dark" : "light"));
  })();
  $("theme").addEventListener("click", () => {
    const t = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    localStorage.setItem(THEME_KEY, t);
    applyTheme(t);
    rebuildPlots();
  });

  // ---------------------------------------------------------------- plots
  // Each plot: series of history columns (`key`), or a custom data source.
  function specs() {
    const th = state.meta ? state.meta.thresholds : { warning: 80, critical: 90, emergency: 95 };
    const pools = state.cols && state.cols.pool1_hit_ratio.some((v) => v != null) ? 2 : 1;
    const hits = [{ label: "pool 1", key: "pool0_hit_ratio", unit: "percent", scale100: true, color: "--s1" }];
    if (pools > 1) hits.push({ label: "pool 2", key: "pool1_hit_ratio", unit: "percent", scale100: true, color: "--s2" });
    return {
      memory: { series: [
        { label: "RSS", key: "rss_bytes", unit: "bytes", color: "--s1" },
        { label: "mapped", key: "mapped_bytes", unit: "bytes", color: "--s2" },
        { label: "in use", key: "in_use_bytes", unit: "bytes", color: "--s3" },
        { label: "fragmentation", key: "fragmentation", unit: "ratio", color: "--s4", right: true, dash: [4, 3] },
      ] },
      pressure: { series: [
        { label: "usage", key: "pressure_percent", unit: "percent", color: "--s1", width: 2 },
        { label: "warning " + th.warning + " %", constant: th.warning, unit: "percent", color: "--warn", dash: [6, 4], width: 1 },
        { label: "critical " + th.critical + " %", constant: th.critical, unit: "percent", color: "--crit", dash: [6, 4], width: 1 },
        { label: "emergency " + th.emergency + " %", constant: th.emergency, unit: "percent", color: "--emer", dash: [6, 4], width: 1 },
        { label: "budget", constant: 100, unit: "percent", color: "--line", width: 1, legend: false },
        { label: "reclaimed", key: "reclaimed_bytes", unit: "bytes", color: "--s5", right: true, markers: true },
      ], bands: [[3, 2, "--band-warn"], [4, 3, "--band-crit"], [5, 4, "--band-emer"]], yRange: [0, 100] },
      caches: { series: [
        { label: "large in use", key: "large_in_use_bytes", unit: "bytes", color: "--s1" },
        { label: "large cached", key: "large_cached_bytes", unit: "bytes", color: "--s2" },
        { label: "slab cached", key: "slab_cached_bytes", unit: "bytes", color: "--s3" },
        { label: "contexts used", key: "contexts_used_bytes", unit: "bytes", color: "--s4" },
      ] },
      hits: { series: hits, yRange: [0, 100] },
      pages: { series: [
        { label: "hot", key: "pool_hot_pages", unit: "pages", color: "--s1" },
        { label: "warm", key: "pool_warm_pages", unit: "pages", color: "--s4" },
        { label: "cold", key: "pool_cold_pages", unit: "pages", color: "--s6" },
        { label: "dirty", key: "pool_dirty_pages", unit: "pages", color: "--s5" },
        { label: "evictions", key: "pool_evictions_per_s", unit: "perSec", color: "--s2", right: true, dash: [4, 3] },
      ] },
      load: { series: [
        { label: "requests", key: "requests_per_s", unit: "perSec", color: "--s1" },
        { label: "queries", key: "queries_per_s", unit: "perSec", color: "--s3" },
        { label: "connections", key: "connections", unit: "count", color: "--s2", right: true, step: true },
      ] },
      latency: { series: [
        { label: "p50", key: "latency_p50_ms", unit: "ms", color: "--s1" },
        { label: "p99", key: "latency_p99_ms", unit: "ms", color: "--s5" },
      ] },
    };
  }

  function seriesData(s, n) {
    if (s.constant != null) return new Array(n).fill(s.constant);
    const col = state.cols[s.key];
    if (s.scale100) return col.map((v) => v == null ? null : v * 100);
    if (s.markers) return col.map((v) => v > 0 ? v : null);
    return col;
  }

  function timeData(spec) {
    const c = state.cols;
    const x = c.t_ms.map((t) => t / 1000);
    return [x].concat(spec.series.map((s) => seriesData(s, x.length)));
  }

  function axis(unit, side) {
    return {
      scale: unit, side, label: AXIS_LABEL[unit], labelSize: 18, size: 64,
      stroke: css("--muted"), grid: { show: side === 3, stroke: css("--line"), width: 1 },
      ticks: { stroke: css("--line") },
      values: (u, splits) => splits.map((v) => FMT[unit](v)),
    };
  }

  // Sets data-* on the plot's element at every draw: what a browser test reads.
  function mark(u) {
    const el = u.root.parentElement;
    let points = 0, withPoints = 0, sig = 0;
    for (let s = 1; s < u.data.length; s++) {
      const d = u.data[s];
      let n = 0;
      for (let i = 0; i < d.length; i++) if (d[i] != null) { n++; sig += d[i] * ((i % 7) + 1); }
      if (n > 0) withPoints++;
      points += n;
    }
    sig += u.data[0].length ? u.data[0][u.data[0].length - 1] : 0;
    el.dataset.draws = String(+(el.dataset.draws || 0) + 1);
    el.dataset.points = String(points);
    el.dataset.series = String(withPoints);
    el.dataset.sig = String(sig);
    if (state.firstPlotMs == null) {
      state.firstPlotMs = performance.now(); // since the navigation started
      document.body.dataset.firstPlotMs = state.firstPlotMs.toFixed(0);
    }
  }

  function width(el) { return Math.max(280, el.clientWidth || 280); }
  function height() { return window.innerWidth < 560 ? 200 : 240; }

  function makeTimePlot(name, spec) {
    const el = document.querySelector('[data-plot="' + name + '"]');
    el.textContent = "";
    const units = {};
    spec.series.forEach((s) => { units[s.unit] = units[s.unit] || (s.right ? 1 : 3); });
    const scales = { x: { time: true } };
    Object.keys(units).forEach((k) => {
      scales[k] = k === "percent" && spec.yRange ? { range: spec.yRange } : { range: (u, lo, hi) => [Math.min(0, lo), hi > 0 ? hi * 1.1 : 1] };
    });
    const axes = [{ stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") } }];
    Object.keys(units).forEach((k) => axes.push(axis(k, units[k])));
    const series = [{ value: (u, v) => v == null ? "–" : new Date(v * 1000).toLocaleTimeString() }];
    spec.series.forEach((s) => {
      const color = css(s.color);
      series.push({
        label: s.label, scale: s.unit, stroke: color, width: s.width || 1.5, dash: s.dash,
        value: (u, v) => FMT[s.unit](v),
        spanGaps: false,
        paths: s.markers ? () => null : (s.step ? uPlot.paths.stepped({ align: 1 }) : undefined),
        points: s.markers ? { show: true, size: 9, fill: color, stroke: color } : { show: false },
        show: true,
        legend: s.legend !== false,
      });
    });
    const opts = {
      width: width(el), height: height(), scales, axes, series,
      cursor: { sync: { key: "t" } },
      legend: { live: true },
      bands: (spec.bands || []).map((b) => ({ series: [b[0], b[1]], fill: css(b[2]) })),
      hooks: { draw: [mark] },
    };
    const u = new uPlot(opts, timeData(spec), el);
    u.__spec = spec;
    return u;
  }

  function makeClassesPlot() {
    const el = document.querySelector('[data-plot="classes"]');
    el.textContent = "";
    const bars = uPlot.paths.bars;
    const sizes = () => (state.classes || []).map((c) => c.size);
    const opts = {
      width: width(el), height: height(),
      scales: { x: { time: false, range: (u, lo, hi) => [lo - 0.6, hi + 0.6] }, bytes: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } },
      axes: [
        { stroke: css("--muted"), grid: { show: false }, ticks: { stroke: css("--line") }, label: "object size", labelSize: 18,
          splits: (u) => u.data[0].filter((i) => i % Math.max(1, Math.ceil(u.data[0].length / 12)) === 0),
          values: (u, splits) => splits.map((i) => { const s = sizes()[i]; return s == null ? "" : bytes(s); }) },
        axis("bytes", 3),
      ],
      series: [
        { label: "size", value: (u, i) => { const s = sizes()[i]; return s == null ? "–" : bytes(s) + " objects"; } },
        { label: "live", scale: "bytes", stroke: css("--s1"), fill: css("--s1") + "cc", width: 1, value: (u, v) => bytes(v), paths: bars({ size: [0.42, 40], align: -1 }), points: { show: false } },
        { label: "cached", scale: "bytes", stroke: css("--s4"), fill: css("--s4") + "cc", width: 1, value: (u, v) => bytes(v), paths: bars({ size: [0.42, 40], align: 1 }), points: { show: false } },
      ],
      legend: { live: true },
      hooks: { draw: [mark] },
    };
    return new uPlot(opts, classesData(), el);
  }

  function classesData() {
    const c = state.classes || [];
    return [c.map((_, i) => i), c.map((x) => x.bytes_in_use), c.map((x) => (x.thread_cached + x.depot_objects) * x.size)];
  }

  function rebuildPlots() {
    if (!state.cols) return;
    Object.values(state.plots).forEach((u) => u.destroy());
    state.plots = {};
    const sp = specs();
    Object.keys(sp).forEach((name) => { state.plots[name] = makeTimePlot(name, sp[name]); });
    state.plots.classes = makeClassesPlot();
    applyRange();
  }

  function applyRange() {
    if (!state.cols || !state.cols.t_ms.length) return;
    const last = state.cols.t_ms[state.cols.t_ms.length - 1] / 1000;
    const first = state.cols.t_ms[0] / 1000;
    Object.entries(state.plots).forEach(([name, u]) => {
      if (name === "classes") return;
      u.setScale("x", { min: Math.max(first, last - state.range), max: last });
    });
  }

  let pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      Object.entries(state.plots).forEach(([name, u]) => {
        if (name === "classes") u.setData(classesData());
        else u.setData(timeData(u.__spec), false);
      });
      applyRange();
    });
  }

  $("range").addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    state.range = +b.dataset.secs;
    $("range").querySelectorAll("button").forEach((x) => x.setAttribute("aria-pressed", String(x === b)));
    applyRange();
  });
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      Object.values(state.plots).forEach((u) => u.setSize({ width: width(u.root.parentElement), height: height() }));
    }, 100);
  });

  // ---------------------------------------------------------------- data
  async function loadHistory() {
    const h = await api("/api/v1/memory/history");
    state.cols = h.columns;
    state.meta = h;
    state.lastSeq = h.last_seq;
    footer();
  }

  function append(s) {
    if (s.seq <= state.lastSeq) return;
    const c = state.cols;
    Object.keys(c).forEach((k) => c[k].push(s[k] === undefined ? null : s[k]));
    const cap = state.meta.capacity;
    if (c.seq.length > cap) Object.keys(c).forEach((k) => c[k].splice(0, c[k].length - cap));
    state.lastSeq = s.seq;
    redraw();
  }

  function setStatus(text, cls) {
    const el = $("status");
    el.textContent = text;
    el.className = cls || "";
  }

  async function stream() {
    while (token() && state.cols) {
      const ctl = new AbortController();
      state.abort = ctl;
      try {
        const headers = auth(state.lastSeq ? { "Last-Event-ID": String(state.lastSeq) } : {});
        const r = await fetch("/api/v1/memory/history/stream", { headers, signal: ctl.signal, cache: "no-store" });
        if (r.status === 401) { signOut("The token was not accepted."); return; }
        if (!r.ok || !r.body) throw new Error("stream: " + r.status);
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            await onEvent(block);
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
      setStatus("reconnecting…", "down");
      await new Promise((res) => setTimeout(res, 1000));
    }
  }

  async function onEvent(block) {
    let event = "message", data = "";
    block.split("\n").forEach((line) => {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    });
    if (event === "reset") { await loadHistory(); rebuildPlots(); return; }
    if (event !== "sample" || !data) return;
    const s = JSON.parse(data);
    append(s);
    setStatus("live · " + new Date(s.t_ms).toLocaleTimeString() + " · RSS " + bytes(s.rss_bytes), "live");
  }

  async function pollSnapshots() {
    try {
      const st = await api("/api/v1/memory/stats");
      state.classes = st.allocators.slab.size_classes;
      if (state.plots.classes) state.plots.classes.setData(classesData());
      renderContexts((await api("/api/v1/memory/contexts")).contexts);
    } catch (e) { /* the stream's status says when the server is away */ }
  }

  async function pollLeaks() {
    if (state.meta && state.meta.role !== "admin") {
      $("leaks").replaceChildren(el("p", { class: "note" }, "The debugger's sites are shown to an admin token (this one is " + state.meta.role + ")."));
      return;
    }
    try {
      const [top, old] = await Promise.all([
        api("/api/v1/memory/leaks?limit=10"),
        api("/api/v1/memory/leaks?min_age_secs=60&limit=10"),
      ]);
      renderLeaks(top, old);
    } catch (e) { /* as above */ }
  }

  async function refreshMeta() {
    try {
      const h = await api("/api/v1/memory/history?limit=1");
      state.meta = Object.assign({}, state.meta, { memory: h.memory, sampling: h.sampling, capacity: h.capacity, role: h.role });
      footer();
    } catch (e) { /* as above */ }
  }

  // ---------------------------------------------------------------- tables
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => { if (k === "style") e.style.cssText = v; else e.setAttribute(k, v); });
    if (text != null) e.textContent = text;
    return e;
  }

  function renderContexts(list) {
    const root = $("contexts");
    const frag = document.createDocumentFragment();
    list.slice(0, 300).forEach((c) => {
      const of = c.limit_bytes != null ? c.limit_bytes : c.reserved_bytes;
      const row = el("div", { class: "ctx", style: "--depth:" + Math.min(c.depth, 12) });
      row.appendChild(el("span", { class: "name", title: c.name }, c.name));
      const m = el("meter", { min: "0", max: String(Math.max(of, 1)), value: String(c.used_bytes) });
      if (c.limit_bytes != null) { m.setAttribute("high", String(c.limit_bytes * 0.8)); m.setAttribute("optimum", "0"); }
      row.appendChild(m);
      row.appendChild(el("span", { class: "bytes" }, bytes(c.used_bytes) + " / " + bytes(of) + (c.limit_bytes != null ? " limit" : " reserved")));
      frag.appendChild(row);
    });
    if (list.length > 300) frag.appendChild(el("p", { class: "note" }, (list.length - 300) + " more"));
    root.replaceChildren(frag);
  }

  function groupsTable(title, groups) {
    const wrap = el("div");
    wrap.appendChild(el("h3", null, title));
    if (!groups.length) { wrap.appendChild(el("p", { class: "note" }, "none")); return wrap; }
    const t = el("table");
    const head = el("tr");
    [["component"], ["site"], ["bytes", "num"], ["blocks", "num"], ["oldest", "num"]].forEach(([h, c]) => head.appendChild(el("th", c ? { class: c } : null, h)));
    t.appendChild(head);
    groups.forEach((g) => {
      const r = el("tr");
      r.appendChild(el("td", null, g.component));
      r.appendChild(el("td", { class: "site" }, g.site || "(unknown)"));
      r.appendChild(el("td", { class: "num" }, bytes(g.bytes)));
      r.appendChild(el("td", { class: "num" }, FMT.count(g.count)));
      r.appendChild(el("td", { class: "num" }, (g.oldest_age_ms / 1000).toFixed(0) + " s"));
      t.appendChild(r);
    });
    wrap.appendChild(t);
    return wrap;
  }

  function renderLeaks(top, old) {
    const root = $("leaks");
    root.className = "leaks";
    if (!top.enabled) { root.replaceChildren(el("p", { class: "note" }, "Level " + top.level + ": " + top.message)); return; }
    root.replaceChildren(
      groupsTable("Top live sites since start (" + bytes(top.bytes) + " in " + FMT.count(top.count) + " blocks)", top.groups),
      groupsTable("Leak candidates: live for more than 60 s", old.groups));
  }

  function footer() {
    const m = state.meta;
    if (!m || !m.memory) return;
    const s = m.sampling;
    $("foot").textContent = "History ring: " + FMT.count(m.capacity) + " samples (one a second) in memory context \u201c" +
      m.memory.context_name + "\u201d (#" + m.memory.context_id + "), " + bytes(m.memory.used_bytes) + " used, " +
      bytes(m.memory.reserved_bytes) + " reserved · sampling costs " + s.mean_cpu_us.toFixed(0) + " µs of CPU a sample (" +
      s.percent_of_core.toFixed(3) + " % of a core)" + (state.firstPlotMs != null ? " · first plot " + state.firstPlotMs.toFixed(0) + " ms after load" : "");
  }

  // ---------------------------------------------------------------- sign-in
  function show(signedIn) {
    $("signin").hidden = signedIn;
    $("board").hidden = !signedIn;
    $("signout").hidden = !signedIn;
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (state.abort) state.abort.abort();
    state.timers.forEach(clearInterval);
    state.timers = [];
    Object.values(state.plots).forEach((u) => u.destroy());
    state.plots = {};
    state.cols = null;
    setStatus("signed out", "");
    $("signin-error").textContent = message || "";
    show(false);
  }

  async function start() {
    show(true);
    setStatus("loading…", "");
    await Promise.all([loadHistory(), pollSnapshots()]);
    rebuildPlots();
    footer();
    stream();
    pollLeaks();
    state.timers.push(setInterval(pollSnapshots, 2000), setInterval(pollLeaks, 5000), setInterval(refreshMeta, 10000));
  }

  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    $("signin-error").textContent = "";
    try { await start(); } catch (err) { if (token()) $("signin-error").textContent = "Could not load the history: " + err.message; }
  });
  $("signout").addEventListener("click", () => signOut(""));

  if (token()) start().catch(() => {}); else show(false);
})();
