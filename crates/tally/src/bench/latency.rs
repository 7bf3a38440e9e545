//! Latency of the 21 analytics endpoints at a fixed `as_of`: cold (the first request
//! after a server start, then after each write that would invalidate a response cache)
//! and warm (the same request repeated).

use anyhow::{bail, Result};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The 21 endpoints of api.md, with the parameters the dashboard uses.
pub const ENDPOINTS: [&str; 21] = [
    "/api/v1/llm/usage/summary?range=month",
    "/api/v1/llm/costs?period=30d",
    "/api/v1/llm/cache-stats?range=month",
    "/api/v1/analytics/revenue/mrr?months=12",
    "/api/v1/analytics/revenue/arr",
    "/api/v1/analytics/revenue/growth",
    "/api/v1/analytics/revenue/forecast?months_ahead=6",
    "/api/v1/analytics/revenue/by-tier",
    "/api/v1/analytics/users/ltv",
    "/api/v1/analytics/users/churn",
    "/api/v1/analytics/users/acquisition",
    "/api/v1/analytics/services/popularity",
    "/api/v1/analytics/services/cost-per-user",
    "/api/v1/analytics/services/adoption",
    "/api/v1/analytics/services/performance?window=24h",
    "/api/v1/analytics/metrics/summary",
    "/api/v1/analytics/metrics/kpis",
    "/api/v1/analytics/metrics/alerts",
    "/api/v1/metering/service/llm_inference?period=this_month",
    "/api/v1/metering/summary?period=this_month",
    "/api/v1/billing/analytics/summary",
];

pub fn with_as_of(path: &str, as_of: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}as_of={as_of}")
}

/// One GET: milliseconds to the last byte, and the body.
pub async fn get(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    path: &str,
) -> Result<(f64, Vec<u8>)> {
    let t = Instant::now();
    let resp = http
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if !status.is_success() {
        bail!(
            "GET {path}: {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok((ms, body.to_vec()))
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointLatency {
    pub endpoint: String,
    pub cold_n: usize,
    pub cold_p50_ms: f64,
    pub cold_p99_ms: f64,
    pub warm_n: usize,
    pub warm_p50_ms: f64,
    pub warm_p99_ms: f64,
    pub response_bytes: usize,
}

/// Posts one event dated after `as_of` (so no figure at `as_of` changes) to invalidate
/// whatever a server may cache.
pub async fn invalidate(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    round: usize,
    after: &str,
) -> Result<()> {
    let body = format!(
        r#"[{{"id":"bench_invalidate_{round}_{}","time":"{after}","service":"storage","quantity":1}}]"#,
        std::process::id()
    );
    let resp = http
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("invalidating write: {}", resp.status());
    }
    Ok(())
}

/// Cold samples: `rounds` rounds of one request per endpoint, the first right after the
/// server started, each later one after an invalidating write; no round starts after
/// `budget` once three are done.
pub async fn cold(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    as_of: &str,
    after: &str,
    rounds: usize,
    budget: Duration,
) -> Result<Vec<Vec<f64>>> {
    let mut out = vec![Vec::new(); ENDPOINTS.len()];
    let started = Instant::now();
    for r in 0..rounds {
        if r >= 3 && started.elapsed() > budget {
            break;
        }
        if r > 0 {
            invalidate(http, base, key, r, after).await?;
        }
        for (i, p) in ENDPOINTS.iter().enumerate() {
            let (ms, _) = get(http, base, key, &with_as_of(p, as_of)).await?;
            out[i].push(ms);
        }
    }
    Ok(out)
}

/// Warm samples: one unmeasured request, then `n` measured ones per endpoint (fewer, but
/// at least five, when they take longer than `budget`).
pub async fn warm(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    as_of: &str,
    n: usize,
    budget: Duration,
) -> Result<Vec<(Vec<f64>, usize)>> {
    let mut out = Vec::new();
    for p in ENDPOINTS {
        let path = with_as_of(p, as_of);
        let (_, body) = get(http, base, key, &path).await?;
        let mut v = Vec::with_capacity(n);
        let started = Instant::now();
        for i in 0..n {
            if i >= 5 && started.elapsed() > budget {
                break;
            }
            v.push(get(http, base, key, &path).await?.0);
        }
        out.push((v, body.len()));
    }
    Ok(out)
}
