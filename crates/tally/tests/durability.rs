//! A 2xx means durably stored: the real binary is killed with SIGKILL right after
//! acknowledging writes, restarted, and still has everything it acknowledged. Runs on
//! SQLite, and on PostgreSQL when TALLY_TEST_DATABASE_URL is set.

use serde_json::{json, Value};
use tally_store::Role;
use tally_testkit::{add_key, both_stores, ServerProcess, TestStore};

fn start(url: &str) -> ServerProcess {
    ServerProcess::start(env!("CARGO_BIN_EXE_tally"), url, &[])
}

fn events(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"id": format!("dur_{i}"), "time": "2025-11-20T10:00:00Z", "service": "llm_inference", "customer_id": "cus_1", "input_tokens": 100, "output_tokens": 10, "cost_credits": "0.5"}))
            .collect(),
    )
}

/// Whether another connection can read the SQLite ingest log of the store at `url`
/// (`None` if the store is not SQLite): not while a process owns it.
fn ingest_log_readable(url: &str) -> Option<bool> {
    let log = format!("{}-ingest", url.strip_prefix("sqlite://")?);
    let conn = rusqlite::Connection::open(log).unwrap();
    Some(
        conn.query_row("SELECT COUNT(*) FROM log", [], |r| r.get::<_, i64>(0))
            .is_ok(),
    )
}

async fn acknowledged_writes_survive_sigkill(mut store: TestStore) {
    let secret = add_key(store.store.as_ref(), Role::Ingest).await;
    // The server, not this process, takes SQLite's ingest log: its events are then
    // acknowledged once in the log, before they are folded into the database.
    store.hand_over().await;
    assert_ne!(
        ingest_log_readable(&store.url),
        Some(false),
        "still owned here"
    );
    let http = reqwest::Client::new();
    let server = start(&store.url);

    let resp = http
        .put(format!("{}/api/v1/customers/cus_1", server.base))
        .bearer_auth(&secret)
        .json(&json!({"created_at": "2025-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = http
        .post(format!("{}/api/v1/events", server.base))
        .bearer_auth(&secret)
        .json(&events(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 1000);
    assert_ne!(
        ingest_log_readable(&store.url),
        Some(true),
        "the server does not own the ingest log"
    );
    // No graceful shutdown, no flush: the process dies the moment the 2xx is read.
    server.kill();

    let counts = store.reopen().await.counts().await.unwrap();
    assert_eq!((counts.customers, counts.events), (1, 1000));

    // After a restart, the client's retry of the same batch counts nothing twice.
    let server = start(&store.url);
    let body: Value = http
        .post(format!("{}/api/v1/events", server.base))
        .bearer_auth(&secret)
        .json(&events(1000))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (body["accepted"].as_u64(), body["duplicates"].as_u64()),
        (Some(0), Some(1000))
    );
    server.kill();
    assert_eq!(store.reopen().await.counts().await.unwrap().events, 1000);
}

both_stores!(acknowledged_writes_survive_sigkill);
