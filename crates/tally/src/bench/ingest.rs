//! The ingestion phase: the usage events of the dataset, serialized ahead of time into a
//! spool file (so the clients spend almost nothing per request), then sent as batches of
//! 1,000 by N concurrent clients, first as JSON arrays, then as NDJSON.

use super::exact::LlmTally;
use super::wire;
use crate::demo::{DemoOptions, DemoPlan};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_core::event::EventKind;

pub const BATCH: usize = 1_000;

#[derive(Debug, Clone, Copy)]
pub struct SpoolBatch {
    offset: u64,
    len: u32,
    pub events: u32,
    pub ndjson: bool,
}

pub struct Spool {
    pub path: PathBuf,
    pub batches: Vec<SpoolBatch>,
    pub events: usize,
    pub bytes: u64,
}

/// Generates the usage events of `plan` (health checks and gauges were written with the
/// entities), tallies them for the exactness check, and writes the request bodies.
pub fn spool(
    plan: &DemoPlan,
    opts: &DemoOptions,
    path: &Path,
    tally: &mut LlmTally,
) -> Result<Spool> {
    let mut stream = plan.event_stream(opts);
    let total = stream.counts().usage;
    let n_batches = total.div_ceil(BATCH);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut batches = Vec::with_capacity(n_batches);
    let mut offset = 0u64;
    let mut pending = Vec::with_capacity(BATCH);
    let mut events = 0;
    let mut flush = |pending: &mut Vec<tally_core::event::Event>,
                     batches: &mut Vec<SpoolBatch>|
     -> Result<()> {
        // Quarters: JSON, NDJSON, JSON, NDJSON, so neither format always meets the
        // fuller store.
        let ndjson = (batches.len() * 4 / n_batches.max(1)) % 2 == 1;
        let body = wire::batch_body(pending, ndjson)?;
        out.write_all(&body)?;
        batches.push(SpoolBatch {
            offset,
            len: body.len() as u32,
            events: pending.len() as u32,
            ndjson,
        });
        offset += body.len() as u64;
        pending.clear();
        Ok(())
    };
    while let Some(day) = stream.next_day() {
        for e in day {
            if e.kind != EventKind::Usage {
                continue;
            }
            tally.add(&e);
            events += 1;
            pending.push(e);
            if pending.len() == BATCH {
                flush(&mut pending, &mut batches)?;
            }
        }
    }
    if !pending.is_empty() {
        flush(&mut pending, &mut batches)?;
    }
    out.flush()?;
    Ok(Spool {
        path: path.to_owned(),
        batches,
        events,
        bytes: offset,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub format: &'static str,
    pub clients: usize,
    pub batches: usize,
    pub events: usize,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub request_p50_ms: f64,
    pub request_p99_ms: f64,
}

#[derive(serde::Deserialize)]
struct Ack {
    accepted: u64,
    duplicates: u64,
    rejected: Vec<serde_json::Value>,
}

/// Sends `batches` from `clients` concurrent clients, each taking the next unsent batch.
pub async fn send(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    spool: &Spool,
    batches: &[SpoolBatch],
    clients: usize,
    format: &'static str,
) -> Result<(PhaseResult, Vec<f64>)> {
    let file = Arc::new(File::open(&spool.path)?);
    let next = Arc::new(AtomicUsize::new(0));
    let batches: Arc<Vec<SpoolBatch>> = Arc::new(batches.to_vec());
    let url = format!("{base}/api/v1/events");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (file, next, batches) = (file.clone(), next.clone(), batches.clone());
        let (http, url, key) = (http.clone(), url.clone(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut acc = (0u64, 0u64, 0u64, Vec::<f64>::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(b) = batches.get(i).copied() else {
                    break;
                };
                let mut body = vec![0u8; b.len as usize];
                file.read_exact_at(&mut body, b.offset)?;
                let ctype = if b.ndjson {
                    "application/x-ndjson"
                } else {
                    "application/json"
                };
                let mut attempt = 0;
                let ack: Ack = loop {
                    let t = Instant::now();
                    let resp = http
                        .post(&url)
                        .bearer_auth(&key)
                        .header("content-type", ctype)
                        .body(body.clone())
                        .send()
                        .await
                        .context("sending a batch")?;
                    let status = resp.status();
                    let text = resp.bytes().await?;
                    if status.is_success() {
                        acc.3.push(t.elapsed().as_secs_f64() * 1e3);
                        break serde_json::from_slice(&text)?;
                    }
                    attempt += 1;
                    if (status.as_u16() == 429 || status.as_u16() == 503) && attempt < 20 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    bail!(
                        "batch {i}: {status}: {}",
                        String::from_utf8_lossy(&text[..text.len().min(500)])
                    );
                };
                acc.0 += ack.accepted;
                acc.1 += ack.duplicates;
                acc.2 += ack.rejected.len() as u64;
            }
            Ok::<_, anyhow::Error>(acc)
        }));
    }
    let (mut accepted, mut duplicates, mut rejected, mut lat) = (0, 0, 0, Vec::new());
    for t in tasks {
        let (a, d, r, l) = t.await??;
        accepted += a;
        duplicates += d;
        rejected += r;
        lat.extend(l);
    }
    let seconds = started.elapsed().as_secs_f64();
    let events: usize = batches.iter().map(|b| b.events as usize).sum();
    let result = PhaseResult {
        format,
        clients,
        batches: batches.len(),
        events,
        seconds,
        events_per_sec: events as f64 / seconds,
        accepted,
        duplicates,
        rejected,
        request_p50_ms: super::percentile(&mut lat, 50.0),
        request_p99_ms: super::percentile(&mut lat, 99.0),
    };
    Ok((result, lat))
}
