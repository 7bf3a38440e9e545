//! Event ingestion speed, in batches of 1000 as the HTTP API receives them. Not part of
//! the normal run; measure with
//! `cargo test --release -p tally-store --test throughput -- --ignored --nocapture`
//! (PostgreSQL too when `TALLY_TEST_DATABASE_URL` is set; `TALLY_THROUGHPUT_EVENTS` sets
//! how many events each phase sends, 200,000 by default). One client sends batches one
//! after another; then four clients send another set of events concurrently into the
//! same store, as the HTTP server's requests do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tally_core::event::{CostSource, Event, EventKind};
use tally_store::Store;

const BATCH: usize = 1000;

/// Realistic LLM calls: random-looking ids (so the id index sees random inserts), times
/// that move forward with some jitter, as live traffic does.
fn events(n: usize, seed: u64) -> Vec<Event> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            // xorshift64: cheap, deterministic randomness for ids and values.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Event {
                id: format!("evt_{x:016x}{i:08x}"),
                kind: EventKind::Usage,
                time: 1_763_596_800_000_000 + (i as i64) * 10_000 + (x % 5_000_000) as i64,
                customer_id: Some(format!("cus_{}", x % 5000)),
                service: Some(
                    ["llm_inference", "search", "embeddings"][(x % 3) as usize].to_owned(),
                ),
                quantity: 1_000_000,
                unit: Some("api_calls".to_owned()),
                model: Some(
                    ["gpt-4o", "claude-sonnet-4", "gpt-4o-mini"][(x % 3) as usize].to_owned(),
                ),
                provider: Some("openai".to_owned()),
                input_tokens: (x % 4000) as i64,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                output_tokens: (x % 800) as i64,
                cache_hit: Some(x % 5 == 0),
                latency_ms: Some((x % 2000) as f64),
                status_code: Some(200),
                cost: (x % 10_000_000) as i64,
                cost_source: CostSource::Priced,
                up: None,
                gauge_name: None,
                gauge_value: None,
            }
        })
        .collect()
}

async fn measure(store: &dyn Store, total: usize) {
    let all = events(total, 42);
    let start = Instant::now();
    for batch in all.chunks(BATCH) {
        let stored = store.insert_events(batch).await.unwrap();
        assert!(stored.iter().all(|&s| s));
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}: one client: {total} events in {secs:.2}s = {:.0} events/s",
        store.backend(),
        total as f64 / secs
    );
    // Re-sending is all duplicates, and is how fast a retried batch is answered.
    let start = Instant::now();
    for batch in all.chunks(BATCH).take(50) {
        assert!(store
            .insert_events(batch)
            .await
            .unwrap()
            .iter()
            .all(|&s| !s));
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}: duplicates: {:.0} events/s",
        store.backend(),
        (50 * BATCH) as f64 / secs
    );
}

/// `clients` concurrent callers, each sending its share of the batches one after another,
/// as the HTTP server's requests do.
async fn measure_concurrent(store: Arc<dyn Store>, total: usize, clients: usize) {
    let all = Arc::new(events(total, 7));
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (store, all, next) = (store.clone(), all.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = all.chunks(BATCH).nth(i) else {
                    break;
                };
                let stored = store.insert_events(batch).await.unwrap();
                assert!(stored.iter().all(|&s| s));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}: {clients} clients: {total} events in {secs:.2}s = {:.0} events/s",
        store.backend(),
        total as f64 / secs
    );
}

fn scale() -> usize {
    std::env::var("TALLY_THROUGHPUT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test; run in release"]
async fn sqlite_ingest_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let store = tally_store::open(dir.path().join("tally.db").to_str().unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    measure(&*store, scale()).await;
    measure_concurrent(store, scale(), 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test; run in release"]
async fn postgres_ingest_throughput() {
    use sqlx::{Connection, Executor};
    let Ok(admin) = std::env::var("TALLY_TEST_DATABASE_URL") else {
        eprintln!("skipped: TALLY_TEST_DATABASE_URL is not set");
        return;
    };
    let name = format!("tally_bench_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    let store = tally_store::open(url.as_str()).await.unwrap();
    store.migrate().await.unwrap();
    let result = tokio::spawn(async move {
        measure(&*store, scale()).await;
        measure_concurrent(store, scale(), 4).await;
    })
    .await;
    conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    result.unwrap();
}
