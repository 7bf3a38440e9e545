//! PostgreSQL: a connection pool, and nothing cached in the process, so that several
//! tally processes can serve one database side by side.

mod conn;
mod events;

use crate::common::SqlStore;
use crate::db::{migrate_with_retry, Backend, Conn};
use crate::sqlite::ingest::activity::NumberCache;
use crate::sqlite::ingest::group_commit::{Batches, Failed, Group, GroupCommit, WriteGroup};
use crate::StoreResult;
use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tally_core::event::Event;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

const MAX_CONNECTIONS: u32 = 16;

/// Event groups written at once: while one group commits, the next one inserts.
const EVENT_WRITERS: usize = 2;
/// How long an event writer waits for the callers of its last group (see
/// `GroupCommit::start`): not at all, since with two writers one group's commit already
/// overlaps the next one's inserts (3 ms measured the same as none).
const GROUP_LINGER: Duration = Duration::ZERO;

/// Memory a sort or hash of one query may use before spilling to disk.
const WORK_MEM: &str = "64MB";

/// A store in a PostgreSQL database.
pub type PgStore = SqlStore<Postgres>;

/// The PostgreSQL backend of [`PgStore`].
pub struct Postgres {
    pool: PgPool,
    /// Event batches, written in groups (see `group_commit`).
    events: GroupCommit,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`).
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        // The default work_mem (4 MB) sends the sort behind a month's (service, customer)
        // totals of the customer rollup to disk: 420 ms instead of 120 ms on the demo.
        let options = PgConnectOptions::from_str(url)?.options([("work_mem", WORK_MEM)]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        let numbers = Arc::new(NumberCache::default());
        let events = GroupCommit::start(
            EventWriter {
                pool: pool.clone(),
                numbers: numbers.clone(),
            },
            EVENT_WRITERS,
            GROUP_LINGER,
        );
        Ok(SqlStore {
            backend: Postgres { pool, events },
            numbers,
        })
    }
}

#[async_trait]
impl Backend for Postgres {
    const NAME: &'static str = "postgres";

    async fn migrate(&self) -> StoreResult<()> {
        // The migrator holds an advisory lock while it works, so concurrent starts queue.
        migrate_with_retry(|| MIGRATOR.run(&self.pool)).await
    }

    /// `Store::analyze`: `VACUUM (ANALYZE)` of every table of the schema tally's
    /// migrations created its tables in (the connection's current schema), and no other.
    ///
    /// `ANALYZE` alone gives the planner statistics; the `VACUUM` marks the loaded pages
    /// all-visible, without which PostgreSQL cannot answer from an index alone. At scale L
    /// without it the month-to-date invoice figures (`invoice_stats`, over the covering
    /// indexes of migration 0006) visited 25,000 heap pages in bitmap scans: 33-37 ms,
    /// 110 ms on the first request after a start, which put `metrics/alerts` at 129-670 ms
    /// then; with it they are index-only scans and alerts takes 15-25 ms. Autovacuum would
    /// do the same in time, but it may be off (as on this project's machine) or not
    /// have run yet. It took 12 s at L against 1.3 s for `ANALYZE` alone, and does not
    /// block reads or writes. Sent as a simple query: `VACUUM` cannot run in a
    /// transaction block, which an extended-protocol statement may open.
    async fn analyze(&self) -> StoreResult<()> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT quote_ident(tablename) FROM pg_tables \
             WHERE schemaname = current_schema() ORDER BY tablename",
        )
        .fetch_all(&self.pool)
        .await?;
        if !tables.is_empty() {
            sqlx::raw_sql(&format!("VACUUM (ANALYZE) {}", tables.join(", ")))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn read(&self) -> StoreResult<Box<dyn Conn>> {
        Ok(Box::new(conn::PgConn::Plain(self.pool.acquire().await?)))
    }

    async fn snapshot(&self) -> StoreResult<Box<dyn Conn>> {
        let tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        Ok(Box::new(conn::PgConn::Tx(tx)))
    }

    async fn write(&self) -> StoreResult<Box<dyn Conn>> {
        Ok(Box::new(conn::PgConn::Tx(self.pool.begin().await?)))
    }

    async fn insert_new_events(&self, events: &[&Event]) -> StoreResult<HashSet<String>> {
        self.events.insert(events).await
    }

    async fn insert_owned_new_events(&self, events: Vec<Event>) -> StoreResult<Vec<bool>> {
        self.events.insert_owned(events).await
    }
}

/// Writes one group of event batches in a transaction of its own.
struct EventWriter {
    pool: PgPool,
    /// Customer numbers known to be committed (shared with the store).
    numbers: Arc<NumberCache>,
}

#[async_trait]
impl WriteGroup for EventWriter {
    async fn write(&self, batches: Batches) -> Result<Vec<Vec<bool>>, Failed> {
        let written = self.write_group(&Group::new(&batches)).await;
        written.map_err(|e| Failed::with(e, batches))
    }
}

impl EventWriter {
    /// [`WriteGroup::write`] of one group.
    async fn write_group(&self, group: &Group<'_>) -> StoreResult<Vec<Vec<bool>>> {
        let mut tx = conn::PgConn::Tx(self.pool.begin().await?);
        let (new, numbers) = events::insert(&mut tx, group.events(), &self.numbers).await?;
        let new: Vec<bool> = group.events().iter().map(|e| new.contains(&e.id)).collect();
        // One step of the events' version per batch that stored something, as if each
        // had had its own transaction.
        for _ in 0..group.changed_writes(&new) {
            sqlx::query(crate::common::BUMP_EVENTS)
                .execute(tx.conn())
                .await?;
        }
        Box::new(tx).commit().await?;
        self.numbers.remember(numbers);
        Ok(group.per_batch(&new))
    }
}
