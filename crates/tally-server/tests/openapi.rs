//! The API contract: the OpenAPI document is generated from the handlers, names every
//! path of api.md, and is frozen by a snapshot so any change to it is a visible diff.

use tally_server::openapi;

/// The paths api.md fixes (the dashboard consumes them).
const ANALYTICS: [&str; 21] = [
    "/api/v1/llm/usage/summary",
    "/api/v1/llm/costs",
    "/api/v1/llm/cache-stats",
    "/api/v1/analytics/revenue/mrr",
    "/api/v1/analytics/revenue/arr",
    "/api/v1/analytics/revenue/growth",
    "/api/v1/analytics/revenue/forecast",
    "/api/v1/analytics/revenue/by-tier",
    "/api/v1/analytics/users/ltv",
    "/api/v1/analytics/users/churn",
    "/api/v1/analytics/users/acquisition",
    "/api/v1/analytics/services/popularity",
    "/api/v1/analytics/services/cost-per-user",
    "/api/v1/analytics/services/adoption",
    "/api/v1/analytics/services/performance",
    "/api/v1/analytics/metrics/summary",
    "/api/v1/analytics/metrics/kpis",
    "/api/v1/analytics/metrics/alerts",
    "/api/v1/metering/service/{service_name}",
    "/api/v1/metering/summary",
    "/api/v1/billing/analytics/summary",
];

const WRITES: [&str; 13] = [
    "/api/v1/plans/{id}",
    "/api/v1/customers/{id}",
    "/api/v1/subscriptions/{id}",
    "/api/v1/subscriptions/{id}/changes",
    "/api/v1/subscriptions/{id}/cancel",
    "/api/v1/invoices/{id}",
    "/api/v1/costs",
    "/api/v1/marketing-spend",
    "/api/v1/services/{name}",
    "/api/v1/events",
    "/api/v1/plans",
    "/api/v1/customers",
    "/api/v1/subscriptions",
];

#[test]
fn every_path_of_the_spec_is_described() {
    let doc = openapi();
    for path in ANALYTICS.iter().chain(WRITES.iter()) {
        assert!(
            doc.paths.paths.contains_key(*path),
            "{path} is missing from /openapi.json"
        );
    }
    for path in ANALYTICS {
        let item = &doc.paths.paths[path];
        let get = item
            .get
            .as_ref()
            .unwrap_or_else(|| panic!("{path} has no GET"));
        let params: Vec<&str> = get
            .parameters
            .iter()
            .flatten()
            .map(|p| p.name.as_str())
            .collect();
        assert!(
            params.contains(&"as_of"),
            "{path} does not document as_of: {params:?}"
        );
    }
}

#[test]
fn document_is_openapi_3_1() {
    let json: serde_json::Value = serde_json::from_str(tally_server::openapi_json()).unwrap();
    assert!(json["openapi"].as_str().unwrap().starts_with("3.1"));
}

#[test]
fn document_snapshot() {
    insta::assert_snapshot!("openapi", tally_server::openapi_json());
}
