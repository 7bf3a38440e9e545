//! Property-based fuzzing of event and entity parsing: arbitrary bytes and arbitrary
//! JSON (biased towards the fields tally reads, with hostile values) never panic the
//! parser, a failure is always an `InputError`, and through the HTTP API every such body
//! is answered with a 2xx or a 4xx carrying the error envelope, never a 5xx.
//!
//! `PROPTEST_CASES` sets the number of cases (scripts/fuzz raises it).

use axum::http::{Method, StatusCode};
use proptest::prelude::*;
use serde_json::{Map, Value};
use tally_core::error::{parse_json, InputError};
use tally_core::event::EventInput;
use tally_core::input::*;
use tally_core::pricing::PriceTable;
use tally_core::time::parse_instant;
use tally_testkit::{TestApp, TestStore};

/// Field names tally reads, so generated objects get past "missing field" often.
const FIELDS: &[&str] = &[
    "id",
    "time",
    "type",
    "customer_id",
    "service",
    "quantity",
    "unit",
    "model",
    "provider",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "cache_hit",
    "latency_ms",
    "status_code",
    "cost_credits",
    "up",
    "name",
    "value",
    "tier",
    "interval",
    "amount",
    "currency",
    "created_at",
    "channel",
    "plan_id",
    "started_at",
    "trial_ends_at",
    "discount_percent",
    "effective_at",
    "status",
    "issued_at",
    "paid_at",
    "month",
    "category",
    "description",
    "x",
];

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("2025-11-20T10:00:00Z".to_string()),
        Just("9999-12-31T23:59:59.999999999Z".to_string()),
        Just("0000-01-01T00:00:00Z".to_string()),
        Just("-262144-01-01T00:00:00Z".to_string()),
        Just("2025-02-30T00:00:00+25:00".to_string()),
        Just("2025-11".to_string()),
        Just("99999-99".to_string()),
        Just("USD".to_string()),
        Just("JPY".to_string()),
        Just("gpt-4o".to_string()),
        Just("month".to_string()),
        Just("1e400".to_string()),
        Just("-0.0000000000000000000000000001".to_string()),
        Just("79228162514264337593543950336".to_string()),
        Just("NaN".to_string()),
        Just("ü/\u{0}\u{202e}".to_string()),
        "[a-z_.-]{1,12}",
        ".{0,40}",
        "x{90,130}",
    ]
}

fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        Just(serde_json::from_str("1e308").unwrap()),
        Just(serde_json::from_str("-1e-400").unwrap()),
        Just(serde_json::from_str("123456789012345678901234567890.123456789").unwrap()),
        Just(serde_json::from_str("18446744073709551616").unwrap()),
        Just(serde_json::from_str("-9223372036854775809").unwrap()),
        Just(Value::from(i64::MAX)),
        Just(Value::from(i64::MIN)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        hostile_number(),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// An object with mostly known fields: the shape every input type expects.
fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(FIELDS), json_value()), 0..14).prop_map(|kv| {
        let mut m = Map::new();
        for (k, v) in kv {
            m.insert(k.to_string(), v);
        }
        Value::Object(m)
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => json_object().prop_map(|v| v.to_string().into_bytes()),
        3 => prop::collection::vec(json_object(), 0..4)
            .prop_map(|v| Value::Array(v).to_string().into_bytes()),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Parses `bytes` as `T` and validates it; the only acceptable failure is an
/// `InputError` (the types say so; the property is that nothing panics).
fn parse_all(bytes: &[u8]) -> Vec<Result<(), InputError>> {
    let prices = PriceTable::builtin(1000.into());
    let money = CurrencyPolicy::default();
    fn run<T: serde::de::DeserializeOwned, U>(
        bytes: &[u8],
        f: impl FnOnce(T) -> Result<U, tally_core::FieldError>,
    ) -> Result<(), InputError> {
        let v: T = parse_json(bytes)?;
        f(v).map(|_| ()).map_err(InputError::from)
    }
    vec![
        run::<EventInput, _>(bytes, |e| e.validate(&prices)),
        run::<Vec<EventInput>, _>(bytes, |es| {
            es.into_iter()
                .map(|e| e.validate(&prices))
                .collect::<Result<Vec<_>, _>>()
        }),
        run::<PlanInput, _>(bytes, |p| p.validate("p1", &money)),
        run::<CustomerInput, _>(bytes, |c| c.validate("c1")),
        run::<SubscriptionInput, _>(bytes, |s| s.validate("s1")),
        run::<ChangeInput, _>(bytes, |c| c.validate("s1")),
        run::<CancelInput, _>(bytes, |c| c.validate()),
        run::<InvoiceInput, _>(bytes, |i| i.validate("i1", &money)),
        run::<Vec<CostInput>, _>(bytes, |cs| {
            cs.into_iter()
                .map(|c| c.validate(&money))
                .collect::<Result<Vec<_>, _>>()
        }),
        run::<Vec<SpendInput>, _>(bytes, |ss| {
            ss.into_iter()
                .map(|s| s.validate(&money))
                .collect::<Result<Vec<_>, _>>()
        }),
        run::<ServiceInput, _>(bytes, |s| s.validate("svc")),
    ]
}

proptest! {
    #[test]
    fn parsing_never_panics(bytes in body()) {
        for r in parse_all(&bytes) {
            if let Err(e) = r {
                // Every error names what is wrong.
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}

/// The routes that parse a body, with the content types they are sent.
const WRITES: &[(&str, &str, &str)] = &[
    ("POST", "/api/v1/events", "application/json"),
    ("POST", "/api/v1/events", "application/x-ndjson"),
    ("PUT", "/api/v1/plans/p1", "application/json"),
    ("PUT", "/api/v1/customers/c1", "application/json"),
    ("PUT", "/api/v1/subscriptions/s1", "application/json"),
    (
        "POST",
        "/api/v1/subscriptions/s1/changes",
        "application/json",
    ),
    (
        "POST",
        "/api/v1/subscriptions/s1/cancel",
        "application/json",
    ),
    ("PUT", "/api/v1/invoices/i1", "application/json"),
    ("POST", "/api/v1/costs", "application/json"),
    ("POST", "/api/v1/marketing-spend", "application/json"),
    ("PUT", "/api/v1/services/svc", "application/json"),
    ("PUT", "/api/v1/alert-rules/churn_rate", "application/json"),
];

#[test]
fn the_api_answers_arbitrary_bodies_with_a_4xx_or_2xx() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(async {
        let app = TestApp::new(
            TestStore::sqlite().await,
            parse_instant("t", "2025-12-01T00:00:00Z").unwrap(),
        )
        .await;
        // A customer and a plan, so some generated references resolve.
        let (s, _) = app
            .put(
                "/api/v1/customers/c1",
                serde_json::json!({"created_at": "2025-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        app
    });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse::<u32>().ok())
        .unwrap_or(256)
        / 4;
    let mut runner =
        proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases.max(16)));
    runner
        .run(
            &(prop::sample::select(WRITES), body()),
            |((method, path, ct), bytes)| {
                let ndjson = ct.contains("ndjson");
                let bytes = if ndjson {
                    // One event per line, as NDJSON clients send them.
                    match serde_json::from_slice::<Value>(&bytes) {
                        Ok(Value::Array(items)) => items
                            .iter()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join("\n")
                            .into_bytes(),
                        _ => bytes,
                    }
                } else {
                    bytes
                };
                let (status, resp) = rt.block_on(app.call(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    path,
                    Some(ct),
                    bytes.clone(),
                ));
                prop_assert!(
                    !status.is_server_error(),
                    "{method} {path} ({ct}) answered {status} {resp} to {}",
                    String::from_utf8_lossy(&bytes)
                );
                if status.is_client_error() {
                    prop_assert!(resp["error"]["code"].is_string(), "{status} {resp}");
                }
                Ok(())
            },
        )
        .unwrap();
}
