//! The seam between the shared store logic (`common`) and the two databases: a connection
//! that runs SQL with `$N` placeholders (both SQLite and PostgreSQL accept them) and hands
//! back rows of plain values, plus what each backend must do its own way.
//!
//! Going through plain values instead of sqlx's generic `Database` bounds keeps every query
//! and every write rule written once; the cost, a small copy per value, is irrelevant next
//! to the database work. Event ingestion, the one hot path, bypasses this and uses sqlx
//! directly in each backend.

use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use rust_decimal::Decimal;
use std::str::FromStr;
use tally_core::event::Event;

/// A bound parameter. Nulls carry their type because PostgreSQL wants one.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Bytes(Vec<u8>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_owned()))
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_owned))
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}

impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Arg {
        Arg::Text(v.clone())
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg::Bool(Some(v))
    }
}

/// Builds a `Vec<Arg>` from values of mixed types.
macro_rules! args {
    ($($v:expr),* $(,)?) => { vec![$($crate::db::Arg::from($v)),*] };
}
pub(crate) use args;

/// Exact decimals are stored as normalized text, so equal values compare equal in SQL.
pub(crate) fn decimal_text(d: &Decimal) -> String {
    d.normalize().to_string()
}

/// A value read back. SQLite has no booleans (they come back as `Int`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// One result row, read by column position.
#[derive(Debug, Clone)]
pub(crate) struct Row(pub Vec<Val>);

fn decode_error(what: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(what.into()))
}

impl Row {
    fn get(&self, i: usize) -> StoreResult<&Val> {
        self.0
            .get(i)
            .ok_or_else(|| decode_error(format!("no column {i}")))
    }

    fn mismatch<T>(&self, i: usize, want: &str) -> StoreResult<T> {
        Err(decode_error(format!(
            "column {i}: expected {want}, found {:?}",
            self.0.get(i)
        )))
    }

    pub fn opt_text(&self, i: usize) -> StoreResult<Option<String>> {
        match self.get(i)? {
            Val::Null => Ok(None),
            Val::Text(s) => Ok(Some(s.clone())),
            _ => self.mismatch(i, "text"),
        }
    }

    pub fn text(&self, i: usize) -> StoreResult<String> {
        self.opt_text(i)?
            .map_or_else(|| self.mismatch(i, "text"), Ok)
    }

    pub fn opt_int(&self, i: usize) -> StoreResult<Option<i64>> {
        match self.get(i)? {
            Val::Null => Ok(None),
            Val::Int(n) => Ok(Some(*n)),
            _ => self.mismatch(i, "integer"),
        }
    }

    pub fn int(&self, i: usize) -> StoreResult<i64> {
        self.opt_int(i)?
            .map_or_else(|| self.mismatch(i, "integer"), Ok)
    }

    pub fn float(&self, i: usize) -> StoreResult<f64> {
        match self.get(i)? {
            Val::Float(f) => Ok(*f),
            Val::Int(n) => Ok(*n as f64),
            _ => self.mismatch(i, "number"),
        }
    }

    pub fn opt_bool(&self, i: usize) -> StoreResult<Option<bool>> {
        match self.get(i)? {
            Val::Null => Ok(None),
            Val::Bool(b) => Ok(Some(*b)),
            Val::Int(n) => Ok(Some(*n != 0)),
            _ => self.mismatch(i, "boolean"),
        }
    }

    pub fn bool(&self, i: usize) -> StoreResult<bool> {
        self.opt_bool(i)?
            .map_or_else(|| self.mismatch(i, "boolean"), Ok)
    }

    pub fn bytes(&self, i: usize) -> StoreResult<&[u8]> {
        match self.get(i)? {
            Val::Bytes(v) => Ok(v),
            _ => self.mismatch(i, "bytes"),
        }
    }

    pub fn opt_decimal(&self, i: usize) -> StoreResult<Option<Decimal>> {
        match self.opt_text(i)? {
            None => Ok(None),
            Some(s) => Decimal::from_str(&s)
                .map(Some)
                .map_err(|e| decode_error(format!("column {i}: `{s}` is not a decimal: {e}"))),
        }
    }

    pub fn decimal(&self, i: usize) -> StoreResult<Decimal> {
        self.opt_decimal(i)?
            .map_or_else(|| self.mismatch(i, "decimal"), Ok)
    }

    /// Text column holding an enum's name.
    pub fn parsed<T>(&self, i: usize, parse: impl Fn(&str) -> Option<T>) -> StoreResult<T> {
        let s = self.text(i)?;
        parse(&s).ok_or_else(|| decode_error(format!("column {i}: unexpected value `{s}`")))
    }
}

/// A connection, or a transaction on one. SQL uses `$1`, `$2`, ... placeholders.
#[async_trait]
pub(crate) trait Conn: Send {
    async fn rows(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Vec<Row>>;
    /// Runs a statement; returns the number of rows it changed.
    async fn exec(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<u64>;
    /// Commits a transaction (a no-op on a plain connection). Dropping without committing
    /// rolls back.
    async fn commit(self: Box<Self>) -> StoreResult<()>;

    async fn row(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<Option<Row>> {
        Ok(self.rows(sql, args).await?.into_iter().next())
    }

    async fn exists(&mut self, sql: &str, args: Vec<Arg>) -> StoreResult<bool> {
        Ok(self.row(sql, args).await?.is_some())
    }
}

/// What each database does its own way.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    const NAME: &'static str;

    async fn migrate(&self) -> StoreResult<()>;
    /// `Store::analyze`.
    async fn analyze(&self) -> StoreResult<()>;
    /// A connection for single-statement reads.
    async fn read(&self) -> StoreResult<Box<dyn Conn>>;
    /// A read-only transaction, for reads of several statements that must agree.
    async fn snapshot(&self) -> StoreResult<Box<dyn Conn>>;
    /// A write transaction.
    async fn write(&self) -> StoreResult<Box<dyn Conn>>;
    /// Inserts the given events, whose ids are distinct, and registers their services, in
    /// one transaction. Returns the ids that were new.
    async fn insert_new_events(
        &self,
        events: &[&Event],
    ) -> StoreResult<std::collections::HashSet<String>>;
    /// [`Backend::insert_new_events`] for events that are the caller's to give: returns,
    /// per event, whether it was new.
    async fn insert_owned_new_events(&self, events: Vec<Event>) -> StoreResult<Vec<bool>>;
    /// Waits until reads see every event acknowledged before the call (SQLite's ingest
    /// log acknowledges before its fold makes events readable); at once by default.
    async fn settle(&self) -> StoreResult<()> {
        Ok(())
    }
    /// Appends `line` to the backend's ingest log, if it has one open: `false` if not,
    /// and the caller writes it to `audit_log` itself.
    async fn append_audit_to_log(&self, _line: &crate::types::AuditEntry) -> StoreResult<bool> {
        Ok(false)
    }
}

/// The stored columns of an event, in the order both backends bind them.
pub(crate) const EVENT_COLS: [&str; 21] = [
    "id",
    "kind",
    "time",
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
    "cost",
    "cost_source",
    "up",
    "gauge_name",
    "gauge_value",
];

/// Runs a migrator, retrying when it failed while executing: that is how a migration
/// lost to another process applying it at the same time shows (SQLite's migrator takes no
/// lock), and the retry then finds it applied. Other failures are reported at once.
pub(crate) async fn migrate_with_retry<F, Fut>(mut run: F) -> StoreResult<()>
where
    F: FnMut() -> Fut + Send,
    Fut: std::future::Future<Output = Result<(), sqlx::migrate::MigrateError>> + Send,
{
    use sqlx::migrate::MigrateError;
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match run().await {
            Ok(()) => return Ok(()),
            Err(MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _))
                if attempt < ATTEMPTS =>
            {
                tracing::warn!("migration attempt {attempt} failed, retrying: {e}");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt))).await;
        attempt += 1;
    }
}
