#!/usr/bin/env python3
"""DuckDB computing some of tally's figures with plain SQL over the same usage events.

usage: duckdb_compare.py --csv usage_events.csv --tally tally_responses.json

Run by tally-bench, which exports the store's usage events to CSV and saves tally's own
responses (llm/usage/summary?range=month, llm/costs?period=30d, metering/summary at the
same as_of). The script installs the `duckdb` package from PyPI into a venv under
$XDG_CACHE_HOME/tally-bench (once), re-runs itself there, loads the CSV into a DuckDB
table, times each query (cold = first run, then the median of 5 warm runs) and compares
its answers with tally's. It prints one JSON object on stdout.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

VENV = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "tally-bench", "venv")


def ensure_duckdb():
    try:
        import duckdb  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        sys.exit("duckdb is not importable even inside " + VENV)
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True, stdout=sys.stderr)
    subprocess.run([py, "-m", "pip", "install", "-q", "duckdb"], check=True, stdout=sys.stderr)
    os.execv(py, [py] + sys.argv)


def micros(rfc3339):
    t = datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).astimezone(timezone.utc)
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def r2(cost_micros):
    # tally: micros → credits, rounded half away from zero to 2 places (costs are ≥ 0).
    return (Decimal(int(cost_micros)) / Decimal(1_000_000)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def dec(v):
    return Decimal(str(v)) if v is not None else None


def timed(con, sql, params, warm_runs=5):
    t = time.perf_counter()
    rows = con.execute(sql, params).fetchall()
    cold = (time.perf_counter() - t) * 1e3
    warm = []
    for _ in range(warm_runs):
        t = time.perf_counter()
        con.execute(sql, params).fetchall()
        warm.append((time.perf_counter() - t) * 1e3)
    return rows, cold, statistics.median(warm)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--tally", required=True)
    a = ap.parse_args()
    ensure_duckdb()
    import duckdb

    tally = json.load(open(a.tally))
    resp = tally["responses"]
    summary = resp["/api/v1/llm/usage/summary?range=month"]
    costs = resp["/api/v1/llm/costs?period=30d"]
    metering = resp["/api/v1/metering/summary?period=this_month"]

    con = duckdb.connect()
    steps = []
    t = time.perf_counter()
    con.execute(
        "CREATE TABLE usage AS SELECT * FROM read_csv(?, header = true, columns = {"
        "'time': 'BIGINT', 'customer_id': 'VARCHAR', 'service': 'VARCHAR', 'model': 'VARCHAR', "
        "'provider': 'VARCHAR', 'input_tokens': 'BIGINT', 'output_tokens': 'BIGINT', "
        "'cache_hit': 'INTEGER', 'status_code': 'INTEGER', 'quantity': 'BIGINT', 'cost': 'BIGINT'})",
        [a.csv],
    )
    n = con.execute("SELECT count(*) FROM usage").fetchone()[0]
    steps.append({"name": f"load the CSV into a DuckDB table ({n} rows)", "ms": (time.perf_counter() - t) * 1e3})

    def span(resp):
        return micros(resp["span"]["start"]), micros(resp["span"]["end"])

    # 1. LLM usage summary: totals and by model × provider.
    s0, s1 = span(summary)
    rows, cold, warm = timed(
        con,
        "SELECT model, provider, count(*), sum(input_tokens), sum(output_tokens), sum(cost) "
        "FROM usage WHERE model IS NOT NULL AND time >= ? AND time < ? GROUP BY ALL",
        [s0, s1],
    )
    got = {(m, p): (c, i, o, r2(x)) for m, p, c, i, o, x in rows}
    want = {
        (r["model"], r["provider"]): (r["api_calls"], r["input_tokens"], r["output_tokens"], dec(r["cost_credits"]))
        for r in summary["top_models"]
    }
    total = (
        sum(v[0] for v in got.values()),
        sum(v[1] for v in got.values()),
        sum(v[2] for v in got.values()),
        r2(sum(x for *_, x in rows)),
    )
    want_total = (
        summary["total_api_calls"],
        summary["tokens"]["input_tokens"],
        summary["tokens"]["output_tokens"],
        dec(summary["total_cost_credits"]),
    )
    ok = got == want and total == want_total
    steps.append({
        "name": "LLM usage summary, last 30 days (calls, tokens, cost by model and provider)",
        "ms": warm, "cold_ms": cold, "matches": ok,
        "diff": None if ok else {"duckdb_total": [str(x) for x in total], "tally_total": [str(x) for x in want_total]},
    })

    # 2. LLM cost: daily trend.
    s0, s1 = span(costs)
    rows, cold, warm = timed(
        con,
        "SELECT time // 86400000000 AS day, count(*), sum(input_tokens + output_tokens), sum(cost) "
        "FROM usage WHERE model IS NOT NULL AND time >= ? AND time < ? GROUP BY day ORDER BY day",
        [s0, s1],
    )
    got = {d: (c, t, r2(x)) for d, c, t, x in rows}
    first_day = s0 // 86_400_000_000
    want = {}
    for i, r in enumerate(costs["daily_trend"]):
        if r["api_calls"] or dec(r["cost_credits"]):
            want[first_day + i] = (r["api_calls"], r["total_tokens"], dec(r["cost_credits"]))
    ok = got == want
    steps.append({"name": "LLM daily cost trend, 30 days", "ms": warm, "cold_ms": cold, "matches": ok,
                  "diff": None if ok else {"days_duckdb": len(got), "days_tally": len(want)}})

    # 3. LLM cost by model.
    rows, cold, warm = timed(
        con,
        "SELECT model, count(*), sum(cost) FROM usage WHERE model IS NOT NULL AND time >= ? AND time < ? "
        "GROUP BY model ORDER BY sum(cost) DESC",
        [s0, s1],
    )
    got = {m: (c, r2(x)) for m, c, x in rows}
    want = {r["model"]: (r["api_calls"], dec(r["cost_credits"])) for r in costs["cost_by_model"]}
    ok = got == want
    steps.append({"name": "LLM cost by model, 30 days", "ms": warm, "cold_ms": cold, "matches": ok,
                  "diff": None if ok else {"duckdb": str(got)[:300], "tally": str(want)[:300]}})

    # 4. Metering: calls and cost per service this month.
    s0, s1 = span(metering)
    rows, cold, warm = timed(
        con,
        "SELECT service, count(*), sum(cost) FROM usage WHERE time >= ? AND time < ? GROUP BY service",
        [s0, s1],
    )
    got = {s: (c, r2(x)) for s, c, x in rows}
    want = {r["service"]: (r["api_calls"], dec(r["cost_credits"])) for r in metering["services"]}
    ok = got == want
    steps.append({"name": "metering summary this month (calls and cost per service)", "ms": warm, "cold_ms": cold,
                  "matches": ok, "diff": None if ok else {"duckdb": str(got)[:300], "tally": str(want)[:300]}})

    print(json.dumps({"duckdb_version": duckdb.__version__, "rows": n, "steps": steps}, default=str))


if __name__ == "__main__":
    main()
