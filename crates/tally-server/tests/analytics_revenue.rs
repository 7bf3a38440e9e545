//! The revenue side of the analytics (endpoints 4–11, 16–18, 21 and alert rules) against a
//! small fixture written through the public API. Every expected value is worked out by
//! hand in the comments.
//!
//! as_of = 2025-11-20T12:00:00Z (also the fixed clock). Current month 2025-11.
//!
//! plans: basic (basic, 100.00/month), pro_m (pro, 300.00/month),
//!        pro_y (pro, 2400.00/year = 200/month), team_q (team, 900.00/quarter = 300/month)
//!
//! customers (created_at, channel):
//!   c1 2024-09-01 ads · c2 2024-09-15 ads · c3 2024-10-05 organic · c4 2025-01-10 —
//!   c5 2025-03-01 referral · c6 2025-06-10 ads · c7 2025-10-03 organic · c8 2025-10-25 ads
//!   c9 2025-11-05 ads · c10 2025-11-12 — · c12 2025-08-01 organic
//!   c11 2025-11-25 ads (after as_of: ignored)
//!
//! subscriptions → monthly amounts:
//!   s1  c1 basic from 2024-09-01 = 100; quantity 2 from 2025-05-01T00:00Z = 200 (expansion, May)
//!   s2  c2 pro_m from 2024-10-01 = 300; cancelled 2025-07-15 (churn, July)
//!   s2b c2 basic from 2025-09-10 = 100 (reactivation, September)
//!   s3  c3 pro_y from 2024-10-05 = 200; discount 50 % from 2025-11-01T00:00Z = 100
//!       (contraction; the first instant of November belongs to November)
//!   s4  c4 team_q from 2025-01-10, trial to 2025-02-10 = 300 from February (new, Feb)
//!   s5  c5 basic from 2025-03-01 = 100; cancelled 2025-11-01T00:00Z (churn, November)
//!   s6  c6 pro_m from 2025-06-10 with 10 % off = 270; quantity 3 from 2025-11-25
//!       (after as_of: ignored)
//!   s7  c7 basic from 2025-10-03 = 100 (new, October)
//!   s8  c8 pro_m from 2025-10-25, trial to 2025-11-08 = 300 (new, November)
//!   s9  c9 basic from 2025-11-05, trial to 2025-12-05 (a trial customer at as_of)
//!   s10 c10 pro_m from 2025-11-12, trial to 2025-11-19, cancelled 2025-11-19 (trial lost)
//!   s12 c12 basic from 2025-08-01, trial to 2025-08-15, cancelled 2025-08-15 (never paid)
//!   s11 c11 basic from 2025-11-25 (after as_of: ignored)
//!
//! Month-end MRR (paying customers):
//!   2024-09 100 (1) · 2024-10..2025-01 600 (3) · 2025-02 900 (4) · 2025-03, -04 1000 (5)
//!   2025-05 1100 (5) · 2025-06 1370 (6) · 2025-07 1070 (5) · 2025-08 1070 (5)
//!   2025-09 1170 (6) · 2025-10 1270 (7) · 2025-11 at as_of 1370 (7: c1 200, c2 100,
//!   c3 100, c4 300, c6 270, c7 100, c8 300)
//! November movements: new 300 (c8), contraction 100 (c3), churn 100 (c5):
//!   1270 + 300 − 100 − 100 = 1370.
//! Tiers at as_of: c1, c2, c7 basic (400); c3, c6, c8 pro (670); c4 team (300); c9 trial.
//!
//! invoices: i1 c1 200.00 paid (issued 11-01, paid 11-02); i2 c4 900.00 paid (11-10);
//!   i3 c2 100.00 failed (11-10); i4 c6 270.00 open (11-10); i5 c7 100.00 paid (issued
//!   10-31, paid 11-01); i6 c3 100.00 paid 11-21 (after as_of).
//! costs 2025-11: infrastructure llm_api 150.00, db 50.00; other shared 40.00.
//!   2025-10: infrastructure llm_api 999.00 (another month).
//! spend: 2025-08 ads 100 · 2025-09 ads 200, organic 50 · 2025-10 ads 300 ·
//!   2025-11 ads 400, referral 60.
//! events: e1 c1 11-05 llm (gpt-4o) 20000 credits = 20.00 · e2 c1 11-21 llm 5000 credits
//!   (after as_of) · e3 c2 11-10 search, 1000 credits (not LLM) · e4 c1 10-10 search ·
//!   e5 c4 10-25 search · e6 c1 11-20 10:00 search latency 300 status 500 ·
//!   e7 c2 11-20 11:00 search latency 100 status 200.
//! health checks of search: 11-19 11:00 down (outside 24 h), 11-20 06:00 up, 11-20 08:00 down.

use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use tally_core::time::{parse_instant, Micros};
use tally_testkit::{both_stores, TestApp, TestStore};

const AS_OF: &str = "2025-11-20T12:00:00Z";

fn t(s: &str) -> Micros {
    parse_instant("t", s).unwrap()
}

fn d(v: &Value) -> Decimal {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("not a number: {other}"),
    };
    Decimal::from_str(&text).unwrap_or_else(|_| Decimal::from_scientific(&text).unwrap())
}

/// Asserts a JSON number equals the decimal text `want` (or is null for "null").
#[track_caller]
fn eq(v: &Value, want: &str) {
    if want == "null" {
        assert!(v.is_null(), "expected null, got {v}");
    } else {
        assert_eq!(
            d(v),
            Decimal::from_str(want).unwrap(),
            "got {v}, want {want}"
        );
    }
}

#[track_caller]
fn ok(r: (axum::http::StatusCode, Value)) -> Value {
    assert!(r.0.is_success(), "{} {}", r.0, r.1);
    r.1
}

async fn fixture(app: &TestApp) {
    for (id, tier, interval, amount) in [
        ("basic", "basic", "month", "100.00"),
        ("pro_m", "pro", "month", "300"),
        ("pro_y", "pro", "year", "2400"),
        ("team_q", "team", "quarter", "900"),
    ] {
        ok(app.put(&format!("/api/v1/plans/{id}"), json!({"name": id, "tier": tier, "interval": interval, "amount": amount, "currency": "USD"})).await);
    }
    let customers = [
        ("c1", "2024-09-01", Some("ads")),
        ("c2", "2024-09-15", Some("ads")),
        ("c3", "2024-10-05", Some("organic")),
        ("c4", "2025-01-10", None),
        ("c5", "2025-03-01", Some("referral")),
        ("c6", "2025-06-10", Some("ads")),
        ("c7", "2025-10-03", Some("organic")),
        ("c8", "2025-10-25", Some("ads")),
        ("c9", "2025-11-05", Some("ads")),
        ("c10", "2025-11-12", None),
        ("c11", "2025-11-25", Some("ads")),
        ("c12", "2025-08-01", Some("organic")),
    ];
    for (id, created, channel) in customers {
        let mut body = json!({"created_at": format!("{created}T00:00:00Z")});
        if let Some(ch) = channel {
            body["channel"] = json!(ch);
        }
        ok(app.put(&format!("/api/v1/customers/{id}"), body).await);
    }
    // (subscription, customer, plan, started_at, trial_ends_at, discount_percent)
    type Sub<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );
    let subs: [Sub; 13] = [
        ("s1", "c1", "basic", "2024-09-01T00:00:00Z", None, None),
        ("s2", "c2", "pro_m", "2024-10-01T00:00:00Z", None, None),
        ("s2b", "c2", "basic", "2025-09-10T00:00:00Z", None, None),
        ("s3", "c3", "pro_y", "2024-10-05T00:00:00Z", None, None),
        (
            "s4",
            "c4",
            "team_q",
            "2025-01-10T00:00:00Z",
            Some("2025-02-10T00:00:00Z"),
            None,
        ),
        ("s5", "c5", "basic", "2025-03-01T00:00:00Z", None, None),
        (
            "s6",
            "c6",
            "pro_m",
            "2025-06-10T00:00:00Z",
            None,
            Some("10"),
        ),
        ("s7", "c7", "basic", "2025-10-03T00:00:00Z", None, None),
        (
            "s8",
            "c8",
            "pro_m",
            "2025-10-25T00:00:00Z",
            Some("2025-11-08T00:00:00Z"),
            None,
        ),
        (
            "s9",
            "c9",
            "basic",
            "2025-11-05T00:00:00Z",
            Some("2025-12-05T00:00:00Z"),
            None,
        ),
        (
            "s10",
            "c10",
            "pro_m",
            "2025-11-12T00:00:00Z",
            Some("2025-11-19T00:00:00Z"),
            None,
        ),
        (
            "s12",
            "c12",
            "basic",
            "2025-08-01T00:00:00Z",
            Some("2025-08-15T00:00:00Z"),
            None,
        ),
        ("s11", "c11", "basic", "2025-11-25T00:00:00Z", None, None),
    ];
    for (id, cust, plan, start, trial, discount) in subs {
        let mut body = json!({"customer_id": cust, "plan_id": plan, "started_at": start});
        if let Some(tr) = trial {
            body["trial_ends_at"] = json!(tr);
        }
        if let Some(dp) = discount {
            body["discount_percent"] = json!(dp);
        }
        ok(app.put(&format!("/api/v1/subscriptions/{id}"), body).await);
    }
    ok(app
        .post(
            "/api/v1/subscriptions/s1/changes",
            json!({"effective_at": "2025-05-01T00:00:00Z", "quantity": 2}),
        )
        .await);
    ok(app
        .post(
            "/api/v1/subscriptions/s3/changes",
            json!({"effective_at": "2025-11-01T00:00:00Z", "discount_percent": 50}),
        )
        .await);
    ok(app
        .post(
            "/api/v1/subscriptions/s6/changes",
            json!({"effective_at": "2025-11-25T00:00:00Z", "quantity": 3}),
        )
        .await);
    for (id, at) in [
        ("s2", "2025-07-15T00:00:00Z"),
        ("s5", "2025-11-01T00:00:00Z"),
        ("s10", "2025-11-19T00:00:00Z"),
        ("s12", "2025-08-15T00:00:00Z"),
    ] {
        ok(app
            .post(
                &format!("/api/v1/subscriptions/{id}/cancel"),
                json!({"effective_at": at}),
            )
            .await);
    }
    let invoices = [
        (
            "i1",
            "c1",
            "200.00",
            "paid",
            "2025-11-01T00:00:00Z",
            Some("2025-11-02T00:00:00Z"),
        ),
        (
            "i2",
            "c4",
            "900.00",
            "paid",
            "2025-11-10T00:00:00Z",
            Some("2025-11-10T00:00:00Z"),
        ),
        ("i3", "c2", "100.00", "failed", "2025-11-10T00:00:00Z", None),
        ("i4", "c6", "270.00", "open", "2025-11-10T00:00:00Z", None),
        (
            "i5",
            "c7",
            "100.00",
            "paid",
            "2025-10-31T00:00:00Z",
            Some("2025-11-01T00:00:00Z"),
        ),
        (
            "i6",
            "c3",
            "100.00",
            "paid",
            "2025-11-21T00:00:00Z",
            Some("2025-11-21T00:00:00Z"),
        ),
    ];
    for (id, cust, amount, status, issued, paid) in invoices {
        let mut body = json!({"customer_id": cust, "amount": amount, "currency": "USD", "status": status, "issued_at": issued});
        if let Some(p) = paid {
            body["paid_at"] = json!(p);
        }
        ok(app.put(&format!("/api/v1/invoices/{id}"), body).await);
    }
    ok(app
        .post(
            "/api/v1/costs",
            json!([
                {"month": "2025-11", "category": "infrastructure", "service": "llm_api", "amount": "150.00"},
                {"month": "2025-11", "category": "infrastructure", "service": "db", "amount": "50.00"},
                {"month": "2025-11", "category": "other", "service": "shared", "amount": "40.00"},
                {"month": "2025-10", "category": "infrastructure", "service": "llm_api", "amount": "999.00"}
            ]),
        )
        .await);
    ok(app
        .post(
            "/api/v1/marketing-spend",
            json!([
                {"month": "2025-08", "channel": "ads", "amount": 100},
                {"month": "2025-09", "channel": "ads", "amount": 200},
                {"month": "2025-09", "channel": "organic", "amount": 50},
                {"month": "2025-10", "channel": "ads", "amount": 300},
                {"month": "2025-11", "channel": "ads", "amount": 400},
                {"month": "2025-11", "channel": "referral", "amount": 60}
            ]),
        )
        .await);
    let events = json!([
        {"id": "e1", "time": "2025-11-05T10:00:00Z", "customer_id": "c1", "service": "llm_api", "model": "gpt-4o", "provider": "openai", "input_tokens": 10, "output_tokens": 5, "cost_credits": 20000},
        {"id": "e2", "time": "2025-11-21T10:00:00Z", "customer_id": "c1", "service": "llm_api", "model": "gpt-4o", "provider": "openai", "cost_credits": 5000},
        {"id": "e3", "time": "2025-11-10T10:00:00Z", "customer_id": "c2", "service": "search", "cost_credits": 1000},
        {"id": "e4", "time": "2025-10-10T10:00:00Z", "customer_id": "c1", "service": "search"},
        {"id": "e5", "time": "2025-10-25T10:00:00Z", "customer_id": "c4", "service": "search"},
        {"id": "e6", "time": "2025-11-20T10:00:00Z", "customer_id": "c1", "service": "search", "latency_ms": 300, "status_code": 500},
        {"id": "e7", "time": "2025-11-20T11:00:00Z", "customer_id": "c2", "service": "search", "latency_ms": 100, "status_code": 200},
        {"id": "h1", "type": "health_check", "time": "2025-11-19T11:00:00Z", "service": "search", "up": false},
        {"id": "h2", "type": "health_check", "time": "2025-11-20T06:00:00Z", "service": "search", "up": true},
        {"id": "h3", "type": "health_check", "time": "2025-11-20T08:00:00Z", "service": "search", "up": false}
    ]);
    let r = ok(app.post("/api/v1/events", events).await);
    assert_eq!(r["accepted"], json!(10), "{r}");
}

async fn setup(store: TestStore) -> TestApp {
    let app = TestApp::new(store, t(AS_OF)).await;
    fixture(&app).await;
    app
}

async fn mrr_history(store: TestStore) {
    let app = setup(store).await;
    let r = ok(app.get("/api/v1/analytics/revenue/mrr?months=14").await);
    eq(&r["current_mrr"], "1370");
    eq(&r["previous_mrr"], "1270");
    assert_eq!(r["total_months"], json!(14));
    let rows = r["mrr_data"].as_array().unwrap();
    assert_eq!(rows.len(), 14);
    let months: Vec<&str> = rows.iter().map(|m| m["month"].as_str().unwrap()).collect();
    assert_eq!((months[0], months[13]), ("2024-10", "2025-11"));
    let mrr: Vec<Decimal> = rows.iter().map(|m| d(&m["mrr"])).collect();
    let want = [
        600, 600, 600, 600, 900, 1000, 1000, 1100, 1370, 1070, 1070, 1170, 1270, 1370,
    ];
    assert_eq!(mrr, want.map(Decimal::from).to_vec());
    // 2024-10: c2 (300) and c3 (200) new; growth (600 − 100) / 100 = 500 %.
    let oct24 = &rows[0];
    assert_eq!(oct24["new_customers"], json!(2));
    eq(&oct24["new_mrr"], "500");
    eq(&oct24["growth_rate"], "500");
    // 2025-05: c1's second seat, expansion 100.
    eq(&rows[7]["expansion_mrr"], "100");
    // 2025-07: c2 leaves, churn 300, −21.90 % (300 / 1370 = 21.897…).
    assert_eq!(rows[9]["churned_customers"], json!(1));
    eq(&rows[9]["churned_mrr"], "300");
    eq(&rows[9]["growth_rate"], "-21.90");
    // 2025-08: flat, 0 %.
    eq(&rows[10]["growth_rate"], "0");
    // 2025-09: c2 returns: reactivation, not new.
    eq(&rows[11]["reactivation_mrr"], "100");
    assert_eq!(rows[11]["new_customers"], json!(0));
    assert_eq!(rows[11]["reactivated_customers"], json!(1));
    // 2025-11: new 300 (c8), contraction 100 (c3), churn 100 (c5); 100 / 1270 = 7.874 %.
    let nov = &rows[13];
    eq(&nov["new_mrr"], "300");
    eq(&nov["contraction_mrr"], "100");
    eq(&nov["churned_mrr"], "100");
    eq(&nov["expansion_mrr"], "0");
    eq(&nov["net_new_mrr"], "100");
    eq(&nov["growth_rate"], "7.87");
    assert_eq!(nov["paying_customers"], json!(7));
    assert_eq!(nov["new_customers"], json!(1));
    assert_eq!(nov["churned_customers"], json!(1));
    // Bad parameter: 422 naming the accepted values.
    let (status, body) = app.get("/api/v1/analytics/revenue/mrr?months=25").await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 to 24"),
        "{body}"
    );
    // as_of at the end of October: the current month is October, 1270.
    let r = ok(app
        .get("/api/v1/analytics/revenue/mrr?months=1&as_of=2025-10-31")
        .await);
    eq(&r["current_mrr"], "1270");
    eq(&r["mrr_data"][0]["new_mrr"], "100");
}

async fn arr_growth_and_tiers(store: TestStore) {
    let app = setup(store).await;
    // ARR 1370 × 12 = 16440; basic 400 × 12 = 4800, pro 670 × 12 = 8040, team 3600.
    // YoY: end of 2024-11 was 600 → 770 / 600 = 128.333 %.
    let r = ok(app.get("/api/v1/analytics/revenue/arr").await);
    eq(&r["arr"], "16440");
    eq(&r["mrr"], "1370");
    eq(&r["arr_by_tier"]["basic"], "4800");
    eq(&r["arr_by_tier"]["pro"], "8040");
    eq(&r["arr_by_tier"]["team"], "3600");
    eq(&r["yoy_growth"], "128.33");

    // MoM 100 / 1270 = 7.87 %; QoQ against 2025-08 (1070): 300 / 1070 = 28.04 %.
    // Trend: MoM of Nov, Oct, Sep = 7.874, 8.547, 9.346 → g1 = 8.589; of Aug, Jul, Jun =
    // 0, −21.898, 24.545 → g0 = 0.883; g1 − g0 = 7.71 > 0.5 → accelerating.
    let r = ok(app.get("/api/v1/analytics/revenue/growth").await);
    eq(&r["mom_growth"], "7.87");
    eq(&r["qoq_growth"], "28.04");
    eq(&r["yoy_growth"], "128.33");
    assert_eq!(r["growth_trend"], json!("accelerating"));
    eq(&r["current_month_revenue"], "1370");
    eq(&r["previous_month_revenue"], "1270");
    eq(&r["same_month_last_year"], "600");

    // pro 670 / 1370 = 48.91 %, 3 customers, arpc 223.33; basic 400 → 29.20 %, 133.33;
    // team 300 → 21.90 %; trial: c9, revenue 0. Total customers 3 + 3 + 1 + 1 = 8.
    let r = ok(app.get("/api/v1/analytics/revenue/by-tier").await);
    eq(&r["total_revenue"], "1370");
    assert_eq!(r["total_customers"], json!(8));
    let tiers = r["tiers"].as_array().unwrap();
    let names: Vec<&str> = tiers.iter().map(|t| t["tier"].as_str().unwrap()).collect();
    assert_eq!(names, ["pro", "basic", "team", "trial"]);
    eq(&tiers[0]["revenue"], "670");
    assert_eq!(tiers[0]["customers"], json!(3));
    eq(&tiers[0]["arpc"], "223.33");
    eq(&tiers[0]["percentage"], "48.91");
    eq(&tiers[1]["percentage"], "29.20");
    eq(&tiers[1]["arpc"], "133.33");
    eq(&tiers[2]["percentage"], "21.90");
    assert_eq!(tiers[3]["customers"], json!(1));
    eq(&tiers[3]["revenue"], "0");
}

async fn forecast(store: TestStore) {
    let app = setup(store).await;
    // Fitted on 2024-09..2025-10 (leading zero months dropped), n = 14:
    // y = 100, 600, 600, 600, 600, 900, 1000, 1000, 1100, 1370, 1070, 1070, 1170, 1270.
    // x̄ = 7.5, Sxx = 14 × 195 / 12 = 227.5, Σy = 12450, ȳ = 889.2857, Σxy = 110100,
    // Sxy = 110100 − 14 × 7.5 × 889.2857 = 16725 → slope 73.516484, intercept 337.912088.
    // December is x = 16 (November is 15): ŷ = 1514.1758; January x = 17: 1587.6923.
    // SSE = 317329.67, s = √(SSE / 12) = 162.6165; t(0.975, 12) = 2.1788 (tables);
    // Dec: √(1 + 1/14 + 8.5² / 227.5) = 1.178563 → half width 417.578 → [1096.60, 1931.75].
    // Jan: √(1 + 1/14 + 9.5² / 227.5) = 1.211665 → 429.306 → [1158.39, 2017.00].
    // growth_rate = 73.516484 / 1270 × 100 = 5.79.
    let r = ok(app
        .get("/api/v1/analytics/revenue/forecast?months_ahead=2")
        .await);
    assert_eq!(r["model"], json!("linear_trend"));
    assert_eq!(r["fitted_months"], json!(14));
    eq(&r["growth_rate"], "5.79");
    let f = r["forecast"].as_array().unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0]["month"], json!("2025-12"));
    eq(&f[0]["forecasted_mrr"], "1514.18");
    eq(&f[0]["lower_bound"], "1096.60");
    eq(&f[0]["upper_bound"], "1931.75");
    assert_eq!(f[0]["confidence"], json!(95));
    assert_eq!(f[1]["month"], json!("2026-01"));
    eq(&f[1]["forecasted_mrr"], "1587.69");
    eq(&f[1]["lower_bound"], "1158.39");
    eq(&f[1]["upper_bound"], "2017.00");

    let r = ok(app
        .get("/api/v1/analytics/revenue/forecast?model=holt&confidence=80")
        .await);
    assert_eq!(r["model"], json!("holt"));
    assert_eq!(r["forecast"].as_array().unwrap().len(), 6);
    assert!(r["backtest_mape"].is_number(), "{r}");

    // As of 2024-11-15 only 2024-09 and 2024-10 are complete: no forecast, a reason.
    let r = ok(app
        .get("/api/v1/analytics/revenue/forecast?as_of=2024-11-15")
        .await);
    assert_eq!(r["forecast"], json!([]));
    assert!(r["reason"].as_str().unwrap().contains("at least 3"), "{r}");

    for bad in ["confidence=90", "model=arima", "months_ahead=13"] {
        let (status, _) = app
            .get(&format!("/api/v1/analytics/revenue/forecast?{bad}"))
            .await;
        assert_eq!(status, 422, "{bad}");
    }
}

async fn ltv_churn_acquisition(store: TestStore) {
    let app = setup(store).await;
    // Churn of the last 6 complete months (May..Oct): 0/5, 0/5, 1/6 (c2 in July), 0/5,
    // 0/5, 0/6 → c = (1/6) / 6 = 1/36. ARPA = 1370 / 7 = 195.714286.
    // LTV = 195.714286 × 36 = 7045.71; lifespan 36 months.
    // CAC: spend Aug..Oct = 100 + 250 + 300 = 650; new movements then: c7 (Oct) = 1
    // (c2's return in September is a reactivation) → CAC 650; LTV:CAC = 10.84.
    // By tier: pro's base (by tier at the end of the previous month) was 2, 2, 3, 2, 2, 2
    // with c2's churn in July → mean (1/3) / 6 = 1/18; pro ARPA 670 / 3 → LTV 4020.
    // basic and team never churned → c = 0 → null.
    let r = ok(app.get("/api/v1/analytics/users/ltv").await);
    eq(&r["average_ltv"], "7045.71");
    eq(&r["average_customer_lifespan_months"], "36");
    eq(&r["arpa"], "195.71");
    eq(&r["mean_monthly_churn_rate"], "2.78");
    eq(&r["cac"], "650");
    assert_eq!(r["cac_new_customers"], json!(1));
    eq(&r["ltv_cac_ratio"], "10.84");
    eq(&r["ltv_by_tier"]["pro"], "4020");
    eq(&r["ltv_by_tier"]["basic"], "null");
    eq(&r["ltv_by_tier"]["team"], "null");
    eq(&r["ltv_by_tier"]["trial"], "0");

    // November: c5 churned of 7 paying at the end of October = 14.29 %; retention 85.71.
    // By tier at the end of October: basic c1, c2, c5, c7 → 1/4 = 25 %; pro c3, c6 → 0;
    // team c4 → 0. Trials ending in November to as_of: s8 (c8 pays) and s10 (c10 does
    // not) → 50 %. Revenue churn (100 + 100) / 1270 = 15.75 %; NRR 1070 / 1270 = 84.25 %.
    let r = ok(app.get("/api/v1/analytics/users/churn").await);
    eq(&r["monthly_churn_rate"], "14.29");
    eq(&r["retention_rate"], "85.71");
    assert_eq!(r["churned_this_month"], json!(1));
    assert_eq!(r["total_customers"], json!(7));
    eq(&r["churn_by_tier"]["basic"], "25");
    eq(&r["churn_by_tier"]["pro"], "0");
    eq(&r["churn_by_tier"]["team"], "0");
    eq(&r["churn_by_tier"]["trial"], "50");
    eq(&r["last_month_churn_rate"], "0");
    eq(&r["revenue_churn_rate"], "15.75");
    eq(&r["net_revenue_retention"], "84.25");

    // Signups in November to as_of: c9 (ads), c10 (unknown); c11 is after as_of.
    // October: c7, c8 (2); October to the 20th 12:00: c7 (1) → growth 100 %.
    // Channels: ads 1 user, spend 400 → CPA 400; unknown 1, spend 0 → 0; referral 0 users,
    // spend 60 → CPA null. Average CPA (400 + 60) / 2 = 230.
    let r = ok(app.get("/api/v1/analytics/users/acquisition").await);
    assert_eq!(r["new_users_this_month"], json!(2));
    assert_eq!(r["new_users_last_month"], json!(2));
    assert_eq!(r["new_users_last_month_to_date"], json!(1));
    eq(&r["growth_rate"], "100");
    eq(&r["average_cpa"], "230");
    let ch = r["acquisition_channels"].as_array().unwrap();
    let names: Vec<&str> = ch.iter().map(|c| c["channel"].as_str().unwrap()).collect();
    assert_eq!(names, ["ads", "unknown", "referral"]);
    eq(&ch[0]["cpa"], "400");
    eq(&ch[0]["percentage"], "50");
    eq(&ch[1]["cpa"], "0");
    eq(&ch[2]["cpa"], "null");
    assert_eq!(ch[2]["users"], json!(0));
}

async fn composites(store: TestStore) {
    let app = setup(store).await;
    // Users: paying or trial at as_of = 7 + c9 = 8; at the end of October 7 + c8 = 8 → 0 %.
    // Active over the trailing 30 days (10-22 .. as_of): c1, c2, c4 → 3.
    // API calls in November to as_of: e1, e3, e6, e7 = 4; October to the 20th 12:00: e4 = 1
    // → +300 %. Churn 14.29 now, 0 for all of October → +14.29 points.
    let r = ok(app.get("/api/v1/analytics/metrics/summary").await);
    eq(&r["revenue"]["mrr"], "1370");
    eq(&r["revenue"]["change"], "7.87");
    assert_eq!(r["users"]["total"], json!(8));
    assert_eq!(r["users"]["active"], json!(3));
    eq(&r["users"]["change"], "0");
    assert_eq!(r["api_calls"]["this_month"], json!(4));
    eq(&r["api_calls"]["change"], "300");
    eq(&r["churn_rate"]["percentage"], "14.29");
    eq(&r["churn_rate"]["change"], "14.29");

    // Service KPIs over 24 h: checks h2 up, h3 down → uptime 50 %; e6 (300 ms, 500) and
    // e7 (100 ms, 200) → 200 ms, error rate 50 %. Calls over 30 days: e1, e3, e5, e6, e7 =
    // 5 → 5 / 30 = 0.17 a day.
    let r = ok(app.get("/api/v1/analytics/metrics/kpis").await);
    eq(&r["revenue_kpis"]["mrr"], "1370");
    eq(&r["revenue_kpis"]["arr"], "16440");
    eq(&r["revenue_kpis"]["ltv"], "7045.71");
    eq(&r["revenue_kpis"]["ltv_cac_ratio"], "10.84");
    assert_eq!(r["user_kpis"]["total_users"], json!(8));
    assert_eq!(r["user_kpis"]["active_users"], json!(3));
    eq(&r["user_kpis"]["churn_rate"], "14.29");
    eq(&r["user_kpis"]["retention_rate"], "85.71");
    eq(&r["service_kpis"]["uptime"], "50");
    eq(&r["service_kpis"]["avg_response_time_ms"], "200");
    eq(&r["service_kpis"]["error_rate"], "50");
    eq(&r["service_kpis"]["api_calls_per_day"], "0.17");

    // November to date: revenue = i1 200 + i2 900 + i5 100 (paid 11-01) = 1200.
    // Costs: infrastructure 150 + 50 = 200, LLM e1 20000 credits / 1000 = 20, other 40 →
    // 260 = 21.67 % of revenue. Gross profit 940 (78.33 %); marketing 460 → net 480 (40 %).
    // Issued in November to date: i1, i2, i3, i4 → 4; paid 2, failed 1 → 66.67 %.
    let r = ok(app.get("/api/v1/billing/analytics/summary").await);
    eq(&r["revenue"]["mrr"], "1370");
    eq(&r["revenue"]["arr"], "16440");
    eq(&r["revenue"]["total_this_month"], "1200");
    eq(&r["revenue"]["growth_rate"], "7.87");
    eq(&r["costs"]["infrastructure"], "200");
    eq(&r["costs"]["llm_api_costs"], "20");
    eq(&r["costs"]["other_services"], "40");
    eq(&r["costs"]["total"], "260");
    eq(&r["costs"]["percentage_of_revenue"], "21.67");
    eq(&r["profitability"]["gross_profit"], "940");
    eq(&r["profitability"]["gross_margin_percentage"], "78.33");
    eq(&r["profitability"]["net_profit"], "480");
    eq(&r["profitability"]["net_margin_percentage"], "40");
    assert_eq!(r["payments"]["total_invoices"], json!(4));
    assert_eq!(r["payments"]["paid_invoices"], json!(2));
    assert_eq!(r["payments"]["failed_invoices"], json!(1));
    eq(&r["payments"]["success_rate"], "66.67");
}

async fn alerts_and_rules(store: TestStore) {
    let app = setup(store).await;
    // Defaults: churn 14.29 > 5 critical; MRR growth 7.87 is fine; error rate 50 > 5
    // critical; uptime 50 < 99 critical; payment success 66.67 < 90 critical; gross margin
    // 78.33 is above 60, fine.
    let r = ok(app.get("/api/v1/analytics/metrics/alerts").await);
    let metrics = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .map(|a| a["metric"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        metrics(&r["critical_alerts"]),
        ["churn_rate", "error_rate", "payment_success_rate", "uptime"]
    );
    assert_eq!(r["warning_alerts"], json!([]));
    let churn = &r["critical_alerts"][0];
    eq(&churn["value"], "14.29");
    eq(&churn["threshold"], "5");
    assert_eq!(churn["status"], json!("critical"));
    assert!(
        churn["message"].as_str().unwrap().contains("14.29"),
        "{churn}"
    );

    // A stricter gross-margin rule: 78.33 < 80 → warning.
    let (status, rule) = app
        .put(
            "/api/v1/alert-rules/gross_margin",
            json!({"direction": "below", "critical": 50, "warning": "80"}),
        )
        .await;
    assert!(status.is_success(), "{status} {rule}");
    assert_eq!(rule["enabled"], json!(true));
    app.call(
        axum::http::Method::DELETE,
        "/api/v1/alert-rules/uptime",
        None,
        axum::body::Body::empty(),
    )
    .await;
    let r = ok(app.get("/api/v1/analytics/metrics/alerts").await);
    assert_eq!(
        metrics(&r["critical_alerts"]),
        ["churn_rate", "error_rate", "payment_success_rate"]
    );
    assert_eq!(metrics(&r["warning_alerts"]), ["gross_margin"]);
    let rules = ok(app.get("/api/v1/alert-rules").await);
    assert_eq!(rules["rules"].as_array().unwrap().len(), 5);

    let (status, _) = app
        .call(
            axum::http::Method::DELETE,
            "/api/v1/alert-rules/uptime",
            None,
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(status, 404);
    for bad in [
        json!({"direction": "sideways", "critical": 1, "warning": 2}),
        json!({"direction": "above", "critical": 1, "warning": 2}),
        json!({"direction": "below", "critical": 5, "warning": 2}),
    ] {
        let (status, _) = app.put("/api/v1/alert-rules/churn_rate", bad.clone()).await;
        assert_eq!(status, 422, "{bad}");
    }
    let (status, _) = app
        .put(
            "/api/v1/alert-rules/happiness",
            json!({"direction": "above", "critical": 2, "warning": 1}),
        )
        .await;
    assert_eq!(status, 422);
}

async fn consistency_and_as_of(store: TestStore) {
    let app = setup(store).await;
    // The same MRR everywhere; data after as_of (c11, s6's change, i6, e2) changes nothing:
    // asking with as_of explicitly equals the clock's now.
    let a = ok(app.get("/api/v1/analytics/revenue/mrr").await);
    let b = ok(app
        .get(&format!("/api/v1/analytics/revenue/mrr?as_of={AS_OF}"))
        .await);
    assert_eq!(a, b);
    let arr = ok(app.get("/api/v1/analytics/revenue/arr").await);
    assert_eq!(d(&arr["arr"]) / Decimal::from(12), d(&a["current_mrr"]));
    // After the fact (as_of 2025-11-30), s6's quantity 3 from 11-25 counts: 270 × 3 = 810,
    // c11 pays 100 from 11-25 → 1370 + 540 + 100 = 2010.
    let r = ok(app
        .get("/api/v1/analytics/revenue/mrr?months=1&as_of=2025-11-30")
        .await);
    eq(&r["current_mrr"], "2010");
}

both_stores!(
    mrr_history,
    arr_growth_and_tiers,
    forecast,
    ltv_churn_acquisition,
    composites,
    alerts_and_rules,
    consistency_and_as_of
);
