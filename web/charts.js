// Small hand-written SVG charts. Each draws into a <figure class="chart">: the SVG (its
// marks carry `data-value` and a tooltip with the exact value), a legend and a data table
// (in a <details>) with every value, so nothing is only visible as a shape.
//
// Keyboard: a chart is focusable; arrow keys move from mark to mark and show the tooltip.

import { fmt, short, esc } from "./format.js";

const NS = "http://www.w3.org/2000/svg";

/** Series colours: each has ≥ 3:1 contrast against the white card (WCAG 1.4.11). */
export const PALETTE = ["#1d4ed8", "#b45309", "#047857", "#7e22ce", "#be123c", "#0e7490", "#4d7c0f", "#a21caf", "#475569", "#9a3412", "#1e3a8a", "#166534"];

function svgEl(name, attrs = {}, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  if (parent) parent.appendChild(e);
  return e;
}

function text(parent, x, y, s, attrs = {}) {
  const t = svgEl("text", { x, y, ...attrs }, parent);
  t.textContent = s;
  return t;
}

/** Round tick values covering [min, max]. */
export function niceTicks(min, max, count = 5) {
  if (min === max) {
    if (max === 0) return [0, 1];
    min = Math.min(0, min);
    max = Math.max(0, max);
  }
  const span = max - min;
  const raw = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Math.round(v / step) * step);
  return ticks;
}

function width(fig) {
  const w = fig.clientWidth || (fig.parentElement && fig.parentElement.clientWidth) || 600;
  return Math.max(260, Math.floor(w));
}

/** Starts a chart in `fig`: clears what a previous draw left, returns the SVG. */
function frame(fig, w, h, label) {
  fig.querySelectorAll("svg, .legend, details.data, .empty").forEach((n) => n.remove());
  const svg = svgEl("svg", {
    viewBox: `0 0 ${w} ${h}`,
    width: w,
    height: h,
    role: "img",
    "aria-label": label,
    tabindex: "0",
    class: "chart-svg",
  });
  fig.appendChild(svg);
  return svg;
}

function empty(fig, message = "No data for this period.") {
  fig.querySelectorAll("svg, .legend, details.data, .empty").forEach((n) => n.remove());
  const p = document.createElement("p");
  p.className = "empty";
  p.textContent = message;
  fig.appendChild(p);
  fig.dataset.marks = "0";
}

function mark(el, value, tip) {
  el.setAttribute("class", (el.getAttribute("class") || "") + " mark");
  el.setAttribute("data-value", String(value));
  el.setAttribute("data-tip", tip);
  return el;
}

function legend(fig, series) {
  const ul = document.createElement("ul");
  ul.className = "legend";
  for (const s of series) {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = "swatch" + (s.kind === "band" ? " band" : "") + (s.dashed ? " dashed" : "");
    sw.dataset.color = s.color;
    li.appendChild(sw);
    li.appendChild(document.createTextNode(s.name));
    ul.appendChild(li);
  }
  fig.appendChild(ul);
  // Colours set through the CSSOM (allowed by the page's CSP, unlike style attributes).
  ul.querySelectorAll(".swatch").forEach((sw) => {
    sw.style.setProperty("--c", sw.dataset.color);
  });
}

/** A data table with a header row and body rows of cells (already formatted). */
function dataTable(fig, caption, head, rows) {
  const d = document.createElement("details");
  d.className = "data";
  const sum = document.createElement("summary");
  sum.textContent = "Data table";
  d.appendChild(sum);
  const t = document.createElement("table");
  t.innerHTML =
    `<caption class="sr-only">${esc(caption)}</caption><thead><tr>${head.map((h, i) => `<th scope="col"${i ? ' class="num"' : ""}>${esc(h)}</th>`).join("")}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map((c, i) => (i ? `<td class="num">${esc(c)}</td>` : `<th scope="row">${esc(c)}</th>`)).join("")}</tr>`).join("")}</tbody>`;
  d.appendChild(t);
  fig.appendChild(d);
}

function finish(fig, svg) {
  fig.dataset.marks = String(svg.querySelectorAll(".mark").length);
  keyboard(svg);
}

function yAxis(svg, ticks, y, x0, x1, kind) {
  const g = svgEl("g", { class: "axis y", "aria-hidden": "true" }, svg);
  for (const t of ticks) {
    svgEl("line", { x1: x0, x2: x1, y1: y(t), y2: y(t), class: t === 0 ? "zero" : "gridline" }, g);
    text(g, x0 - 6, y(t) + 4, kind === "pct" ? short(t) + "%" : short(t), { "text-anchor": "end" });
  }
}

function xLabels(svg, labels, xc, y, plotW, totalW) {
  const g = svgEl("g", { class: "axis x", "aria-hidden": "true" }, svg);
  const maxLen = Math.max(...labels.map((l) => String(l).length));
  const every = Math.max(1, Math.ceil((labels.length * (maxLen * 6.5 + 8)) / plotW));
  // Every `every`-th label, counted back from the last so the newest is always labelled.
  labels.forEach((l, i) => {
    if ((labels.length - 1 - i) % every !== 0) return;
    // Labels at the edges are anchored inwards so they stay inside the chart.
    const half = String(l).length * 3.3;
    const x = xc(i);
    const anchor = x + half > totalW ? "end" : x - half < 0 ? "start" : "middle";
    text(g, anchor === "end" ? totalW - 1 : anchor === "start" ? 1 : x, y, l, { "text-anchor": anchor });
  });
}

function leftMargin(ticks, kind) {
  const len = Math.max(...ticks.map((t) => (short(t) + (kind === "pct" ? "%" : "")).length));
  return 12 + len * 7;
}

/**
 * Lines over categories (e.g. months), with an optional band (lower/upper) drawn beneath.
 * spec: {labels, series: [{name, values, color?, dashed?}], band?: {name, lower, upper, color?}, kind, height?}
 * Values may be null (no point).
 */
export function lineChart(fig, spec) {
  const { labels, series, band, kind = "num" } = spec;
  const all = [...series.flatMap((s) => s.values), ...(band ? [...band.lower, ...band.upper] : [])].filter((v) => v !== null && v !== undefined);
  if (!labels.length || !all.length) return empty(fig);
  const w = width(fig);
  const h = spec.height || 260;
  const ticks = niceTicks(Math.min(0, ...all), Math.max(...all));
  const ml = leftMargin(ticks, kind);
  const mr = 14, mt = 12, mb = 28;
  const plotW = w - ml - mr;
  const n = labels.length;
  const xc = (i) => ml + (n === 1 ? plotW / 2 : (i * plotW) / (n - 1));
  const y = (v) => mt + ((ticks[ticks.length - 1] - v) / (ticks[ticks.length - 1] - ticks[0])) * (h - mt - mb);
  const svg = frame(fig, w, h, spec.label || series.map((s) => s.name).join(", "));
  yAxis(svg, ticks, y, ml, w - mr, kind);
  xLabels(svg, labels, xc, h - 8, plotW, w);
  series.forEach((s, i) => (s.color = s.color || PALETTE[i % PALETTE.length]));
  if (band) {
    band.color = band.color || series[series.length - 1].color;
    const idx = labels.map((_, i) => i).filter((i) => band.lower[i] !== null && band.upper[i] !== null && band.lower[i] !== undefined);
    if (idx.length) {
      const top = idx.map((i) => `${xc(i)},${y(band.upper[i])}`);
      const bottom = idx.slice().reverse().map((i) => `${xc(i)},${y(band.lower[i])}`);
      svgEl("polygon", { points: [...top, ...bottom].join(" "), class: "band", fill: band.color }, svg);
      for (const i of idx) {
        // The band's bounds as invisible hover targets on the forecast points' column.
        const r = svgEl("rect", { x: xc(i) - 5, y: y(band.upper[i]), width: 10, height: Math.max(1, y(band.lower[i]) - y(band.upper[i])), class: "band-hit" }, svg);
        mark(r, band.upper[i], `${labels[i]} · ${band.name}: ${fmt(band.lower[i], kind)} – ${fmt(band.upper[i], kind)}`);
      }
    }
  }
  for (const s of series) {
    let d = "";
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${xc(i)},${y(v)}`;
      pen = true;
    });
    svgEl("path", { d, class: "line" + (s.dashed ? " dashed" : ""), stroke: s.color }, svg);
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const c = svgEl("circle", { cx: xc(i), cy: y(v), r: n > 40 ? 2.5 : 3.5, fill: s.color, class: "point" }, svg);
      mark(c, v, `${labels[i]} · ${s.name}: ${fmt(v, kind)}`);
    });
  }
  legend(fig, [...series, ...(band ? [{ name: band.name, color: band.color, kind: "band" }] : [])]);
  const head = ["", ...series.map((s) => s.name), ...(band ? [band.name + " (lower)", band.name + " (upper)"] : [])];
  const rows = labels.map((l, i) => [l, ...series.map((s) => fmt(s.values[i], kind)), ...(band ? [fmt(band.lower[i], kind), fmt(band.upper[i], kind)] : [])]);
  dataTable(fig, spec.label || "", head, rows);
  finish(fig, svg);
}

/**
 * Vertical bars stacked per category; negative values stack downwards from zero.
 * spec: {labels, series: [{name, values, color?}], kind, height?, line?: {name, values, color?}}
 */
export function stackedBars(fig, spec) {
  const { labels, series, kind = "num" } = spec;
  if (!labels.length || !series.length) return empty(fig);
  const pos = labels.map((_, i) => series.reduce((a, s) => a + Math.max(0, s.values[i] || 0), 0));
  const neg = labels.map((_, i) => series.reduce((a, s) => a + Math.min(0, s.values[i] || 0), 0));
  const lineVals = spec.line ? spec.line.values.filter((v) => v !== null) : [];
  const hi = Math.max(0, ...pos, ...lineVals);
  const lo = Math.min(0, ...neg, ...lineVals);
  if (hi === 0 && lo === 0) return empty(fig);
  const w = width(fig);
  const h = spec.height || 260;
  const ticks = niceTicks(lo, hi);
  const ml = leftMargin(ticks, kind);
  const mr = 14, mt = 12, mb = 28;
  const plotW = w - ml - mr;
  const n = labels.length;
  const band = plotW / n;
  const bw = Math.max(2, Math.min(48, band * 0.7));
  const xc = (i) => ml + band * (i + 0.5);
  const top = ticks[ticks.length - 1], bot = ticks[0];
  const y = (v) => mt + ((top - v) / (top - bot)) * (h - mt - mb);
  const svg = frame(fig, w, h, spec.label || series.map((s) => s.name).join(", "));
  yAxis(svg, ticks, y, ml, w - mr, kind);
  xLabels(svg, labels, xc, h - 8, plotW, w);
  series.forEach((s, i) => (s.color = s.color || PALETTE[i % PALETTE.length]));
  labels.forEach((l, i) => {
    let up = 0, down = 0;
    for (const s of series) {
      const v = s.values[i];
      if (v === null || v === undefined || v === 0) continue;
      const from = v > 0 ? up : down;
      const to = from + v;
      if (v > 0) up = to; else down = to;
      const r = svgEl("rect", { x: xc(i) - bw / 2, y: Math.min(y(from), y(to)), width: bw, height: Math.max(1, Math.abs(y(from) - y(to))), fill: s.color, class: "bar" }, svg);
      mark(r, s.raw ? s.raw[i] : v, `${l} · ${s.name}: ${fmt(s.raw ? s.raw[i] : v, kind)}`);
    }
  });
  if (spec.line) {
    const ln = spec.line;
    ln.color = ln.color || "#111827";
    let d = "";
    ln.values.forEach((v, i) => {
      if (v === null) return;
      d += `${d ? "L" : "M"}${xc(i)},${y(v)}`;
    });
    svgEl("path", { d, class: "line", stroke: ln.color }, svg);
    ln.values.forEach((v, i) => {
      if (v === null) return;
      mark(svgEl("circle", { cx: xc(i), cy: y(v), r: 3.5, fill: ln.color, class: "point" }, svg), v, `${labels[i]} · ${ln.name}: ${fmt(v, kind)}`);
    });
  }
  legend(fig, [...series, ...(spec.line ? [spec.line] : [])]);
  const all = [...series, ...(spec.line ? [spec.line] : [])];
  dataTable(fig, spec.label || "", ["", ...all.map((s) => s.name)], labels.map((l, i) => [l, ...all.map((s) => fmt(s.raw ? s.raw[i] : s.values[i], kind))]));
  finish(fig, svg);
}

/**
 * Horizontal bars, one per item, labelled with their exact value.
 * spec: {items: [{label, value, tip?}], kind, color?, max?}
 */
export function hBars(fig, spec) {
  const items = spec.items.filter((it) => it.value !== null && it.value !== undefined);
  if (!items.length) return empty(fig);
  const kind = spec.kind || "num";
  const w = width(fig);
  const rowH = 26;
  const h = items.length * rowH + 8;
  const labW = Math.min(Math.floor(w * 0.38), 12 + Math.max(...items.map((it) => String(it.label).length)) * 7);
  const valW = 12 + Math.max(...items.map((it) => fmt(it.value, kind).length)) * 7;
  const max = spec.max || Math.max(...items.map((it) => Math.abs(it.value)), 0) || 1;
  const plotW = Math.max(40, w - labW - valW - 8);
  const svg = frame(fig, w, h, spec.label || "bars");
  items.forEach((it, i) => {
    const y0 = 4 + i * rowH;
    const t = text(svg, labW - 8, y0 + rowH / 2 + 4, it.label, { "text-anchor": "end", class: "cat" });
    if (String(it.label).length * 7 > labW - 12) {
      t.textContent = String(it.label).slice(0, Math.max(4, Math.floor((labW - 12) / 7) - 1)) + "…";
    }
    const bw = Math.max(it.value > 0 ? 2 : 0, (Math.abs(it.value) / max) * plotW);
    const r = svgEl("rect", { x: labW, y: y0 + 4, width: bw, height: rowH - 8, fill: it.color || spec.color || PALETTE[0], class: "bar", rx: 2 }, svg);
    mark(r, it.value, it.tip || `${it.label}: ${fmt(it.value, kind)}`);
    text(svg, labW + bw + 6, y0 + rowH / 2 + 4, fmt(it.value, kind), { class: "val" });
  });
  dataTable(fig, spec.label || "", ["", spec.valueName || "Value"], items.map((it) => [it.label, fmt(it.value, kind)]));
  finish(fig, svg);
}

/**
 * Grouped vertical bars: per category, one bar per series.
 * spec: {labels, series: [{name, values, color?}], kind, height?}
 */
export function groupedBars(fig, spec) {
  const { labels, series, kind = "num" } = spec;
  const vals = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  if (!labels.length || !vals.length) return empty(fig);
  const w = width(fig);
  const h = spec.height || 260;
  const ticks = niceTicks(Math.min(0, ...vals), Math.max(...vals));
  const ml = leftMargin(ticks, kind);
  const mr = 14, mt = 12, mb = 28;
  const plotW = w - ml - mr;
  const band = plotW / labels.length;
  const gw = band * 0.8;
  const bw = gw / series.length;
  const top = ticks[ticks.length - 1], bot = ticks[0];
  const y = (v) => mt + ((top - v) / (top - bot)) * (h - mt - mb);
  const svg = frame(fig, w, h, spec.label || "grouped bars");
  yAxis(svg, ticks, y, ml, w - mr, kind);
  xLabels(svg, labels, (i) => ml + band * (i + 0.5), h - 8, plotW, w);
  series.forEach((s, j) => (s.color = s.color || PALETTE[j % PALETTE.length]));
  labels.forEach((l, i) => {
    series.forEach((s, j) => {
      const v = s.values[i];
      if (v === null || v === undefined) return;
      const x = ml + band * i + (band - gw) / 2 + j * bw;
      const r = svgEl("rect", { x: x + 1, y: Math.min(y(0), y(v)), width: Math.max(1, bw - 2), height: Math.max(v ? 1 : 0, Math.abs(y(v) - y(0))), fill: s.color, class: "bar" }, svg);
      mark(r, v, `${l} · ${s.name}: ${fmt(v, kind)}`);
    });
  });
  legend(fig, series);
  dataTable(fig, spec.label || "", ["", ...series.map((s) => s.name)], labels.map((l, i) => [l, ...series.map((s) => fmt(s.values[i], kind))]));
  finish(fig, svg);
}

/**
 * A donut of shares. spec: {items: [{label, value}], kind, center?: {value, text}}
 */
export function donut(fig, spec) {
  const items = spec.items.filter((it) => it.value !== null && it.value !== undefined && it.value > 0);
  const total = items.reduce((a, it) => a + it.value, 0);
  if (!items.length || total <= 0) return empty(fig);
  const kind = spec.kind || "num";
  const w = Math.min(width(fig), 420);
  const h = spec.height || 220;
  const r = Math.min(h / 2 - 8, w / 2 - 8);
  const cx = w / 2, cy = h / 2;
  const svg = frame(fig, w, h, spec.label || "shares");
  let a0 = -Math.PI / 2;
  items.forEach((it, i) => {
    it.color = it.color || PALETTE[i % PALETTE.length];
    const a1 = a0 + (it.value / total) * Math.PI * 2;
    const large = a1 - a0 > Math.PI ? 1 : 0;
    const ri = r * 0.6;
    const p = (a, rr) => `${cx + rr * Math.cos(a)},${cy + rr * Math.sin(a)}`;
    const full = items.length === 1;
    const d = full
      ? `M${cx - r},${cy}A${r},${r} 0 1 1 ${cx + r},${cy}A${r},${r} 0 1 1 ${cx - r},${cy}M${cx - ri},${cy}A${ri},${ri} 0 1 0 ${cx + ri},${cy}A${ri},${ri} 0 1 0 ${cx - ri},${cy}Z`
      : `M${p(a0, r)}A${r},${r} 0 ${large} 1 ${p(a1, r)}L${p(a1, ri)}A${ri},${ri} 0 ${large} 0 ${p(a0, ri)}Z`;
    const path = svgEl("path", { d, fill: it.color, class: "slice", "fill-rule": "evenodd" }, svg);
    const share = it.share !== undefined ? ` (${fmt(it.share, "pct")})` : "";
    mark(path, it.value, `${it.label}: ${fmt(it.value, kind)}${share}`);
    a0 = a1;
  });
  if (spec.center) {
    text(svg, cx, cy - 2, spec.center.value, { "text-anchor": "middle", class: "center-value" });
    text(svg, cx, cy + 16, spec.center.text, { "text-anchor": "middle", class: "center-text" });
  }
  legend(fig, items.map((it) => ({ name: it.label, color: it.color })));
  dataTable(fig, spec.label || "", ["", spec.valueName || "Value", ...(items.some((it) => it.share !== undefined) ? ["Share"] : [])], items.map((it) => [it.label, fmt(it.value, kind), ...(it.share !== undefined ? [fmt(it.share, "pct")] : [])]));
  finish(fig, svg);
}

// ---- tooltip -----------------------------------------------------------------------------

let tip;

function tooltip() {
  if (!tip) {
    tip = document.createElement("div");
    tip.id = "tooltip";
    tip.setAttribute("role", "status");
    tip.hidden = true;
    document.body.appendChild(tip);
  }
  return tip;
}

function show(markEl, x, y) {
  const t = tooltip();
  t.textContent = markEl.getAttribute("data-tip");
  t.hidden = false;
  const tw = t.offsetWidth, th = t.offsetHeight;
  const left = Math.min(window.scrollX + document.documentElement.clientWidth - tw - 8, x + 12);
  t.style.left = Math.max(window.scrollX + 4, left) + "px";
  t.style.top = Math.max(window.scrollY + 4, y - th - 10) + "px";
}

/** Hides the tooltip (when the page changes under it). */
export function hide() {
  if (tip) tip.hidden = true;
  document.querySelectorAll(".mark.active").forEach((m) => m.classList.remove("active"));
}

document.addEventListener("pointerover", (e) => {
  const m = e.target.closest && e.target.closest(".mark");
  if (m) {
    hide();
    m.classList.add("active");
    show(m, e.pageX, e.pageY);
  }
});
document.addEventListener("pointermove", (e) => {
  const m = e.target.closest && e.target.closest(".mark");
  if (m) show(m, e.pageX, e.pageY);
});
document.addEventListener("pointerout", (e) => {
  if (e.target.closest && e.target.closest(".mark")) hide();
});

function keyboard(svg) {
  svg.addEventListener("keydown", (e) => {
    // Left to right, then top to bottom, whatever order the marks were drawn in.
    const marks = [...svg.querySelectorAll(".mark")]
      .map((m) => ({ m, b: m.getBoundingClientRect() }))
      .sort((a, b) => a.b.left + a.b.width / 2 - (b.b.left + b.b.width / 2) || a.b.top - b.b.top)
      .map((x) => x.m);
    if (!marks.length) return;
    const cur = marks.findIndex((m) => m.classList.contains("active"));
    let next = null;
    if (e.key === "ArrowRight" || e.key === "ArrowDown") next = cur < 0 ? 0 : Math.min(marks.length - 1, cur + 1);
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") next = cur < 0 ? 0 : Math.max(0, cur - 1);
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = marks.length - 1;
    else if (e.key === "Escape") return hide();
    if (next === null) return;
    e.preventDefault();
    hide();
    const m = marks[next];
    m.classList.add("active");
    const b = m.getBoundingClientRect();
    show(m, b.left + window.scrollX + b.width / 2, b.top + window.scrollY);
  });
  svg.addEventListener("blur", hide);
}
