#!/usr/bin/env python3
"""Prints the summary table of docs/benchmark.md from bench/results/*.json.

usage: bench/summarize.py [RESULT.json ...]   (default: every bench/results/*.json)
"""
import glob
import json
import os
import sys

ORDER = {"S": 0, "M": 1, "L": 2}


def load_at_start(r):
    """The 1-minute load average when the run started (runs on a shared machine vary)."""
    load = r.get("machine", {}).get("loadavg_start") or r.get("machine", {}).get("loadavg")
    return str(load).split()[0] if load else "?"


def main():
    paths = sys.argv[1:] or glob.glob(os.path.join(os.path.dirname(__file__), "results", "*.json"))
    runs = [json.load(open(p)) for p in paths]
    runs.sort(key=lambda r: (r["backend"], ORDER.get(r["scale"], 9)))
    print("| scale | store | customers / subs / invoices / events | HTTP ingestion, events/s (JSON / NDJSON / both) "
          "| raw store, rows/s | worst p99 cold / warm, ms | endpoints over the cold p99 target (50 ms SQLite, 200 ms PostgreSQL) "
          "| peak RSS, MiB | DuckDB query, ms (median of 4 figures) | exact | build, CPU, load average at start |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        c = r["counts"]
        ph = {p["format"]: p["events_per_sec"] for p in r["ingestion"].get("formats", r["ingestion"]["phases"])}
        eps = r["endpoints"]
        # The cold targets: 50 ms on SQLite, 200 ms on PostgreSQL.
        target = 200 if r["backend"] == "postgres" else 50
        slow = sum(1 for e in eps if e["cold_p99_ms"] > target)
        duck = r.get("duckdb") or {}
        qs = sorted(s["ms"] for s in duck.get("steps", []) if "matches" in s)
        duck_ms = f"{qs[len(qs) // 2]:.1f}" if qs else "-"
        duck_ok = all(s.get("matches") for s in duck.get("steps", []) if "matches" in s) if qs else None
        exact = "yes" if r["exactness"]["ok"] else "NO"
        if duck_ok is not None:
            exact += f" ({r['exactness']['checks']} checks; DuckDB {'agrees' if duck_ok else 'DISAGREES'})"
        print(
            f"| {r['scale']} | {r['backend']} | {c['customers']:,} / {c['subscriptions']:,} / {c['invoices']:,} / {c['events']:,} "
            f"| {ph.get('json', 0):,.0f} / {ph.get('ndjson', 0):,.0f} / {r['ingestion']['events_per_sec']:,.0f} "
            f"| {r['raw']['rows_per_sec']:,.0f} "
            f"| {max(e['cold_p99_ms'] for e in eps):,.1f} / {max(e['warm_p99_ms'] for e in eps):,.1f} "
            f"| {slow} of {len(eps)} "
            f"| {r['peak_rss_bytes'] / 2**20:,.0f} | {duck_ms} | {exact} "
            f"| {r['build'].split(';')[0]}, {r.get('machine', {}).get('cpu_model', '?')}, {load_at_start(r)} |"
        )

    print()
    print("Per endpoint, cold p99 / warm p50, ms:")
    print()
    print("| endpoint | " + " | ".join(f"{r['scale']} {r['backend']}" for r in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for i, e in enumerate(runs[0]["endpoints"]):
        cells = []
        for r in runs:
            x = r["endpoints"][i]
            cells.append(f"{x['cold_p99_ms']:,.1f} / {x['warm_p50_ms']:,.1f}")
        name = e["endpoint"].replace("/api/v1/", "").split("?")[0]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
