//! Exactly once under a crash: several clients ingest batches with deterministic ids into
//! the real binary, which is killed with SIGKILL mid-stream; after a restart each client
//! re-sends every batch it did not see acknowledged, and the store then holds each event
//! exactly once (by count, by a usage sum, and by the `accepted` figures of the 2xx
//! answers). Runs on SQLite, and on PostgreSQL when TALLY_TEST_DATABASE_URL is set.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tally_core::event::EventKind;
use tally_core::time::parse_instant;
use tally_store::{Role, Span, UsageQuery};
use tally_testkit::{add_key, both_stores, ServerProcess, TestStore};

const CLIENTS: usize = 4;
const BATCHES: usize = 40;
const BATCH: usize = 100;

/// Starts `tally serve` on port 0 (rate limits off: the clients send flat out).
fn start(url: &str) -> ServerProcess {
    ServerProcess::start(
        env!("CARGO_BIN_EXE_tally"),
        url,
        &["--rate-limit-per-second", "0"],
    )
}

/// Batch `b` of client `c`: ids `c{c}_b{b}_e{i}`, each with quantity 3 (units).
fn batch(c: usize, b: usize) -> Value {
    Value::Array(
        (0..BATCH)
            .map(|i| {
                json!({"id": format!("c{c}_b{b}_e{i}"), "time": "2025-11-20T10:00:00Z",
                       "service": "ingest_test", "customer_id": format!("cus_{c}"), "quantity": 3})
            })
            .collect(),
    )
}

/// What a client saw: per batch, the `accepted` of its 2xx answer, or None.
type Acks = Vec<Option<u64>>;

/// Sends `todo` batches one after another; stops at the first transport error (the
/// server is gone). Counts acknowledged batches into `acked`.
async fn client(
    http: reqwest::Client,
    base: String,
    secret: String,
    c: usize,
    todo: Vec<usize>,
    acks: &mut Acks,
    acked: Arc<AtomicUsize>,
) {
    for b in todo {
        let resp = http
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(&secret)
            .json(&batch(c, b))
            .send()
            .await;
        let Ok(resp) = resp else { return };
        if !resp.status().is_success() {
            // Not acknowledged: re-sent later, like any other failure.
            continue;
        }
        let Ok(body) = resp.json::<Value>().await else {
            return;
        };
        assert_eq!(body["rejected"], json!([]), "{body}");
        acks[b] = body["accepted"].as_u64();
        acked.fetch_add(1, Ordering::SeqCst);
    }
}

async fn every_event_exactly_once_after_sigkill(store: TestStore) {
    let secret = add_key(store.store.as_ref(), Role::Ingest).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let server = start(&store.url);
    let acked = Arc::new(AtomicUsize::new(0));

    // Phase 1: every client sends all its batches; the server dies part-way.
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (http, base, secret, acked) = (
            http.clone(),
            server.base.clone(),
            secret.clone(),
            acked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut acks: Acks = vec![None; BATCHES];
            client(
                http,
                base,
                secret,
                c,
                (0..BATCHES).collect(),
                &mut acks,
                acked,
            )
            .await;
            acks
        }));
    }
    // Kill once about a third of all batches are acknowledged, while all are sending.
    let target = CLIENTS * BATCHES / 3;
    for _ in 0..6000 {
        if acked.load(Ordering::SeqCst) >= target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let mut acks: Vec<Acks> = Vec::new();
    for t in tasks {
        acks.push(t.await.unwrap());
    }
    let acked_before = acks.iter().flatten().filter(|a| a.is_some()).count();
    let total = CLIENTS * BATCHES;
    assert!(
        acked_before >= target && acked_before < total,
        "the kill came mid-stream: {acked_before} of {total} batches acknowledged"
    );
    let stored_at_kill = store.reopen().await.counts().await.unwrap().events;
    // Every acknowledged batch is durable; a batch may also have been stored whose
    // answer the kill cut off.
    let acked_events = (acked_before * BATCH) as i64;
    assert!(
        stored_at_kill >= acked_events,
        "{stored_at_kill} stored < {acked_events} acknowledged"
    );

    // Phase 2: restart; each client re-sends every batch it has no acknowledgement for.
    let server = start(&store.url);
    let mut tasks = Vec::new();
    for (c, mut a) in acks.into_iter().enumerate() {
        let todo: Vec<usize> = (0..BATCHES).filter(|b| a[*b].is_none()).collect();
        let (http, base, secret, acked) = (
            http.clone(),
            server.base.clone(),
            secret.clone(),
            acked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            client(http, base, secret, c, todo, &mut a, acked).await;
            a
        }));
    }
    let mut acks: Vec<Acks> = Vec::new();
    for t in tasks {
        acks.push(t.await.unwrap());
    }
    server.kill();

    // Every batch is acknowledged now.
    assert!(acks.iter().flatten().all(Option::is_some));
    let distinct = (CLIENTS * BATCHES * BATCH) as i64;
    let accepted: u64 = acks.iter().flatten().map(|a| a.unwrap()).sum();
    let s = store.reopen().await;
    let counts = s.counts().await.unwrap();
    eprintln!(
        "{} backend: {acked_before} of {total} batches acknowledged before SIGKILL, {stored_at_kill} events stored at the kill; {} events after re-sending, accepted {accepted} in total",
        s.backend(),
        counts.events
    );
    assert_eq!(counts.events, distinct);
    // The 2xx answers accepted every event once, except those stored before the kill
    // whose answer was lost: their re-sent batches came back as duplicates.
    assert_eq!(accepted as i64, distinct - (stored_at_kill - acked_events));
    // And the usage sum is 3 units per event, in micros.
    let span = Span::new(
        parse_instant("t", "2025-11-01T00:00:00Z").unwrap(),
        parse_instant("t", "2025-12-01T00:00:00Z").unwrap(),
    );
    let rows = s
        .usage(&UsageQuery::new(EventKind::Usage, span))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].events, distinct);
    assert_eq!(rows[0].quantity, distinct * 3_000_000);
}

both_stores!(every_event_exactly_once_after_sigkill);

// ---- ingestion throughput over HTTP (a measurement, not a test) -------------------------

/// Usage events of the demo generator (the benchmark's data at `customers` customers), as
/// request bodies of `batch` events, alternating JSON arrays and NDJSON by quarter as
/// `tally-bench` does. Returns (body, ndjson) pairs and the number of events.
fn demo_bodies(customers: usize, events: usize, batch: usize) -> (Vec<(Vec<u8>, bool)>, usize) {
    use tally::bench::wire::batch_body;
    let opts = tally::demo::DemoOptions {
        seed: 42,
        end: chrono::NaiveDate::from_ymd_opt(2025, 11, 27).unwrap(),
        customers,
        events,
        ..Default::default()
    };
    let plan = tally::demo::plan(&opts);
    let mut stream = plan.event_stream(&opts);
    let mut usage = Vec::with_capacity(events);
    while let Some(day) = stream.next_day() {
        usage.extend(day.into_iter().filter(|e| e.kind == EventKind::Usage));
    }
    let n = usage.len();
    let chunks = n.div_ceil(batch);
    let bodies = usage
        .chunks(batch)
        .enumerate()
        .map(|(i, c)| {
            let ndjson = (i * 4 / chunks) % 2 == 1;
            (batch_body(c, ndjson).unwrap(), ndjson)
        })
        .collect();
    (bodies, n)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends every body from `clients` concurrent clients (each takes the next unsent one);
/// prints events/s overall and per format. Every event must be accepted.
async fn measure_http(store: TestStore) {
    let customers = env_or("TALLY_INGEST_CUSTOMERS", 10_000);
    let wanted = env_or("TALLY_INGEST_EVENTS", 400_000);
    let clients = env_or("TALLY_INGEST_CLIENTS", 4);
    let (bodies, n) = demo_bodies(customers, wanted, 1000);
    let secret = add_key(store.store.as_ref(), Role::Ingest).await;
    // Another build of the server (say, of the commit before) can be measured against the
    // same data, alternating with this one, when the machine's load varies.
    let server = match std::env::var("TALLY_INGEST_BIN") {
        Ok(bin) => ServerProcess::start(&bin, &store.url, &["--rate-limit-per-second", "0"]),
        Err(_) => start(&store.url),
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    // When each batch was answered, in microseconds from the start: the rate by quarter
    // shows how it changes as the store fills.
    let done: Arc<Vec<std::sync::atomic::AtomicU64>> =
        Arc::new((0..bodies.len()).map(|_| Default::default()).collect());
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, bodies, next, done) = (http.clone(), bodies.clone(), next.clone(), done.clone());
        let (url, secret) = (format!("{}/api/v1/events", server.base), secret.clone());
        tasks.push(tokio::spawn(async move {
            // Per format: (events, seconds spent in requests), and accepted events.
            let mut lat = Vec::new();
            let mut accepted = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((body, ndjson)) = bodies.get(i) else {
                    break;
                };
                let ctype = if *ndjson {
                    "application/x-ndjson"
                } else {
                    "application/json"
                };
                let t = std::time::Instant::now();
                let resp = http
                    .post(&url)
                    .bearer_auth(&secret)
                    .header("content-type", ctype)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                let ack: Value = resp.json().await.unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                done[i].store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                accepted += ack["accepted"].as_u64().unwrap();
            }
            (accepted, lat)
        }));
    }
    let mut accepted = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (a, l) = t.await.unwrap();
        accepted += a;
        lat.extend(l);
    }
    let secs = started.elapsed().as_secs_f64();
    server.kill();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let done: Vec<u64> = done.iter().map(|d| d.load(Ordering::Relaxed)).collect();
    let quarters: Vec<String> = (0..4)
        .map(|q| {
            let (a, b) = (q * done.len() / 4, (q + 1) * done.len() / 4);
            let from = if a == 0 {
                0
            } else {
                done[..a].iter().copied().max().unwrap()
            };
            let to = done[..b].iter().copied().max().unwrap();
            format!("{:.0}", (b - a) as f64 * 1e9 / (to - from).max(1) as f64)
        })
        .collect();
    println!(
        "{}: {n} events ({customers} customers) over HTTP from {clients} clients in {secs:.2}s = {:.0} events/s (by quarter: {}); request p50 {:.1} ms, p99 {:.1} ms; load {}",
        store.store.backend(),
        n as f64 / secs,
        quarters.join(", "),
        pct(0.5),
        pct(0.99),
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    assert_eq!(accepted as usize, n);
    assert_eq!(
        store.reopen().await.counts().await.unwrap().events,
        n as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test; run in release"]
async fn sqlite_http_ingest_throughput() {
    measure_http(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test; run in release"]
async fn postgres_http_ingest_throughput() {
    match TestStore::postgres().await {
        Some(store) => measure_http(store).await,
        None => eprintln!("skipped: TALLY_TEST_DATABASE_URL is not set"),
    }
}
