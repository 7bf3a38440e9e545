//! Secrets never appear in logs or responses: the real binary, logging at debug level,
//! serves valid, wrong and revoked keys in both header styles, writes and denials; its
//! whole log and every response body are then searched for each secret.

use std::process::Command;
use tally_store::Role;
use tally_testkit::{add_key, TestStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_or_responses() {
    let store = TestStore::sqlite().await;
    let admin = add_key(store.store.as_ref(), Role::Admin).await;
    let analyst = add_key(store.store.as_ref(), Role::Analyst).await;
    let wrong = "tally_2222222222222222222222222222222222222222".to_string();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let out_path = dir.path().join("stdout.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "serve",
            "--database-url",
            &store.url,
            "--bind",
            "127.0.0.1:0",
        ])
        .env("TALLY_LOG", "debug")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start tally");
    let mut base = None;
    for _ in 0..200 {
        let out = std::fs::read_to_string(&out_path).unwrap_or_default();
        if let Some(line) = out.lines().find_map(|l| l.strip_prefix("listening on ")) {
            base = Some(line.trim().to_string());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let base = base.expect("tally started");

    let http = reqwest::Client::new();
    let mut bodies = String::new();
    // The admin last, so its read of the audit log sees the others' denials.
    for secret in [&analyst, &wrong, &admin] {
        for (path, write) in [
            ("/api/v1/plans", false),
            ("/api/v1/customers/c1", true),
            ("/api/v1/admin/audit", false),
        ] {
            for header in ["authorization", "x-api-key"] {
                let value = if header == "authorization" {
                    format!("Bearer {secret}")
                } else {
                    secret.to_string()
                };
                let req = if write {
                    http.put(format!("{base}{path}"))
                        .json(&serde_json::json!({"created_at": "2025-01-01T00:00:00Z"}))
                } else {
                    http.get(format!("{base}{path}"))
                };
                let resp = req.header(header, value).send().await.unwrap();
                bodies.push_str(&format!("{:?}", resp.headers()));
                bodies.push_str(&resp.text().await.unwrap());
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("DEBUG"), "debug logging was on: {log}");
    for secret in [&admin, &analyst, &wrong] {
        assert!(!log.contains(secret.as_str()), "a secret is in the log");
        assert!(
            !bodies.contains(secret.as_str()),
            "a secret is in a response"
        );
        // Nor its hash.
        let hash = tally_server::auth::hash_secret(secret);
        assert!(!log.contains(&hash) && !bodies.contains(&hash));
    }
    // The audit log was readable by the admin and recorded the denials.
    assert!(bodies.contains("\"status\":401") && bodies.contains("\"status\":403"));
}
