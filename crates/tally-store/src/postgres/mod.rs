//! PostgreSQL: a connection pool, and nothing cached in the process, so that several
//! tally processes can serve one database side by side.

mod conn;
mod events;

use crate::common::SqlStore;
use crate::db::{migrate_with_retry, Backend, Conn};
use crate::StoreResult;
use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;
use tally_core::event::Event;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

const MAX_CONNECTIONS: u32 = 16;
/// Memory a sort or hash of one query may use before spilling to disk.
const WORK_MEM: &str = "64MB";

/// A store in a PostgreSQL database.
pub type PgStore = SqlStore<Postgres>;

/// The PostgreSQL backend of [`PgStore`].
pub struct Postgres {
    pool: PgPool,
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
        Ok(SqlStore {
            backend: Postgres { pool },
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
        let mut tx = self.pool.begin().await?;
        let new = events::insert(&mut tx, events).await?;
        if !new.is_empty() {
            sqlx::query(crate::common::BUMP_EVENTS)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(new)
    }
}
