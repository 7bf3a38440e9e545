// The API client: the key lives in sessionStorage (this browser tab's session only) and is
// sent as `Authorization: Bearer`; every analytics request carries the chosen `as_of`.

const KEY = "tally.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY);
}

/** An API error with its status, code and message from the JSON error body. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The request URL (path and query) of `path` with `params`, as sent. */
export function apiUrl(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const qs = q.toString();
  return "/api/v1/" + path + (qs ? "?" + qs : "");
}

/** GETs `url` (from apiUrl) with the signed-in key; rejects with ApiError on non-2xx. A 429
 * with a short `Retry-After` is retried once after that wait. */
export async function getJSON(url, signal, retried = false) {
  const key = getKey();
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = "Bearer " + key;
  let res;
  try {
    res = await fetch(url, { headers, signal, cache: "no-store" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "the server could not be reached");
  }
  if (res.status === 429 && !retried) {
    const wait = Number(res.headers.get("Retry-After"));
    if (wait >= 0 && wait <= 5) {
      await new Promise((r) => setTimeout(r, wait * 1000 + 50));
      return getJSON(url, signal, true);
    }
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const err = body && body.error ? body.error : {};
    throw new ApiError(res.status, err.code || "http_" + res.status, err.message || res.statusText || "request failed");
  }
  return body;
}
