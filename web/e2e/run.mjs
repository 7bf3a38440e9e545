// End-to-end test of the dashboard in headless Debian Chromium, driven by playwright-core.
//
//   TALLY_URL=http://127.0.0.1:PORT TALLY_KEY=tally_... [TALLY_INGEST_KEY=tally_...]
//   [AS_OF=2026-11-28] [AS_OF_2=2026-10-31] node run.mjs
//
// It signs in, opens every page at a fixed `as_of`, and fails unless: every chart is drawn
// with data marks; no console error, page error or failed request happened; every figure
// shown (`.fig`: data-src, data-path, data-value) equals the API's JSON for the same
// request (fetched here, independently of the page) and is formatted as expected; the
// layout has no horizontal overflow at 1280 and 1024 px; text contrast is ≥ 4.5:1
// (3:1 for large text); charts answer the keyboard with a tooltip; the date picker
// moves `as_of` on every request; a wrong key shows 401 and an ingest key shows 403; at a
// day before any data every page still draws and shows undefined figures as "—".
// Screenshots of each page go to screenshots/.

import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.TALLY_URL || "").replace(/\/$/, "");
const KEY = process.env.TALLY_KEY;
const INGEST_KEY = process.env.TALLY_INGEST_KEY;
const AS_OF = process.env.AS_OF || "2026-11-28";
const AS_OF_2 = process.env.AS_OF_2 || "2026-10-31";
const AS_OF_EMPTY = process.env.AS_OF_EMPTY || "2020-01-01";
const SHOTS = process.env.SCREENSHOT_DIR || join(here, "screenshots");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const PAGES = ["overview", "revenue", "customers", "services", "llm", "metering"];
if (!BASE || !KEY) {
  console.error("set TALLY_URL and TALLY_KEY");
  process.exit(2);
}

const failures = [];
const fail = (msg) => {
  failures.push(msg);
  console.error("FAIL " + msg);
};
const log = (msg) => console.log(msg);

// ---- the expected formatting, written independently of web/format.js ----------------------
const two = (v) => v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
function expectedText(v, kind) {
  if (v === null || v === undefined) return "—";
  if (typeof v !== "number") return String(v);
  const sign = v > 0 ? "+" : "";
  return {
    money: two(v),
    credits: two(v) + " cr",
    pct: two(v) + "%",
    pp: sign + two(v) + " pp",
    change: sign + two(v) + "%",
    int: v.toLocaleString("en-US", { maximumFractionDigits: 0 }),
    ms: two(v) + " ms",
    mb: two(v) + " MB",
    months: two(v) + " mo",
    ratio: two(v) + "×",
    num2: two(v),
    num: v.toLocaleString("en-US", { maximumFractionDigits: 3 }),
  }[kind];
}
const atPath = (obj, path) => path.split(".").reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);

const apiCache = new Map();
async function api(url, key = KEY) {
  if (!apiCache.has(url)) {
    apiCache.set(
      url,
      fetch(BASE + url, { headers: { Authorization: "Bearer " + key } }).then(async (r) => {
        if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
        return r.json();
      }),
    );
  }
  return apiCache.get(url);
}

// ---- browser ---------------------------------------------------------------------------
const userDataDir = mkdtempSync(join(tmpdir(), "tally-e2e-chromium-"));
mkdirSync(SHOTS, { recursive: true });
const started = Date.now();
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  viewport: { width: 1280, height: 900 },
  deviceScaleFactor: 1,
  locale: "en-US",
  timezoneId: "UTC",
});
context.setDefaultTimeout(30000);

/** A page whose console errors, page errors and failed requests are recorded. */
async function watchedPage(expectedStatuses = []) {
  const page = await context.newPage();
  const problems = [];
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const t = m.text();
    // Chromium logs every non-2xx fetch; the sign-in checks expect their 401/403.
    if (expectedStatuses.some((s) => t.includes(`status of ${s}`))) return;
    problems.push("console error: " + t);
  });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("requestfailed", (r) => {
    const why = r.failure() && r.failure().errorText;
    // A page left before its data arrived cancels its requests on purpose.
    if (why === "net::ERR_ABORTED" && r.url().includes("/api/")) return;
    problems.push(`request failed: ${r.url()} ${why}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400 && !expectedStatuses.includes(r.status())) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  return { page, problems };
}

async function signIn(page, key) {
  await page.goto(BASE + "/");
  await page.waitForSelector("#signin-form");
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
}

const result = { pages: {}, figures_compared: 0, charts: 0, marks: 0, console_errors: 0 };

try {
  // 1. A wrong key: 401, shown as such; an ingest key: 403, shown as such.
  {
    const { page, problems } = await watchedPage([401, 403]);
    await signIn(page, "tally_0000000000000000000000000000000000000000");
    const err = page.locator("#signin-error");
    await err.waitFor({ state: "visible" });
    const t = await err.textContent();
    if (!/401/.test(t) || !/not recognised/i.test(t)) fail(`401 not shown as such: "${t}"`);
    else log(`401 shown: ${t.slice(0, 80)}…`);
    await page.screenshot({ path: join(SHOTS, "signin-401.png") });
    if (INGEST_KEY) {
      await page.getByLabel("API key").fill(INGEST_KEY);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.waitForFunction(() => /403/.test(document.querySelector("#signin-error").textContent));
      const t2 = await err.textContent();
      if (!/can't read analytics/.test(t2)) fail(`403 not shown as such: "${t2}"`);
      else log(`403 shown: ${t2.slice(0, 80)}…`);
    }
    if (await page.evaluate(() => sessionStorage.getItem("tally.apiKey"))) fail("a rejected key was kept");
    problems.forEach(fail);
    result.console_errors += problems.length;
    await page.close();
  }

  // 2. Sign in with a good key; the key is kept for the session only.
  const { page, problems } = await watchedPage();
  await signIn(page, KEY);
  await page.waitForSelector('main[data-state="ready"][data-page="overview"]');
  if ((await page.evaluate(() => sessionStorage.getItem("tally.apiKey"))) !== KEY) fail("key not in sessionStorage");
  if (await page.evaluate(() => localStorage.length)) fail("something was written to localStorage");

  async function openPage(name, asOf, width = 1280) {
    await page.setViewportSize({ width, height: 900 });
    const t0 = Date.now();
    await page.goto(`${BASE}/#/${name}?as_of=${asOf}`);
    await page.waitForSelector(`main[data-page="${name}"][data-state="ready"], main[data-page="${name}"][data-state="error"]`);
    const state = await page.getAttribute("main", "data-state");
    if (state !== "ready") {
      const errs = await page.locator(".error").allTextContents();
      fail(`${name}: page ended in state ${state}: ${errs.join(" | ")}`);
    }
    return Date.now() - t0;
  }

  /** Checks every chart and every figure on the page; returns counts. */
  async function checkPage(name, asOf, { charts: wantCharts = true } = {}) {
    const charts = await page.$$eval("figure.chart", (figs) =>
      figs.map((f) => {
        const marks = [...f.querySelectorAll("svg .mark")];
        const drawn = marks.filter((m) => {
          const b = m.getBoundingClientRect();
          return b.width > 0 || b.height > 0;
        });
        return { id: f.id, marks: marks.length, drawn: drawn.length, empty: !!f.querySelector(".empty") };
      }),
    );
    if (!charts.length) fail(`${name}: no charts`);
    for (const c of wantCharts ? charts : []) {
      if (!c.drawn) fail(`${name}: chart ${c.id} has no data marks drawn${c.empty ? " (says no data)" : ""}`);
    }
    const figs = await page.$$eval(".fig", (els) => els.map((e) => ({ src: e.dataset.src, path: e.dataset.path, kind: e.dataset.kind, value: e.dataset.value, text: e.textContent })));
    let compared = 0;
    for (const f of figs) {
      if (!new URL(f.src, BASE).searchParams.get("as_of")) fail(`${name}: ${f.src} sent without as_of`);
      else if (new URL(f.src, BASE).searchParams.get("as_of") !== asOf) fail(`${name}: ${f.src} not at as_of ${asOf}`);
      const json = await api(f.src);
      const v = atPath(json, f.path);
      if (v === undefined) {
        fail(`${name}: ${f.src} has no field ${f.path}`);
        continue;
      }
      if (f.value !== String(v)) fail(`${name}: ${f.path} of ${f.src}: page has ${f.value}, API ${v}`);
      const want = expectedText(v, f.kind);
      if (f.text !== want) fail(`${name}: ${f.path} of ${f.src}: shown "${f.text}", expected "${want}"`);
      compared++;
    }
    return { charts: charts.length, marks: charts.reduce((a, c) => a + c.drawn, 0), figures: compared };
  }

  async function layoutAndContrast(name, width) {
    const over = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    if (over > 0) fail(`${name} at ${width}px: ${over}px horizontal overflow`);
    const clipped = await page.$$eval(".kpi-value", (els) => els.filter((e) => e.scrollWidth > e.clientWidth).map((e) => e.textContent));
    clipped.forEach((c) => fail(`${name} at ${width}px: KPI "${c}" does not fit its tile`));
    const low = await page.evaluate(() => {
      const parse = (c) => {
        const m = c.match(/rgba?\(([^)]+)\)/);
        if (!m) return null;
        const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
        return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
      };
      const lum = ({ r, g, b }) => {
        const f = (x) => ((x /= 255) <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
      };
      const bgOf = (el) => {
        for (let e = el; e; e = e.parentElement) {
          const c = parse(getComputedStyle(e).backgroundColor);
          if (c && c.a > 0.5) return c;
        }
        return { r: 255, g: 255, b: 255 };
      };
      const out = [];
      const seen = new Set();
      for (const el of document.querySelectorAll("body *")) {
        if (el.closest("svg") || el.closest("[hidden]") || el.closest("details:not([open]) table")) continue;
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own) continue;
        const cs = getComputedStyle(el);
        if (cs.visibility === "hidden" || cs.display === "none" || el.getClientRects().length === 0) continue;
        if (el.classList.contains("sr-only") || el.classList.contains("skip")) continue;
        const fg = parse(cs.color);
        const bg = bgOf(el);
        const l1 = lum(fg), l2 = lum(bg);
        const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
        const size = parseFloat(cs.fontSize);
        const large = size >= 24 || (size >= 18.66 && Number(cs.fontWeight) >= 700);
        if (ratio < (large ? 3 : 4.5)) {
          const k = `${cs.color} on ${JSON.stringify(bg)}`;
          if (!seen.has(k)) {
            seen.add(k);
            out.push(`${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}": ${ratio.toFixed(2)}:1 (${k})`);
          }
        }
      }
      return out;
    });
    low.forEach((l) => fail(`${name}: low contrast ${l}`));
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll("input, select")].filter((e) => !e.labels || !e.labels.length).map((e) => e.id || e.name || e.tagName),
    );
    unlabelled.forEach((u) => fail(`${name}: control without a label: ${u}`));
  }

  for (const name of PAGES) {
    const ms = await openPage(name, AS_OF);
    const r = await checkPage(name, AS_OF);
    await layoutAndContrast(name, 1280);
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    await page.setViewportSize({ width: 1024, height: 900 });
    await page.waitForTimeout(300); // the charts redraw after a resize
    await layoutAndContrast(name, 1024);
    const r1024 = await checkPage(name + "@1024", AS_OF);
    if (r1024.marks !== r.marks) fail(`${name}: ${r.marks} marks at 1280 px but ${r1024.marks} at 1024 px`);
    await page.screenshot({ path: join(SHOTS, `${name}-1024.png`), fullPage: true });
    result.pages[name] = { load_ms: ms, ...r };
    result.charts += r.charts;
    result.marks += r.marks;
    result.figures_compared += r.figures;
    log(`${name}: ${r.charts} charts, ${r.marks} marks, ${r.figures} figures equal to the API, drawn in ${ms} ms`);
  }

  // 3. Keyboard: tab from the top reaches the nav; a chart shows its tooltip on arrow keys.
  await openPage("revenue", AS_OF);
  await page.reload(); // focus starts at the top of a freshly loaded page
  await page.waitForSelector(`main[data-page="revenue"][data-state="ready"]`);
  await page.keyboard.press("Tab"); // skip link
  const skip = await page.evaluate(() => document.activeElement.textContent);
  if (!/Skip to content/.test(skip)) fail(`first Tab lands on "${skip}", not the skip link`);
  let reached = false;
  for (let i = 0; i < 4 && !reached; i++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement.closest("#nav") !== null && document.activeElement.textContent === "Overview");
  }
  if (!reached) fail("Tab does not reach the page navigation");
  await page.focus("#revenue-mrr svg");
  await page.keyboard.press("ArrowRight");
  const tip = await page.locator("#tooltip").textContent();
  if (!(await page.locator("#tooltip").isVisible()) || !/MRR: [\d,]+\.\d\d/.test(tip)) fail(`no tooltip with an exact value on ArrowRight: "${tip}"`);
  else log(`keyboard tooltip: ${tip}`);
  // The forecast band's tooltip gives both bounds.
  await page.keyboard.press("End");
  await page.hover("#revenue-mrr .band-hit >> nth=0", { position: { x: 5, y: 1 } });
  const bandTip = await page.locator("#tooltip").textContent();
  if (!/Prediction band: [\d,]+\.\d\d – [\d,]+\.\d\d/.test(bandTip)) fail(`band tooltip lacks bounds: "${bandTip}"`);

  // 4. The date picker moves as_of on every request, and the figures follow.
  await page.fill("#as-of", AS_OF_2); // fires input and change, as picking a date does
  await page.waitForSelector(`main[data-page="revenue"][data-state="ready"]`);
  await page.waitForFunction((d) => location.hash.includes("as_of=" + d), AS_OF_2);
  const r2 = await checkPage("revenue (date picker)", AS_OF_2);
  result.figures_compared += r2.figures;
  log(`date picker: revenue at ${AS_OF_2}: ${r2.figures} figures equal to the API`);
  // ...and the navigation keeps it.
  await page.click('#nav a[data-page="customers"]');
  await page.waitForSelector(`main[data-page="customers"][data-state="ready"]`);
  const r3 = await checkPage("customers (date picker)", AS_OF_2);
  result.figures_compared += r3.figures;

  // 5. A page parameter: the metering period picker.
  await page.goto(`${BASE}/#/metering?as_of=${AS_OF}`);
  await page.waitForSelector(`main[data-page="metering"][data-state="ready"]`);
  await page.selectOption("#p-period", "last_month");
  await page.waitForFunction(() => location.hash.includes("period=last_month"));
  await page.waitForSelector(`main[data-page="metering"][data-state="ready"]`);
  const r4 = await checkPage("metering (last month)", AS_OF);
  if (!(await page.$$eval(".fig", (els) => els.some((e) => e.dataset.src.includes("period=last_month"))))) fail("the period picker did not reach the requests");
  result.figures_compared += r4.figures;

  // 6. A day before any data: every page still draws, undefined figures show as "—"
  //    (checked against the API's nulls like any other figure), and nothing errs.
  let nulls = 0;
  for (const name of PAGES) {
    await openPage(name, AS_OF_EMPTY);
    const r = await checkPage(`${name} (before any data)`, AS_OF_EMPTY, { charts: false });
    nulls += await page.$$eval(".fig", (els) => els.filter((e) => e.dataset.value === "null" && e.textContent === "—").length);
    result.figures_compared += r.figures;
  }
  if (!nulls) fail(`no undefined figure shown as "—" at ${AS_OF_EMPTY}`);
  log(`before any data (${AS_OF_EMPTY}): every page drawn, ${nulls} undefined figures shown as "—"`);

  problems.forEach(fail);
  result.console_errors += problems.length;
} catch (e) {
  fail("exception: " + (e.stack || e));
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}

result.seconds = Math.round((Date.now() - started) / 100) / 10;
result.failures = failures.length;
console.log(JSON.stringify(result, null, 2));
if (failures.length) {
  console.error(`${failures.length} failure(s)`);
  process.exit(1);
}
console.log(`e2e passed: ${PAGES.length} pages, ${result.charts} charts, ${result.figures_compared} figures compared, no console errors; screenshots in ${SHOTS}`);
