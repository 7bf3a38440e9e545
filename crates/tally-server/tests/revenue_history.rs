//! The book's month-end history (complete months computed once per book, kept with the
//! cached book) never outlives the data: after every kind of entity write that changes a
//! complete month (a subscription started in the past, a change and a cancellation
//! effective in the past), a server that served and cached the revenue endpoints before
//! answers byte for byte what a fresh server over the same store answers, with and without
//! `Cache-Control: no-cache`, at several `as_of` values (month-to-date, a month's last
//! instant, a month's first instant).
//!
//! Fixture: plans basic 100.00/month, pro 2400.00/year (200/month), team 900.00/quarter
//! (300/month); c1 basic from 2024-11-05; c2 pro from 2025-01-20 with a trial to
//! 2025-02-03; c3 team from 2025-03-15, cancelled 2025-09-10; c4 basic from 2025-06-01,
//! quantity 2 from 2025-08-01.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tally_core::input::CurrencyPolicy;
use tally_core::pricing::PriceTable;
use tally_core::time::parse_instant;
use tally_server::{AppState, Clock, ServerConfig};
use tally_store::{Role, Store};
use tally_testkit::{add_key, both_stores, TestStore};

const NOW: &str = "2025-11-20T12:00:00Z";

const AS_OFS: [&str; 3] = ["2025-11-20T12:00:00Z", "2025-10-31", "2025-06-01T00:00:00Z"];

const PATHS: [&str; 11] = [
    "/api/v1/analytics/revenue/mrr?months=24",
    "/api/v1/analytics/revenue/arr",
    "/api/v1/analytics/revenue/growth",
    "/api/v1/analytics/revenue/forecast",
    "/api/v1/analytics/revenue/by-tier",
    "/api/v1/analytics/users/ltv",
    "/api/v1/analytics/users/churn",
    "/api/v1/analytics/metrics/summary",
    "/api/v1/analytics/metrics/kpis",
    "/api/v1/analytics/metrics/alerts",
    "/api/v1/billing/analytics/summary",
];

/// One server process: its own caches over the store.
struct Instance {
    router: Router,
    secret: String,
}

impl Instance {
    fn new(store: Arc<dyn Store>, secret: &str) -> Instance {
        let state = AppState::new(
            store,
            // The test sends a few hundred requests with one key.
            ServerConfig {
                rate_limit_per_second: 0,
                ..ServerConfig::default()
            },
            PriceTable::builtin(1000.into()),
            CurrencyPolicy::default(),
            Clock::Fixed(parse_instant("t", NOW).unwrap()),
        );
        Instance {
            router: tally_server::app(state),
            secret: secret.to_owned(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Bytes) {
        let resp =
            tally_testkit::send(&self.router, &self.secret, method, path, headers, body).await;
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }

    async fn write(&self, method: Method, path: &str, body: Value) {
        let (status, bytes) = self.send(method, path, &[], Some(body)).await;
        assert!(
            status.is_success(),
            "{path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
    }

    /// Every revenue answer at every as_of, in order.
    async fn answers(&self, headers: &[(&str, &str)]) -> Vec<(String, Bytes)> {
        let mut out = Vec::new();
        for as_of in AS_OFS {
            for path in PATHS {
                let sep = if path.contains('?') { '&' } else { '?' };
                let url = format!("{path}{sep}as_of={as_of}");
                let (status, body) = self.send(Method::GET, &url, headers, None).await;
                assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
                out.push((url, body));
            }
        }
        out
    }
}

/// The long-running instance's answers (computed without and with the response cache)
/// equal a fresh instance's, body for body.
async fn assert_same_as_fresh(
    old: &Instance,
    store: &Arc<dyn Store>,
    secret: &str,
) -> Vec<(String, Bytes)> {
    let fresh = Instance::new(store.clone(), secret).answers(&[]).await;
    for headers in [&[("cache-control", "no-cache")][..], &[]] {
        let kept = old.answers(headers).await;
        for ((url, a), (_, b)) in kept.iter().zip(&fresh) {
            assert_eq!(
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b),
                "{url} {headers:?}"
            );
        }
    }
    fresh
}

async fn history_follows_entity_writes(ts: TestStore) {
    let store = ts.store.clone();
    let secret = add_key(store.as_ref(), Role::Admin).await;
    let app = Instance::new(store.clone(), &secret);
    for (id, tier, interval, amount) in [
        ("basic", "basic", "month", "100.00"),
        ("pro", "pro", "year", "2400"),
        ("team", "team", "quarter", "900"),
    ] {
        app.write(Method::PUT, &format!("/api/v1/plans/{id}"), json!({"name": id, "tier": tier, "interval": interval, "amount": amount, "currency": "USD"})).await;
    }
    for (id, created) in [
        ("c1", "2024-11-01"),
        ("c2", "2025-01-15"),
        ("c3", "2025-03-01"),
        ("c4", "2025-05-20"),
        ("c5", "2025-01-02"),
    ] {
        app.write(
            Method::PUT,
            &format!("/api/v1/customers/{id}"),
            json!({"created_at": format!("{created}T00:00:00Z")}),
        )
        .await;
    }
    for (id, body) in [
        (
            "s1",
            json!({"customer_id": "c1", "plan_id": "basic", "started_at": "2024-11-05T00:00:00Z"}),
        ),
        (
            "s2",
            json!({"customer_id": "c2", "plan_id": "pro", "started_at": "2025-01-20T00:00:00Z", "trial_ends_at": "2025-02-03T00:00:00Z"}),
        ),
        (
            "s3",
            json!({"customer_id": "c3", "plan_id": "team", "started_at": "2025-03-15T00:00:00Z"}),
        ),
        (
            "s4",
            json!({"customer_id": "c4", "plan_id": "basic", "started_at": "2025-06-01T00:00:00Z"}),
        ),
    ] {
        app.write(Method::PUT, &format!("/api/v1/subscriptions/{id}"), body)
            .await;
    }
    app.write(
        Method::POST,
        "/api/v1/subscriptions/s3/cancel",
        json!({"effective_at": "2025-09-10T00:00:00Z"}),
    )
    .await;
    app.write(
        Method::POST,
        "/api/v1/subscriptions/s4/changes",
        json!({"effective_at": "2025-08-01T00:00:00Z", "quantity": 2}),
    )
    .await;

    // The long-running instance builds its book and history and caches every answer.
    let before = assert_same_as_fresh(&app, &store, &secret).await;

    // Each write changes complete months of every as_of above.
    let writes: [(Method, &str, Value); 3] = [
        // A subscription started in the past: new MRR from February.
        (
            Method::PUT,
            "/api/v1/subscriptions/s5",
            json!({"customer_id": "c5", "plan_id": "team", "started_at": "2025-02-10T00:00:00Z"}),
        ),
        // A change effective in the past: c1 expands in March.
        (
            Method::POST,
            "/api/v1/subscriptions/s1/changes",
            json!({"effective_at": "2025-03-01T00:00:00Z", "quantity": 3}),
        ),
        // A cancellation effective in the past: c2 churns in April.
        (
            Method::POST,
            "/api/v1/subscriptions/s2/cancel",
            json!({"effective_at": "2025-04-15T00:00:00Z"}),
        ),
    ];
    let mut previous = before;
    for (method, path, body) in writes {
        app.write(method, path, body).await;
        let now = assert_same_as_fresh(&app, &store, &secret).await;
        assert_ne!(
            now[0].1, previous[0].1,
            "{path}: the write changes the MRR history"
        );
        previous = now;
    }
}

both_stores!(history_follows_entity_writes);

/// Measurement (ignored): the time to build the book of an existing database, its history,
/// and a ledger (the current month) at a few as_of values.
///
/// `TALLY_HISTORY_DB=sqlite:///tmp/m.db cargo test --release -p tally-server --test
/// revenue_history -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn history_build_time() {
    use std::time::Instant;
    use tally_core::billing::ledger::Ledger;
    use tally_core::billing::Book;
    let url = std::env::var("TALLY_HISTORY_DB").expect("TALLY_HISTORY_DB");
    let store = tally_store::open(&url).await.expect("open");
    let t = Instant::now();
    let d = store.billing_data().await.expect("billing data");
    let load = t.elapsed();
    let t = Instant::now();
    let book = Book::new(&d.plans, &d.customers, &d.subscriptions, &d.changes);
    let build = t.elapsed();
    let t = Instant::now();
    book.history();
    let history = t.elapsed();
    println!(
        "{} customers, {} subscriptions, {} changes: load {load:?}, book {build:?}, history {history:?}",
        d.customers.len(),
        d.subscriptions.len(),
        d.changes.len()
    );
    for as_of in ["2026-11-27", "2026-06-15", "2025-01-31"] {
        let as_of = tally_core::time::parse_as_of(as_of).unwrap();
        let t = Instant::now();
        let runs = 20;
        for _ in 0..runs {
            std::hint::black_box(Ledger::new(&book, as_of));
        }
        println!(
            "ledger at {}: {:?}",
            tally_core::time::format_micros(as_of),
            t.elapsed() / runs
        );
    }
}
