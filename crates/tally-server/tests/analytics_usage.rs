//! The usage side of the analytics (LLM, services, metering) against a small fixture whose
//! every figure is worked out by hand in the comments.
//!
//! The fixture, as of 2025-11-20T12:00:00Z (also the fixed clock):
//!
//! plans: basic (tier basic, 10.00/month), pro (tier pro, 50.00/month)
//! customers: c1, c2, c3, c4
//! subscriptions: s1 c1 basic from 2025-09-01, changed to pro at 2025-11-10T00:00Z
//!                s2 c2 pro from 2025-09-01
//!                s3 c3 basic from 2025-11-01, trial until 2025-12-01 (a trial customer)
//!                c4 has none
//!
//! usage events (service llm_api unless noted; quantity 1 unless noted):
//! | id  | time             | cust | model / provider          | in   | out | cost  | hit   | ms   | status |
//! | e1  | 11-05 10:00      | c1   | gpt-4o / openai           | 1000 | 200 | 4     | false | 800  | 200 |
//! | e2  | 11-12 10:00      | c1   | gpt-4o / openai           | 2000 | 400 | 8     | false | 1000 | 200 |
//! | e3  | 11-12 11:00      | c1   | gpt-4o / openai           | 1000 | 200 | 0     | true  | 50   | 200 |
//! | e4  | 11-15 09:00      | c2   | claude-3-5-haiku / anthr. | 1000 | 500 | priced| false | 600  | 200 |
//! | e5  | 11-16 09:00      | c2   | claude-3-5-haiku / anthr. | 500  | 100 | 0     | true  | 30   | 200 |
//! | e6  | 11-18 09:00      | c3   | gpt-4o / openai           | 500  | 100 | 2     | false | 700  | 500 |
//! | e7  | 11-19 09:00      | —    | my-local-llm / local      | 100  | 10  | none  | —     | 400  | 200 |
//! | e8  | 10-25 09:00      | c2   | gpt-4o / openai           | 1000 | 100 | 3     | false | 900  | 200 |
//! | e14 | 11-20 10:00      | c2   | gpt-4o / openai           | 100  | 50  | 1     | false | 500  | 502 |
//! | e13 | 11-21 09:00      | c1   | gpt-4o / openai (after as_of: ignored everywhere) | cost 100 |
//! search events (no model):
//! | e9  | 10-10 09:00      | c1   | quantity 5                                         | 100  | 200 |
//! | e10 | 11-19 12:00      | c4   | quantity 2                                         | 120  | 503 |
//! | e11 | 11-20 11:00      | c1   | quantity 1                                         | 80   | 200 |
//! | e12 | 11-20 11:30      | c2   | quantity 1.5                                       | 100  | —   |
//!
//! e4 is priced from the built-in table: 1000 × $0.80/M + 500 × $4/M = $0.0028 = 2.8
//! credits at 1000 credits per dollar. e7's model has no price: 0 credits, unpriced.
//!
//! health checks of llm_api: 11-19 06:00 down, 11-20 06:00 up, 11-20 08:00 down,
//! 11-20 10:00 up; none for search.
//! gauge llm_cache_size_bytes: 11-01 1048576, 11-19 5242880, 11-21 10485760 (after as_of).
//! invoices: i1 c2 50.00 paid 11-02; i2 c1 10.00 paid 10-05; i3 c1 10.00 failed 11-03;
//!           i4 c2 50.00 paid 11-25 (after as_of).
//! costs: 2025-11 infrastructure llm_api 30.00, search 10.00; 2025-11 other (shared) 5.00;
//!        2025-10 infrastructure llm_api 99.00.
//! services: llm_api (unit_type requests), search (unit_type queries), reports (no events).

use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::Arc;
use tally_core::input::CurrencyPolicy;
use tally_core::pricing::PriceTable;
use tally_core::time::{parse_instant, Micros};
use tally_server::analytics::usage::figures;
use tally_server::{AppState, Clock, ServerConfig};
use tally_store::Span;
use tally_testkit::{both_stores, TestApp, TestStore};

const AS_OF: &str = "2025-11-20T12:00:00Z";

fn t(s: &str) -> Micros {
    parse_instant("t", s).unwrap()
}

/// A JSON number (or numeric string) as an exact decimal.
fn d(v: &Value) -> Decimal {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("not a number: {other}"),
    };
    Decimal::from_str(&text).unwrap_or_else(|_| Decimal::from_scientific(&text).unwrap())
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Asserts a JSON number equals the decimal text `want` (or is null for "null").
#[track_caller]
fn eq(v: &Value, want: &str) {
    if want == "null" {
        assert!(v.is_null(), "expected null, got {v}");
    } else {
        assert_eq!(d(v), dec(want), "got {v}, want {want}");
    }
}

fn ev(id: &str, time: &str, cust: Option<&str>, service: &str) -> Value {
    let mut e = json!({"id": id, "time": time, "service": service});
    if let Some(c) = cust {
        e["customer_id"] = json!(c);
    }
    e
}

#[allow(clippy::too_many_arguments)]
fn llm(
    id: &str,
    time: &str,
    cust: Option<&str>,
    model: &str,
    provider: &str,
    tokens: (i64, i64),
    cost: Option<&str>,
    hit: Option<bool>,
    ms: i64,
    status: i64,
) -> Value {
    let mut e = ev(id, time, cust, "llm_api");
    e["model"] = json!(model);
    e["provider"] = json!(provider);
    e["input_tokens"] = json!(tokens.0);
    e["output_tokens"] = json!(tokens.1);
    if let Some(c) = cost {
        e["cost_credits"] = json!(c);
    }
    if let Some(h) = hit {
        e["cache_hit"] = json!(h);
    }
    e["latency_ms"] = json!(ms);
    e["status_code"] = json!(status);
    e
}

async fn ok(app: &TestApp, r: (axum::http::StatusCode, Value)) -> Value {
    let _ = app;
    assert!(r.0.is_success(), "{} {}", r.0, r.1);
    r.1
}

async fn fixture(store: TestStore) -> TestApp {
    let app = TestApp::new(store, t(AS_OF)).await;
    for (id, tier, amount) in [("basic", "basic", "10.00"), ("pro", "pro", "50.00")] {
        let r = app
            .put(&format!("/api/v1/plans/{id}"), json!({"name": id, "tier": tier, "interval": "month", "amount": amount, "currency": "USD"}))
            .await;
        ok(&app, r).await;
    }
    for c in ["c1", "c2", "c3", "c4"] {
        let r = app
            .put(
                &format!("/api/v1/customers/{c}"),
                json!({"created_at": "2025-09-01T00:00:00Z"}),
            )
            .await;
        ok(&app, r).await;
    }
    let subs = [
        (
            "s1",
            json!({"customer_id": "c1", "plan_id": "basic", "started_at": "2025-09-01T00:00:00Z"}),
        ),
        (
            "s2",
            json!({"customer_id": "c2", "plan_id": "pro", "started_at": "2025-09-01T00:00:00Z"}),
        ),
        (
            "s3",
            json!({"customer_id": "c3", "plan_id": "basic", "started_at": "2025-11-01T00:00:00Z", "trial_ends_at": "2025-12-01T00:00:00Z"}),
        ),
    ];
    for (id, body) in subs {
        let r = app.put(&format!("/api/v1/subscriptions/{id}"), body).await;
        ok(&app, r).await;
    }
    let r = app
        .post(
            "/api/v1/subscriptions/s1/changes",
            json!({"effective_at": "2025-11-10T00:00:00Z", "plan_id": "pro"}),
        )
        .await;
    ok(&app, r).await;
    let invoices = [
        (
            "i1",
            "c2",
            "50.00",
            "paid",
            "2025-11-01T00:00:00Z",
            Some("2025-11-02T00:00:00Z"),
        ),
        (
            "i2",
            "c1",
            "10.00",
            "paid",
            "2025-10-01T00:00:00Z",
            Some("2025-10-05T00:00:00Z"),
        ),
        ("i3", "c1", "10.00", "failed", "2025-11-03T00:00:00Z", None),
        (
            "i4",
            "c2",
            "50.00",
            "paid",
            "2025-11-25T00:00:00Z",
            Some("2025-11-25T00:00:00Z"),
        ),
    ];
    for (id, c, amount, status, issued, paid) in invoices {
        let mut body = json!({"customer_id": c, "amount": amount, "currency": "USD", "status": status, "issued_at": issued});
        if let Some(p) = paid {
            body["paid_at"] = json!(p);
        }
        let r = app.put(&format!("/api/v1/invoices/{id}"), body).await;
        ok(&app, r).await;
    }
    let costs = json!([
        {"month": "2025-11", "category": "infrastructure", "service": "llm_api", "amount": "30.00"},
        {"month": "2025-11", "category": "infrastructure", "service": "search", "amount": "10.00"},
        {"month": "2025-11", "category": "other", "service": "", "amount": "5.00"},
        {"month": "2025-10", "category": "infrastructure", "service": "llm_api", "amount": "99.00"},
    ]);
    let r = app.post("/api/v1/costs", costs).await;
    ok(&app, r).await;
    for (name, unit) in [
        ("llm_api", Some("requests")),
        ("search", Some("queries")),
        ("reports", None),
    ] {
        let body = match unit {
            Some(u) => json!({"unit_type": u}),
            None => json!({}),
        };
        let r = app.put(&format!("/api/v1/services/{name}"), body).await;
        ok(&app, r).await;
    }

    let (c1, c2, c3, c4) = (Some("c1"), Some("c2"), Some("c3"), Some("c4"));
    let mut events = vec![
        llm(
            "e1",
            "2025-11-05T10:00:00Z",
            c1,
            "gpt-4o",
            "openai",
            (1000, 200),
            Some("4"),
            Some(false),
            800,
            200,
        ),
        llm(
            "e2",
            "2025-11-12T10:00:00Z",
            c1,
            "gpt-4o",
            "openai",
            (2000, 400),
            Some("8"),
            Some(false),
            1000,
            200,
        ),
        llm(
            "e3",
            "2025-11-12T11:00:00Z",
            c1,
            "gpt-4o",
            "openai",
            (1000, 200),
            Some("0"),
            Some(true),
            50,
            200,
        ),
        llm(
            "e4",
            "2025-11-15T09:00:00Z",
            c2,
            "claude-3-5-haiku",
            "anthropic",
            (1000, 500),
            None,
            Some(false),
            600,
            200,
        ),
        llm(
            "e5",
            "2025-11-16T09:00:00Z",
            c2,
            "claude-3-5-haiku",
            "anthropic",
            (500, 100),
            Some("0"),
            Some(true),
            30,
            200,
        ),
        llm(
            "e6",
            "2025-11-18T09:00:00Z",
            c3,
            "gpt-4o",
            "openai",
            (500, 100),
            Some("2"),
            Some(false),
            700,
            500,
        ),
        llm(
            "e7",
            "2025-11-19T09:00:00Z",
            None,
            "my-local-llm",
            "local",
            (100, 10),
            None,
            None,
            400,
            200,
        ),
        llm(
            "e8",
            "2025-10-25T09:00:00Z",
            c2,
            "gpt-4o",
            "openai",
            (1000, 100),
            Some("3"),
            Some(false),
            900,
            200,
        ),
        llm(
            "e14",
            "2025-11-20T10:00:00Z",
            c2,
            "gpt-4o",
            "openai",
            (100, 50),
            Some("1"),
            Some(false),
            500,
            502,
        ),
        llm(
            "e13",
            "2025-11-21T09:00:00Z",
            c1,
            "gpt-4o",
            "openai",
            (1000, 100),
            Some("100"),
            Some(false),
            5,
            500,
        ),
    ];
    for (id, time, cust, qty, ms, status) in [
        ("e9", "2025-10-10T09:00:00Z", c1, "5", 100, Some(200)),
        ("e10", "2025-11-19T12:00:00Z", c4, "2", 120, Some(503)),
        ("e11", "2025-11-20T11:00:00Z", c1, "1", 80, Some(200)),
        ("e12", "2025-11-20T11:30:00Z", c2, "1.5", 100, None),
    ] {
        let mut e = ev(id, time, cust, "search");
        e["quantity"] = json!(qty);
        e["latency_ms"] = json!(ms);
        if let Some(s) = status {
            e["status_code"] = json!(s);
        }
        events.push(e);
    }
    for (id, time, up) in [
        ("h1", "2025-11-19T06:00:00Z", false),
        ("h2", "2025-11-20T06:00:00Z", true),
        ("h3", "2025-11-20T08:00:00Z", false),
        ("h4", "2025-11-20T10:00:00Z", true),
    ] {
        events.push(
            json!({"id": id, "type": "health_check", "time": time, "service": "llm_api", "up": up}),
        );
    }
    for (id, time, bytes) in [
        ("g1", "2025-11-01T00:00:00Z", 1048576),
        ("g2", "2025-11-19T00:00:00Z", 5242880),
        ("g3", "2025-11-21T00:00:00Z", 10485760),
    ] {
        events.push(json!({"id": id, "type": "gauge", "time": time, "name": "llm_cache_size_bytes", "value": bytes}));
    }
    let n = events.len();
    let r = app.post("/api/v1/events", Value::Array(events)).await;
    let body = ok(&app, r).await;
    assert_eq!(body["accepted"], json!(n), "{body}");
    app
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get(path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn state(app: &TestApp) -> AppState {
    AppState::new(
        app.store.store.clone(),
        ServerConfig::default(),
        PriceTable::builtin(1000.into()),
        CurrencyPolicy::default(),
        Clock::Fixed(t(AS_OF)),
    )
}

async fn figures_of_the_composites(store: TestStore) {
    let app = fixture(store).await;
    let s = state(&app);
    // Month-to-date: 2025-11-01 through as_of.
    let mtd = Span::through(t("2025-11-01T00:00:00Z"), t(AS_OF));
    // llm_api e1–e7, e14 (8) + search e10, e11, e12 (3); e13 is after as_of.
    assert_eq!(figures::api_calls(&s, mtd).await.unwrap(), 11);
    // c1, c2, c3, c4 (e7 has no customer).
    assert_eq!(figures::active_customers(&s, mtd).await.unwrap(), 4);
    // Statuses: 200 ×7 (e1–e5, e7, e11) and 500, 502, 503 (e6, e14, e10); e12 has none:
    // 3 / 10 = 30 %.
    assert_eq!(figures::error_rate(&s, mtd).await.unwrap(), Some(dec("30")));
    // Latencies 800+1000+50+600+30+700+400+500 (llm) + 120+80+100 (search) = 4380 over 11.
    assert_eq!(
        figures::avg_response_time_ms(&s, mtd).await.unwrap(),
        Some(dec("4380") / dec("11"))
    );
    // LLM cost 4+8+0+2.8+0+2+0+1 = 17.8 credits = $0.0178.
    assert_eq!(figures::llm_cost(&s, mtd).await.unwrap(), dec("0.0178"));
    // Checks in the month: h1 down, h2 up, h3 down, h4 up: 50 %.
    assert_eq!(figures::uptime(&s, mtd).await.unwrap(), Some(dec("50")));
    // The 24 hours before as_of hold h2, h3, h4: 2 of 3 up.
    let day = Span::new(t("2025-11-19T12:00:00Z") + 1, t(AS_OF) + 1);
    assert_eq!(
        figures::uptime(&s, day).await.unwrap(),
        Some(dec("200") / dec("3"))
    );
    // No checks at all in October.
    let oct = Span::new(t("2025-10-01T00:00:00Z"), t("2025-11-01T00:00:00Z"));
    assert_eq!(figures::uptime(&s, oct).await.unwrap(), None);
}

async fn llm_usage_summary(store: TestStore) {
    let app = fixture(store).await;
    // range=month: 2025-10-22T00:00Z through as_of: e1–e8 and e14 are LLM calls (9).
    let b = get(&app, "/api/v1/llm/usage/summary?range=month").await;
    assert_eq!(b["time_range"], "month");
    assert_eq!(b["total_api_calls"], 9);
    // input 1000+2000+1000+1000+500+500+100+1000+100 = 7200; output 200+400+200+500+100+100+10+100+50 = 1660.
    assert_eq!(b["tokens"]["input_tokens"], 7200);
    assert_eq!(b["tokens"]["output_tokens"], 1660);
    assert_eq!(b["tokens"]["total_tokens"], 8860);
    // 4+8+0+2.8+0+2+0+3+1 = 20.8 credits; per call 20.8 / 9 = 2.311… → 2.31.
    eq(&b["total_cost_credits"], "20.8");
    eq(&b["average_cost_per_call"], "2.31");
    assert_eq!(b["unpriced_calls"], 1);
    let m = b["top_models"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    // gpt-4o: e1, e2, e3, e6, e8, e14 = 6 calls (6/9 = 66.67 %), cost 4+8+0+2+3+1 = 18,
    // input 1000+2000+1000+500+1000+100 = 5600, output 200+400+200+100+100+50 = 1050.
    assert_eq!(
        (m[0]["model"].as_str(), m[0]["provider"].as_str()),
        (Some("gpt-4o"), Some("openai"))
    );
    assert_eq!(m[0]["api_calls"], 6);
    assert_eq!(
        (
            m[0]["input_tokens"].clone(),
            m[0]["output_tokens"].clone(),
            m[0]["total_tokens"].clone()
        ),
        (json!(5600), json!(1050), json!(6650))
    );
    eq(&m[0]["cost_credits"], "18");
    eq(&m[0]["percentage"], "66.67");
    // claude-3-5-haiku: e4, e5 = 2 calls (22.22 %), 2.8 credits, 1500 + 600 tokens.
    assert_eq!(m[1]["model"], "claude-3-5-haiku");
    assert_eq!(m[1]["api_calls"], 2);
    assert_eq!(m[1]["total_tokens"], 2100);
    eq(&m[1]["cost_credits"], "2.8");
    eq(&m[1]["percentage"], "22.22");
    // my-local-llm: e7, 1 call (11.11 %), unpriced.
    assert_eq!(m[2]["model"], "my-local-llm");
    eq(&m[2]["percentage"], "11.11");
    eq(&m[2]["cost_credits"], "0");
    assert_eq!(m[2]["unpriced_calls"], 1);

    // range=day: 2025-11-20 from midnight: e14 only.
    let b = get(&app, "/api/v1/llm/usage/summary?range=day").await;
    assert_eq!(b["total_api_calls"], 1);
    eq(&b["total_cost_credits"], "1");
    eq(&b["average_cost_per_call"], "1");
    // An earlier as_of with no calls at all: the average is undefined.
    let b = get(
        &app,
        "/api/v1/llm/usage/summary?range=week&as_of=2025-10-01",
    )
    .await;
    assert_eq!(b["total_api_calls"], 0);
    eq(&b["average_cost_per_call"], "null");
    assert_eq!(b["top_models"], json!([]));
}

async fn llm_costs(store: TestStore) {
    let app = fixture(store).await;
    let b = get(&app, "/api/v1/llm/costs?period=30d").await;
    assert_eq!(b["period"], "30d");
    // Same 30 days as range=month: 20.8 credits, 20.8 / 30 = 0.6933… → 0.69 a day.
    eq(&b["total_cost_credits"], "20.8");
    eq(&b["average_daily_cost"], "0.69");
    let by_model = b["cost_by_model"].as_array().unwrap();
    // 18 / 20.8 = 86.538 %, 2.8 / 20.8 = 13.462 %, 0.
    assert_eq!(by_model[0]["model"], "gpt-4o");
    eq(&by_model[0]["cost_credits"], "18");
    assert_eq!(by_model[0]["api_calls"], 6);
    eq(&by_model[0]["percentage"], "86.54");
    assert_eq!(by_model[1]["model"], "claude-3-5-haiku");
    eq(&by_model[1]["percentage"], "13.46");
    assert_eq!(by_model[2]["model"], "my-local-llm");
    eq(&by_model[2]["percentage"], "0");
    // Tier at each call: e1 (c1 before the 11-10 upgrade) basic 4; e2, e3 (c1 after) pro
    // 8 + 0; e4, e5, e8, e14 (c2) pro 2.8 + 0 + 3 + 1; e6 (c3 in trial) trial 2; e7 (no
    // customer) none 0. pro = 14.8 (71.15 %), basic 4 (19.23 %), trial 2 (9.62 %).
    let tiers: Vec<(String, Decimal, Value)> = b["cost_by_tier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tier"].as_str().unwrap().to_string(),
                d(&r["cost_credits"]),
                r["percentage"].clone(),
            )
        })
        .collect();
    let names: Vec<&str> = tiers.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(names, ["pro", "basic", "trial", "none"]);
    assert_eq!(
        tiers.iter().map(|x| x.1).collect::<Vec<_>>(),
        [dec("14.8"), dec("4"), dec("2"), dec("0")]
    );
    eq(&tiers[0].2, "71.15");
    eq(&tiers[1].2, "19.23");
    eq(&tiers[2].2, "9.62");
    eq(&tiers[3].2, "0");
    let trend = b["daily_trend"].as_array().unwrap();
    assert_eq!(trend.len(), 30);
    assert_eq!(trend[0]["date"], "2025-10-22");
    assert_eq!(trend[29]["date"], "2025-11-20");
    // 2025-10-25 is row 3: e8, 3 credits, 1100 tokens.
    assert_eq!(trend[3]["date"], "2025-10-25");
    eq(&trend[3]["cost_credits"], "3");
    assert_eq!(trend[3]["total_tokens"], 1100);
    // 2025-11-12 is row 21: e2 + e3, 8 credits, 2400 + 1200 tokens.
    assert_eq!(trend[21]["date"], "2025-11-12");
    assert_eq!(trend[21]["api_calls"], 2);
    eq(&trend[21]["cost_credits"], "8");
    assert_eq!(trend[21]["total_tokens"], 3600);
    // A quiet day is a zero row.
    assert_eq!(trend[10]["date"], "2025-11-01");
    assert_eq!(trend[10]["api_calls"], 0);
    eq(&trend[10]["cost_credits"], "0");
    // The sum of the trend is the total.
    let sum: Decimal = trend.iter().map(|r| d(&r["cost_credits"])).sum();
    assert_eq!(sum, dec("20.8"));

    // period=7d: 2025-11-14 through as_of: e4 2.8, e5 0, e6 2, e7 0, e14 1 = 5.8; 5.8/7 = 0.83.
    let b = get(&app, "/api/v1/llm/costs?period=7d").await;
    eq(&b["total_cost_credits"], "5.8");
    eq(&b["average_daily_cost"], "0.83");
    assert_eq!(b["daily_trend"].as_array().unwrap().len(), 7);
    assert_eq!(b["unpriced_calls"], 1);
}

/// A gpt-4o call of `cust` with these tokens and cost (credits), 100 ms, status 200.
fn gpt_call(id: &str, time: &str, cust: &str, tokens: (i64, i64), cost: &str) -> Value {
    llm(
        id,
        time,
        Some(cust),
        "gpt-4o",
        "openai",
        tokens,
        Some(cost),
        None,
        100,
        200,
    )
}

/// `cost_by_tier` of `llm/costs` at `path`: (tier, credits, calls).
async fn cost_by_tier(app: &TestApp, path: &str) -> Vec<(String, Decimal, i64)> {
    get(app, path).await["cost_by_tier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tier"].as_str().unwrap().to_string(),
                d(&r["cost_credits"]),
                r["api_calls"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn tier_rows(rows: &[(&str, &str, i64)]) -> Vec<(String, Decimal, i64)> {
    rows.iter()
        .map(|(t, c, n)| (t.to_string(), dec(c), *n))
        .collect()
}

/// `llm/costs` keeps each whole day's cost by tier with the book: a day is attributed
/// again when its LLM calls change, every day when the book does, and the answers stay
/// those worked out by hand.
async fn llm_costs_kept_days(store: TestStore) {
    let app = fixture(store).await;
    // Days with LLM calls: 10-25, 11-05, 11-12, 11-15, 11-16, 11-18, 11-19, 11-20 and
    // 11-21 (e13, after as_of but before the clock's tomorrow): 9, all warmed.
    let warmed = tally_server::cache::warm(&app.state).await.unwrap();
    assert_eq!(warmed.llm_tier_days, 9);
    let kept = || async {
        app.state
            .cache
            .book_and_llm_tiers(&app.state)
            .await
            .unwrap()
            .1
    };
    let first = kept().await;
    assert_eq!(first.computed(), 9);
    // The end of 11-20: whole days only. As in `llm_costs`: pro e2, e3, e4, e5, e8, e14
    // (8 + 0 + 2.8 + 0 + 3 + 1); basic e1; trial e6; none e7.
    let path = "/api/v1/llm/costs?period=30d&as_of=2025-11-20";
    assert_eq!(
        cost_by_tier(&app, path).await,
        tier_rows(&[
            ("pro", "14.8", 6),
            ("basic", "4", 1),
            ("trial", "2", 1),
            ("none", "0", 1)
        ])
    );
    assert_eq!(first.computed(), 9, "every day was kept");

    // A call on 11-12 by c1 (pro since 11-10): that day alone is attributed again.
    let x1 = gpt_call("x1", "2025-11-12T13:00:00Z", "c1", (10, 10), "5");
    ok(&app, app.post("/api/v1/events", json!([x1])).await).await;
    let with_x1 = tier_rows(&[
        ("pro", "19.8", 7),
        ("basic", "4", 1),
        ("trial", "2", 1),
        ("none", "0", 1),
    ]);
    assert_eq!(cost_by_tier(&app, path).await, with_x1);
    assert_eq!(first.computed(), 10);

    // An invoice: a new book, in which no tier moved: every day is carried over.
    let r = app
        .put(
            "/api/v1/invoices/x1",
            json!({"customer_id": "c1", "amount": "10.00", "currency": "USD", "status": "paid", "issued_at": "2025-11-18T00:00:00Z", "paid_at": "2025-11-18T00:00:00Z"}),
        )
        .await;
    ok(&app, r).await;
    assert_eq!(cost_by_tier(&app, path).await, with_x1);
    let second = kept().await;
    assert!(!Arc::ptr_eq(&first, &second), "a new book");
    assert_eq!(second.computed(), 0);

    // s2 (c2, pro) canceled at 11-15 12:00: e4 (11-15 09:00) stays pro, e5 (11-16) and
    // e14 (11-20) have no tier: pro 8 + 0 + 5 + 2.8 + 3, none 0 + 0 + 1.
    let r = app
        .post(
            "/api/v1/subscriptions/s2/cancel",
            json!({"effective_at": "2025-11-15T12:00:00Z"}),
        )
        .await;
    ok(&app, r).await;
    assert_eq!(
        cost_by_tier(&app, path).await,
        tier_rows(&[
            ("pro", "18.8", 5),
            ("basic", "4", 1),
            ("trial", "2", 1),
            ("none", "1", 3)
        ])
    );
    // Tiers differ from 11-15 12:00: the days with calls before 11-15 (10-25, 11-05,
    // 11-12) are carried over, those from 11-15 (11-15, 11-16, 11-18, 11-19, 11-20)
    // attributed again.
    let third = kept().await;
    assert_eq!(third.computed(), 5);
}

/// Whole days kept and partial days computed add up to what one attribution over the
/// whole span gives, for spans that start and end inside days, cover one day or part of
/// one, and cross the tier change of c1 (11-10) and the trial of c3.
async fn tiers_kept_by_day_equal_tiers_over_the_span(store: TestStore) {
    use tally_server::analytics::usage::tiers::TierDays;
    let app = fixture(store).await;
    let s = &app.state;
    let book = s.cache.book(s).await.unwrap();
    let kept = TierDays::default();
    let mut computed = Vec::new();
    for (a, b) in [
        ("2025-10-20T00:00:00Z", "2025-11-21T00:00:00Z"),
        ("2025-11-01T06:00:00Z", "2025-11-20T12:00:00Z"),
        ("2025-11-05T10:00:00Z", "2025-11-12T10:30:00Z"),
        ("2025-11-12T10:30:00Z", "2025-11-12T11:30:00Z"),
        ("2025-11-15T00:00:00Z", "2025-11-17T00:00:00Z"),
        ("2025-10-20T00:00:00Z", "2025-11-21T00:00:00Z"),
    ] {
        tiers_both_ways(s, &book, &kept, a, b).await;
        computed.push(kept.computed());
    }
    // The first span's 8 days with calls (10-25, 11-05, 11-12, 11-15, 11-16, 11-18,
    // 11-19, 11-20) were attributed; the last span repeats it and finds them all kept.
    assert_eq!(computed[0], 8);
    assert_eq!(computed[computed.len() - 1], computed[computed.len() - 2]);

    // A span ending on 11-12 after its last event (e2 10:00 and e3 11:00 are the day's
    // only usage events): the day is attributed from the tail and kept under its count
    // (11-05 and 11-12), and a span through the end of 11-12 then finds both kept.
    let kept = TierDays::default();
    tiers_both_ways(
        s,
        &book,
        &kept,
        "2025-11-01T00:00:00Z",
        "2025-11-12T11:30:00Z",
    )
    .await;
    assert_eq!(kept.computed(), 2);
    tiers_both_ways(
        s,
        &book,
        &kept,
        "2025-11-01T00:00:00Z",
        "2025-11-13T00:00:00Z",
    )
    .await;
    assert_eq!(kept.computed(), 2);
}

/// `by_tier_kept` over `[a, b)` with `kept` equals `by_tier` over the same span.
async fn tiers_both_ways(
    s: &AppState,
    book: &tally_core::billing::Book,
    kept: &tally_server::analytics::usage::tiers::TierDays,
    a: &str,
    b: &str,
) {
    use tally_server::analytics::usage::tiers::{by_tier, by_tier_kept};
    use tally_store::{Measure, UsageDim, UsageQuery};
    let mut q = UsageQuery::new(tally_core::event::EventKind::Usage, Span::new(t(a), t(b)))
        .only(&[Measure::Events, Measure::Cost]);
    q.llm_only = true;
    let per_day: std::collections::HashMap<i64, i64> = s
        .store
        .usage(&q.clone().group(&[UsageDim::Day]))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.day.unwrap(), r.events))
        .collect();
    let whole = by_tier(s, book, &q).await.unwrap();
    assert!(!whole.is_empty());
    let by_days = by_tier_kept(s, book, kept, &q, &per_day).await.unwrap();
    let summary = |m: &std::collections::BTreeMap<String, tally_store::UsageRow>| {
        m.iter()
            .filter(|(_, r)| r.events > 0)
            .map(|(t, r)| (t.clone(), r.events, r.cost))
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&by_days), summary(&whole), "{a} .. {b}");
}

async fn llm_cache_stats(store: TestStore) {
    let app = fixture(store).await;
    let b = get(&app, "/api/v1/llm/cache-stats?range=month").await;
    // 9 LLM calls; hits e3, e5; the other 7 are misses (e7 reports no cache_hit).
    assert_eq!(b["total_requests"], 9);
    assert_eq!(b["cache_hits"], 2);
    assert_eq!(b["cache_misses"], 7);
    eq(&b["cache_hit_rate"], "22.22");
    // gpt-4o: 1 hit × mean of misses e1, e2, e6, e8, e14 = (4+8+2+3+1)/5 = 3.6;
    // claude-3-5-haiku: 1 hit × e4's 2.8. 3.6 + 2.8 = 6.4.
    eq(&b["estimated_cost_saved_credits"], "6.4");
    assert_eq!(b["unvalued_cache_hits"], 0);
    // Latest gauge at or before as_of: 5242880 bytes = 5 MiB (the 11-21 one is later).
    eq(&b["cache_size_mb"], "5");
    // Hits 50, 30 → 40 ms; misses 800, 1000, 600, 700, 400, 900, 500 → 4900 / 7 = 700 ms.
    eq(&b["average_response_time_ms"]["cache_hit"], "40");
    eq(&b["average_response_time_ms"]["cache_miss"], "700");
    // Before any gauge and any call: nulls.
    let b = get(&app, "/api/v1/llm/cache-stats?range=day&as_of=2025-10-01").await;
    eq(&b["cache_size_mb"], "null");
    eq(&b["cache_hit_rate"], "null");
    eq(&b["average_response_time_ms"]["cache_hit"], "null");
    // range=week (11-14 through as_of): e4 miss, e5 hit, e6 miss, e7 miss, e14 miss.
    // claude: 1 hit × 2.8 = 2.8 saved. Hit rate 1/5 = 20 %.
    let b = get(&app, "/api/v1/llm/cache-stats?range=week").await;
    eq(&b["cache_hit_rate"], "20");
    eq(&b["estimated_cost_saved_credits"], "2.8");
}

async fn services_popularity(store: TestStore) {
    let app = fixture(store).await;
    let b = get(&app, "/api/v1/analytics/services/popularity").await;
    // reports is registered but has no events: not listed.
    assert_eq!(b["total_services"], 2);
    let s = b["services"].as_array().unwrap();
    // Month-to-date (11-01 through as_of): llm_api e1–e7, e14 = 8 calls by c1, c2, c3;
    // search e10, e11, e12 = 3 by c4, c1, c2; reports none.
    // Previous month to the same point (10-01 through 10-20 12:00): search e9 only;
    // the whole of October adds e8 for llm_api.
    assert_eq!(s[0]["service"], "llm_api");
    assert_eq!(
        (
            s[0]["rank"].clone(),
            s[0]["active_users"].clone(),
            s[0]["api_calls_this_month"].clone()
        ),
        (json!(1), json!(3), json!(8))
    );
    assert_eq!(s[0]["api_calls_last_month_to_date"], 0);
    assert_eq!(s[0]["api_calls_last_month"], 1);
    eq(&s[0]["growth"], "null");
    // search: (3 − 1) / 1 = +200 %.
    assert_eq!(s[1]["service"], "search");
    assert_eq!(
        (
            s[1]["rank"].clone(),
            s[1]["active_users"].clone(),
            s[1]["api_calls_this_month"].clone()
        ),
        (json!(2), json!(3), json!(3))
    );
    eq(&s[1]["growth"], "200");
}

async fn services_cost_per_user(store: TestStore) {
    let app = fixture(store).await;
    let b = get(&app, "/api/v1/analytics/services/cost-per-user").await;
    // November infrastructure: llm_api 30 + search 10 = 40 (the "other" 5 and October's
    // 99 are not infrastructure of this month). Active users month-to-date: c1–c4 = 4.
    eq(&b["total_cost"], "40");
    assert_eq!(b["active_users"], 4);
    eq(&b["cost_per_user"], "10");
    let br = b["cost_breakdown"].as_array().unwrap();
    assert_eq!(br.len(), 2);
    assert_eq!(br[0]["service"], "llm_api");
    eq(&br[0]["cost"], "30");
    eq(&br[0]["percentage"], "75");
    // llm_api's own users c1, c2, c3: 30 / 3 = 10; search's c4, c1, c2: 10 / 3 = 3.33.
    eq(&br[0]["cost_per_user"], "10");
    assert_eq!(br[1]["service"], "search");
    eq(&br[1]["percentage"], "25");
    eq(&br[1]["cost_per_user"], "3.33");
}

async fn services_adoption(store: TestStore) {
    let app = fixture(store).await;
    let b = get(&app, "/api/v1/analytics/services/adoption").await;
    // Subscribers at as_of: c1 (pro since 11-10), c2 (pro), c3 (trial); c4 has no
    // subscription. No one is on basic any more.
    assert_eq!(b["subscribers"], 3);
    assert_eq!(b["subscribers_by_tier"], json!({"pro": 2, "trial": 1}));
    let s: std::collections::HashMap<String, Value> = b["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["service"].as_str().unwrap().to_string(), x.clone()))
        .collect();
    // llm_api used by c1, c2, c3: 3/3; pro 2/2; trial 1/1.
    eq(&s["llm_api"]["overall_adoption"], "100");
    eq(&s["llm_api"]["by_tier"]["pro"], "100");
    eq(&s["llm_api"]["by_tier"]["trial"], "100");
    // search used by c4 (not a subscriber), c1, c2: 2/3 = 66.67 %; pro 2/2; trial 0/1.
    eq(&s["search"]["overall_adoption"], "66.67");
    eq(&s["search"]["by_tier"]["pro"], "100");
    eq(&s["search"]["by_tier"]["trial"], "0");
    assert_eq!(s.len(), 2);
}

async fn services_performance(store: TestStore) {
    let app = fixture(store).await;
    // 24h: (11-19 12:00, 11-20 12:00]. e10 sits exactly on the open left edge: out.
    let b = get(&app, "/api/v1/analytics/services/performance?window=24h").await;
    assert_eq!(b["window"], "24h");
    let s: std::collections::HashMap<String, Value> = b["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["service"].as_str().unwrap().to_string(), x.clone()))
        .collect();
    // llm_api: checks h2 up, h3 down, h4 up (h1 is older): 66.67 %. Calls: e14 only,
    // 500 ms, status 502 → error rate 100 %; 1 / 1440 min = 0.0007 → 0.00 a minute.
    eq(&s["llm_api"]["uptime"], "66.67");
    assert!(s["llm_api"]["uptime_note"].is_null());
    eq(&s["llm_api"]["avg_response_time_ms"], "500");
    eq(&s["llm_api"]["error_rate"], "100");
    eq(&s["llm_api"]["requests_per_minute"], "0");
    // search: no checks → null with a note; e11 (80 ms, 200) and e12 (100 ms, no status):
    // 90 ms, error rate 0 / 1.
    eq(&s["search"]["uptime"], "null");
    assert_eq!(s["search"]["uptime_note"], "no health checks in the window");
    eq(&s["search"]["avg_response_time_ms"], "90");
    eq(&s["search"]["error_rate"], "0");
    assert_eq!(s["search"]["api_calls"], 2);
    eq(&b["overall_uptime"], "66.67");
    // 1h: (11:00, 12:00]: e12 only (e11 at 11:00 is on the edge): 1 / 60 = 0.0167 → 0.02.
    let b = get(&app, "/api/v1/analytics/services/performance?window=1h").await;
    let search = b["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["service"] == "search")
        .unwrap()
        .clone();
    eq(&search["requests_per_minute"], "0.02");
    eq(&search["error_rate"], "null");
    // 30d: all four checks, 2 up: 50 %.
    let b = get(&app, "/api/v1/analytics/services/performance?window=30d").await;
    eq(&b["overall_uptime"], "50");
}

/// `metering/service` keeps each customer's totals of the days before the period's last
/// one, and of the last one apart: each is read again when its days' events change.
async fn metering_top_users_kept(store: TestStore) {
    let app = fixture(store).await;
    let users = &app.state.cache.users;
    // Services with usage events: llm_api (through e13 on 11-21) and search (through
    // 11-20): for each, the month before its last day, and its last day.
    let warmed = tally_server::cache::warm(&app.state).await.unwrap();
    assert_eq!(warmed.metered_services, 2);
    assert_eq!(users.reads(), 4);
    let top = |b: &Value| -> Vec<(String, i64, i64, Decimal)> {
        b["top_users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["customer_id"].as_str().unwrap().to_string(),
                    u["api_calls"].as_i64().unwrap(),
                    u["total_tokens"].as_i64().unwrap(),
                    d(&u["cost_credits"]),
                )
            })
            .collect()
    };
    let want = |rows: &[(&str, i64, i64, &str)]| -> Vec<(String, i64, i64, Decimal)> {
        rows.iter()
            .map(|(c, n, tokens, cost)| (c.to_string(), *n, *tokens, dec(cost)))
            .collect()
    };
    // Through the end of 11-20: 11-01 … 11-19 and 11-20 of llm_api were not kept.
    // As in `metering_service`: c1 e1–e3, c2 e4, e5, e14, c3 e6.
    let path = "/api/v1/metering/service/llm_api?period=this_month&as_of=2025-11-20";
    let b = get(&app, path).await;
    let before = want(&[
        ("c1", 3, 4800, "12"),
        ("c2", 3, 2250, "3.8"),
        ("c3", 1, 600, "2"),
    ]);
    assert_eq!(top(&b), before);
    assert_eq!(users.reads(), 6);
    assert_eq!(top(&get(&app, path).await), before);
    assert_eq!(users.reads(), 6, "kept");

    // Three calls of c3 on 11-05, a kept day: read again. c3: 4 calls, 600 + 3 × 200
    // tokens, 2 + 3 × 5 credits.
    let calls: Vec<Value> = (0..3)
        .map(|i| {
            gpt_call(
                &format!("y{i}"),
                "2025-11-05T12:00:00Z",
                "c3",
                (150, 50),
                "5",
            )
        })
        .collect();
    ok(&app, app.post("/api/v1/events", json!(calls)).await).await;
    let b = get(&app, path).await;
    assert_eq!(
        top(&b),
        want(&[
            ("c3", 4, 1200, "17"),
            ("c1", 3, 4800, "12"),
            ("c2", 3, 2250, "3.8"),
        ])
    );
    assert_eq!(users.reads(), 7);

    // A call of c2 on 11-20, the last day: only that day is read again. c2: 4 calls, 2250 + 20
    // tokens, 3.8 + 1 credits, after c3 (same calls, more cost).
    let call = gpt_call("y3", "2025-11-20T20:00:00Z", "c2", (10, 10), "1");
    ok(&app, app.post("/api/v1/events", json!([call])).await).await;
    let b = get(&app, path).await;
    assert_eq!(
        top(&b),
        want(&[
            ("c3", 4, 1200, "17"),
            ("c2", 4, 2270, "4.8"),
            ("c1", 3, 4800, "12"),
        ])
    );
    assert_eq!(users.reads(), 8);

    // `as_of` inside 11-21 after e13 (c1, 1000 + 100 tokens, 100 credits), the day's only
    // event: the tail of the period is that day, which the warm-up kept whole (llm_api's
    // last day): nothing is read.
    let at_10 = "/api/v1/metering/service/llm_api?period=this_month&as_of=2025-11-21T10:00:00Z";
    assert_eq!(
        top(&get(&app, at_10).await),
        want(&[
            ("c1", 4, 5900, "112"),
            ("c3", 4, 1200, "17"),
            ("c2", 4, 2270, "4.8"),
        ])
    );
    assert_eq!(users.reads(), 8);

    // A call of c2 at 05:00 and `as_of` 08:00: the tail holds one event, as many as was
    // kept for the day, but not the whole day (e13 lies after it): it is read, not taken
    // from what was kept.
    let call = gpt_call("z1", "2025-11-21T05:00:00Z", "c2", (30, 30), "2");
    ok(&app, app.post("/api/v1/events", json!([call])).await).await;
    let at_8 = "/api/v1/metering/service/llm_api?period=this_month&as_of=2025-11-21T08:00:00Z";
    assert_eq!(
        top(&get(&app, at_8).await),
        want(&[
            ("c2", 5, 2330, "6.8"),
            ("c3", 4, 1200, "17"),
            ("c1", 3, 4800, "12"),
        ])
    );
    assert_eq!(users.reads(), 8);

    // At 10:00 the tail holds both of the day's events: read once and kept for the day,
    // which the end of 11-21 then finds kept (only 11-01 … 11-20 is read for it).
    let with_z1 = want(&[
        ("c2", 5, 2330, "6.8"),
        ("c1", 4, 5900, "112"),
        ("c3", 4, 1200, "17"),
    ]);
    assert_eq!(top(&get(&app, at_10).await), with_z1);
    assert_eq!(users.reads(), 9);
    // Another `as_of` (so not the response cache's answer) with the same tail events.
    let at_11 = "/api/v1/metering/service/llm_api?period=this_month&as_of=2025-11-21T11:00:00Z";
    assert_eq!(top(&get(&app, at_11).await), with_z1);
    assert_eq!(users.reads(), 9, "kept");
    let end_of_day = "/api/v1/metering/service/llm_api?period=this_month&as_of=2025-11-21";
    assert_eq!(top(&get(&app, end_of_day).await), with_z1);
    assert_eq!(users.reads(), 10);
}

async fn metering_service(store: TestStore) {
    let app = fixture(store).await;
    let b = get(&app, "/api/v1/metering/service/llm_api?period=this_month").await;
    assert_eq!(b["service"], "llm_api");
    assert_eq!(b["period"], "this_month");
    assert_eq!(b["unit_type"], "requests");
    // e1–e7, e14: 8 calls; tokens 1200+2400+1200+1500+600+600+110+150 = 7760;
    // cost 4+8+0+2.8+0+2+0+1 = 17.8; 8 units of 1.
    assert_eq!(b["total_api_calls"], 8);
    assert_eq!(b["total_tokens"], 7760);
    eq(&b["total_cost_credits"], "17.8");
    eq(&b["total_units"], "8");
    // c1: e1–e3 (3 calls, 4800 tokens, 12); c2: e4, e5, e14 (3, 2250, 3.8); c3: e6.
    // c1 and c2 tie on calls; c1 costs more.
    let top = b["top_users"].as_array().unwrap();
    let ids: Vec<&str> = top
        .iter()
        .map(|u| u["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c1", "c2", "c3"]);
    assert_eq!(
        (top[0]["api_calls"].clone(), top[0]["total_tokens"].clone()),
        (json!(3), json!(4800))
    );
    eq(&top[0]["cost_credits"], "12");
    assert_eq!(top[1]["total_tokens"], 2250);
    eq(&top[1]["cost_credits"], "3.8");
    // 11-01 … 11-20: 20 rows; 11-12 holds e2, e3.
    let days = b["usage_by_day"].as_array().unwrap();
    assert_eq!(days.len(), 20);
    assert_eq!(days[0]["date"], "2025-11-01");
    assert_eq!(days[11]["date"], "2025-11-12");
    assert_eq!(
        (
            days[11]["api_calls"].clone(),
            days[11]["total_tokens"].clone()
        ),
        (json!(2), json!(3600))
    );
    eq(&days[11]["cost_credits"], "8");
    eq(&days[11]["units"], "2");
    eq(&days[1]["units"], "0");
    assert_eq!(b["unpriced_calls"], 1);

    // search this month: e10 (2), e11 (1), e12 (1.5) = 4.5 queries; one call each, no
    // cost: ties broken by id.
    let b = get(&app, "/api/v1/metering/service/search").await;
    assert_eq!(b["unit_type"], "queries");
    eq(&b["total_units"], "4.5");
    let ids: Vec<&str> = b["top_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c1", "c2", "c4"]);
    // last_month: all 31 days of October; llm_api had e8 only.
    let b = get(&app, "/api/v1/metering/service/llm_api?period=last_month").await;
    assert_eq!(b["usage_by_day"].as_array().unwrap().len(), 31);
    assert_eq!(b["total_api_calls"], 1);
    eq(&b["total_cost_credits"], "3");
    // A registered service without events: zeros, not a 404.
    let b = get(&app, "/api/v1/metering/service/reports").await;
    assert_eq!(b["total_api_calls"], 0);
    assert_eq!(b["top_users"], json!([]));
}

async fn metering_summary(store: TestStore) {
    let app = fixture(store).await;
    let b = get(&app, "/api/v1/metering/summary?period=this_month").await;
    let s = b["services"].as_array().unwrap();
    assert_eq!(s.len(), 2);
    // llm_api 8 units, 17.8 credits (100 %); search 4.5 units, 0 credits.
    assert_eq!(
        (s[0]["service"].as_str(), s[0]["unit_type"].as_str()),
        (Some("llm_api"), Some("requests"))
    );
    eq(&s[0]["units"], "8");
    eq(&s[0]["cost_credits"], "17.8");
    eq(&s[0]["percentage_of_total"], "100");
    assert_eq!(s[1]["service"], "search");
    eq(&s[1]["units"], "4.5");
    eq(&s[1]["percentage_of_total"], "0");
    eq(&b["total_cost_credits"], "17.8");
    // Revenue: i1 50.00 paid 11-02 (i4 is paid after as_of).
    eq(&b["total_revenue"], "50");
    // Costs: LLM 17.8 credits = $0.0178, infrastructure 40, other 5: 45.0178 → 45.02.
    // Margin 50 − 45.0178 = 4.9822 → 4.98, 9.9644 % → 9.96 %.
    eq(&b["costs"]["llm_usage"], "0.02");
    eq(&b["costs"]["infrastructure"], "40");
    eq(&b["costs"]["other"], "5");
    eq(&b["costs"]["total"], "45.02");
    eq(&b["gross_margin"], "4.98");
    eq(&b["gross_margin_percentage"], "9.96");
    // October: revenue i2 10.00; costs e8's 3 credits ($0.003) + 99 = 99.003;
    // margin −89.003 → −89.00; −890.03 %.
    let b = get(&app, "/api/v1/metering/summary?period=last_month").await;
    eq(&b["total_revenue"], "10");
    eq(&b["costs"]["total"], "99");
    eq(&b["gross_margin"], "-89");
    eq(&b["gross_margin_percentage"], "-890.03");
}

async fn bad_parameters(store: TestStore) {
    let app = fixture(store).await;
    let cases = [
        (
            "/api/v1/llm/usage/summary?range=fortnight",
            "range",
            "day, week, month, year",
        ),
        (
            "/api/v1/llm/cache-stats?range=2d",
            "range",
            "day, week, month, year",
        ),
        (
            "/api/v1/llm/costs?period=400d",
            "period",
            "Nd with N from 1 to 365",
        ),
        (
            "/api/v1/analytics/services/performance?window=2h",
            "window",
            "1h, 24h, 7d, 30d",
        ),
        (
            "/api/v1/metering/summary?period=yesterday",
            "period",
            "this_month, last_month",
        ),
        (
            "/api/v1/metering/service/llm_api?period=week",
            "period",
            "this_quarter",
        ),
        (
            "/api/v1/analytics/services/popularity?as_of=soon",
            "as_of",
            "RFC 3339",
        ),
    ];
    for (path, field, accepted) in cases {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 422, "{path}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(field) && msg.contains(accepted),
            "{path}: {msg}"
        );
    }
    let (status, body) = app.get("/api/v1/metering/service/nope").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
}

const ENDPOINTS: [&str; 9] = [
    "/api/v1/llm/usage/summary?range=month",
    "/api/v1/llm/costs?period=30d",
    "/api/v1/llm/cache-stats?range=month",
    "/api/v1/analytics/services/popularity",
    "/api/v1/analytics/services/cost-per-user",
    "/api/v1/analytics/services/adoption",
    "/api/v1/analytics/services/performance?window=24h",
    "/api/v1/metering/service/llm_api?period=this_month",
    "/api/v1/metering/summary?period=this_month",
];

async fn later_data_changes_nothing(store: TestStore) {
    let app = fixture(store).await;
    let mut before = Vec::new();
    for p in ENDPOINTS {
        before.push(get(&app, p).await);
    }
    // The same as_of spelled out gives the same answers as the clock's now.
    for (p, b) in ENDPOINTS.iter().zip(&before) {
        let sep = if p.contains('?') { '&' } else { '?' };
        assert_eq!(
            &get(&app, &format!("{p}{sep}as_of={AS_OF}")).await,
            b,
            "{p}"
        );
    }
    // Data dated after as_of: events of every kind, a gauge, a plan change, a paid invoice.
    let late = json!([
        {"id": "late1", "time": "2025-11-20T12:00:00.000001Z", "service": "llm_api", "customer_id": "c4",
         "model": "gpt-4o", "provider": "openai", "cost_credits": "50", "cache_hit": true, "latency_ms": 1, "status_code": 500},
        {"id": "late2", "time": "2025-11-22T00:00:00Z", "service": "newsvc", "customer_id": "c1"},
        {"id": "late3", "type": "health_check", "time": "2025-11-20T13:00:00Z", "service": "search", "up": false},
        {"id": "late4", "type": "gauge", "time": "2025-11-20T12:00:01Z", "name": "llm_cache_size_bytes", "value": 1},
    ]);
    let (status, body) = app.post("/api/v1/events", late).await;
    assert!(status.is_success(), "{body}");
    let (status, body) = app
        .post(
            "/api/v1/subscriptions/s2/changes",
            json!({"effective_at": "2025-11-21T00:00:00Z", "plan_id": "basic"}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (status, body) = app
        .put("/api/v1/invoices/late", json!({"customer_id": "c3", "amount": "9.00", "currency": "USD", "status": "paid", "issued_at": "2025-11-21T00:00:00Z", "paid_at": "2025-11-21T00:00:00Z"}))
        .await;
    assert!(status.is_success(), "{body}");
    // newsvc, first seen after as_of, is registered now but must not be listed.
    for (p, b) in ENDPOINTS.iter().zip(&before) {
        assert_eq!(&get(&app, p).await, b, "{p}");
    }
}

both_stores!(
    figures_of_the_composites,
    llm_usage_summary,
    llm_costs,
    llm_costs_kept_days,
    tiers_kept_by_day_equal_tiers_over_the_span,
    llm_cache_stats,
    services_popularity,
    services_cost_per_user,
    services_adoption,
    services_performance,
    metering_service,
    metering_top_users_kept,
    metering_summary,
    bad_parameters,
    later_data_changes_nothing,
);
