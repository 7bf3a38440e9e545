//! Test support shared by the crates' integration tests: a fresh store on SQLite (a temp
//! file) or PostgreSQL (a database of its own, dropped afterwards), the app around it
//! with an admin key, and [`both_stores!`] to run one test body on both backends.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use rand::Rng;
use serde_json::Value;
use std::sync::Arc;
use tally_core::input::CurrencyPolicy;
use tally_core::pricing::PriceTable;
use tally_core::time::Micros;
use tally_server::{AppState, Clock, ServerConfig};
use tally_store::{Role, Store};
use tower::ServiceExt;

/// The environment variable naming a PostgreSQL server tests may create databases on.
pub const PG_ENV: &str = "TALLY_TEST_DATABASE_URL";

/// A store of its own for one test.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// The URL the store was opened with (open it again to test reopening).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestStore {
    /// A migrated SQLite store in a temporary directory.
    pub async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("tally.db").display());
        let store = open(&url).await;
        TestStore {
            store,
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A migrated store in a fresh PostgreSQL database, or `None` when [`PG_ENV`] is unset.
    pub async fn postgres() -> Option<TestStore> {
        let admin = std::env::var(PG_ENV).ok().filter(|u| !u.is_empty())?;
        let name = format!("tally_test_{:016x}", rand::thread_rng().gen::<u64>());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("connect to the test PostgreSQL server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = with_database(&admin, &name);
        let store = open(&url).await;
        Some(TestStore {
            store,
            url,
            _dir: None,
            pg: Some((admin, name)),
        })
    }

    /// Lets go of what this process holds of the store besides its data: on SQLite, the
    /// ingest log, which a server started next then owns, as a lone `tally serve` does.
    /// The store left in `store` is not migrated, so it owns nothing: it writes events
    /// straight into the database and reads what is committed there.
    pub async fn hand_over(&mut self) {
        self.store = tally_store::open(&self.url).await.expect("open store");
        // The dropped store's writer task lets go of the log the next time it runs.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    /// Opens the same database again, as a restarted process would.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        open(&self.url).await
    }
}

async fn open(url: &str) -> Arc<dyn Store> {
    let store = tally_store::open(url).await.expect("open store");
    store.migrate().await.expect("migrate");
    store
}

/// `admin` with its database name replaced by `name`.
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = admin
        .split_once('?')
        .map_or((admin, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop runs outside async; a helper thread with its own runtime removes the database.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) =
                    <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Sends one request to `router` without a socket: `secret` as the bearer key (none when
/// empty), the given headers, and `body` as JSON. The whole response is returned, for tests
/// that compare bytes or read response headers.
pub async fn send(
    router: &Router,
    secret: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> axum::response::Response {
    let mut req = Request::builder().method(method).uri(path);
    if !secret.is_empty() {
        req = req.header("authorization", format!("Bearer {secret}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("request");
    router.clone().oneshot(req).await.expect("infallible")
}

/// The app over a test store, with an admin key, called without a socket.
pub struct TestApp {
    pub router: Router,
    /// The router's state: its caches are the ones requests fill.
    pub state: AppState,
    pub secret: String,
    pub store: TestStore,
}

impl TestApp {
    /// The app with default settings, the built-in prices and the clock fixed at `now`.
    pub async fn new(store: TestStore, now: Micros) -> TestApp {
        TestApp::with_config(store, now, ServerConfig::default()).await
    }

    pub async fn with_config(store: TestStore, now: Micros, config: ServerConfig) -> TestApp {
        let secret = add_key(store.store.as_ref(), Role::Admin).await;
        let state = AppState::new(
            store.store.clone(),
            config,
            PriceTable::builtin(1000.into()),
            CurrencyPolicy::default(),
            Clock::Fixed(now),
        );
        TestApp {
            router: tally_server::app(state.clone()),
            state,
            secret,
            store,
        }
    }

    /// Sends a request with the admin key; returns the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.secret, method, path, content_type, body)
            .await
    }

    pub async fn call_as(
        &self,
        secret: &str,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if !secret.is_empty() {
            req = req.header("authorization", format!("Bearer {secret}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body.into()).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None, Body::empty()).await
    }

    pub async fn put(&self, path: &str, json: Value) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            path,
            Some("application/json"),
            json.to_string(),
        )
        .await
    }

    pub async fn post(&self, path: &str, json: Value) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            path,
            Some("application/json"),
            json.to_string(),
        )
        .await
    }
}

/// Stores a new key with `role` and returns its secret.
pub async fn add_key(store: &dyn Store, role: Role) -> String {
    let (key, secret) = tally_server::auth::generate_key("test", role, 0);
    store.put_api_key(&key).await.expect("store key");
    secret
}

/// Runs each `async fn name(store: TestStore)` of the calling module on SQLite and, when
/// [`PG_ENV`] is set, on PostgreSQL, as tests `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestStore::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    match $crate::TestStore::postgres().await {
                        Some(store) => super::$name(store).await,
                        None => eprintln!("skipped: {} is not set", $crate::PG_ENV),
                    }
                }
            )*
        }
    };
}

/// A `tally serve` child process started by a test.
pub struct ServerProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl ServerProcess {
    /// Runs `bin serve --database-url URL --bind 127.0.0.1:0 EXTRA...` and waits for the
    /// "listening on" line that tells the port it got.
    pub fn start(bin: &str, url: &str, extra: &[&str]) -> ServerProcess {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let mut child = Command::new(bin)
            .args(["serve", "--database-url", url, "--bind", "127.0.0.1:0"])
            .args(extra)
            .env("TALLY_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tally");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("tally exited before listening")
                .expect("read stdout");
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServerProcess { child, base }
    }

    /// SIGKILL: no graceful shutdown, no flush.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
