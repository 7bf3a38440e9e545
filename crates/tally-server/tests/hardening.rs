//! Abuse limits, the audit log and CORS, on the app and on a real socket: one key's burst
//! is cut off with 429 and `Retry-After` while another key goes on unhindered; key
//! guessing from one address is slowed; slow clients cannot hold every connection;
//! every write and every denial is in the audit log, which only admins read and which
//! never holds a secret.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_core::input::CurrencyPolicy;
use tally_core::pricing::PriceTable;
use tally_core::time::parse_instant;
use tally_server::auth::hash_secret;
use tally_server::{AppState, Clock, ServerConfig};
use tally_store::{Role, Store};
use tally_testkit::{add_key, both_stores, TestApp, TestStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

fn now() -> i64 {
    parse_instant("t", "2025-12-01T00:00:00Z").unwrap()
}

async fn key_id(store: &dyn Store, secret: &str) -> String {
    store
        .find_api_key(&hash_secret(secret))
        .await
        .unwrap()
        .expect("key exists")
        .id
}

/// The whole audit log, newest first, read page by page as an admin.
async fn audit_log(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = "/api/v1/admin/audit?limit=2".to_string();
    loop {
        let (s, body) = app.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert!(body["items"].as_array().unwrap().len() <= 2);
        out.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/admin/audit?limit=2&cursor={c}"),
            None => return out,
        }
    }
}

async fn writes_and_denials_are_audited(store: TestStore) {
    let app = TestApp::new(store, now()).await;
    let s = app.store.store.clone();
    let analyst = add_key(s.as_ref(), Role::Analyst).await;
    let ingest = add_key(s.as_ref(), Role::Ingest).await;
    let admin_id = key_id(s.as_ref(), &app.secret).await;
    let analyst_id = key_id(s.as_ref(), &analyst).await;
    let ingest_id = key_id(s.as_ref(), &ingest).await;

    // 1. a write by the admin: recorded with its route template.
    let (st, _) = app.put("/api/v1/plans/pro", json!({"name": "Pro", "tier": "professional", "interval": "month", "amount": "99.00", "currency": "USD"})).await;
    assert_eq!(st, StatusCode::CREATED);
    // A read that succeeds is not recorded.
    assert_eq!(app.get("/api/v1/plans").await.0, StatusCode::OK);
    // 2. no key, 3. an unknown key: 401 without a key id.
    let (st, _) = app
        .call_as("", Method::GET, "/api/v1/plans", None, Body::empty())
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let guessed = "tally_1111111111111111111111111111111111111111";
    let (st, _) = app
        .call_as(guessed, Method::GET, "/api/v1/plans", None, Body::empty())
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // 4. an analyst writing: 403 with its key id.
    let (st, _) = app
        .call_as(
            &analyst,
            Method::POST,
            "/api/v1/events",
            Some("application/json"),
            "[]",
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // 5. an ingest key reading the audit log: 403.
    let (st, body) = app
        .call_as(
            &ingest,
            Method::GET,
            "/api/v1/admin/audit",
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    // 6. a write to an unknown route: recorded with the path, cut to 200 bytes.
    let long = format!("/api/v1/{}", "x".repeat(300));
    let (st, _) = app
        .call(Method::POST, &long, Some("application/json"), "{}")
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let log = audit_log(&app).await;
    let rows: Vec<(Option<&str>, &str, &str, u64)> = log
        .iter()
        .map(|e| {
            (
                e["key_id"].as_str(),
                e["method"].as_str().unwrap(),
                e["route"].as_str().unwrap(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let cut = &long[..200];
    assert_eq!(
        rows,
        vec![
            (Some(admin_id.as_str()), "POST", cut, 404),
            (Some(ingest_id.as_str()), "GET", "/api/v1/admin/audit", 403),
            (Some(analyst_id.as_str()), "POST", "/api/v1/events", 403),
            (None, "GET", "/api/v1/plans", 401),
            (None, "GET", "/api/v1/plans", 401),
            (Some(admin_id.as_str()), "PUT", "/api/v1/plans/{id}", 201),
        ]
    );
    // Newest first, ids falling; the time is the server's clock; no connection info
    // without a socket.
    assert!(log
        .windows(2)
        .all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64()));
    assert!(log.iter().all(|e| e["at"] == "2025-12-01T00:00:00Z"));
    assert!(log.iter().all(|e| e["client"].is_null()));

    // Secrets appear nowhere in it, nor in the store's rows.
    let text = serde_json::to_string(&log).unwrap();
    for secret in [&app.secret, &analyst, &ingest, &guessed.to_string()] {
        assert!(!text.contains(secret.as_str()));
    }
    // An analyst may not read it; a bad cursor is a 422.
    let (st, _) = app
        .call_as(
            &analyst,
            Method::GET,
            "/api/v1/admin/audit",
            None,
            Body::empty(),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, body) = app.get("/api/v1/admin/audit?cursor=zz").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// `app` served on a loopback port by `tally_server::run`; the address and a stopper.
async fn serve(
    store: Arc<dyn Store>,
    config: ServerConfig,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(
        store,
        config,
        PriceTable::builtin(1000.into()),
        CurrencyPolicy::default(),
        Clock::System,
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        tally_server::run(listener, state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr.to_string(), tx, task)
}

async fn one_keys_burst_does_not_slow_another(store: TestStore) {
    let s = store.store.clone();
    let noisy = add_key(s.as_ref(), Role::Analyst).await;
    let quiet = add_key(s.as_ref(), Role::Analyst).await;
    let noisy_id = key_id(s.as_ref(), &noisy).await;
    let quiet_id = key_id(s.as_ref(), &quiet).await;
    let config = ServerConfig {
        rate_limit_per_second: 2,
        rate_limit_burst: 10,
        ..ServerConfig::default()
    };
    let (addr, stop, task) = serve(s.clone(), config).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/plans");

    // The noisy key: 200 requests from 8 workers, as fast as they go.
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (http, url, noisy) = (http.clone(), url.clone(), noisy.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..25 {
                let r = http.get(&url).bearer_auth(&noisy).send().await.unwrap();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                out.push((r.status().as_u16(), retry));
            }
            out
        }));
    }
    // Meanwhile the quiet key: 10 requests, one after another.
    let mut quiet_times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let r = http.get(&url).bearer_auth(&quiet).send().await.unwrap();
        assert_eq!(r.status(), 200, "the quiet key is never limited");
        quiet_times.push(t.elapsed());
    }
    let mut noisy_results = Vec::new();
    for w in workers {
        noisy_results.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = noisy_results.iter().filter(|(s, _)| *s == 200).count();
    let limited: Vec<_> = noisy_results.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(ok + limited.len(), 200);
    // The burst of 10, plus 2 tokens a second for as long as the burst lasted.
    let most = 10 + (2.0 * elapsed).ceil() as usize;
    assert!(
        (10..=most).contains(&ok),
        "{ok} of 200 got through in {elapsed:.2} s"
    );
    // 2 a second: the next token is at most half a second away, advertised as 1 s.
    assert!(limited.iter().all(|(_, r)| r.as_deref() == Some("1")));
    quiet_times.sort();
    eprintln!(
        "noisy key: {ok} × 200, {} × 429 in {elapsed:.2} s; quiet key: median {:?}, max {:?}",
        limited.len(),
        quiet_times[5],
        quiet_times[9]
    );
    assert!(
        quiet_times[9] < Duration::from_secs(2),
        "quiet key slowed: {quiet_times:?}"
    );

    // Every 429 is in the audit log, with the key and the client's address.
    let page = s
        .list_audit(&tally_store::PageRequest {
            limit: 1000,
            cursor: None,
        })
        .await
        .unwrap();
    let audited_429 = page.items.iter().filter(|e| e.status == 429).count();
    assert_eq!(audited_429, limited.len());
    assert!(page
        .items
        .iter()
        .all(|e| e.key_id.as_deref() == Some(noisy_id.as_str())
            && e.client.as_deref() == Some("127.0.0.1")));
    assert!(page
        .items
        .iter()
        .all(|e| e.key_id.as_deref() != Some(quiet_id.as_str())));

    // Guessing keys from one address: 20 failures, then 429 (one more a second).
    let mut statuses = Vec::new();
    let t = Instant::now();
    for i in 0..30 {
        let r = http
            .get(&url)
            .bearer_auth(format!("tally_guess_{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let most = 20 + t.elapsed().as_secs() as usize + 1;
    assert!(
        (20..=most).contains(&unauthorized),
        "{unauthorized} × 401: {statuses:?}"
    );
    assert_eq!(statuses[..20], [401; 20]);
    assert_eq!(*statuses.last().unwrap(), 429);
    // A valid key from the same address is not affected (a fresh one: the quiet key has
    // spent its burst of 10).
    let fresh = add_key(s.as_ref(), Role::Analyst).await;
    let r = http.get(&url).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let _ = stop.send(());
    task.await.unwrap();
}

both_stores!(
    writes_and_denials_are_audited,
    one_keys_burst_does_not_slow_another
);

/// Slow clients that dribble their headers a byte at a time are cut off after the header
/// read timeout, so they cannot hold every connection slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_exhaust_connections() {
    let store = TestStore::sqlite().await;
    let config = ServerConfig {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let (addr, stop, task) = serve(store.store.clone(), config).await;

    // Twice as many slow clients as there are connection slots.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move {
            let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let started = Instant::now();
            let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            // At most 10 s of dribbling; the server should hang up long before.
            for i in 0..100 {
                let byte = head.get(i).copied().unwrap_or(b'a');
                if conn.write_all(&[byte]).await.is_err() {
                    return Some(started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                let mut buf = [0u8; 64];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(1), conn.read(&mut buf)).await
                {
                    // 0: closed; anything else is a 408 or 431 before closing.
                    let _ = n;
                    return Some(started.elapsed());
                }
            }
            None
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A normal client gets through once the slow ones are cut off.
    let t = Instant::now();
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(8))
        .send()
        .await
        .expect("a normal request is served");
    assert_eq!(r.status(), 200);
    let waited = t.elapsed();
    eprintln!("normal request served after {waited:?} behind 8 slow clients on 4 slots");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");

    for s in slow {
        let cut = s.await.unwrap().expect("every slow client is cut off");
        // Each is closed after about the header read timeout, counted from when the
        // server accepted it (the second four waited for a slot first).
        assert!(cut < Duration::from_secs(4), "cut after {cut:?}");
    }

    // Too many headers: 431, and the server goes on.
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut req = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..100 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut resp)).await;
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");

    let _ = stop.send(());
    task.await.unwrap();
}

async fn preflight(app: &axum::Router, origin: &str) -> Option<String> {
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/v1/plans")
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    resp.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_allow_list() {
    let store = TestStore::sqlite().await;
    let state = |config| {
        AppState::new(
            store.store.clone(),
            config,
            PriceTable::builtin(1000.into()),
            CurrencyPolicy::default(),
            Clock::Fixed(now()),
        )
    };
    let off = tally_server::app(state(ServerConfig::default()));
    assert_eq!(preflight(&off, "https://evil.example").await, None);
    assert_eq!(preflight(&off, "https://dash.example.com").await, None);

    let on = tally_server::app(state(ServerConfig {
        cors_origins: vec!["https://dash.example.com".into()],
        ..ServerConfig::default()
    }));
    assert_eq!(
        preflight(&on, "https://dash.example.com").await.as_deref(),
        Some("https://dash.example.com")
    );
    assert_eq!(preflight(&on, "https://evil.example").await, None);
}
