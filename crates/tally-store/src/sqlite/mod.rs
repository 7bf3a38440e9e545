//! SQLite: one database file in WAL mode, written through a single connection so writers
//! queue in the process instead of failing with SQLITE_BUSY, and read through a pool.

mod conn;
mod events;

// Shared by both backends; declared here rather than in lib.rs (see ingest/mod.rs).
#[path = "../ingest/mod.rs"]
pub(crate) mod ingest;

use crate::common::SqlStore;
use crate::db::{migrate_with_retry, Backend, Conn};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use ingest::activity::NumberCache;
use ingest::group_commit::{Group, GroupCommit, WriteGroup};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tally_core::event::Event;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another process's write lock (a second server, or a
/// `tally` command) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Page cache of the write connection, KiB.
const CACHE_KIB: u32 = 64 * 1024;
/// The write connection reads through a memory map of this much of the file, sharing the
/// OS page cache instead of copying pages.
const MMAP_BYTES: u64 = 1 << 30;
/// Page cache of each read connection, KiB (SQLite's default is 2 MiB).
///
/// A read connection drops its whole page cache, and unmaps its memory map, at the start
/// of its first read after another connection committed (SQLite's
/// `pagerBeginReadTransaction`), so what it keeps lasts only until the next write. Dropping
/// is what costs: after `tally serve` warmed its caches through them at scale L, the first
/// read after a write took 26-29 ms with a 64 MiB cache and a 1 GiB map (freeing the
/// pages, then `munmap` of every page the warming had touched), 17-19 ms with an 8 MiB
/// cache and the map, 7 ms with an 8 MiB cache and no map, otherwise 2-4 ms either way
/// (docs/performance.md, "Read connections after a write").
const READ_CACHE_KIB: u32 = 8 * 1024;
/// WAL pages (4 KiB) after which a commit checkpoints (see where it is set).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;
/// How long the event writer waits for the callers of its last group (see
/// `GroupCommit::start`). With 4 HTTP clients sending batches of 1,000 it raised the rate
/// from 37-40 k to 46-48 k events/s; one client measured the same as without.
const GROUP_LINGER: Duration = Duration::from_millis(5);

/// A store in an SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite backend of [`SqliteStore`].
pub struct Sqlite {
    write: SqlitePool,
    read: SqlitePool,
    /// Event batches, written in groups through `write` (see `group_commit`).
    events: GroupCommit,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`, and its directory.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            // FULL syncs the WAL on every commit: an acknowledged write survives a crash
            // of the process and a power loss.
            .synchronous(SqliteSynchronous::Full)
            .pragma("temp_store", "memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            // A local file does not drop connections; skip the ping on every write.
            .test_before_acquire(false)
            .connect_with(
                options
                    .clone()
                    // The events' indexes take random inserts (client ids) and outgrow
                    // SQLite's default 2 MiB cache fast; a miss is a read(2), a full cache
                    // spills to the WAL.
                    .pragma("cache_size", format!("-{}", CACHE_KIB))
                    .pragma("mmap_size", MMAP_BYTES.to_string())
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // Checkpoint once the WAL holds 64 MiB instead of SQLite's default
                    // 4 MiB: a page changed by many commits in between is copied into the
                    // database file once, and the checkpoint (a write and an fsync of the
                    // database file, inside whichever commit crosses the limit) runs 16x
                    // less often.
                    .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string()),
            )
            .await?;
        let readers = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .clamp(2, 8) as u32;
        let read = SqlitePoolOptions::new()
            .max_connections(readers)
            .test_before_acquire(false)
            .connect_with(
                options
                    .read_only(true)
                    .pragma("cache_size", format!("-{}", READ_CACHE_KIB))
                    .pragma("mmap_size", "0"),
            )
            .await?;
        let numbers = Arc::new(NumberCache::default());
        let events = GroupCommit::start(
            EventWriter {
                pool: write.clone(),
                numbers: numbers.clone(),
            },
            1,
            GROUP_LINGER,
        );
        Ok(SqlStore {
            backend: Sqlite {
                write,
                read,
                events,
            },
            numbers,
        })
    }
}

#[async_trait]
impl Backend for Sqlite {
    const NAME: &'static str = "sqlite";

    async fn migrate(&self) -> StoreResult<()> {
        migrate_with_retry(|| MIGRATOR.run(&self.write)).await
    }

    /// `Store::analyze`: a full `ANALYZE`, through the write connection
    /// since it writes `sqlite_stat1`. It reads every index (0.13 s for the 230,000
    /// events of the benchmark's scale S). `PRAGMA optimize` would be cheaper, but it
    /// skips a table whose row count changed less than 25-fold since its last analysis,
    /// so the events analysed before an ingestion (the benchmark's health checks) kept
    /// describing a table that then held 1.8 times as many rows of another kind; and
    /// `analysis_limit` samples each index from its start, which put 501 events per
    /// kind where there were 76,657.
    async fn analyze(&self) -> StoreResult<()> {
        sqlx::query("ANALYZE").execute(&self.write).await?;
        Ok(())
    }

    async fn read(&self) -> StoreResult<Box<dyn Conn>> {
        Ok(Box::new(conn::SqliteConn::Plain(
            self.read.acquire().await?,
        )))
    }

    async fn snapshot(&self) -> StoreResult<Box<dyn Conn>> {
        // In WAL mode a read transaction sees one snapshot from its first read on.
        Ok(Box::new(conn::SqliteConn::Tx(self.read.begin().await?)))
    }

    async fn write(&self) -> StoreResult<Box<dyn Conn>> {
        Ok(Box::new(conn::SqliteConn::Tx(
            begin_write(&self.write).await?,
        )))
    }

    async fn insert_new_events(&self, events: &[&Event]) -> StoreResult<HashSet<String>> {
        self.events.insert(events).await
    }
}

/// Writes one group of event batches through the write connection.
struct EventWriter {
    pool: SqlitePool,
    /// Customer numbers known to be committed (shared with the store).
    numbers: Arc<NumberCache>,
}

#[async_trait]
impl WriteGroup for EventWriter {
    async fn write(&self, group: &Group<'_>) -> StoreResult<HashSet<String>> {
        let mut tx = conn::SqliteConn::Tx(begin_write(&self.pool).await?);
        let (new, numbers) = events::insert(&mut tx, group.events(), &self.numbers).await?;
        // One step of the events' version per batch that stored something, as if each
        // had had its own transaction.
        for _ in 0..group.changed_writes(&new) {
            sqlx::query(crate::common::BUMP_EVENTS)
                .execute(tx.conn())
                .await?;
        }
        Box::new(tx).commit().await?;
        self.numbers.remember(numbers);
        Ok(new)
    }
}

/// IMMEDIATE takes the write lock up front: a deferred transaction that reads first and
/// then writes could fail with SQLITE_BUSY (no waiting) if another process wrote between.
async fn begin_write(pool: &SqlitePool) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pragma(pool: &SqlitePool, name: &str) -> i64 {
        sqlx::query_scalar(&format!("PRAGMA {name}"))
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// The read connections keep a small page cache and no memory map (see
    /// `READ_CACHE_KIB`); the write connection keeps its large ones.
    #[tokio::test]
    async fn read_connections_have_a_small_cache_and_no_memory_map() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let Sqlite { write, read, .. } = &store.backend;
        // A negative cache_size is KiB; mmap_size is bytes.
        assert_eq!(pragma(read, "cache_size").await, -8 * 1024);
        assert_eq!(pragma(read, "mmap_size").await, 0);
        assert_eq!(pragma(write, "cache_size").await, -64 * 1024);
        assert_eq!(pragma(write, "mmap_size").await, 1 << 30);
    }
}
