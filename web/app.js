// The dashboard's shell: sign-in, the hash router (`#/revenue?as_of=2026-11-28&months=12`),
// the `as_of` date picker and the page context the pages draw through.

import { getKey, setKey, clearKey, getJSON, apiUrl, ApiError } from "./api.js";
import { PAGES } from "./pages.js";
import { esc } from "./format.js";
import { hide as hideTooltip } from "./charts.js";

const $ = (sel) => document.querySelector(sel);
const main = $("#main");
const AS_OF_KEY = "tally.asOf";

function todayUtc() {
  return new Date().toISOString().slice(0, 10);
}

function validDate(s) {
  return /^\d{4}-\d{2}-\d{2}$/.test(s || "") && !Number.isNaN(Date.parse(s + "T00:00:00Z"));
}

/** The route in the hash: page name and parameters (as_of always set). */
function route() {
  const h = location.hash.replace(/^#\/?/, "");
  const [name, query] = h.split("?");
  const params = new URLSearchParams(query || "");
  let asOf = params.get("as_of");
  if (!validDate(asOf)) asOf = sessionStorage.getItem(AS_OF_KEY);
  if (!validDate(asOf)) asOf = todayUtc();
  params.set("as_of", asOf);
  return { page: PAGES[name] ? name : "overview", params };
}

function go(page, params) {
  const q = params.toString();
  const h = `#/${page}${q ? "?" + q : ""}`;
  if (location.hash !== h) location.hash = h;
  else render();
}

// ---- sign-in ----------------------------------------------------------------------------

function explain(err) {
  if (err.status === 401) return `Key not recognised (401): ${err.message}. Sign in with a valid API key.`;
  if (err.status === 403) return `This key's role can't read analytics (403): ${err.message}. Use an analyst or admin key.`;
  if (err.status === 429) return `Rate limited (429): ${err.message}. Wait a moment and reload.`;
  if (err.status === 0) return `The server could not be reached: ${err.message}.`;
  return `Request failed (${err.status}): ${err.message}`;
}

function showSignIn(message) {
  document.body.classList.add("signed-out");
  $("#session").hidden = true;
  $("#nav").hidden = true;
  $("#as-of-control").hidden = true;
  main.dataset.state = "signin";
  main.dataset.page = "";
  main.innerHTML = `
    <section class="card signin" aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in</h1>
      <p>Enter an API key with the <strong>analyst</strong> or <strong>admin</strong> role. It is kept for this browser tab's session only (sessionStorage) and sent as <code>Authorization: Bearer</code>.</p>
      <form id="signin-form" novalidate>
        <label for="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autocomplete="off" spellcheck="false" required aria-describedby="signin-error" placeholder="tally_…">
        <button type="submit">Sign in</button>
        <p id="signin-error" class="error" role="alert"${message ? "" : " hidden"}>${esc(message || "")}</p>
      </form>
    </section>`;
  const form = $("#signin-form");
  const input = $("#api-key");
  input.focus();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    const errEl = $("#signin-error");
    if (!key) {
      errEl.textContent = "Enter an API key.";
      errEl.hidden = false;
      return;
    }
    setKey(key);
    form.querySelector("button").disabled = true;
    try {
      // Checks the key against an analytics endpoint before showing any page.
      await getJSON(apiUrl("analytics/metrics/summary", { as_of: route().params.get("as_of") }));
      render();
    } catch (err) {
      clearKey();
      form.querySelector("button").disabled = false;
      errEl.textContent = err instanceof ApiError ? explain(err) : String(err);
      errEl.dataset.status = err.status ?? "";
      errEl.hidden = false;
      input.focus();
    }
  });
}

$("#sign-out").addEventListener("click", () => {
  clearKey();
  showSignIn("Signed out.");
});

// ---- pages ------------------------------------------------------------------------------

let generation = 0;
let controller = null;
let drawers = [];

async function render() {
  const gen = ++generation;
  if (controller) controller.abort();
  controller = new AbortController();
  const signal = controller.signal;
  drawers = [];
  hideTooltip();
  if (!getKey()) return showSignIn();

  const { page, params } = route();
  const asOf = params.get("as_of");
  sessionStorage.setItem(AS_OF_KEY, asOf);
  document.body.classList.remove("signed-out");
  $("#session").hidden = false;
  $("#nav").hidden = false;
  $("#as-of-control").hidden = false;
  $("#as-of").value = asOf;
  for (const a of document.querySelectorAll("#nav a")) {
    const p = a.dataset.page;
    a.href = `#/${p}?as_of=${asOf}`;
    if (p === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const def = PAGES[page];
  document.title = `${def.title} · tally`;
  main.dataset.state = "loading";
  main.dataset.page = page;
  main.innerHTML = `<div class="page-head"><h1 id="page-title" tabindex="-1">${esc(def.title)}</h1><span class="as-of-note">as of ${esc(asOf)} (end of day, UTC)</span><div id="page-controls" class="page-controls"></div></div><div id="banner" role="alert" hidden></div><div class="grid" id="sections"></div>`;

  const cache = new Map();
  let failed = 0;
  let unauthorized = null;
  const ctx = {
    asOf,
    param: (name, dflt) => params.get(name) || dflt,
    toolbar(html) {
      const el = $("#page-controls");
      el.innerHTML = html;
      el.querySelectorAll("select[data-param]").forEach((s) =>
        s.addEventListener("change", () => {
          const p = new URLSearchParams(params);
          p.set(s.dataset.param, s.value);
          go(page, p);
        }),
      );
    },
    load(path, extra = {}, opts = {}) {
      const url = apiUrl(path, opts.noAsOf ? extra : { ...extra, as_of: asOf });
      if (!cache.has(url)) cache.set(url, getJSON(url, signal).then((data) => ({ url, data })));
      return cache.get(url);
    },
    draw(fn) {
      drawers.push(fn);
      fn();
    },
    async section(title, opts, fill) {
      const sections = $("#sections");
      if (gen !== generation || !sections) return;
      const id = "s-" + title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/-$/, "");
      const sec = document.createElement("section");
      sec.className = "card" + (opts.wide ? " wide" : "");
      sec.id = opts.id || id;
      sec.setAttribute("aria-labelledby", sec.id + "-h");
      sec.setAttribute("aria-busy", "true");
      sec.innerHTML = `<h2 id="${sec.id}-h">${esc(title)}</h2><div class="body"><p class="loading">Loading…</p></div>`;
      sections.appendChild(sec);
      const body = sec.querySelector(".body");
      try {
        const html = await fill(body);
        if (gen !== generation) return;
        if (typeof html === "string") body.innerHTML = html;
      } catch (err) {
        if (gen !== generation || err.name === "AbortError") return;
        failed++;
        if (err instanceof ApiError && err.status === 401) unauthorized = err;
        body.innerHTML = `<p class="error" data-status="${err.status ?? ""}">${esc(err instanceof ApiError ? explain(err) : "The page failed to draw: " + err.message)}</p>`;
        if (!(err instanceof ApiError)) console.error(err);
        if (err instanceof ApiError && err.status === 403) {
          const b = $("#banner");
          b.textContent = explain(err);
          b.dataset.status = "403";
          b.hidden = false;
        }
      } finally {
        sec.removeAttribute("aria-busy");
      }
    },
  };

  try {
    await def.render(ctx);
  } catch (err) {
    if (gen !== generation || err.name === "AbortError") return;
    failed++;
    if (err instanceof ApiError && err.status === 401) unauthorized = err;
    $("#sections").insertAdjacentHTML("afterbegin", `<p class="error" data-status="${err.status ?? ""}">${esc(err instanceof ApiError ? explain(err) : err.message)}</p>`);
    if (!(err instanceof ApiError)) console.error(err);
  }
  if (gen !== generation) return;
  if (unauthorized) {
    // The key stopped working (revoked, or the store was replaced): sign in again.
    clearKey();
    return showSignIn(explain(unauthorized));
  }
  main.dataset.state = failed ? "error" : "ready";
}

window.addEventListener("hashchange", () => {
  render();
  const t = $("#page-title");
  if (t) t.focus({ preventScroll: true });
});

$("#as-of").addEventListener("change", (e) => {
  const v = e.target.value;
  if (!validDate(v)) return;
  const { page, params } = route();
  params.set("as_of", v);
  go(page, params);
});

$("#as-of-today").addEventListener("click", () => {
  const { page, params } = route();
  params.set("as_of", todayUtc());
  go(page, params);
});

let resizeTimer;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => drawers.forEach((d) => d()), 150);
});

render();
