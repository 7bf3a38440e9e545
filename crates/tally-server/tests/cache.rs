//! The analytics caches (`tally_server::cache`): a cached answer changes after every kind
//! of write that affects it and only then; ingesting events leaves revenue answers
//! cached; two app instances on one database (two processes) see each other's writes;
//! `Cache-Control` bypasses; errors are not stored; access and rate limits still apply;
//! cached bodies are byte for byte the computed ones.
//!
//! as_of = 2025-11-20T12:00:00Z (every cached request names it). Base fixture:
//!   plan basic (tier basic) 100.00/month; customer c1 created 2025-10-01 (ads);
//!   subscription s1 c1 basic from 2025-10-01 → MRR 100.
//! Every value asserted is worked out by hand next to the write that changes it.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::Arc;
use tally_core::input::CurrencyPolicy;
use tally_core::pricing::PriceTable;
use tally_core::time::parse_instant;
use tally_server::{AppState, Clock, ServerConfig};
use tally_store::{Role, Store};
use tally_testkit::{add_key, both_stores, TestStore};

const AS_OF: &str = "2025-11-20T12:00:00Z";

/// One tally process: its own state (caches, limits) over a store.
struct Instance {
    router: Router,
    state: AppState,
    secret: String,
}

impl Instance {
    fn new(store: Arc<dyn Store>, secret: &str, config: ServerConfig) -> Instance {
        let state = AppState::new(
            store,
            config,
            PriceTable::builtin(1000.into()),
            CurrencyPolicy::default(),
            Clock::Fixed(parse_instant("t", AS_OF).unwrap()),
        );
        Instance {
            router: tally_server::app(state.clone()),
            state,
            secret: secret.to_owned(),
        }
    }

    async fn send(
        &self,
        secret: &str,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let resp = tally_testkit::send(&self.router, secret, method, path, headers, body).await;
        let status = resp.status();
        let cache = resp
            .headers()
            .get(tally_server::cache::CACHE_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            cache,
            body,
        }
    }

    /// GET with the admin key and the given request headers.
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(&self.secret, Method::GET, path, headers, None)
            .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.get_with(path, &[]).await
    }

    /// The answer, cached: a second GET must be a hit with the same bytes.
    async fn warm(&self, path: &str) -> Value {
        let first = self.get(path).await;
        assert_eq!(first.status, 200, "{path}: {}", first.text());
        let second = self.get(path).await;
        assert_eq!(second.cache.as_deref(), Some("hit"), "{path}");
        assert_eq!(first.body, second.body, "{path}");
        second.json()
    }

    /// The answer, which must have been computed now (the write before moved the key on).
    async fn fresh(&self, path: &str) -> Value {
        let a = self.get(path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        assert_eq!(a.cache.as_deref(), Some("miss"), "{path}");
        a.json()
    }

    /// The answer, which must still come from the cache.
    async fn still_cached(&self, path: &str) -> Value {
        let a = self.get(path).await;
        assert_eq!(a.cache.as_deref(), Some("hit"), "{path}");
        a.json()
    }

    async fn write(&self, method: Method, path: &str, body: Option<Value>) {
        let a = self
            .send(&self.secret, method, path, &[], body.or(Some(json!({}))))
            .await;
        assert!(a.status.is_success(), "{path}: {} {}", a.status, a.text());
    }

    async fn put(&self, path: &str, body: Value) {
        self.write(Method::PUT, path, Some(body)).await;
    }

    async fn post(&self, path: &str, body: Value) {
        self.write(Method::POST, path, Some(body)).await;
    }
}

struct Answer {
    status: StatusCode,
    cache: Option<String>,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// `path` with the fixed `as_of` added to its query.
fn at(path: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}as_of={AS_OF}")
}

#[track_caller]
fn eq(v: &Value, want: &str) {
    let got = match v {
        Value::Number(n) => n.to_string(),
        other => panic!("not a number: {other}"),
    };
    assert_eq!(
        Decimal::from_str(&got).unwrap(),
        Decimal::from_str(want).unwrap(),
        "got {got}, want {want}"
    );
}

/// A migrated store with an admin key and the base fixture, and one instance on it.
async fn setup(store: &TestStore, config: ServerConfig) -> Instance {
    let secret = add_key(store.store.as_ref(), Role::Admin).await;
    let app = Instance::new(store.store.clone(), &secret, config);
    app.put(
        "/api/v1/plans/basic",
        json!({"name": "Basic", "tier": "basic", "interval": "month", "amount": "100.00", "currency": "USD"}),
    )
    .await;
    app.put(
        "/api/v1/customers/c1",
        json!({"created_at": "2025-10-01T00:00:00Z", "channel": "ads"}),
    )
    .await;
    app.put(
        "/api/v1/subscriptions/s1",
        json!({"customer_id": "c1", "plan_id": "basic", "started_at": "2025-10-01T00:00:00Z"}),
    )
    .await;
    app
}

both_stores!(
    each_kind_of_write_changes_the_answers_it_affects,
    events_leave_revenue_cached_and_entity_writes_leave_usage_cached,
    two_instances_see_each_others_writes,
    cache_control_bypasses,
    errors_and_now_are_not_cached,
    access_and_rate_limits_apply_to_cached_answers,
    cached_bodies_are_the_computed_ones,
);

async fn each_kind_of_write_changes_the_answers_it_affects(store: TestStore) {
    let app = setup(&store, ServerConfig::default()).await;
    let mrr = at("/api/v1/analytics/revenue/mrr");
    let acquisition = at("/api/v1/analytics/users/acquisition");
    let billing = at("/api/v1/billing/analytics/summary");
    let alerts = at("/api/v1/analytics/metrics/alerts");
    let search = at("/api/v1/metering/service/search");

    eq(&app.warm(&mrr).await["current_mrr"], "100");

    // Plan: basic 150.00 → s1 pays 150.
    app.put(
        "/api/v1/plans/basic",
        json!({"name": "Basic", "tier": "basic", "interval": "month", "amount": "150.00", "currency": "USD"}),
    )
    .await;
    eq(&app.fresh(&mrr).await["current_mrr"], "150");

    // Customer: c2 signs up on 2025-11-05, the only signup of November (c1 is October's).
    let before = app.warm(&acquisition).await;
    assert_eq!(
        (
            before["new_users_this_month"].clone(),
            before["new_users_last_month"].clone()
        ),
        (json!(0), json!(1))
    );
    app.put(
        "/api/v1/customers/c2",
        json!({"created_at": "2025-11-05T00:00:00Z", "channel": "organic"}),
    )
    .await;
    assert_eq!(
        app.fresh(&acquisition).await["new_users_this_month"],
        json!(1)
    );

    // Subscription: s2 c2 basic from 2025-11-05 → 150 + 150.
    eq(&app.warm(&mrr).await["current_mrr"], "150");
    app.put(
        "/api/v1/subscriptions/s2",
        json!({"customer_id": "c2", "plan_id": "basic", "started_at": "2025-11-05T00:00:00Z"}),
    )
    .await;
    eq(&app.fresh(&mrr).await["current_mrr"], "300");

    // Change: s2 quantity 2 from 2025-11-10 → 150 + 300.
    app.warm(&mrr).await;
    app.post(
        "/api/v1/subscriptions/s2/changes",
        json!({"effective_at": "2025-11-10T00:00:00Z", "quantity": 2}),
    )
    .await;
    eq(&app.fresh(&mrr).await["current_mrr"], "450");

    // Cancellation: s1 ends 2025-11-15 → 300.
    app.warm(&mrr).await;
    app.post(
        "/api/v1/subscriptions/s1/cancel",
        json!({"effective_at": "2025-11-15T00:00:00Z"}),
    )
    .await;
    eq(&app.fresh(&mrr).await["current_mrr"], "300");

    // Invoice: 300.00 paid on 2025-11-06 is this month's revenue.
    eq(
        &app.warm(&billing).await["revenue"]["total_this_month"],
        "0",
    );
    app.put(
        "/api/v1/invoices/i1",
        json!({"customer_id": "c2", "amount": "300.00", "currency": "USD", "status": "paid",
               "issued_at": "2025-11-06T00:00:00Z", "paid_at": "2025-11-06T00:00:00Z"}),
    )
    .await;
    eq(
        &app.fresh(&billing).await["revenue"]["total_this_month"],
        "300",
    );

    // Costs: 50.00 of infrastructure in November → gross profit 300 − 50 = 250.
    app.warm(&billing).await;
    app.post(
        "/api/v1/costs",
        json!([{"month": "2025-11", "category": "infrastructure", "service": "db", "amount": "50.00"}]),
    )
    .await;
    let b = app.fresh(&billing).await;
    eq(&b["costs"]["infrastructure"], "50");
    eq(&b["profitability"]["gross_profit"], "250");

    // Marketing spend: 20.00 in November → net profit 250 − 20 = 230.
    app.warm(&billing).await;
    app.post(
        "/api/v1/marketing-spend",
        json!([{"month": "2025-11", "channel": "organic", "amount": "20.00"}]),
    )
    .await;
    let b = app.fresh(&billing).await;
    eq(&b["profitability"]["marketing_spend"], "20");
    eq(&b["profitability"]["net_profit"], "230");

    // Alert rule: without health checks uptime has no value, until its rule is deleted.
    let a = app.warm(&alerts).await;
    assert!(
        a["no_data"].as_array().unwrap().contains(&json!("uptime")),
        "{a}"
    );
    app.write(Method::DELETE, "/api/v1/alert-rules/uptime", None)
        .await;
    let a = app.fresh(&alerts).await;
    assert!(
        !a["no_data"].as_array().unwrap().contains(&json!("uptime")),
        "{a}"
    );

    // Service: unknown (404, not stored), then registered with its unit.
    assert_eq!(app.get(&search).await.status, 404);
    app.put("/api/v1/services/search", json!({"unit_type": "queries"}))
        .await;
    let s = app.warm(&search).await;
    assert_eq!(
        (s["unit_type"].clone(), s["total_api_calls"].clone()),
        (json!("queries"), json!(0))
    );

    // Event: one call of c2 to search on 2025-11-19.
    app.post(
        "/api/v1/events",
        json!([{"id": "e1", "time": "2025-11-19T10:00:00Z", "customer_id": "c2", "service": "search"}]),
    )
    .await;
    assert_eq!(app.fresh(&search).await["total_api_calls"], json!(1));
}

async fn events_leave_revenue_cached_and_entity_writes_leave_usage_cached(store: TestStore) {
    let app = setup(&store, ServerConfig::default()).await;
    let mrr = at("/api/v1/analytics/revenue/mrr");
    let llm = at("/api/v1/llm/usage/summary?range=month");
    let revenue = app.warm(&mrr).await;
    eq(&revenue["current_mrr"], "100");
    assert_eq!(app.warm(&llm).await["total_api_calls"], json!(0));

    // One LLM call of 10 + 5 tokens inside the month: usage moves, revenue stays cached.
    let call = json!([{"id": "l1", "time": "2025-11-19T10:00:00Z", "customer_id": "c1",
        "service": "llm_api", "model": "gpt-4o", "provider": "openai",
        "input_tokens": 10, "output_tokens": 5, "cost_credits": 20000}]);
    app.post("/api/v1/events", call.clone()).await;
    assert_eq!(app.still_cached(&mrr).await, revenue);
    let usage = app.fresh(&llm).await;
    assert_eq!(usage["total_api_calls"], json!(1));
    assert_eq!(usage["tokens"]["total_tokens"], json!(15));
    eq(&usage["total_cost_credits"], "20000");

    // The same event again stores nothing and moves nothing.
    app.post("/api/v1/events", call).await;
    assert_eq!(app.still_cached(&llm).await, usage);

    // An entity write moves revenue and leaves the event-only answer cached.
    app.put(
        "/api/v1/customers/c9",
        json!({"created_at": "2025-11-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(app.still_cached(&llm).await, usage);
    assert_eq!(app.fresh(&mrr).await, revenue);
}

async fn two_instances_see_each_others_writes(store: TestStore) {
    let a = setup(&store, ServerConfig::default()).await;
    // Another process: its own pool on the same database, its own caches.
    let b = Instance::new(store.reopen().await, &a.secret, ServerConfig::default());
    let mrr = at("/api/v1/analytics/revenue/mrr");
    let llm = at("/api/v1/llm/usage/summary?range=month");
    for app in [&a, &b] {
        eq(&app.warm(&mrr).await["current_mrr"], "100");
        assert_eq!(app.warm(&llm).await["total_api_calls"], json!(0));
    }

    // A writes a plan price: B's response and book caches both move on.
    a.put(
        "/api/v1/plans/basic",
        json!({"name": "Basic", "tier": "basic", "interval": "month", "amount": "120.00", "currency": "USD"}),
    )
    .await;
    eq(&b.fresh(&mrr).await["current_mrr"], "120");
    eq(&a.fresh(&mrr).await["current_mrr"], "120");

    // B ingests an LLM call: A's usage answer moves on, its revenue answer stays.
    b.post(
        "/api/v1/events",
        json!([{"id": "l1", "time": "2025-11-19T10:00:00Z", "service": "llm_api",
                "model": "gpt-4o", "provider": "openai", "cost_credits": 10}]),
    )
    .await;
    assert_eq!(a.fresh(&llm).await["total_api_calls"], json!(1));
    eq(&a.still_cached(&mrr).await["current_mrr"], "120");
}

/// Writes straight into the database, past the store and so past the data version: only
/// a request that bypasses the cache can see it.
async fn write_behind_the_stores_back(store: &TestStore, sql: &str) {
    use sqlx::Connection;
    if store.url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&store.url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(&store.url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

async fn cache_control_bypasses(store: TestStore) {
    let app = setup(&store, ServerConfig::default()).await;
    app.post(
        "/api/v1/costs",
        json!([{"month": "2025-11", "category": "infrastructure", "service": "db", "amount": "50.00"}]),
    )
    .await;
    let billing = at("/api/v1/billing/analytics/summary");
    let infra = |v: &Value| v["costs"]["infrastructure"].clone();
    eq(&infra(&app.warm(&billing).await), "50");

    // 50.00 → 70.00 without the store: the cache cannot know, by design.
    write_behind_the_stores_back(
        &store,
        "UPDATE costs SET amount = 7000 WHERE service = 'db'",
    )
    .await;
    eq(&infra(&app.still_cached(&billing).await), "50");

    // no-store: computed again, and nothing stored.
    let a = app
        .get_with(&billing, &[("cache-control", "no-store")])
        .await;
    assert_eq!(a.cache.as_deref(), Some("bypass"));
    eq(&infra(&a.json()), "70");
    eq(&infra(&app.still_cached(&billing).await), "50");

    // no-cache: computed again, and the fresh answer replaces the stored one.
    let a = app
        .get_with(&billing, &[("cache-control", "max-age=0, no-cache")])
        .await;
    assert_eq!(a.cache.as_deref(), Some("bypass"));
    eq(&infra(&a.json()), "70");
    eq(&infra(&app.still_cached(&billing).await), "70");
}

async fn errors_and_now_are_not_cached(store: TestStore) {
    let app = setup(&store, ServerConfig::default()).await;
    let entries = || app.state.cache.response_entries();
    for (path, status) in [
        (at("/api/v1/analytics/revenue/mrr?months=99"), 422),
        (at("/api/v1/metering/service/nope"), 404),
        (at("/api/v1/llm/costs?period=0d"), 422),
    ] {
        for _ in 0..2 {
            let a = app.get(&path).await;
            assert_eq!(a.status, status, "{path}: {}", a.text());
            assert_eq!(a.cache.as_deref(), Some("miss"), "{path}");
        }
    }
    // An as_of that does not parse is the handler's 422, never looked up.
    let a = app
        .get("/api/v1/analytics/revenue/mrr?as_of=yesterday")
        .await;
    assert_eq!(
        (a.status, a.cache.as_deref()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bypass"))
    );
    // Without as_of the answer is at "now", which never comes again: computed each time.
    for _ in 0..2 {
        let a = app.get("/api/v1/analytics/revenue/mrr").await;
        assert_eq!(
            (a.status, a.cache.as_deref()),
            (StatusCode::OK, Some("bypass"))
        );
        eq(&a.json()["current_mrr"], "100");
    }
    assert_eq!(entries(), 0);
    // Routes other than the analytics are never cached and carry no header.
    let a = app.get("/api/v1/plans/basic").await;
    assert_eq!((a.status, a.cache), (StatusCode::OK, None));
    app.warm(&at("/api/v1/analytics/revenue/mrr")).await;
    assert_eq!(entries(), 1);
}

async fn access_and_rate_limits_apply_to_cached_answers(store: TestStore) {
    let config = ServerConfig {
        rate_limit_per_second: 1,
        rate_limit_burst: 3,
        ..ServerConfig::default()
    };
    let app = setup(&store, config).await;
    let mrr = at("/api/v1/analytics/revenue/mrr");
    let analyst = add_key(store.store.as_ref(), Role::Analyst).await;
    let ingest = add_key(store.store.as_ref(), Role::Ingest).await;
    let first = app.send(&analyst, Method::GET, &mrr, &[], None).await;
    assert_eq!(
        (first.status, first.cache.as_deref()),
        (StatusCode::OK, Some("miss"))
    );

    // The answer is cached, yet a key that may not read and no key at all are refused.
    let a = app.send(&ingest, Method::GET, &mrr, &[], None).await;
    assert_eq!((a.status, a.cache), (StatusCode::FORBIDDEN, None));
    let a = app.send("", Method::GET, &mrr, &[], None).await;
    assert_eq!((a.status, a.cache), (StatusCode::UNAUTHORIZED, None));

    // Hits cost the analyst's tokens like any request: a burst of 3 runs out (one token a
    // second comes back, so ten requests in well under seven seconds must meet a 429).
    let mut limited = false;
    for _ in 0..10 {
        let a = app.send(&analyst, Method::GET, &mrr, &[], None).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(a.cache, None);
            limited = true;
            break;
        }
        assert_eq!(
            (a.status, a.cache.as_deref()),
            (StatusCode::OK, Some("hit"))
        );
    }
    assert!(limited, "cached answers must count against the rate limit");
}

/// The 21 analytics endpoints, with the dashboard's parameters.
const ENDPOINTS: [&str; 21] = [
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
    "/api/v1/metering/service/search?period=this_month",
    "/api/v1/metering/summary?period=this_month",
    "/api/v1/billing/analytics/summary",
];

async fn cached_bodies_are_the_computed_ones(store: TestStore) {
    let app = setup(&store, ServerConfig::default()).await;
    app.put(
        "/api/v1/invoices/i1",
        json!({"customer_id": "c1", "amount": "100.00", "currency": "USD", "status": "paid",
               "issued_at": "2025-11-01T00:00:00Z", "paid_at": "2025-11-02T00:00:00Z"}),
    )
    .await;
    app.post(
        "/api/v1/events",
        json!([
            {"id": "l1", "time": "2025-11-19T10:00:00Z", "customer_id": "c1", "service": "llm_api",
             "model": "gpt-4o", "provider": "openai", "input_tokens": 10, "output_tokens": 5},
            {"id": "s1", "time": "2025-11-20T10:00:00Z", "customer_id": "c1", "service": "search",
             "latency_ms": 120, "status_code": 200},
            {"id": "h1", "type": "health_check", "time": "2025-11-20T08:00:00Z", "service": "search", "up": true}
        ]),
    )
    .await;
    for path in ENDPOINTS.map(at) {
        let computed = app.get_with(&path, &[("cache-control", "no-store")]).await;
        assert_eq!(computed.status, 200, "{path}: {}", computed.text());
        assert_eq!(computed.cache.as_deref(), Some("bypass"), "{path}");
        let stored = app.get(&path).await;
        assert_eq!(stored.cache.as_deref(), Some("miss"), "{path}");
        let served = app.get(&path).await;
        assert_eq!(served.cache.as_deref(), Some("hit"), "{path}");
        assert_eq!(computed.body, stored.body, "{path}");
        assert_eq!(computed.body, served.body, "{path}");
    }
    assert_eq!(app.state.cache.response_entries(), 21);
}

/// Every analytics endpoint of the API description is cached with its data dependencies
/// stated, and nothing else is (the alert rules list is an entity read, not an analysis).
#[test]
fn every_analytics_endpoint_is_in_the_cache_table() {
    let api = tally_server::openapi();
    let mut analytics: Vec<String> = api
        .paths
        .paths
        .iter()
        .filter(|(_, item)| {
            item.get
                .as_ref()
                .and_then(|op| op.tags.as_ref())
                .is_some_and(|tags| tags.iter().any(|t| t == "analytics"))
        })
        .map(|(path, _)| path.clone())
        .filter(|p| p != "/api/v1/alert-rules")
        .collect();
    analytics.sort();
    let mut cached: Vec<String> = tally_server::cache::ROUTES
        .iter()
        .map(|(r, _)| r.to_string())
        .collect();
    cached.sort();
    assert_eq!(analytics, cached);
    let endpoints: std::collections::BTreeSet<&str> = ENDPOINTS
        .iter()
        .map(|e| e.split('?').next().unwrap())
        .collect();
    assert_eq!(endpoints.len(), 21);
}
