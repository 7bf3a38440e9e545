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
