//! Latency of the 21 analytics endpoints at a fixed `as_of`: cold (computed: every
//! request sends `Cache-Control: no-cache`, so the server's response cache is not
//! consulted; the first round runs right after a server start, each later one after a
//! write) and warm (the same request repeated, answered from the response cache).
//!
//! "Cold" is not "nothing cached": the server keeps the subscription book between
//! requests until an entity write (events do not rebuild it), so only the first round
//! after the start includes loading it, in the first endpoint that needs it; that round
//! is also reported on its own (`first_ms`).

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

/// How the server's response cache took part in an answer (its `x-tally-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    Hit,
    Miss,
    Bypass,
    /// No header: a server without the response cache.
    None,
}

/// One GET: milliseconds to the last byte, the body, and how the cache took part.
/// `fresh` sends `Cache-Control: no-cache`, which makes the server compute the answer.
pub async fn get(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    path: &str,
    fresh: bool,
) -> Result<(f64, Vec<u8>, Cache)> {
    let t = Instant::now();
    let mut req = http.get(format!("{base}{path}")).bearer_auth(key);
    if fresh {
        req = req.header("cache-control", "no-cache");
    }
    let resp = req.send().await?;
    let status = resp.status();
    let cache = match resp.headers().get("x-tally-cache").map(|v| v.as_bytes()) {
        Some(b"hit") => Cache::Hit,
        Some(b"miss") => Cache::Miss,
        Some(b"bypass") => Cache::Bypass,
        _ => Cache::None,
    };
    let body = resp.bytes().await?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if !status.is_success() {
        bail!(
            "GET {path}: {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    if fresh && cache == Cache::Hit {
        bail!("GET {path}: a no-cache request was answered from the cache");
    }
    Ok((ms, body.to_vec(), cache))
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointLatency {
    pub endpoint: String,
    /// The first request after the server started (nothing in memory yet).
    pub first_ms: f64,
    /// Cold samples, the first one included.
    pub cold_n: usize,
    pub cold_p50_ms: f64,
    pub cold_p99_ms: f64,
    pub warm_n: usize,
    pub warm_p50_ms: f64,
    pub warm_p99_ms: f64,
    /// Warm samples answered from the response cache (all of them, when it is on).
    pub warm_hits: usize,
    pub response_bytes: usize,
}

/// Posts one event dated after `as_of` (so no figure at `as_of` changes), so that each
/// cold round follows a write, as on a server taking traffic.
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

/// Cold samples: `rounds` rounds of one computed (`no-cache`) request per endpoint, the
/// first right after the server started, each later one after a write; no round starts
/// after `budget` once three are done.
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
            let (ms, _, _) = get(http, base, key, &with_as_of(p, as_of), true).await?;
            out[i].push(ms);
        }
    }
    Ok(out)
}

/// Warm samples: one unmeasured request (which fills the response cache), then `n`
/// measured ones per endpoint (fewer, but at least five, when they take longer than
/// `budget`). Returns per endpoint the samples, how many were cache hits, and the
/// response size.
pub async fn warm(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    as_of: &str,
    n: usize,
    budget: Duration,
) -> Result<Vec<(Vec<f64>, usize, usize)>> {
    let mut out = Vec::new();
    for p in ENDPOINTS {
        let path = with_as_of(p, as_of);
        let (_, body, _) = get(http, base, key, &path, false).await?;
        let mut v = Vec::with_capacity(n);
        let mut hits = 0;
        let started = Instant::now();
        for i in 0..n {
            if i >= 5 && started.elapsed() > budget {
                break;
            }
            let (ms, _, cache) = get(http, base, key, &path, false).await?;
            v.push(ms);
            hits += usize::from(cache == Cache::Hit);
        }
        out.push((v, hits, body.len()));
    }
    Ok(out)
}
