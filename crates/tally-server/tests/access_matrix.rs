//! Every route × every kind of caller → the status `auth::required_access` promises.
//!
//! The routes are read from the OpenAPI document, which is built from the same router as
//! the app, so a route added later is in this matrix without anyone adding it here. The
//! few undocumented routes (the description itself, the docs page, the dashboard) are
//! listed by hand. Runs on SQLite and, with TALLY_TEST_DATABASE_URL, on PostgreSQL.

use axum::http::{Method, StatusCode};
use tally_core::time::parse_instant;
use tally_server::auth::{generate_key, required_access, Access};
use tally_server::ServerConfig;
use tally_store::Role;
use tally_testkit::{add_key, both_stores, TestApp, TestStore};

/// Who calls: a label and the secret presented ("" = no key at all).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    NoKey,
    Unknown,
    Revoked,
    Ingest,
    Analyst,
    Admin,
}

/// Every (method, path template) the app serves.
fn routes() -> Vec<(Method, String)> {
    let doc = tally_server::openapi();
    let mut out = Vec::new();
    for (path, item) in doc.paths.paths.iter() {
        let ops = [
            (Method::GET, item.get.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::DELETE, item.delete.is_some()),
            (Method::PATCH, item.patch.is_some()),
            (Method::HEAD, item.head.is_some()),
        ];
        for (m, present) in ops {
            if present {
                out.push((m, path.clone()));
            }
        }
    }
    for undocumented in ["/openapi.json", "/docs", "/"] {
        out.push((Method::GET, undocumented.to_string()));
    }
    out
}

/// A template with each `{param}` replaced by a sample value.
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').expect("closed param") + open;
        let name = &rest[open + 1..close];
        out.push_str(match name {
            "metric" => "churn_rate",
            "service_name" | "name" => "llm_inference",
            _ => "sample_1",
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The status class a caller must get: `Some(status)` exactly, or `None` for "past the
/// access check" (anything but 401 and 403).
fn expected(access: Access, who: Who) -> Option<StatusCode> {
    use Who::*;
    if access == Access::Public {
        return None;
    }
    match who {
        NoKey | Unknown | Revoked => Some(StatusCode::UNAUTHORIZED),
        Admin => None,
        Analyst if access == Access::Read => None,
        Ingest if access == Access::Write => None,
        _ => Some(StatusCode::FORBIDDEN),
    }
}

async fn every_route_enforces_its_access(store: TestStore) {
    let now = parse_instant("t", "2025-12-01T00:00:00Z").unwrap();
    // Rate limits off: this test is about who gets in, not how often.
    let config = ServerConfig {
        rate_limit_per_second: 0,
        ..ServerConfig::default()
    };
    let app = TestApp::with_config(store, now, config).await;
    let s = app.store.store.as_ref();
    let ingest = add_key(s, Role::Ingest).await;
    let analyst = add_key(s, Role::Analyst).await;
    let (revoked_key, revoked) = generate_key("old", Role::Admin, 0);
    s.put_api_key(&revoked_key).await.unwrap();
    s.revoke_api_key(&revoked_key.id, 1).await.unwrap();

    let callers = [
        (Who::NoKey, String::new()),
        (
            Who::Unknown,
            "tally_0000000000000000000000000000000000000000".to_string(),
        ),
        (Who::Revoked, revoked),
        (Who::Ingest, ingest),
        (Who::Analyst, analyst),
        (Who::Admin, app.secret.clone()),
    ];

    let routes = routes();
    // The documented routes of api.md, the admin routes and the three undocumented ones.
    assert!(routes.len() >= 46, "only {} routes found", routes.len());
    let mut checked = 0;
    let mut failures = Vec::new();
    for (method, template) in &routes {
        let path = concrete(template);
        let access = required_access(method, &path);
        for (who, secret) in &callers {
            let (ct, body) = if method == Method::GET {
                (None, String::new())
            } else {
                (Some("application/json"), "{}".to_string())
            };
            let (status, resp) = app.call_as(secret, method.clone(), &path, ct, body).await;
            let ok = match expected(access, *who) {
                Some(want) => status == want,
                None => status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            };
            if !ok || status.is_server_error() {
                failures.push(format!(
                    "{method} {path} ({access:?}) as {who:?}: {status} {resp}"
                ));
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                assert_eq!(
                    resp["error"]["code"],
                    if status == StatusCode::UNAUTHORIZED {
                        "unauthorized"
                    } else {
                        "forbidden"
                    },
                    "{method} {path}: {resp}"
                );
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, routes.len() * 6);
}

/// The classification itself, for the routes whose rule is not just "GET reads".
#[test]
fn admin_and_alert_rule_writes_are_admin_only() {
    assert_eq!(
        required_access(&Method::GET, "/api/v1/admin/audit"),
        Access::Admin
    );
    assert_eq!(
        required_access(&Method::DELETE, "/api/v1/alert-rules/churn_rate"),
        Access::Admin
    );
    assert_eq!(required_access(&Method::GET, "/docs"), Access::Public);
    assert_eq!(concrete("/a/{id}/b/{metric}"), "/a/sample_1/b/churn_rate");
}

both_stores!(every_route_enforces_its_access);
