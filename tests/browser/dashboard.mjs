// The dashboard in a real browser (.ci/browser.sh runs it): Debian's chromium,
// headless, driven by playwright-core, against a running rustydb_server under
// a small SQL and allocation load. It signs in with a readonly token, waits
// for live samples, and checks from the DOM that every plot has drawn series
// with points that changed between two moments; it fails on any console
// error, and saves screenshots (wide/light, wide/dark, phone) as artefacts.
//
// Then it signs in again with the admin token and waits for the debugger's
// top live sites (the server runs with the debugger tracking).
//
//   node tests/browser/dashboard.mjs <base-url> <readonly-token> <readwrite-token> <admin-token> <out-dir>
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";

const [base, roToken, rwToken, adminToken, outDir] = process.argv.slice(2);
if (!base || !roToken || !rwToken || !adminToken || !outDir) {
  console.error("usage: dashboard.mjs <base-url> <readonly-token> <readwrite-token> <admin-token> <out-dir>");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
const failures = [];
const fail = (m) => { failures.push(m); console.error("FAIL " + m); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ load
// SQL writes and reads, and allocations that come and go, for as long as the
// test runs: the plots must move.
let loading = true;
async function call(method, path, token, body) {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await r.arrayBuffer();
  return r.status;
}
async function load() {
  // DDL needs the admin role; every statement must be taken (a refused one
  // would leave the pool unread and the hit-ratio plot empty).
  const sql = async (token, text) => {
    const status = await call("POST", "/api/v1/query", token, { sql: text });
    if (status !== 200) fail(`load: ${status} for ${text.slice(0, 60)}`);
  };
  await sql(adminToken, "CREATE TABLE IF NOT EXISTS load (id INTEGER, body TEXT)");
  let i = 0;
  while (loading) {
    i++;
    const rows = [];
    for (let k = 0; k < 20; k++) rows.push(`(${i * 100 + k}, '${"x".repeat(200 + ((i * 37 + k) % 800))}')`);
    await sql(rwToken, "INSERT INTO load VALUES " + rows.join(", "));
    await sql(roToken, `SELECT COUNT(*), MAX(id) FROM load WHERE id > ${i * 50}`);
    if (i % 10 === 0) await sql(rwToken, `DELETE FROM load WHERE id < ${i * 60}`);
    await sleep(40);
  }
}
const loader = load().catch((e) => fail("load: " + e.message));

// ------------------------------------------------------------------ browser
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext({ viewport: { width: 1440, height: 2000 } });
const page = await context.newPage();
page.on("console", (m) => { if (m.type() === "error") fail("console error: " + m.text()); });
page.on("pageerror", (e) => fail("page error: " + e.message));
let pageBytes = 0;
const urls = [];
page.on("response", async (r) => {
  if (!r.url().startsWith(base + "/dashboard")) return;
  try { pageBytes += (await r.body()).length; urls.push(r.url()); } catch (e) { /* a 304 has no body */ }
});

const t0 = Date.now();
await page.goto(base + "/dashboard", { waitUntil: "load" });
const loadMs = Date.now() - t0;
await sleep(300);
const weight = pageBytes; // the page and its assets, first load
if (await page.locator("#signin").isHidden()) fail("the sign-in form is not shown to a new visitor");
for (const u of urls) if (/[?&]token=/.test(u)) fail("a token in a URL: " + u);

await page.fill("#token", roToken);
await page.click("#signin-form button[type=submit]");
await page.waitForSelector("#board:not([hidden])", { timeout: 10000 });

const PLOTS = ["memory", "pressure", "classes", "caches", "hits", "pages", "load", "latency"];
async function readPlots() {
  return page.evaluate((names) => names.map((n) => {
    const el = document.querySelector(`[data-plot="${n}"]`);
    return { name: n, draws: +(el.dataset.draws || 0), points: +(el.dataset.points || 0),
      series: +(el.dataset.series || 0), sig: el.dataset.sig || "",
      canvas: el.querySelector("canvas") ? el.querySelector("canvas").toDataURL().length : 0 };
  }), PLOTS);
}

// Live updates: the status turns live, and samples keep arriving.
await page.waitForFunction(() => document.getElementById("status").classList.contains("live"), null, { timeout: 15000 });
// First plot after a load: the token is in this tab now, so a reload plots
// without a sign-in; the time is from the navigation's start.
await page.reload({ waitUntil: "load" });
await page.waitForFunction(() => document.body.dataset.firstPlotMs, null, { timeout: 10000 });
const firstPlotMs = +(await page.evaluate(() => document.body.dataset.firstPlotMs));
await page.waitForFunction(() => document.getElementById("status").classList.contains("live"), null, { timeout: 15000 });
await sleep(4000);
const a = await readPlots();
const seqA = await page.evaluate(() => window.__dashboard.lastSeq);
await sleep(5000);
const b = await readPlots();
const seqB = await page.evaluate(() => window.__dashboard.lastSeq);
if (!(seqB >= seqA + 3)) fail(`live samples: seq ${seqA} then ${seqB} five seconds later`);
// The hit-ratio plot has points only where the server measured a ratio; the
// SQL load reads the engine's pool, so the history must hold some.
const hist = await (await fetch(base + "/api/v1/memory/history", { headers: { Authorization: "Bearer " + roToken } })).json();
const ratios = hist.columns.pool0_hit_ratio.concat(hist.columns.pool1_hit_ratio).filter((v) => v != null).length;
if (ratios === 0) fail("hits: the history holds no measured hit ratio under the SQL load");
// Sampling's own cost (the server measures it on the sampler's CPU clock).
const cost = hist.sampling;
console.log(`sampling: ${cost.samples} samples, ${cost.mean_cpu_us.toFixed(1)} µs CPU each = ` +
  `${cost.percent_of_core.toFixed(3)} % of a core; ring ${hist.memory.used_bytes} B for ${hist.capacity} samples`);
if (!(cost.samples > 0 && cost.percent_of_core <= 0.5)) fail(`sampling costs ${cost.percent_of_core} % of a core (target ≤ 0.5 %)`);
for (let i = 0; i < PLOTS.length; i++) {
  const [x, y] = [a[i], b[i]];
  if (y.series < 1 || y.points < 1) fail(`${y.name}: no series with points (${JSON.stringify(y)})`);
  if (x.sig === y.sig) fail(`${y.name}: the points did not change between two moments (${x.sig})`);
  if (!(y.draws > x.draws)) fail(`${y.name}: not redrawn (${x.draws} then ${y.draws})`);
  if (y.canvas < 1000) fail(`${y.name}: an empty canvas`);
}
console.log("plots: " + b.map((p) => `${p.name} ${p.series} series, ${p.points} points`).join("; "));

// Legends with units, and hover read-outs.
// (uPlot's live legend shows values only under the cursor: names here,
// values in bytes on hover below.)
const legend = await page.evaluate(() => document.querySelector('[data-plot="memory"] .u-legend').textContent);
if (!/RSS/.test(legend) || !/in use/.test(legend)) fail("memory legend without its series: " + legend);
const box = await page.locator('[data-plot="memory"] .u-over').boundingBox();
await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
await sleep(200);
const hover = await page.evaluate(() => [...document.querySelectorAll('[data-plot="memory"] .u-legend .u-value')].map((e) => e.textContent));
if (!hover.some((v) => /\d/.test(v) && /iB|B$/.test(v))) fail("no hover read-out on the memory plot: " + hover);
await page.mouse.move(0, 0);

// Contexts and the debugger's panel.
const ctxRows = await page.locator("#contexts .ctx").count();
if (ctxRows < 2) fail(`contexts: ${ctxRows} rows`);
const hasHistoryCtx = await page.evaluate(() => [...document.querySelectorAll("#contexts .ctx .name")].some((e) => e.textContent === "history"));
if (!hasHistoryCtx) fail("the history ring's context is not listed");
await page.waitForFunction(() => document.querySelector("#leaks table, #leaks p"), null, { timeout: 10000 });
const leaksText = await page.locator("#leaks").textContent();
const foot = await page.locator("#foot").textContent();
if (!/History ring: .* memory context/.test(foot)) fail("the ring's memory is not shown: " + foot);

await page.screenshot({ path: outDir + "/dashboard.png", fullPage: true });
await page.click("#theme");
await sleep(1500);
await page.screenshot({ path: outDir + "/dashboard-dark.png", fullPage: true });

// A phone: one column, nothing wider than the screen.
await page.setViewportSize({ width: 390, height: 844 });
await sleep(1500);
const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
if (overflow > 1) fail(`phone width: the page is ${overflow} px wider than the screen`);
await page.screenshot({ path: outDir + "/dashboard-phone.png", fullPage: false });

// Sign-out forgets the token.
await page.click("#signout");
const left = await page.evaluate(() => sessionStorage.getItem("rustydb.token"));
if (left) fail("the token outlived sign-out");

// An admin sees the debugger's top live sites.
await page.setViewportSize({ width: 1440, height: 2000 });
await page.fill("#token", adminToken);
await page.click("#signin-form button[type=submit]");
await page.waitForSelector("#leaks table", { timeout: 15000 });
const sites = await page.locator("#leaks table").first().locator("tr").count();
if (sites < 2) fail(`the debugger's top live sites: ${sites - 1} rows`);
const adminLeaks = (await page.locator("#leaks").textContent()).slice(0, 160);
await page.screenshot({ path: outDir + "/dashboard-admin.png", fullPage: true });
await page.click("#signout");

// The GraphQL playground page carries the same token field (read as text:
// the playground itself loads from a CDN, which CI cannot reach).
const pg = await (await fetch(base + "/graphql/playground")).text();
if (!pg.includes('id="rustydb-token"') || !pg.includes("rustydb.token")) fail("the playground has no token field");

loading = false;
await loader;
await browser.close();
const report = { loadMs, firstPlotMs, pageBytes: weight, ctxRows, leaks: leaksText.slice(0, 120), adminLeaks, failures };
writeFileSync(outDir + "/report.json", JSON.stringify(report, null, 2));
console.log(`page ${weight} bytes; load ${loadMs} ms; first plot ${firstPlotMs} ms after load; ${ctxRows} contexts`);
if (weight > 200 * 1024) fail(`page weight ${weight} bytes > 200 KB`);
if (!(firstPlotMs <= 1000)) fail(`first plot ${firstPlotMs} ms after load > 1 s`);
if (failures.length) { console.error(failures.length + " failure(s)"); process.exit(1); }
console.log("dashboard browser test: ok");
