//! SQLite: one database file in WAL mode, read through a pool and written through two
//! connections, events through their own (`events`) and everything else through sqlx's,
//! which take one lock of the process in turn, so that writers queue in the process
//! instead of meeting SQLITE_BUSY.

mod checkpoint;
mod conn;
mod events;
mod ingest_log;
mod log_codec;

pub use events::event_values;

// Shared by both backends; declared here rather than in lib.rs (see ingest/mod.rs).
#[path = "../ingest/mod.rs"]
pub(crate) mod ingest;

use crate::common::SqlStore;
use crate::db::{migrate_with_retry, Backend, Conn};
use crate::types::AuditEntry;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use events::{EventWriter, WriteLock};
use ingest::activity::NumberCache;
use ingest::group_commit::GroupCommit;
use ingest_log::{IngestLog, LogWriter};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tally_core::event::Event;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another process's write lock (a second server, or a
/// `tally` command) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Page cache of each write connection, KiB: room for the pages a fold's run of the
/// ingest log changes (tens of MiB at scale L), which would otherwise spill into the WAL
/// before the commit. SQLite takes it as it is used.
const CACHE_KIB: u32 = 256 * 1024;
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
    /// Event batches, written in groups through a connection of their own
    /// (`events::EventWriter`, `group_commit`), while the store has no ingest log.
    events: GroupCommit,
    /// Taken by every write of the process, through `write` or the event writer's
    /// connection.
    lock: WriteLock,
    /// The database file.
    path: PathBuf,
    /// The event writer, which the ingest log's fold writes through.
    writer: EventWriter,
    /// The ingest log, opened by `migrate` unless another process owns it: event
    /// batches are then acknowledged through it (and audit lines appended to it).
    log: OnceLock<(GroupCommit, Arc<IngestLog>)>,
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
                write_pragmas().into_iter().fold(
                    options
                        .clone()
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal),
                    |o, (name, value)| o.pragma(name, value),
                ),
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
        let lock = WriteLock::default();
        let writer =
            EventWriter::open(path, &event_writer_pragmas(), lock.clone(), numbers.clone())?;
        let events = GroupCommit::start(writer.clone(), 1, GROUP_LINGER);
        Ok(SqlStore {
            backend: Sqlite {
                write,
                read,
                events,
                lock,
                path: path.to_owned(),
                writer,
                log: OnceLock::new(),
            },
            numbers,
        })
    }
}

/// The settings of both write connections beyond those of every connection.
fn write_pragmas() -> [(&'static str, String); 3] {
    [
        // The events' indexes take random inserts (client ids) and outgrow SQLite's
        // default 2 MiB cache fast; a miss is a read(2), a full cache spills to the WAL.
        ("cache_size", format!("-{CACHE_KIB}")),
        ("mmap_size", MMAP_BYTES.to_string()),
        // Checkpoint once the WAL holds 64 MiB instead of SQLite's default 4 MiB: a page
        // changed by many commits in between is copied into the database file once, and
        // the checkpoint (a write and an fsync of the database file, inside whichever
        // commit crosses the limit) runs 16x less often.
        ("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string()),
    ]
}

/// Every setting of the event writer's connection, which sqlx's options do not open:
/// what `open`'s options give every connection (sqlx turns foreign keys on by default;
/// WAL mode is the file's, set by the first write connection), and the write
/// connections' own.
fn event_writer_pragmas() -> Vec<(&'static str, String)> {
    [
        ("synchronous", "FULL".to_owned()),
        ("temp_store", "MEMORY".to_owned()),
        ("foreign_keys", "ON".to_owned()),
    ]
    .into_iter()
    .chain(write_pragmas())
    .collect()
}

#[async_trait]
impl Backend for Sqlite {
    const NAME: &'static str = "sqlite";

    /// Applies the migrations, then opens the ingest log (once), which folds what an
    /// earlier process acknowledged and did not fold before reads see anything.
    async fn migrate(&self) -> StoreResult<()> {
        migrate_with_retry(|| MIGRATOR.run(&self.write)).await?;
        if self.log.get().is_some() {
            return Ok(());
        }
        let (path, writer) = (self.path.clone(), self.writer.clone());
        let log = tokio::task::spawn_blocking(move || IngestLog::open(&path, writer))
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))??;
        if let Some(log) = log {
            let log = Arc::new(log);
            // Appending is one small synced write: nothing to linger for.
            let commit = GroupCommit::start(LogWriter(log.clone()), 1, Duration::ZERO);
            // Two calls at once would both open it; the second to open finds it owned.
            let _ = self.log.set((commit, log));
        }
        Ok(())
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
        // Statistics of every event acknowledged, the ingest log's unfolded ones too.
        self.settle().await?;
        let _turn = self.lock.lock().await;
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
        // IMMEDIATE takes SQLite's write lock up front: a deferred transaction that reads
        // first and then writes could fail with SQLITE_BUSY (no waiting) if another
        // process wrote between.
        let turn = self.lock.clone().lock_owned().await;
        Ok(Box::new(conn::SqliteConn::Write(
            self.write.begin_with("BEGIN IMMEDIATE").await?,
            turn,
        )))
    }

    async fn insert_new_events(&self, events: &[&Event]) -> StoreResult<HashSet<String>> {
        match self.log.get() {
            Some((commit, _)) => commit.insert(events).await,
            None => self.events.insert(events).await,
        }
    }

    async fn insert_owned_new_events(&self, events: Vec<Event>) -> StoreResult<Vec<bool>> {
        match self.log.get() {
            Some((commit, _)) => commit.insert_owned(events).await,
            None => self.events.insert_owned(events).await,
        }
    }

    async fn settle(&self) -> StoreResult<()> {
        match self.log.get() {
            Some((_, log)) => log.settle().await,
            None => Ok(()),
        }
    }

    async fn append_audit_to_log(&self, line: &AuditEntry) -> StoreResult<bool> {
        match self.log.get() {
            Some((_, log)) => log.append_audit(line).await.map(|()| true),
            None => Ok(false),
        }
    }
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

    /// SQLite is built with `.cargo/config.toml`'s flags: without the shared page cache
    /// of SQLITE_ENABLE_MEMORY_MANAGEMENT and without memory statistics, whose mutexes
    /// the event writer would take for every page and allocation.
    #[test]
    fn built_without_memory_bookkeeping() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = stmt
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        // The options libsqlite3-sys sets are still there.
        assert!(options.iter().any(|o| o == "ENABLE_STAT4"), "{options:?}");
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
        assert_eq!(pragma(write, "cache_size").await, -256 * 1024);
        assert_eq!(pragma(write, "mmap_size").await, 1 << 30);
    }

    /// The event writer's connection, which rusqlite opens, has every setting of sqlx's
    /// write connection that matters to a write: durability, checkpoints, caches, waiting
    /// for other processes.
    #[tokio::test]
    async fn the_event_writer_connection_has_the_write_connections_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let writer = EventWriter::open(
            &path,
            &event_writer_pragmas(),
            WriteLock::default(),
            Arc::default(),
        )
        .unwrap();
        let write = &store.backend.write;
        for name in [
            "synchronous",
            "temp_store",
            "foreign_keys",
            "cache_size",
            "mmap_size",
            "wal_autocheckpoint",
            "busy_timeout",
        ] {
            let theirs = writer.pragma(name).to_string();
            assert_eq!(theirs, pragma(write, name).await.to_string(), "{name}");
        }
        assert_eq!(writer.pragma("synchronous"), 2, "FULL");
        assert_eq!(writer.pragma("busy_timeout"), 10_000);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(write)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
