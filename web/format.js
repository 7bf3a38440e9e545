// Number formatting. Every figure shown comes from an API response; `null` (an undefined
// ratio) is shown as "—" and read out as "undefined".

const nf2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const nf0 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const nfAny = new Intl.NumberFormat("en-US", { maximumFractionDigits: 3 });

export const NULL_TEXT = "—";

/** Formats `v` as `kind`: money, credits, pct, pp (percentage points), int, num, ms, months, ratio, text. */
export function fmt(v, kind = "num") {
  if (v === null || v === undefined) return NULL_TEXT;
  if (typeof v !== "number") return String(v);
  switch (kind) {
    case "money": return nf2.format(v);
    case "credits": return nf2.format(v) + " cr";
    case "pct": return nf2.format(v) + "%";
    case "pp": return (v > 0 ? "+" : "") + nf2.format(v) + " pp";
    case "change": return (v > 0 ? "+" : "") + nf2.format(v) + "%";
    case "int": return nf0.format(v);
    case "ms": return nf2.format(v) + " ms";
    case "mb": return nf2.format(v) + " MB";
    case "months": return nf2.format(v) + " mo";
    case "ratio": return nf2.format(v) + "×";
    case "num2": return nf2.format(v);
    default: return nfAny.format(v);
  }
}

/** A compact axis label: 12.5k, 1.2M. */
export function short(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return trim(v / 1e9) + "B";
  if (a >= 1e6) return trim(v / 1e6) + "M";
  if (a >= 1e3) return trim(v / 1e3) + "k";
  return trim(v);
}

function trim(x) {
  return Number.isInteger(x) ? String(x) : x.toFixed(Math.abs(x) < 10 ? 1 : 0).replace(/\.0$/, "");
}

/** "enterprise" → "Enterprise", "llm_inference" → "Llm inference" kept as is for ids. */
export function label(s) {
  if (s === null || s === undefined) return NULL_TEXT;
  const t = String(s).replace(/_/g, " ");
  return t.charAt(0).toUpperCase() + t.slice(1);
}

/** Escapes text for HTML. */
export function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
