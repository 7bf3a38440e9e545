//! tally's storage: one [`Store`] trait and one implementation per database, each with
//! its own migrations. Queries are bound at run time, so building needs no database.
//!
//! Invariants every implementation keeps (and `tests/contract.rs` checks on both):
//! - a method that returns `Ok` after a write has made it durable;
//! - writes are idempotent: the same content again is [`WriteOutcome::Unchanged`];
//! - an event id is stored once, forever: the first payload wins;
//! - a write that changes data raises its [`DataVersion`] counter in the same transaction
//!   (entities or events; keys and the audit log have none), and one that changes nothing
//!   or fails leaves it as it was.

mod common;
mod db;
mod postgres;
mod sqlite;
mod types;

pub use postgres::PgStore;
pub use sqlite::{event_values as sqlite_event_values, SqliteStore};
pub use types::*;

use async_trait::async_trait;
use tally_core::event::{Event, EventKind};
use tally_core::model::*;
use tally_core::time::Micros;

/// Errors from a store. `NotFound`, `Conflict` and `UnknownReference` are the client's
/// doing (404, 409, 422); the others are internal.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} `{id}` does not exist")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    /// A write names another entity that does not exist (`field` holds its id).
    #[error("{field}: no {kind} with id `{id}` exists")]
    UnknownReference {
        field: &'static str,
        kind: &'static str,
        id: String,
    },
    #[error("invalid pagination cursor")]
    BadCursor,
    #[error("unsupported database URL: {0}")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the SQLite event writer's connection (`sqlite::events`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything tally persists. One implementation per database; see the crate docs for the
/// invariants.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Applies pending migrations (idempotent; safe for several processes at once).
    async fn migrate(&self) -> StoreResult<()>;

    /// Refreshes the query planner's statistics of tally's tables: `ANALYZE` on SQLite
    /// (it reads every index, so it takes time in proportion to the data and holds the
    /// write lock meanwhile), `VACUUM (ANALYZE)` on PostgreSQL (it samples each table, and
    /// marks the pages all-visible so that covering indexes answer alone).
    ///
    /// Call it after a bulk load (`tally demo`, `tally import`, the benchmark). Without
    /// statistics a planner guesses row counts: PostgreSQL gathers them only through
    /// autovacuum, which may be off or not have run yet (on this project's machine,
    /// `llm/costs` at the benchmark's scale M took 19 s before a manual `ANALYZE` and
    /// 0.23–0.47 s after), and SQLite only through `ANALYZE` (into `sqlite_stat1`).
    /// Data and the data version are unchanged.
    async fn analyze(&self) -> StoreResult<()>;

    /// Reads into the process what it otherwise reads on first use and then keeps: every
    /// customer's number (see [`Store::customer_numbers`]; numbers never change once
    /// committed). `tally serve` calls it before it listens, so that the first request
    /// that maps many customers (adoption maps every subscriber) does not pay for the
    /// lookups. Answers are the same with or without it.
    async fn preload(&self) -> StoreResult<()>;

    /// Succeeds when the database answers a query.
    async fn ping(&self) -> StoreResult<()>;

    /// The current data version: one small read. Every write that changes data raises its
    /// counter in the transaction that commits it, so the data read after this call is at
    /// least as new as the version it returned, in this process or in any other on the
    /// database.
    async fn data_version(&self) -> StoreResult<DataVersion>;

    // ---- entities: writes ------------------------------------------------------------

    /// Upsert.
    async fn put_plan(&self, plan: &Plan) -> StoreResult<WriteOutcome>;
    /// Upsert.
    async fn put_customer(&self, customer: &Customer) -> StoreResult<WriteOutcome>;
    /// Create. The same content again is `Unchanged`; other content under the same id is a
    /// `Conflict` (changes and cancellations have their own calls). Unknown customer or
    /// plan: `UnknownReference`. `canceled_at` of the argument is ignored.
    async fn put_subscription(&self, sub: &Subscription) -> StoreResult<WriteOutcome>;
    /// Upsert keyed by (subscription, effective_at). Unknown subscription: `NotFound`;
    /// unknown plan: `UnknownReference`.
    async fn put_change(&self, change: &SubscriptionChange) -> StoreResult<WriteOutcome>;
    /// Sets (or moves) the cancellation: `Updated` when it did, `Unchanged` when the
    /// subscription already ended then. Unknown subscription: `NotFound`. A cancellation
    /// before the start is a `Conflict`.
    async fn cancel_subscription(
        &self,
        id: &str,
        effective_at: Micros,
    ) -> StoreResult<WriteOutcome>;
    /// Upsert. Unknown customer: `UnknownReference`.
    async fn put_invoice(&self, invoice: &Invoice) -> StoreResult<WriteOutcome>;
    /// Upserts by (month, category, service), all in one transaction.
    async fn put_costs(&self, costs: &[CostRecord]) -> StoreResult<Vec<WriteOutcome>>;
    /// Upserts by (month, channel), all in one transaction.
    async fn put_spend(&self, spend: &[MarketingSpend]) -> StoreResult<Vec<WriteOutcome>>;
    /// Upsert.
    async fn put_service(&self, service: &Service) -> StoreResult<WriteOutcome>;
    /// Several entity writes in one transaction, in order, each with the meaning and the
    /// outcome of its own call above: one commit (one fsync) for all, where a bulk load
    /// of single calls pays one per entity. All or nothing: the first error rolls every
    /// write of the call back and is returned; a caller that needs each record's own
    /// error writes them one by one then.
    async fn write_entities(&self, writes: &[EntityWrite<'_>]) -> StoreResult<Vec<WriteOutcome>>;

    /// Stores the events whose ids are new, in one transaction, and registers services
    /// first seen here. Returns, per input event, `true` if it was stored now and `false`
    /// if its id was already stored (before, or earlier in this same slice).
    async fn insert_events(&self, events: &[Event]) -> StoreResult<Vec<bool>>;

    /// [`Store::insert_events`] for events the caller has no further use for (a request's
    /// batch): the stores queue them for their writer as they are, where the borrowed
    /// form copies each event (an allocation per string of every event).
    async fn insert_owned_events(&self, events: Vec<Event>) -> StoreResult<Vec<bool>> {
        self.insert_events(&events).await
    }

    // ---- entities: reads ---------------------------------------------------------------

    async fn get_plan(&self, id: &str) -> StoreResult<Option<Plan>>;
    async fn get_customer(&self, id: &str) -> StoreResult<Option<Customer>>;
    async fn get_subscription(&self, id: &str) -> StoreResult<Option<SubscriptionRecord>>;
    async fn get_invoice(&self, id: &str) -> StoreResult<Option<Invoice>>;
    async fn get_service(&self, name: &str) -> StoreResult<Option<Service>>;

    /// Pages in id order.
    async fn list_plans(&self, page: &PageRequest) -> StoreResult<Page<Plan>>;
    async fn list_customers(&self, page: &PageRequest) -> StoreResult<Page<Customer>>;
    async fn list_subscriptions(&self, page: &PageRequest)
        -> StoreResult<Page<SubscriptionRecord>>;
    async fn list_invoices(&self, page: &PageRequest) -> StoreResult<Page<Invoice>>;
    async fn list_services(&self, page: &PageRequest) -> StoreResult<Page<Service>>;

    /// Row counts per table, for `tally` commands and tests.
    async fn counts(&self) -> StoreResult<Counts>;

    // ---- analytics reads ---------------------------------------------------------------

    /// Every plan, customer, subscription and change (the analytics filter by `as_of`),
    /// with the data version of the same snapshot.
    async fn billing_data(&self) -> StoreResult<BillingData>;
    /// Every cost record and marketing spend record.
    async fn cost_data(&self) -> StoreResult<CostData>;
    /// Invoice totals: revenue by `paid_at` in `paid_span`, counts by `issued_at` in
    /// `issued_span`.
    async fn invoice_stats(&self, paid_span: Span, issued_span: Span) -> StoreResult<InvoiceStats>;
    /// Aggregates of events, grouped as asked.
    async fn usage(&self, query: &UsageQuery) -> StoreResult<Vec<UsageRow>>;
    /// For each piece `(customer, span)`, the totals of the events `query` selects that
    /// belong to that customer and fall in that span (the query's own span, customer and
    /// grouping are ignored): one row per piece, in order, in a bounded number of
    /// statements whatever the number of pieces.
    async fn usage_pieces(
        &self,
        query: &UsageQuery,
        pieces: &[(String, Span)],
    ) -> StoreResult<Vec<UsageRow>>;
    /// The customers with at least one event of `kind` in `span`, per service (all under
    /// `None` when `by_service` is false). Events without a customer are left out.
    async fn active_customers(
        &self,
        kind: EventKind,
        span: Span,
        by_service: bool,
    ) -> StoreResult<ActiveCustomers>;
    /// Whether the day of `edge` (a span inside one UTC day) has no event of `kind`
    /// outside `edge`: then `edge` holds the day's events, all of them. Asked after
    /// counting `edge`'s events, a `true` means the count was the whole day's (a later
    /// snapshot holds everything an earlier one did, and the day's events now all lie in
    /// `edge`), so figures kept for the day at that count are `edge`'s figures. `false`
    /// for an empty edge, one across midnight, and before 1970.
    async fn day_holds_only(&self, kind: EventKind, edge: Span) -> StoreResult<bool>;
    /// The number of each of `ids`, in order (`None` for an id without one): every
    /// customer id of a stored event has one, for good; [`ActiveCustomers`] holds them.
    async fn customer_numbers(&self, ids: &[&str]) -> StoreResult<Vec<Option<u32>>>;
    /// The value of the latest gauge `name` at or before `at`.
    async fn latest_gauge(&self, name: &str, at: Micros) -> StoreResult<Option<f64>>;

    // ---- access ------------------------------------------------------------------------

    /// Creates a key. The same key again is fine; another key with its id or secret hash
    /// is a `Conflict`.
    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn find_api_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// Marks the key revoked at `at` (a revoked key keeps its first revocation time);
    /// `NotFound` for an unknown id.
    async fn revoke_api_key(&self, id: &str, at: Micros) -> StoreResult<()>;

    // ---- alert rules -------------------------------------------------------------------

    /// The stored rules (a fresh store holds the defaults of metrics.md).
    async fn list_alert_rules(&self) -> StoreResult<Vec<AlertRule>>;
    /// Upsert by metric.
    async fn put_alert_rule(&self, rule: &AlertRule) -> StoreResult<WriteOutcome>;
    /// `NotFound` for an unknown metric.
    async fn delete_alert_rule(&self, metric: &str) -> StoreResult<()>;

    // ---- audit log ---------------------------------------------------------------------

    /// Appends an entry (its `id` is ignored; the store assigns one).
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Pages newest first.
    async fn list_audit(&self, page: &PageRequest) -> StoreResult<Page<AuditEntry>>;
}

/// Opens the store a URL names: `postgres://` or `postgresql://` is PostgreSQL;
/// `sqlite://PATH`, `sqlite:PATH` or a plain file path is SQLite (the file and its
/// directory are created if missing). Does not migrate: call [`Store::migrate`].
pub async fn open(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(std::sync::Arc::new(PgStore::connect(url).await?));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains("://") || path.starts_with(":memory:") {
        // Two pools on an in-memory database would be two databases.
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    }
    Ok(std::sync::Arc::new(
        SqliteStore::open(std::path::Path::new(path)).await?,
    ))
}
