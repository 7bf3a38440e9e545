#!/usr/bin/env python3
"""Times every analytics endpoint of a running tally server.

usage: endpoints.py BASE_URL API_KEY [RUNS] [AS_OF]

Each endpoint is requested once to warm up, then RUNS times (default 5); the median
and the slowest time are printed, in milliseconds, with the response size. Every request
sends `Cache-Control: no-cache`, so the server computes each answer (the response cache
would otherwise answer the repeats), and `as_of=AS_OF` when given (e.g. 2025-11-27, the
benchmark's), so runs compare.
"""
import statistics
import sys
import time
import urllib.request

ENDPOINTS = [
    "/api/v1/llm/usage/summary?range=month",
    "/api/v1/llm/costs?period=30d",
    "/api/v1/llm/cache-stats?range=month",
    "/api/v1/analytics/services/popularity",
    "/api/v1/analytics/services/cost-per-user",
    "/api/v1/analytics/services/adoption",
    "/api/v1/analytics/services/performance?window=24h",
    "/api/v1/metering/service/llm_inference?period=this_month",
    "/api/v1/metering/summary?period=this_month",
    "/api/v1/analytics/metrics/summary",
    "/api/v1/analytics/metrics/kpis",
    "/api/v1/analytics/metrics/alerts",
    "/api/v1/billing/analytics/summary",
    "/api/v1/analytics/revenue/mrr",
    "/api/v1/analytics/revenue/arr",
    "/api/v1/analytics/revenue/growth",
    "/api/v1/analytics/revenue/by-tier",
    "/api/v1/analytics/revenue/forecast",
    "/api/v1/analytics/users/ltv",
    "/api/v1/analytics/users/churn",
    "/api/v1/analytics/users/acquisition",
]


def get(base, key, path):
    req = urllib.request.Request(
        base + path, headers={"Authorization": f"Bearer {key}", "Cache-Control": "no-cache"}
    )
    start = time.perf_counter()
    with urllib.request.urlopen(req) as resp:
        body = resp.read()
        status = resp.status
    return time.perf_counter() - start, status, len(body)


def main():
    base, key = sys.argv[1].rstrip("/"), sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    as_of = sys.argv[4] if len(sys.argv) > 4 else None
    print(f"{'endpoint':60} {'median ms':>10} {'max ms':>8} {'bytes':>8}")
    for path in ENDPOINTS:
        if as_of:
            path += ("&" if "?" in path else "?") + "as_of=" + as_of
        get(base, key, path)
        times = []
        for _ in range(runs):
            t, status, size = get(base, key, path)
            assert status == 200, (path, status)
            times.append(t * 1000)
        print(f"{path:60} {statistics.median(times):10.1f} {max(times):8.1f} {size:8}")


if __name__ == "__main__":
    main()
