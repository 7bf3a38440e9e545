//! The write API of api.md on both stores: bad input gets the documented status and a
//! message naming the problem (never a 500), nothing valid is lost, and every write is
//! idempotent.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use tally_core::event::EventKind;
use tally_core::time::parse_instant;
use tally_server::ServerConfig;
use tally_store::{Span, UsageQuery};
use tally_testkit::{both_stores, TestApp, TestStore};

fn now() -> i64 {
    parse_instant("t", "2025-12-01T00:00:00Z").unwrap()
}

/// Small limits so the size cases are cheap to build.
fn small_limits() -> ServerConfig {
    ServerConfig {
        max_batch: 5,
        max_body_bytes: 4096,
        ..ServerConfig::default()
    }
}

async fn seed(app: &TestApp) {
    let (s, _) = app.put("/api/v1/plans/pro", json!({"name": "Pro", "tier": "professional", "interval": "month", "amount": "99.00", "currency": "USD"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app
        .put(
            "/api/v1/customers/cus_1",
            json!({"name": "Acme", "created_at": "2025-01-01T00:00:00Z", "channel": "organic"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

fn event(id: &str, extra: Value) -> Value {
    let mut e = json!({"id": id, "time": "2025-11-20T10:00:00Z", "customer_id": "cus_1", "service": "llm_inference"});
    e.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    e
}

/// One bad request: what is sent and what must come back.
struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: String,
    status: StatusCode,
    /// A phrase the error message (or the first rejection) must contain.
    says: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    path: &'static str,
    body: impl ToString,
    status: StatusCode,
    says: &'static str,
) -> Case {
    Case {
        name,
        method,
        path,
        content_type: Some("application/json"),
        body: body.to_string(),
        status,
        says,
    }
}

fn cases() -> Vec<Case> {
    use StatusCode as S;
    let plan = |v: Value| v.to_string();
    vec![
        case("malformed json", Method::PUT, "/api/v1/plans/p2", "{\"name\": ", S::BAD_REQUEST, "not valid JSON"),
        case("wrong type", Method::PUT, "/api/v1/plans/p2", plan(json!({"name": "P", "tier": "t", "interval": "month", "amount": true, "currency": "USD"})), S::UNPROCESSABLE_ENTITY, "amount"),
        case("wrong type of integer", Method::PUT, "/api/v1/subscriptions/s9", json!({"customer_id": "cus_1", "plan_id": "pro", "quantity": "two", "started_at": "2025-01-01T00:00:00Z"}), S::UNPROCESSABLE_ENTITY, "quantity"),
        case("missing required field", Method::PUT, "/api/v1/plans/p2", json!({"name": "P", "interval": "month", "amount": 1, "currency": "USD"}), S::UNPROCESSABLE_ENTITY, "missing field `tier`"),
        case("negative tokens", Method::POST, "/api/v1/events", json!([event("e_neg", json!({"input_tokens": -5}))]), S::UNPROCESSABLE_ENTITY, "input_tokens"),
        case("negative event quantity", Method::POST, "/api/v1/events", json!([event("e_negq", json!({"quantity": -1}))]), S::UNPROCESSABLE_ENTITY, "quantity"),
        case("negative seat quantity", Method::PUT, "/api/v1/subscriptions/s9", json!({"customer_id": "cus_1", "plan_id": "pro", "quantity": -1, "started_at": "2025-01-01T00:00:00Z"}), S::UNPROCESSABLE_ENTITY, "quantity"),
        case("negative amount", Method::PUT, "/api/v1/invoices/i9", json!({"customer_id": "cus_1", "amount": "-5.00", "currency": "USD", "status": "open", "issued_at": "2025-01-01T00:00:00Z"}), S::UNPROCESSABLE_ENTITY, "must not be negative"),
        case("too precise amount", Method::PUT, "/api/v1/plans/p2", json!({"name": "P", "tier": "t", "interval": "month", "amount": "9.999", "currency": "USD"}), S::UNPROCESSABLE_ENTITY, "more decimal places than USD allows"),
        case("too precise cost", Method::POST, "/api/v1/costs", json!([{"month": "2025-11", "category": "infrastructure", "service": "storage", "amount": 10.001}]), S::UNPROCESSABLE_ENTITY, "[0].amount"),
        case("unknown currency", Method::PUT, "/api/v1/plans/p2", json!({"name": "P", "tier": "t", "interval": "month", "amount": "9.99", "currency": "XYZ"}), S::UNPROCESSABLE_ENTITY, "currency"),
        case("currency without a rate", Method::PUT, "/api/v1/plans/p2", json!({"name": "P", "tier": "t", "interval": "month", "amount": "9.99", "currency": "EUR"}), S::UNPROCESSABLE_ENTITY, "no exchange rate"),
        case("unknown plan", Method::PUT, "/api/v1/subscriptions/s9", json!({"customer_id": "cus_1", "plan_id": "nope", "started_at": "2025-01-01T00:00:00Z"}), S::UNPROCESSABLE_ENTITY, "plan_id"),
        case("unknown customer", Method::PUT, "/api/v1/invoices/i9", json!({"customer_id": "nobody", "amount": "5.00", "currency": "USD", "status": "open", "issued_at": "2025-01-01T00:00:00Z"}), S::UNPROCESSABLE_ENTITY, "customer_id"),
        case("unknown subscription", Method::POST, "/api/v1/subscriptions/nope/cancel", json!({"effective_at": "2025-01-01T00:00:00Z"}), S::NOT_FOUND, "nope"),
        case("malformed time", Method::PUT, "/api/v1/customers/c9", json!({"created_at": "yesterday"}), S::UNPROCESSABLE_ENTITY, "created_at"),
        case("malformed event time", Method::POST, "/api/v1/events", json!([event("e_t", json!({"time": "2025-13-01"}))]), S::UNPROCESSABLE_ENTITY, "RFC 3339"),
        case("malformed month", Method::POST, "/api/v1/marketing-spend", json!([{"month": "2025-1", "channel": "ads", "amount": 1}]), S::UNPROCESSABLE_ENTITY, "YYYY-MM"),
        case("unknown interval", Method::PUT, "/api/v1/plans/p2", json!({"name": "P", "tier": "t", "interval": "week", "amount": 1, "currency": "USD"}), S::UNPROCESSABLE_ENTITY, "month, quarter, year"),
        case("unknown invoice status", Method::PUT, "/api/v1/invoices/i9", json!({"customer_id": "cus_1", "amount": 1, "currency": "USD", "status": "late", "issued_at": "2025-01-01T00:00:00Z"}), S::UNPROCESSABLE_ENTITY, "paid, failed, open, void"),
        case("unknown event type", Method::POST, "/api/v1/events", json!([event("e_ty", json!({"type": "click"}))]), S::UNPROCESSABLE_ENTITY, "usage, health_check, gauge"),
        case("empty batch", Method::POST, "/api/v1/events", "[]", S::UNPROCESSABLE_ENTITY, "empty"),
        case("empty cost batch", Method::POST, "/api/v1/costs", "[]", S::UNPROCESSABLE_ENTITY, "empty"),
        case("not an array", Method::POST, "/api/v1/events", json!({"id": "x"}), S::UNPROCESSABLE_ENTITY, "JSON array"),
        case("batch over the limit", Method::POST, "/api/v1/events", Value::Array((0..6).map(|i| json!({"id": format!("b{i}"), "time": "2025-11-20T10:00:00Z", "service": "s"})).collect()), S::PAYLOAD_TOO_LARGE, "at most 5"),
        case("body over the limit", Method::PUT, "/api/v1/customers/c9", json!({"created_at": "2025-01-01T00:00:00Z", "name": "x".repeat(5000)}), S::PAYLOAD_TOO_LARGE, "larger than"),
        Case { content_type: Some("text/plain"), ..case("wrong content type", Method::PUT, "/api/v1/customers/c9", json!({"created_at": "2025-01-01T00:00:00Z"}), S::UNSUPPORTED_MEDIA_TYPE, "application/json") },
        Case { content_type: None, ..case("no content type", Method::POST, "/api/v1/events", "[]", S::UNSUPPORTED_MEDIA_TYPE, "Content-Type") },
        case("bad list limit", Method::GET, "/api/v1/plans?limit=0", "", S::UNPROCESSABLE_ENTITY, "limit"),
        case("bad cursor", Method::GET, "/api/v1/plans?cursor=zz", "", S::UNPROCESSABLE_ENTITY, "cursor"),
        case("unknown route", Method::GET, "/api/v1/nothing", "", S::NOT_FOUND, "no such route"),
    ]
}

async fn bad_input_gets_a_clear_4xx(store: TestStore) {
    let app = TestApp::with_config(store, now(), small_limits()).await;
    seed(&app).await;
    let before = app.store.store.counts().await.unwrap();
    for c in cases() {
        let (status, body) = app
            .call(c.method.clone(), c.path, c.content_type, c.body.clone())
            .await;
        assert_eq!(status, c.status, "{}: {body}", c.name);
        let err = &body["error"];
        assert!(
            err["code"].is_string(),
            "{}: error envelope missing: {body}",
            c.name
        );
        let text = format!("{} {}", err["message"], err["details"]);
        assert!(
            text.contains(c.says),
            "{}: expected the message to mention {:?}, got {text}",
            c.name,
            c.says
        );
    }
    // None of the bad requests stored anything.
    assert_eq!(app.store.store.counts().await.unwrap(), before);
}

async fn valid_events_of_a_mixed_batch_are_kept(store: TestStore) {
    let app = TestApp::new(store, now()).await;
    seed(&app).await;
    let ndjson = [
        event("ok_1", json!({})).to_string(),
        "{not json".to_string(),
        String::new(),
        event("bad_2", json!({"output_tokens": -1})).to_string(),
        event("ok_3", json!({"type": "health_check", "up": true})).to_string(),
    ]
    .join("\n");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/events",
            Some("application/x-ndjson"),
            ndjson,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["duplicates"], 0);
    let rejected = body["rejected"].as_array().unwrap();
    // Blank lines are skipped, so "bad_2" is the third event (index 2).
    assert_eq!(
        rejected
            .iter()
            .map(|r| r["index"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(rejected[1]["id"], "bad_2");
    assert!(rejected[1]["error"]
        .as_str()
        .unwrap()
        .contains("output_tokens"));
    assert_eq!(app.store.store.counts().await.unwrap().events, 2);
}

async fn writes_are_idempotent(store: TestStore) {
    let app = TestApp::new(store, now()).await;
    seed(&app).await;
    let writes: Vec<(Method, &str, Value)> = vec![
        (
            Method::PUT,
            "/api/v1/plans/pro",
            json!({"name": "Pro", "tier": "professional", "interval": "month", "amount": 99, "currency": "usd"}),
        ),
        (
            Method::PUT,
            "/api/v1/customers/cus_1",
            json!({"name": "Acme", "created_at": "2025-01-01T01:00:00+01:00", "channel": "organic"}),
        ),
        (
            Method::PUT,
            "/api/v1/subscriptions/sub_1",
            json!({"customer_id": "cus_1", "plan_id": "pro", "started_at": "2025-01-01T00:00:00Z", "trial_ends_at": "2025-01-15T00:00:00Z"}),
        ),
        (
            Method::POST,
            "/api/v1/subscriptions/sub_1/changes",
            json!({"effective_at": "2025-03-01T00:00:00Z", "quantity": 3}),
        ),
        (
            Method::POST,
            "/api/v1/subscriptions/sub_1/cancel",
            json!({"effective_at": "2025-09-01T00:00:00Z"}),
        ),
        (
            Method::PUT,
            "/api/v1/invoices/inv_1",
            json!({"customer_id": "cus_1", "amount": "99.00", "currency": "USD", "status": "paid", "issued_at": "2025-01-15T00:00:00Z", "paid_at": "2025-01-15T00:05:00Z"}),
        ),
        (
            Method::POST,
            "/api/v1/costs",
            json!([{"month": "2025-01", "category": "infrastructure", "service": "storage", "amount": "120.50"}, {"month": "2025-01", "category": "other", "amount": 40}]),
        ),
        (
            Method::POST,
            "/api/v1/marketing-spend",
            json!([{"month": "2025-01", "channel": "google_ads", "amount": 500}]),
        ),
        (
            Method::PUT,
            "/api/v1/services/search",
            json!({"display_name": "Search", "unit_type": "queries"}),
        ),
        (
            Method::POST,
            "/api/v1/events",
            json!([
                event("e1", json!({"model": "gpt-4o", "cost_credits": 8.5})),
                event("e2", json!({"service": "search"}))
            ]),
        ),
    ];
    for (method, path, body) in &writes {
        let (s, b) = app
            .call(
                method.clone(),
                path,
                Some("application/json"),
                body.to_string(),
            )
            .await;
        assert!(s.is_success(), "{path}: {s} {b}");
    }
    let once = app.store.store.counts().await.unwrap();
    assert_eq!(
        (
            once.plans,
            once.customers,
            once.subscriptions,
            once.subscription_changes
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        (once.invoices, once.costs, once.marketing_spend, once.events),
        (1, 2, 1, 2)
    );
    // search registered explicitly, llm_inference from its first event.
    assert_eq!(once.services, 2);
    for (method, path, body) in &writes {
        let (s, b) = app
            .call(
                method.clone(),
                path,
                Some("application/json"),
                body.to_string(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "repeat of {path}: {b}");
        if *path == "/api/v1/events" {
            assert_eq!(
                (b["accepted"].as_u64(), b["duplicates"].as_u64()),
                (Some(0), Some(2))
            );
        }
    }
    assert_eq!(app.store.store.counts().await.unwrap(), once);

    // The same event id with another payload is a duplicate; the first payload stays.
    let (s, b) = app
        .post(
            "/api/v1/events",
            json!([event("e1", json!({"model": "gpt-4o", "cost_credits": 999}))]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["duplicates"], 1);
    let span = Span::new(0, now());
    let rows = app
        .store
        .store
        .usage(&UsageQuery::new(EventKind::Usage, span))
        .await
        .unwrap();
    assert_eq!(rows[0].events, 2);
    assert_eq!(
        rows[0].cost, 8_500_000,
        "8.5 credits from the first payload, in micro-credits"
    );

    // A subscription is created once; other content under its id is a conflict.
    let (s, b) = app
        .put(
            "/api/v1/subscriptions/sub_1",
            json!({"customer_id": "cus_1", "plan_id": "pro", "started_at": "2025-02-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    // Updates where they make sense: the plan's price and the invoice's status move on.
    let (s, b) = app.put("/api/v1/plans/pro", json!({"name": "Pro", "tier": "professional", "interval": "month", "amount": "109.00", "currency": "USD"})).await;
    assert_eq!(
        (s, b["amount"].to_string()),
        (StatusCode::OK, "109.00".to_string())
    );
    let (s, b) = app.get("/api/v1/subscriptions/sub_1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["canceled_at"], "2025-09-01T00:00:00Z");
    assert_eq!(b["changes"][0]["quantity"], 3);
}

async fn lists_page_through_everything(store: TestStore) {
    let app = TestApp::new(store, now()).await;
    for i in 0..7 {
        let (s, _) = app
            .put(
                &format!("/api/v1/customers/c{i}"),
                json!({"created_at": "2025-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/customers?limit=3".to_string();
    loop {
        let (s, b) = app.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        seen.extend(
            b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string()),
        );
        match b["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/customers?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
}

both_stores!(
    bad_input_gets_a_clear_4xx,
    valid_events_of_a_mixed_batch_are_kept,
    writes_are_idempotent,
    lists_page_through_everything
);
