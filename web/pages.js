// The six pages. Each figure is an element `.fig` that names where it came from
// (`data-src`: the request URL, `data-path`: the field) and carries the API's value
// (`data-value`) next to its formatted text, so tests can check it against the API.

import { fmt, label, esc } from "./format.js";
import { lineChart, stackedBars, hBars, groupedBars, donut, PALETTE } from "./charts.js";

/** The value at a dotted path ("tiers.0.revenue") of an object. */
export function at(obj, path) {
  return path.split(".").reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);
}

/** A figure: formatted value with its provenance. */
function fig(src, json, path, kind) {
  const v = at(json, path);
  const shown = fmt(v, kind);
  const title = v === null ? ' title="undefined (no data to compute it from)"' : "";
  return `<span class="fig" data-src="${esc(src.url)}" data-path="${esc(path)}" data-kind="${kind}" data-value="${esc(String(v))}"${title}>${esc(shown)}</span>`;
}

/** A KPI tile; `change` = {path, kind, good: "up"|"down", text}. */
function kpi(name, src, path, kind, change) {
  let ch = "";
  if (change) {
    const v = at(src.data, change.path);
    const dir = v === null || v === undefined ? "none" : v > 0 ? "up" : v < 0 ? "down" : "flat";
    const arrow = { up: "▲", down: "▼", flat: "▶", none: "•" }[dir];
    const tone = dir === "none" || dir === "flat" ? "neutral" : dir === (change.good || "up") ? "good" : "bad";
    const words = { up: "up", down: "down", flat: "unchanged", none: "no comparison" }[dir];
    ch = `<div class="kpi-change ${tone}" data-dir="${dir}"><span aria-hidden="true">${arrow}</span><span class="sr-only">${words}</span> ${fig(src, src.data, change.path, change.kind)} <span class="muted">${esc(change.text || "")}</span></div>`;
  }
  return `<div class="kpi"><div class="kpi-label">${esc(name)}</div><div class="kpi-value">${fig(src, src.data, path, kind)}</div>${ch}</div>`;
}

function kpis(tiles) {
  return `<div class="kpis">${tiles.join("")}</div>`;
}

/** A table; columns = [{title, path (relative to row), kind}], rows from `listPath`. */
function table(src, listPath, columns, caption) {
  const rows = at(src.data, listPath) || [];
  if (!rows.length) return `<p class="empty">No rows for this period.</p>`;
  const head = columns.map((c, i) => `<th scope="col"${i ? ' class="num"' : ""}>${esc(c.title)}</th>`).join("");
  const body = rows
    .map((_, r) => {
      const cells = columns.map((c, i) => {
        const p = `${listPath}.${r}.${c.path}`;
        const content = c.kind === "label" ? esc(label(at(src.data, p))) : c.kind === "text" ? esc(String(at(src.data, p) ?? "—")) : fig(src, src.data, p, c.kind);
        return i === 0 ? `<th scope="row">${content}</th>` : `<td class="num">${content}</td>`;
      });
      return `<tr>${cells.join("")}</tr>`;
    })
    .join("");
  return `<div class="table-wrap"><table><caption class="sr-only">${esc(caption)}</caption><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
}

function chartFig(id, title) {
  return `<figure class="chart" id="${id}" data-chart="${id}"><figcaption>${esc(title)}</figcaption></figure>`;
}

function select(id, text, options, value) {
  return `<label class="control" for="${id}">${esc(text)} <select id="${id}" data-param="${id.replace(/^p-/, "")}">${options
    .map(([v, t]) => `<option value="${esc(v)}"${String(v) === String(value) ? " selected" : ""}>${esc(t)}</option>`)
    .join("")}</select></label>`;
}

const TIER_ORDER = ["enterprise", "professional", "starter", "trial"];
const tierSort = (a, b) => (TIER_ORDER.indexOf(a) + 1 || 99) - (TIER_ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b);

// ---- pages ------------------------------------------------------------------------------

export const PAGES = {
  overview: { title: "Overview", render: overview },
  revenue: { title: "Revenue", render: revenue },
  customers: { title: "Customers", render: customers },
  services: { title: "Services", render: services },
  llm: { title: "LLM", render: llm },
  metering: { title: "Metering", render: metering },
};

async function overview(ctx) {
  await Promise.all([
    ctx.section("Key figures", { wide: true }, async () => {
      const s = await ctx.load("analytics/metrics/summary");
      return kpis([
        kpi("MRR", s, "revenue.mrr", "money", { path: "revenue.change", kind: "change", text: "MoM" }),
        kpi("Customers (paying or trial)", s, "users.total", "int", { path: "users.change", kind: "change", text: "vs end of last month" }),
        kpi("Active users (30 days)", s, "users.active", "int"),
        kpi("API calls this month", s, "api_calls.this_month", "int", { path: "api_calls.change", kind: "change", text: "vs last month to date" }),
        kpi("Churn rate this month", s, "churn_rate.percentage", "pct", { path: "churn_rate.change", kind: "pp", good: "down", text: "vs last month" }),
      ]);
    }),
    ctx.section("Active alerts", { wide: true, id: "alerts" }, async () => {
      const a = await ctx.load("analytics/metrics/alerts");
      const groups = [
        ["critical_alerts", "Critical", "critical"],
        ["warning_alerts", "Warning", "warning"],
        ["info_alerts", "Info", "info"],
      ];
      const items = groups.flatMap(([key, name, cls]) =>
        (a.data[key] || []).map(
          (al, i) =>
            `<li class="alert ${cls}" data-metric="${esc(al.metric)}"><span class="badge">${name}</span> <span class="alert-msg">${esc(al.message)}</span> <span class="muted">(${esc(label(al.metric))}: ${fig(a, a.data, `${key}.${i}.value`, "num2")}, threshold ${fig(a, a.data, `${key}.${i}.threshold`, "num2")})</span></li>`,
        ),
      );
      const noData = (a.data.no_data || []).length ? `<p class="muted">No data to evaluate: ${esc(a.data.no_data.map((n) => (typeof n === "string" ? n : n.metric || JSON.stringify(n))).join(", "))}</p>` : "";
      return (items.length ? `<ul class="alerts">${items.join("")}</ul>` : `<p class="ok">No active alerts.</p>`) + noData;
    }),
    ctx.section("KPIs", { wide: true }, async () => {
      const k = await ctx.load("analytics/metrics/kpis");
      return `<div class="kpi-groups">
        <div><h3>Revenue</h3>${kpis([kpi("MRR", k, "revenue_kpis.mrr", "money"), kpi("ARR", k, "revenue_kpis.arr", "money"), kpi("LTV", k, "revenue_kpis.ltv", "money"), kpi("LTV:CAC", k, "revenue_kpis.ltv_cac_ratio", "ratio")])}</div>
        <div><h3>Users</h3>${kpis([kpi("Total users", k, "user_kpis.total_users", "int"), kpi("Active users", k, "user_kpis.active_users", "int"), kpi("Churn rate", k, "user_kpis.churn_rate", "pct"), kpi("Retention rate", k, "user_kpis.retention_rate", "pct")])}</div>
        <div><h3>Services</h3>${kpis([kpi("Uptime (24 h)", k, "service_kpis.uptime", "pct"), kpi("Avg response time", k, "service_kpis.avg_response_time_ms", "ms"), kpi("API calls per day", k, "service_kpis.api_calls_per_day", "num2"), kpi("Error rate", k, "service_kpis.error_rate", "pct")])}</div>
      </div>`;
    }),
    ctx.section("MRR, last 12 months", {}, async (body) => {
      const m = await ctx.load("analytics/revenue/mrr", { months: 12 });
      body.innerHTML = chartFig("overview-mrr", "Month-end MRR");
      ctx.draw(() => lineChart(body.querySelector("figure"), { labels: m.data.mrr_data.map((r) => r.month), series: [{ name: "MRR", values: m.data.mrr_data.map((r) => r.mrr) }], kind: "money", label: "Month-end MRR over the last 12 months" }));
    }),
    ctx.section("Month to date: revenue, costs, profit", {}, async (body) => {
      const b = await ctx.load("billing/analytics/summary");
      const d = b.data;
      body.innerHTML =
        kpis([
          kpi("Revenue this month (paid)", b, "revenue.total_this_month", "money"),
          kpi("Costs", b, "costs.total", "money"),
          kpi("Gross margin", b, "profitability.gross_margin_percentage", "pct"),
          kpi("Net profit", b, "profitability.net_profit", "money"),
          kpi("Net margin", b, "profitability.net_margin_percentage", "pct"),
          kpi("Payment success", b, "payments.success_rate", "pct"),
        ]) + chartFig("overview-costs", "Costs this month by kind");
      ctx.draw(() =>
        donut(body.querySelector("figure"), {
          items: [
            { label: "Infrastructure", value: d.costs.infrastructure },
            { label: "LLM API", value: d.costs.llm_api_costs },
            { label: "Other services", value: d.costs.other_services },
          ],
          kind: "money",
          valueName: "Cost",
          center: { value: fmt(d.costs.total, "money"), text: "total" },
          label: "Costs this month by kind",
        }),
      );
    }),
  ]);
}

async function revenue(ctx) {
  const months = ctx.param("months", "12");
  const model = ctx.param("model", "linear_trend");
  const confidence = ctx.param("confidence", "95");
  ctx.toolbar(
    select("p-months", "History", [["6", "6 months"], ["12", "12 months"], ["24", "24 months"]], months) +
      select("p-model", "Forecast model", [["linear_trend", "Linear trend"], ["holt", "Holt"]], model) +
      select("p-confidence", "Confidence", [["95", "95 %"], ["80", "80 %"]], confidence),
  );
  const mrrP = ctx.load("analytics/revenue/mrr", { months });
  const fcP = ctx.load("analytics/revenue/forecast", { months_ahead: 6, model, confidence });
  const growthP = ctx.load("analytics/revenue/growth");
  const arrP = ctx.load("analytics/revenue/arr");
  await Promise.all([
    ctx.section("Revenue", { wide: true }, async () => {
      const [m, a, g, f] = await Promise.all([mrrP, arrP, growthP, fcP]);
      return kpis([
        kpi("MRR now", m, "current_mrr", "money"),
        kpi("ARR", a, "arr", "money"),
        kpi("MoM growth", g, "mom_growth", "change"),
        kpi("QoQ growth", g, "qoq_growth", "change"),
        kpi("YoY growth", g, "yoy_growth", "change"),
        `<div class="kpi"><div class="kpi-label">Growth trend</div><div class="kpi-value text">${esc(label(g.data.growth_trend))}</div></div>`,
        kpi("Forecast monthly growth", f, "growth_rate", "pct"),
      ]);
    }),
    ctx.section("MRR over time and forecast", { wide: true }, async (body) => {
      const [m, f] = await Promise.all([mrrP, fcP]);
      const hist = m.data.mrr_data;
      const fc = f.data.forecast || [];
      const labels = [...hist.map((r) => r.month), ...fc.map((r) => r.month)];
      const pad = (arr, before, after) => [...Array(before).fill(null), ...arr, ...Array(after).fill(null)];
      const last = hist.length ? hist[hist.length - 1].mrr : null;
      body.innerHTML =
        chartFig("revenue-mrr", fc.length ? `Month-end MRR (the current month to date) and ${fc.length}-month forecast` : "Month-end MRR (the current month to date)") +
        (fc.length
          ? `<p class="note">Forecast: ${esc(label(f.data.model))}, ${fig(f, f.data, "forecast.0.confidence", "int")} % prediction band, fitted on ${esc(f.data.fitted_from || "")}–${esc(f.data.fitted_to || "")}; backtest MAPE ${fig(f, f.data, "backtest_mape", "pct")}. Next month: ${fig(f, f.data, "forecast.0.forecasted_mrr", "money")} (${fig(f, f.data, "forecast.0.lower_bound", "money")} – ${fig(f, f.data, "forecast.0.upper_bound", "money")}).</p>`
          : `<p class="note">No forecast: ${esc(f.data.reason || "not enough data")}.</p>`);
      ctx.draw(() =>
        lineChart(body.querySelector("figure"), {
          labels,
          series: [
            { name: "MRR", values: pad(hist.map((r) => r.mrr), 0, fc.length), color: PALETTE[0] },
            // The forecast line starts from the last actual month so the two join.
            ...(fc.length ? [{ name: "Forecast", values: [...Array(Math.max(0, hist.length - 1)).fill(null), last, ...fc.map((r) => r.forecasted_mrr)], color: PALETTE[1], dashed: true }] : []),
          ],
          band: fc.length ? { name: "Prediction band", lower: pad(fc.map((r) => r.lower_bound), hist.length, 0), upper: pad(fc.map((r) => r.upper_bound), hist.length, 0), color: PALETTE[1] } : undefined,
          kind: "money",
          label: "Month-end MRR and forecast with prediction band",
        }),
      );
    }),
    ctx.section("MRR movements", { wide: true }, async (body) => {
      const m = await mrrP;
      const r = m.data.mrr_data;
      body.innerHTML = chartFig("revenue-movements", "MRR movements per month (contraction and churn below zero), net new MRR as a line");
      ctx.draw(() =>
        stackedBars(body.querySelector("figure"), {
          labels: r.map((x) => x.month),
          series: [
            { name: "New", values: r.map((x) => x.new_mrr), color: "#047857" },
            { name: "Expansion", values: r.map((x) => x.expansion_mrr), color: "#1d4ed8" },
            { name: "Reactivation", values: r.map((x) => x.reactivation_mrr), color: "#7e22ce" },
            { name: "Contraction", values: r.map((x) => -x.contraction_mrr), raw: r.map((x) => x.contraction_mrr), color: "#b45309" },
            { name: "Churn", values: r.map((x) => -x.churned_mrr), raw: r.map((x) => x.churned_mrr), color: "#be123c" },
          ],
          line: { name: "Net new MRR", values: r.map((x) => (x.net_new_mrr === undefined ? null : x.net_new_mrr)), color: "#111827" },
          kind: "money",
          label: "MRR movements per month",
        }),
      );
      body.insertAdjacentHTML(
        "beforeend",
        table(m, "mrr_data", [
          { title: "Month", path: "month", kind: "text" },
          { title: "MRR", path: "mrr", kind: "money" },
          { title: "Growth", path: "growth_rate", kind: "change" },
          { title: "New", path: "new_mrr", kind: "money" },
          { title: "Expansion", path: "expansion_mrr", kind: "money" },
          { title: "Reactivation", path: "reactivation_mrr", kind: "money" },
          { title: "Contraction", path: "contraction_mrr", kind: "money" },
          { title: "Churn", path: "churned_mrr", kind: "money" },
          { title: "New cust.", path: "new_customers", kind: "int" },
          { title: "Churned cust.", path: "churned_customers", kind: "int" },
          { title: "Paying", path: "paying_customers", kind: "int" },
        ], "MRR by month"),
      );
    }),
    ctx.section("ARR by tier", {}, async (body) => {
      const a = await arrP;
      const tiers = Object.keys(a.data.arr_by_tier || {}).sort(tierSort);
      body.innerHTML = kpis([kpi("ARR", a, "arr", "money"), kpi("YoY growth", a, "yoy_growth", "change")]) + chartFig("revenue-arr-tier", "ARR by tier");
      ctx.draw(() => hBars(body.querySelector("figure"), { items: tiers.map((t, i) => ({ label: label(t), value: a.data.arr_by_tier[t], color: PALETTE[i] })), kind: "money", valueName: "ARR", label: "ARR by tier" }));
    }),
    ctx.section("Growth", {}, async () => {
      const g = await growthP;
      return kpis([
        kpi("This month (MRR)", g, "current_month_revenue", "money"),
        kpi("Previous month", g, "previous_month_revenue", "money"),
        kpi("Three months ago", g, "previous_quarter_revenue", "money"),
        kpi("Same month last year", g, "same_month_last_year", "money"),
      ]);
    }),
    ctx.section("MRR by tier", { wide: true }, async (body) => {
      const t = await ctx.load("analytics/revenue/by-tier");
      body.innerHTML =
        `<div class="split"><div>${chartFig("revenue-by-tier", "Share of MRR by tier")}</div><div>` +
        table(t, "tiers", [
          { title: "Tier", path: "tier", kind: "label" },
          { title: "MRR", path: "revenue", kind: "money" },
          { title: "Customers", path: "customers", kind: "int" },
          { title: "ARPC", path: "arpc", kind: "money" },
          { title: "Share", path: "percentage", kind: "pct" },
        ], "MRR by tier") +
        `<p class="note">Total ${fig(t, t.data, "total_revenue", "money")} from ${fig(t, t.data, "total_customers", "int")} customers (paying or trial).</p></div></div>`;
      ctx.draw(() => donut(body.querySelector("figure"), { items: t.data.tiers.map((x) => ({ label: label(x.tier), value: x.revenue, share: x.percentage })), kind: "money", valueName: "MRR", center: { value: fmt(t.data.total_revenue, "money"), text: "MRR" }, label: "Share of MRR by tier" }));
    }),
  ]);
}

async function customers(ctx) {
  await Promise.all([
    ctx.section("Churn and retention", { wide: true }, async (body) => {
      const c = await ctx.load("analytics/users/churn");
      const tiers = Object.keys(c.data.churn_by_tier || {}).sort(tierSort);
      body.innerHTML =
        kpis([
          kpi("Customer churn this month", c, "monthly_churn_rate", "pct"),
          kpi("Last month's churn", c, "last_month_churn_rate", "pct"),
          kpi("Retention", c, "retention_rate", "pct"),
          kpi("Churned this month", c, "churned_this_month", "int"),
          kpi("Paying customers", c, "total_customers", "int"),
          kpi("Revenue churn", c, "revenue_churn_rate", "pct"),
          kpi("Net revenue retention", c, "net_revenue_retention", "pct"),
        ]) + chartFig("customers-churn-tier", "Churn rate this month by tier (trial: trials that did not convert)");
      ctx.draw(() => hBars(body.querySelector("figure"), { items: tiers.map((t, i) => ({ label: label(t), value: c.data.churn_by_tier[t], color: PALETTE[i] })), kind: "pct", valueName: "Churn rate", label: "Churn rate by tier" }));
    }),
    ctx.section("Lifetime value", { wide: true }, async (body) => {
      const l = await ctx.load("analytics/users/ltv");
      const tiers = Object.keys(l.data.ltv_by_tier || {}).sort(tierSort);
      body.innerHTML =
        kpis([
          kpi("Average LTV", l, "average_ltv", "money"),
          kpi("LTV:CAC", l, "ltv_cac_ratio", "ratio"),
          kpi("CAC", l, "cac", "money"),
          kpi("ARPA", l, "arpa", "money"),
          kpi("Mean monthly churn", l, "mean_monthly_churn_rate", "pct"),
          kpi("Average lifespan", l, "average_customer_lifespan_months", "months"),
        ]) + chartFig("customers-ltv-tier", "LTV by tier");
      ctx.draw(() => hBars(body.querySelector("figure"), { items: tiers.map((t, i) => ({ label: label(t), value: l.data.ltv_by_tier[t], color: PALETTE[i] })), kind: "money", valueName: "LTV", label: "LTV by tier" }));
    }),
    ctx.section("Acquisition this month", { wide: true }, async (body) => {
      const a = await ctx.load("analytics/users/acquisition");
      const ch = a.data.acquisition_channels || [];
      body.innerHTML =
        kpis([
          kpi("New users this month", a, "new_users_this_month", "int", { path: "growth_rate", kind: "change", text: "vs last month to date" }),
          kpi("New users last month", a, "new_users_last_month", "int"),
          kpi("Average CPA", a, "average_cpa", "money"),
        ]) +
        `<div class="split"><div>${chartFig("customers-channels", "Signups by channel")}</div><div>${chartFig("customers-cpa", "Cost per acquisition by channel")}</div></div>` +
        table(a, "acquisition_channels", [
          { title: "Channel", path: "channel", kind: "label" },
          { title: "Signups", path: "users", kind: "int" },
          { title: "Share", path: "percentage", kind: "pct" },
          { title: "Spend", path: "spend", kind: "money" },
          { title: "CPA", path: "cpa", kind: "money" },
        ], "Acquisition by channel");
      const [f1, f2] = body.querySelectorAll("figure");
      ctx.draw(() => hBars(f1, { items: ch.map((c) => ({ label: label(c.channel), value: c.users, tip: `${label(c.channel)}: ${fmt(c.users, "int")} signups (${fmt(c.percentage, "pct")})` })), kind: "int", valueName: "Signups", label: "Signups by channel" }));
      ctx.draw(() => hBars(f2, { items: ch.map((c) => ({ label: label(c.channel), value: c.cpa })), kind: "money", color: PALETTE[1], valueName: "CPA", label: "CPA by channel" }));
    }),
  ]);
}

async function services(ctx) {
  const win = ctx.param("window", "24h");
  ctx.toolbar(select("p-window", "Performance window", [["1h", "1 hour"], ["24h", "24 hours"], ["7d", "7 days"], ["30d", "30 days"]], win));
  await Promise.all([
    ctx.section("Popularity this month", {}, async (body) => {
      const p = await ctx.load("analytics/services/popularity");
      body.innerHTML =
        chartFig("services-popularity", "API calls this month by service") +
        table(p, "services", [
          { title: "Service", path: "service", kind: "text" },
          { title: "Rank", path: "rank", kind: "int" },
          { title: "Active users", path: "active_users", kind: "int" },
          { title: "Calls", path: "api_calls_this_month", kind: "int" },
          { title: "Growth", path: "growth", kind: "change" },
        ], "Service popularity");
      ctx.draw(() => hBars(body.querySelector("figure"), { items: p.data.services.map((s) => ({ label: s.service, value: s.api_calls_this_month })), kind: "int", valueName: "API calls", label: "API calls this month by service" }));
    }),
    ctx.section("Adoption by tier", {}, async (body) => {
      const a = await ctx.load("analytics/services/adoption");
      const svcs = a.data.services || [];
      const tiers = [...new Set(svcs.flatMap((s) => Object.keys(s.by_tier || {})))].sort(tierSort);
      body.innerHTML =
        chartFig("services-adoption", "Share of subscribers using each service, by tier") +
        table(a, "services", [{ title: "Service", path: "service", kind: "text" }, { title: "Overall", path: "overall_adoption", kind: "pct" }, ...tiers.map((t) => ({ title: label(t), path: `by_tier.${t}`, kind: "pct" }))], "Adoption by tier");
      ctx.draw(() => groupedBars(body.querySelector("figure"), { labels: svcs.map((s) => s.service), series: tiers.map((t) => ({ name: label(t), values: svcs.map((s) => (s.by_tier ? s.by_tier[t] : null)) })), kind: "pct", label: "Adoption by tier" }));
    }),
    ctx.section(`Performance, last ${win}`, { wide: true }, async (body) => {
      const p = await ctx.load("analytics/services/performance", { window: win });
      const s = p.data.services || [];
      body.innerHTML =
        kpis([kpi("Overall uptime", p, "overall_uptime", "pct")]) +
        `<div class="split3"><div>${chartFig("services-uptime", "Uptime")}</div><div>${chartFig("services-latency", "Average response time")}</div><div>${chartFig("services-errors", "Error rate")}</div></div>` +
        table(p, "services", [
          { title: "Service", path: "service", kind: "text" },
          { title: "Uptime", path: "uptime", kind: "pct" },
          { title: "Avg response", path: "avg_response_time_ms", kind: "ms" },
          { title: "Error rate", path: "error_rate", kind: "pct" },
          { title: "Requests/min", path: "requests_per_minute", kind: "num2" },
        ], "Service performance");
      const [f1, f2, f3] = body.querySelectorAll("figure");
      ctx.draw(() => hBars(f1, { items: s.map((x) => ({ label: x.service, value: x.uptime })), kind: "pct", max: 100, color: PALETTE[2], valueName: "Uptime", label: "Uptime by service" }));
      ctx.draw(() => hBars(f2, { items: s.map((x) => ({ label: x.service, value: x.avg_response_time_ms })), kind: "ms", color: PALETTE[0], valueName: "Average response time", label: "Average response time by service" }));
      ctx.draw(() => hBars(f3, { items: s.map((x) => ({ label: x.service, value: x.error_rate })), kind: "pct", color: PALETTE[4], valueName: "Error rate", label: "Error rate by service" }));
    }),
    ctx.section("Infrastructure cost per user this month", { wide: true }, async (body) => {
      const c = await ctx.load("analytics/services/cost-per-user");
      body.innerHTML =
        kpis([kpi("Infrastructure cost", c, "total_cost", "money"), kpi("Active users", c, "active_users", "int"), kpi("Cost per user", c, "cost_per_user", "money")]) +
        chartFig("services-cost", "Infrastructure cost by service");
      ctx.draw(() => hBars(body.querySelector("figure"), { items: (c.data.cost_breakdown || []).map((x) => ({ label: x.service, value: x.cost, tip: `${x.service}: ${fmt(x.cost, "money")} (${fmt(x.percentage, "pct")})` })), kind: "money", color: PALETTE[3], valueName: "Cost", label: "Infrastructure cost by service" }));
    }),
  ]);
}

async function llm(ctx) {
  const range = ctx.param("range", "month");
  const period = ctx.param("period", "30d");
  ctx.toolbar(
    select("p-range", "Usage and cache range", [["day", "Last day"], ["week", "Last 7 days"], ["month", "Last 30 days"], ["year", "Last 365 days"]], range) +
      select("p-period", "Cost period", [["7d", "7 days"], ["30d", "30 days"], ["90d", "90 days"]], period),
  );
  await Promise.all([
    ctx.section("Usage by model", { wide: true }, async (body) => {
      const u = await ctx.load("llm/usage/summary", { range });
      body.innerHTML =
        kpis([
          kpi("API calls", u, "total_api_calls", "int"),
          kpi("Input tokens", u, "tokens.input_tokens", "int"),
          kpi("Output tokens", u, "tokens.output_tokens", "int"),
          kpi("Total tokens", u, "tokens.total_tokens", "int"),
          kpi("Cost", u, "total_cost_credits", "credits"),
          kpi("Average cost per call", u, "average_cost_per_call", "credits"),
        ]) +
        (u.data.unpriced_calls ? `<p class="note">${fig(u, u.data, "unpriced_calls", "int")} calls are of models without a known price; their cost is counted as 0.</p>` : "") +
        chartFig("llm-calls-model", "API calls by model") +
        table(u, "top_models", [
          { title: "Model", path: "model", kind: "text" },
          { title: "Provider", path: "provider", kind: "text" },
          { title: "Calls", path: "api_calls", kind: "int" },
          { title: "Share of calls", path: "percentage", kind: "pct" },
          { title: "Tokens", path: "total_tokens", kind: "int" },
          { title: "Cost", path: "cost_credits", kind: "credits" },
        ], "Usage by model");
      ctx.draw(() => hBars(body.querySelector("figure"), { items: u.data.top_models.map((m) => ({ label: m.model, value: m.api_calls, tip: `${m.model} (${m.provider}): ${fmt(m.api_calls, "int")} calls, ${fmt(m.percentage, "pct")}` })), kind: "int", valueName: "API calls", label: "API calls by model" }));
    }),
    ctx.section(`Cost, last ${period}`, { wide: true }, async (body) => {
      const c = await ctx.load("llm/costs", { period });
      const d = c.data;
      body.innerHTML =
        kpis([kpi("Total cost", c, "total_cost_credits", "credits"), kpi("Average per day", c, "average_daily_cost", "credits")]) +
        chartFig("llm-daily", "Daily cost") +
        `<div class="split"><div>${chartFig("llm-cost-model", "Cost by model")}</div><div>${chartFig("llm-cost-tier", "Cost by customer tier")}</div></div>`;
      const [f1, f2, f3] = body.querySelectorAll("figure");
      ctx.draw(() => lineChart(f1, { labels: d.daily_trend.map((x) => x.date), series: [{ name: "Cost (credits)", values: d.daily_trend.map((x) => x.cost_credits) }], kind: "credits", label: "Daily LLM cost" }));
      ctx.draw(() => hBars(f2, { items: d.cost_by_model.map((m) => ({ label: m.model, value: m.cost_credits, tip: `${m.model}: ${fmt(m.cost_credits, "credits")} (${fmt(m.percentage, "pct")}), ${fmt(m.api_calls, "int")} calls` })), kind: "credits", color: PALETTE[1], valueName: "Cost", label: "Cost by model" }));
      ctx.draw(() => donut(f3, { items: d.cost_by_tier.map((t) => ({ label: label(t.tier), value: t.cost_credits, share: t.percentage })), kind: "credits", valueName: "Cost", center: { value: fmt(d.total_cost_credits, "num2"), text: "credits" }, label: "Cost by tier" }));
    }),
    ctx.section("Cache", { wide: true }, async (body) => {
      const c = await ctx.load("llm/cache-stats", { range });
      const d = c.data;
      body.innerHTML =
        kpis([
          kpi("Cache hit rate", c, "cache_hit_rate", "pct"),
          kpi("Requests", c, "total_requests", "int"),
          kpi("Estimated savings", c, "estimated_cost_saved_credits", "credits"),
          kpi("Cache size", c, "cache_size_mb", "mb"),
          kpi("Response time, hit", c, "average_response_time_ms.cache_hit", "ms"),
          kpi("Response time, miss", c, "average_response_time_ms.cache_miss", "ms"),
        ]) + `<div class="split"><div>${chartFig("llm-cache", "Cache hits and misses")}</div><div>${chartFig("llm-latency", "Average response time")}</div></div>`;
      const [f1, f2] = body.querySelectorAll("figure");
      ctx.draw(() => donut(f1, { items: [{ label: "Hits", value: d.cache_hits, color: PALETTE[2] }, { label: "Misses", value: d.cache_misses, color: PALETTE[8] }], kind: "int", valueName: "Requests", center: { value: fmt(d.cache_hit_rate, "pct"), text: "hit rate" }, label: "Cache hits and misses" }));
      ctx.draw(() => hBars(f2, { items: [{ label: "Cache hit", value: d.average_response_time_ms.cache_hit, color: PALETTE[2] }, { label: "Cache miss", value: d.average_response_time_ms.cache_miss, color: PALETTE[8] }], kind: "ms", valueName: "Average response time", label: "Average response time, hit and miss" }));
    }),
  ]);
}

async function metering(ctx) {
  const period = ctx.param("period", "this_month");
  const periods = [["this_month", "This month"], ["last_month", "Last month"], ["this_quarter", "This quarter"], ["last_quarter", "Last quarter"], ["this_year", "This year"], ["last_year", "Last year"]];
  // The service picker lists the known services (an entity read, not an analytics call).
  let list = [];
  try {
    list = ((await ctx.load("services", { limit: 100 }, { noAsOf: true })).data.items || []).map((s) => [s.name, s.display_name ? `${s.display_name} (${s.name})` : s.name]);
  } catch (e) {
    if (e.status === 401 || e.status === 403) throw e;
  }
  // Default: the service with the largest usage cost in the period (the summary's first).
  const summaryP = ctx.load("metering/summary", { period });
  let busiest = null;
  try {
    busiest = ((await summaryP).data.services || [])[0]?.service ?? null;
  } catch (e) {
    if (e.status === 401 || e.status === 403) throw e;
  }
  const service = ctx.param("service", busiest || (list.length ? list[0][0] : "llm_inference"));
  if (!list.some(([n]) => n === service)) list.unshift([service, service]);
  ctx.toolbar(select("p-period", "Period", periods, period) + select("p-service", "Service", list, service));
  await Promise.all([
    ctx.section("All services", { wide: true }, async (body) => {
      const s = await summaryP;
      body.innerHTML =
        kpis([
          kpi("Usage cost", s, "total_cost_credits", "credits"),
          kpi("Revenue (paid invoices)", s, "total_revenue", "money"),
          kpi("Gross margin", s, "gross_margin", "money"),
          ...(s.data.gross_margin_percentage !== undefined ? [kpi("Gross margin %", s, "gross_margin_percentage", "pct")] : []),
        ]) +
        `<div class="split"><div>${chartFig("metering-cost", "Usage cost by service")}</div><div>` +
        table(s, "services", [
          { title: "Service", path: "service", kind: "text" },
          { title: "Units", path: "units", kind: "num" },
          { title: "Unit", path: "unit_type", kind: "text" },
          { title: "Cost", path: "cost_credits", kind: "credits" },
          { title: "Share", path: "percentage_of_total", kind: "pct" },
        ], "Usage by service") +
        `</div></div>`;
      ctx.draw(() => hBars(body.querySelector("figure"), { items: s.data.services.map((x) => ({ label: x.service, value: x.cost_credits })), kind: "credits", color: PALETTE[1], valueName: "Cost", label: "Usage cost by service" }));
    }),
    ctx.section(`Service: ${service}`, { wide: true }, async (body) => {
      const m = await ctx.load(`metering/service/${encodeURIComponent(service)}`, { period });
      const d = m.data;
      body.innerHTML =
        kpis([
          kpi("API calls", m, "total_api_calls", "int"),
          kpi("Tokens", m, "total_tokens", "int"),
          kpi("Cost", m, "total_cost_credits", "credits"),
          ...(d.total_units !== undefined ? [kpi(`Units (${d.unit_type || "units"})`, m, "total_units", "num")] : []),
        ]) +
        chartFig("metering-by-day", "API calls by day") +
        `<div class="split"><div>${chartFig("metering-cost-day", "Cost by day")}</div><div>${chartFig("metering-top-users", "Top users by API calls")}</div></div>` +
        table(m, "top_users", [
          { title: "Customer", path: "customer_id", kind: "text" },
          { title: "Calls", path: "api_calls", kind: "int" },
          { title: "Tokens", path: "total_tokens", kind: "int" },
          { title: "Cost", path: "cost_credits", kind: "credits" },
        ], "Top users");
      const [f1, f2, f3] = body.querySelectorAll("figure");
      ctx.draw(() => stackedBars(f1, { labels: d.usage_by_day.map((x) => x.date), series: [{ name: "API calls", values: d.usage_by_day.map((x) => x.api_calls) }], kind: "int", label: "API calls by day" }));
      ctx.draw(() => lineChart(f2, { labels: d.usage_by_day.map((x) => x.date), series: [{ name: "Cost (credits)", values: d.usage_by_day.map((x) => x.cost_credits), color: PALETTE[1] }], kind: "credits", label: "Cost by day" }));
      ctx.draw(() => hBars(f3, { items: d.top_users.map((u) => ({ label: u.customer_id, value: u.api_calls, tip: `${u.customer_id}: ${fmt(u.api_calls, "int")} calls, ${fmt(u.cost_credits, "credits")}` })), kind: "int", valueName: "API calls", label: "Top users by API calls" }));
    }),
  ]);
}
