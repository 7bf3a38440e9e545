//! The ingest log: SQLite acknowledges a group of event batches once it is appended,
//! durably, to a log file of its own, and a fold thread moves what was appended into
//! `events`, the rollups and the activity bitmaps in large runs.
//!
//! Why: written straight into `events`, each group of a few thousand events pays for
//! its random B-tree writes and about one rollup key per event while its clients wait,
//! and SQLite has one writer. Appending a group is one row and one synced commit of a
//! small file; folding tens of thousands of events at once touches each rollup key and
//! index page once per run, not once per group (docs/performance.md, "The ingest log").
//!
//! What a client sees is unchanged:
//! - A 2xx means durable: the group is in the log, synced, before it is answered; an
//!   unfolded log left by a crash is folded when the store is next migrated.
//! - A retry never double counts: an id is new only if neither `events` nor the log's
//!   unfolded entries hold it (checked in that order of the log first, so that an id the
//!   fold moves in between is still seen), and the fold's insert skips an id `events`
//!   already holds (one another process stored, or a replay of what was folded).
//! - Reads see every acknowledged event: the store's reads of events wait until the fold
//!   has passed what was acknowledged when they started ([`IngestLog::settle`]).
//!
//! Acknowledgements may run ahead of the fold by at most [`MAX_UNFOLDED`] events
//! (backpressure), which bounds both memory and how long a read waits. Audit lines go
//! through the log as well while it is open, so that a request's audit line does not
//! wait for a fold to release SQLite's write lock, and audit ids still follow time.
//!
//! One process owns the log (SQLite's exclusive locking mode on the log file). A second
//! process on the same database ingests straight into `events`, as before the log.

use super::checkpoint::{Checkpointer, FALLBACK_AUTOCHECKPOINT};
use super::events::{self, EventWriter};
use super::ingest::group_commit::{Batches, Failed, Group, WriteGroup};
use super::log_codec;
use crate::types::AuditEntry;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::{params, TransactionBehavior};
use siphasher::sip128::Hasher128 as _;
use std::collections::HashSet;
use std::hash::{BuildHasher as _, BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;
use tally_core::event::Event;
use tokio::sync::{watch, Semaphore};

/// Most events acknowledged and not yet folded; an acknowledgement beyond waits. Twice a
/// fold's run, so that the next run queues up while one is folded. It also bounds how
/// long a read waits for the fold (a few seconds at L's rate; measured far less, since
/// the queue stays short of it: docs/performance.md).
pub(super) const MAX_UNFOLDED: usize = 524_288;

/// Most events one fold takes (entries are whole; it takes what is queued, up to this).
/// A run's commit writes every page it changed, and at scale L (100,000 customers) a run
/// of 65,536 events, a third of a day, meets few events of one customer, so its rollup
/// rows spread over the day's pages again in every run; runs four times as long measured
/// +7.5 % at L (twice) and the same at M (docs/performance.md, "SQLite: without its
/// memory bookkeeping, and longer folds at L").
const MAX_FOLD_EVENTS: usize = 262_144;

/// How long a read waits for the fold before it fails.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the fold waits before it tries a run again that failed.
const FOLD_RETRY: Duration = Duration::from_secs(1);

/// How many nice steps above the process's the fold thread asks for (Linux, two CPUs or
/// more; see [`raise_fold_priority`]).
const FOLD_PRIORITY_BOOST: i32 = 10;

/// The log file of the database at `db`: its path with `-ingest` appended, beside the
/// database's own `-wal` and `-shm` files.
pub(super) fn log_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-ingest");
    PathBuf::from(name)
}

/// What one entry of the log holds.
enum Body {
    /// New events (distinct ids, none stored when acknowledged), and how many steps of
    /// the events' data version their group made.
    Events {
        events: Vec<Event>,
        /// The events' [`IdKeys::key`]s, in order.
        keys: Vec<u128>,
        bumps: usize,
    },
    Audit(AuditEntry),
}

struct Entry {
    seq: u64,
    body: Body,
    /// Room taken from [`Progress::room`], given back once folded.
    room: usize,
}

/// What the acknowledging side and the fold know an unfolded event's id by: a 128-bit
/// SipHash-1-3 of it under keys drawn at random when the log opens. Every event's id is
/// added, looked up and removed once; a key of 16 bytes spares a copy of each id into the
/// set and freeing it in the fold (with the ids themselves, ~5 % of the server's CPU at
/// L: docs/performance.md). Two distinct ids share a key with probability 2^-128 a pair,
/// about 2^-78 over a billion events checked against a full set; the keys are secret,
/// so no client can make two ids meet on purpose.
#[derive(Clone, Copy)]
struct IdKeys(u64, u64);

impl IdKeys {
    fn random() -> IdKeys {
        // The standard library's hash state is seeded from the operating system's
        // randomness; what it makes of two constants is as unpredictable.
        let state = std::collections::hash_map::RandomState::new();
        IdKeys(state.hash_one(1u8), state.hash_one(2u8))
    }

    fn key(self, id: &str) -> u128 {
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(self.0, self.1);
        h.write(id.as_bytes());
        h.finish128().as_u128()
    }
}

/// Hashes a key that is already uniformly distributed ([`IdKeys::key`]) by its low bits.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached by `u128` keys, which come through `write_u128`.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

/// The keys of the events acknowledged and not yet folded.
type IdSet = HashSet<u128, BuildHasherDefault<Prehashed>>;

/// What the acknowledging side and the fold share.
struct Progress {
    keys: IdKeys,
    /// Keys of the events acknowledged and not yet folded.
    unfolded: Mutex<IdSet>,
    /// Events that may still be acknowledged before the fold catches up.
    room: Arc<Semaphore>,
    /// The last entry acknowledged.
    acked: AtomicU64,
    /// The last entry folded (committed into the database).
    folded: watch::Sender<u64>,
}

/// The log's connection and the next entry's number.
struct Appender {
    conn: rusqlite::Connection,
    next: u64,
    /// The last entry already deleted from the log (folded before).
    deleted: u64,
}

/// The acknowledging side, which the store's group commit writes through.
pub(super) struct IngestLog {
    appender: Mutex<Appender>,
    /// Read-only, on the database: the duplicate check against `events`.
    lookup: Mutex<rusqlite::Connection>,
    fold: mpsc::Sender<Entry>,
    progress: Arc<Progress>,
}

impl IngestLog {
    /// Opens the log of the database at `db` (migrated) and starts its fold thread over
    /// `writer`, after queueing what an earlier process acknowledged and did not fold.
    /// `None` when another process owns the log.
    pub(super) fn open(db: &Path, writer: EventWriter) -> StoreResult<Option<IngestLog>> {
        let Some(conn) = own(&log_path(db))? else {
            return Ok(None);
        };
        let lookup = rusqlite::Connection::open_with_flags(
            db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        lookup.busy_timeout(super::BUSY_TIMEOUT)?;
        let checkpoints = Checkpointer::start(db)?;
        let folded: i64 = writer.blocking_transaction(|tx, _| {
            // The checkpoint thread copies the WAL into the database; the fold's commits
            // only once it falls far behind.
            tx.pragma_update(None, "wal_autocheckpoint", FALLBACK_AUTOCHECKPOINT)?;
            let seq = tx.query_row("SELECT seq FROM ingest_folded", [], |r| r.get(0))?;
            Ok((seq, vec![]))
        })?;
        let folded = folded as u64;
        let left = unfolded(&conn, folded)?;
        let last = left.last().map_or(folded, |e| e.seq);
        let top: Option<i64> = conn.query_row("SELECT MAX(seq) FROM log", [], |r| r.get(0))?;
        let next = (top.unwrap_or(0) as u64).max(last) + 1;
        let keys = IdKeys::random();
        let progress = Arc::new(Progress {
            keys,
            unfolded: Mutex::new(IdSet::default()),
            room: Arc::new(Semaphore::new(MAX_UNFOLDED)),
            acked: AtomicU64::new(last),
            folded: watch::Sender::new(folded),
        });
        let (send, receive) = mpsc::channel();
        {
            let mut ids = progress
                .unfolded
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for mut entry in left {
                if let Body::Events {
                    events, keys: k, ..
                } = &mut entry.body
                {
                    *k = events.iter().map(|e| keys.key(&e.id)).collect();
                    ids.extend(k.iter().copied());
                }
                send.send(entry).expect("the receiver is here");
            }
        }
        let fold_progress = progress.clone();
        std::thread::Builder::new()
            .name("tally-fold".into())
            .spawn(move || {
                raise_fold_priority();
                fold_all(&writer, &receive, &fold_progress, &checkpoints);
            })
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        Ok(Some(IngestLog {
            appender: Mutex::new(Appender {
                conn,
                next,
                deleted: 0,
            }),
            lookup: Mutex::new(lookup),
            fold: send,
            progress,
        }))
    }

    /// Waits until the fold has passed every entry acknowledged before this call, so a
    /// read that follows sees them.
    pub(super) async fn settle(&self) -> StoreResult<()> {
        let target = self.progress.acked.load(Ordering::Acquire);
        let mut folded = self.progress.folded.subscribe();
        let passed = tokio::time::timeout(SETTLE_TIMEOUT, folded.wait_for(|f| *f >= target))
            .await
            .map(|r| r.is_ok());
        match passed {
            Ok(true) => Ok(()),
            // The fold thread ended (it only does when the log closes) or is stuck: its
            // errors are logged where they happen.
            Ok(false) | Err(_) => Err(StoreError::Database(sqlx::Error::PoolTimedOut)),
        }
    }

    /// Appends an audit line; it reaches `audit_log` with the next fold.
    pub(super) async fn append_audit(self: &Arc<Self>, line: &AuditEntry) -> StoreResult<()> {
        let (log, line) = (self.clone(), line.clone());
        tokio::task::spawn_blocking(move || {
            let blob = log_codec::encode_audit(&line);
            log.append("audit", 0, &blob, |seq| Entry {
                seq,
                body: Body::Audit(line),
                room: 0,
            })
        })
        .await
        .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }

    /// Appends one entry durably and hands it to the fold; `entry` builds what the fold
    /// gets from the entry's number. Under the appender's lock, so entries are numbered,
    /// synced and folded in one order.
    fn append(
        &self,
        kind: &str,
        bumps: usize,
        blob: &[u8],
        entry: impl FnOnce(u64) -> Entry,
    ) -> StoreResult<()> {
        let mut a = self.appender.lock().unwrap_or_else(PoisonError::into_inner);
        let folded = *self.progress.folded.borrow();
        let seq = a.next;
        let deleted = a.deleted;
        let tx = a
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Folded entries are dropped in the next append's transaction: no sync of its own.
        if folded > deleted {
            tx.prepare_cached("DELETE FROM log WHERE seq <= ?1")?
                .execute([folded as i64])?;
        }
        tx.prepare_cached("INSERT INTO log (seq, kind, bumps, body) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![seq as i64, kind, bumps as i64, blob])?;
        tx.commit()?;
        a.next = seq + 1;
        a.deleted = folded.max(deleted);
        let entry = entry(seq);
        if let Body::Events { keys, .. } = &entry.body {
            let mut ids = self
                .progress
                .unfolded
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            ids.extend(keys.iter().copied());
        }
        self.fold
            .send(entry)
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?;
        self.progress.acked.store(seq, Ordering::Release);
        Ok(())
    }

    /// Per event of `group`, whether neither the log nor `events` holds its id; and the
    /// keys of those that are new, in order.
    fn new_events(&self, group: &Group<'_>) -> StoreResult<(Vec<bool>, Vec<u128>)> {
        let keys = self.progress.keys;
        let keyed: Vec<u128> = group.events().iter().map(|e| keys.key(&e.id)).collect();
        // The log first: an id folded after this look is in `events` for the next one.
        let mut new: Vec<bool> = {
            let ids = self
                .progress
                .unfolded
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            keyed.iter().map(|k| !ids.contains(k)).collect()
        };
        let candidates = group.marked(&new);
        let lookup = self.lookup.lock().unwrap_or_else(PoisonError::into_inner);
        let stored = events::stored_ids(&lookup, &candidates)?;
        drop(lookup);
        if !stored.is_empty() {
            for (n, e) in new.iter_mut().zip(group.events()) {
                *n = *n && !stored.contains(&e.id);
            }
        }
        let new_keys = keyed
            .into_iter()
            .zip(&new)
            .filter(|(_, &n)| n)
            .map(|(k, _)| k)
            .collect();
        Ok((new, new_keys))
    }

    /// A group's acknowledgement, on a blocking thread (the group commit runs one at a
    /// time, so each group's check sees the ids of the one before): returns, per batch
    /// and event, whether it was new, and the room the fold will give back, at most
    /// `taken`. The new events move into the log's entry, not copied.
    fn acknowledge(
        &self,
        batches: Batches,
        taken: usize,
    ) -> Result<(Vec<Vec<bool>>, usize), Failed> {
        let group = Group::new(&batches);
        let (new, keys) = match self.new_events(&group) {
            Ok(found) => found,
            Err(e) => {
                drop(group);
                return Err(Failed::with(e, batches));
            }
        };
        let flags = group.per_batch(&new);
        if keys.is_empty() {
            return Ok((flags, 0));
        }
        let bumps = group.changed_writes(&new);
        let blob = log_codec::encode_events(group.marked(&new).into_iter());
        drop(group);
        let room = keys.len().min(taken);
        let mut batches = Some(batches);
        let appended = self.append("events", bumps, &blob, |seq| Entry {
            seq,
            body: Body::Events {
                events: take_new(batches.take().expect("taken once"), &flags),
                keys,
                bumps,
            },
            room,
        });
        match appended {
            Ok(()) => Ok((flags, room)),
            Err(error) => Err(Failed { error, batches }),
        }
    }
}

/// The events of `batches` that `flags` marks, in order, moved out.
fn take_new(batches: Batches, flags: &[Vec<bool>]) -> Vec<Event> {
    let mut events = Vec::with_capacity(flags.iter().flatten().filter(|&&f| f).count());
    for (batch, flags) in batches.into_iter().zip(flags) {
        events.extend(
            batch
                .into_iter()
                .zip(flags)
                .filter(|(_, &f)| f)
                .map(|(e, _)| e),
        );
    }
    events
}

/// The acknowledging side as the group commit's writer.
pub(super) struct LogWriter(pub(super) Arc<IngestLog>);

#[async_trait]
impl WriteGroup for LogWriter {
    async fn write(&self, batches: Batches) -> Result<Vec<Vec<bool>>, Failed> {
        let n = batches
            .iter()
            .map(Vec::len)
            .sum::<usize>()
            .min(MAX_UNFOLDED);
        let room = self.0.progress.room.clone();
        let permit = match room
            .acquire_many(u32::try_from(n).expect("at most MAX_UNFOLDED"))
            .await
        {
            Ok(permit) => permit,
            Err(_) => return Err(Failed::with(sqlx::Error::WorkerCrashed, batches)),
        };
        // Given back by the fold for what it folds, here for what was not appended.
        permit.forget();
        let log = self.0.clone();
        let result = tokio::task::spawn_blocking(move || log.acknowledge(batches, n))
            .await
            .unwrap_or_else(|_| {
                Err(Failed {
                    error: StoreError::Database(sqlx::Error::WorkerCrashed),
                    batches: None,
                })
            });
        match result {
            Ok((flags, kept)) => {
                room.add_permits(n - kept);
                Ok(flags)
            }
            Err(failed) => {
                room.add_permits(n);
                Err(failed)
            }
        }
    }
}

/// Opens the log file and takes it for this process: `None` if another process has.
fn own(path: &Path) -> StoreResult<Option<rusqlite::Connection>> {
    let conn = rusqlite::Connection::open(path)?;
    let taken = (|| -> rusqlite::Result<()> {
        // Exclusive before WAL: no shared memory, and the lock taken by the first write
        // is kept until the connection closes. Another owner answers SQLITE_BUSY at once.
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL syncs the WAL on every commit: an acknowledged group survives a power loss.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "BEGIN IMMEDIATE; \
             CREATE TABLE IF NOT EXISTS log (\
                 seq   INTEGER PRIMARY KEY, \
                 kind  TEXT NOT NULL, \
                 bumps INTEGER NOT NULL, \
                 body  BLOB NOT NULL); \
             COMMIT;",
        )
    })();
    match taken {
        Ok(()) => Ok(Some(conn)),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy
                || e.code == rusqlite::ErrorCode::DatabaseLocked =>
        {
            tracing::info!(
                log = %path.display(),
                "another process owns the ingest log: events are written straight into the database"
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The log's entries after `folded`, in order.
fn unfolded(conn: &rusqlite::Connection, folded: u64) -> StoreResult<Vec<Entry>> {
    let mut rows =
        conn.prepare("SELECT seq, kind, bumps, body FROM log WHERE seq > ?1 ORDER BY seq")?;
    let rows = rows.query_map([folded as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Vec<u8>>(3)?,
        ))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (seq, kind, bumps, body) = row?;
        let body = match kind.as_str() {
            "events" => Body::Events {
                events: log_codec::decode_events(&body).map_err(corrupt)?,
                // Worked out by the log that queues the entry.
                keys: Vec::new(),
                bumps: bumps as usize,
            },
            "audit" => Body::Audit(log_codec::decode_audit(&body).map_err(corrupt)?),
            _ => return Err(corrupt(format!("an entry of unknown kind `{kind}`"))),
        };
        entries.push(Entry {
            seq: seq as u64,
            body,
            room: 0,
        });
    }
    Ok(entries)
}

fn corrupt(e: impl ToString) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(e.to_string()))
}

/// The fold thread: takes every entry queued (up to [`MAX_FOLD_EVENTS`]), folds them in
/// one transaction, and tells the readers. Ends when the log closes and its queue is
/// empty.
fn fold_all(
    writer: &EventWriter,
    queue: &mpsc::Receiver<Entry>,
    progress: &Progress,
    checkpoints: &Checkpointer,
) {
    loop {
        let first = match queue.try_recv() {
            Ok(entry) => entry,
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {
                // Idle: what is committed gets copied now rather than with the next run.
                checkpoints.flush();
                match queue.recv() {
                    Ok(entry) => entry,
                    Err(_) => break,
                }
            }
        };
        let mut run = vec![first];
        let mut events = size(&run[0]);
        while events < MAX_FOLD_EVENTS {
            match queue.try_recv() {
                Ok(entry) => {
                    events += size(&entry);
                    run.push(entry);
                }
                Err(_) => break,
            }
        }
        checkpoints.before_write();
        // The entries are durable in the log; a failed fold is tried again until it
        // goes through, and reads wait meanwhile (up to SETTLE_TIMEOUT).
        while let Err(e) = writer.blocking_transaction(|tx, numbers| fold(tx, numbers, &run)) {
            tracing::error!(error = %e, entries = run.len(), "folding the ingest log failed; trying again");
            std::thread::sleep(FOLD_RETRY);
        }
        checkpoints.committed();
        {
            let mut ids = progress
                .unfolded
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for entry in &run {
                if let Body::Events { keys, .. } = &entry.body {
                    for k in keys {
                        ids.remove(k);
                    }
                }
            }
        }
        let last = run.last().expect("a run holds an entry").seq;
        progress.folded.send_replace(last);
        progress.room.add_permits(run.iter().map(|e| e.room).sum());
    }
}

/// Asks for the calling thread (the fold) to run ahead of the process's other threads.
///
/// Under a full load of ingestion both CPUs of a small machine are busy, the fold on one
/// and the request threads, which parse and acknowledge in parallel, on both; at equal
/// priority the fold, the one serial stage, waits for a CPU about a tenth of its time,
/// and ingestion with it (docs/performance.md, "SQLite: the fold first"). Raising a
/// priority needs CAP_SYS_NICE (or root, or an RLIMIT_NICE that allows it); without it
/// the fold runs at the process's priority, as every other thread. On Linux the nice
/// value belongs to the thread, and `PRIO_PROCESS` with no id names the calling one
/// (setpriority(2), NOTES); threads the fold starts (`events::store`'s additions)
/// inherit it. With one CPU the fold would take the request threads' only one: left
/// alone.
fn raise_fold_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            return;
        }
        let raised = getpriority_process(None).and_then(|nice| {
            let wanted = (nice - FOLD_PRIORITY_BOOST).max(-20);
            setpriority_process(None, wanted).map(|()| wanted)
        });
        match raised {
            Ok(nice) => tracing::debug!(nice, "the ingest log's fold runs at a raised priority"),
            Err(e) => tracing::debug!(
                error = %e,
                "the ingest log's fold runs at the process's priority (raising it needs CAP_SYS_NICE)"
            ),
        }
    }
}

fn size(entry: &Entry) -> usize {
    match &entry.body {
        Body::Events { events, .. } => events.len(),
        Body::Audit(_) => 1,
    }
}

/// One fold's transaction: the run's events (as one group), its audit lines in order, the
/// data version's steps, and the log position folded.
fn fold(
    tx: &rusqlite::Transaction<'_>,
    numbers: &super::ingest::activity::NumberCache,
    run: &[Entry],
) -> StoreResult<((), events::Fresh)> {
    let mut events: Vec<&Event> = Vec::new();
    let mut bumps = 0;
    for entry in run {
        match &entry.body {
            Body::Events {
                events: e,
                bumps: b,
                ..
            } => {
                events.extend(e.iter());
                bumps += b;
            }
            Body::Audit(line) => {
                tx.prepare_cached(
                    "INSERT INTO audit_log (at, key_id, method, route, status, client) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    line.at,
                    line.key_id,
                    line.method,
                    line.route,
                    line.status,
                    line.client
                ])?;
            }
        }
    }
    let (_, fresh) = events::store(tx, &events, numbers)?;
    events::bump(tx, bumps)?;
    let last = run.last().expect("a run holds an entry").seq;
    tx.prepare_cached("UPDATE ingest_folded SET seq = ?1")?
        .execute([last as i64])?;
    Ok(((), fresh))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Arg, Backend as _};
    use crate::sqlite::SqliteStore;
    use crate::{PageRequest, Store};
    use tally_core::event::EventKind;

    /// The position folded, as the database holds it (tests).
    fn folded_in(db: &Path) -> u64 {
        let conn = rusqlite::Connection::open(db).unwrap();
        let seq: i64 = conn
            .query_row("SELECT seq FROM ingest_folded", [], |r| r.get(0))
            .unwrap();
        seq as u64
    }

    async fn open(path: &Path) -> Arc<SqliteStore> {
        let store = SqliteStore::open(path).await.unwrap();
        store.migrate().await.unwrap();
        Arc::new(store)
    }

    fn usage(id: &str, customer: &str, day: i64) -> Event {
        Event {
            customer_id: Some(customer.into()),
            service: Some("api".into()),
            ..Event::blank(id, EventKind::Usage, day * 86_400_000_000 + 3_600_000_000)
        }
    }

    /// Holds SQLite's write lock (and the store's) until committed: the fold waits.
    async fn hold_writes(store: &SqliteStore) -> Box<dyn crate::db::Conn> {
        let mut tx = store.backend.write().await.unwrap();
        tx.exec(
            "INSERT INTO services (name) VALUES ($1)",
            vec![Arg::from("held")],
        )
        .await
        .unwrap();
        tx
    }

    /// While the log is open, its checkpoint thread copies the WAL into the database;
    /// the fold's own commits checkpoint only past the fallback bound.
    #[tokio::test]
    async fn the_fold_leaves_checkpoints_to_their_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("t.db")).await;
        assert!(store.backend.log.get().is_some());
        assert_eq!(
            store.backend.writer.pragma("wal_autocheckpoint"),
            i64::from(FALLBACK_AUTOCHECKPOINT)
        );
    }

    /// A group is acknowledged while another write holds the database (it only needs
    /// the log); a read started after waits for the fold, which waits for that write.
    #[tokio::test]
    async fn a_group_is_acknowledged_before_its_fold_and_read_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("t.db")).await;
        let tx = hold_writes(&store).await;
        let events = [usage("e1", "c1", 0)];
        let ack = tokio::time::timeout(Duration::from_secs(5), store.insert_events(&events));
        assert_eq!(ack.await.unwrap().unwrap(), [true]);
        let read = tokio::spawn({
            let store = store.clone();
            async move { store.counts().await.unwrap().events }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!read.is_finished());
        tx.commit().await.unwrap();
        assert_eq!(read.await.unwrap(), 1);
        assert_eq!(folded_in(&dir.path().join("t.db")), 1);
    }

    /// Acknowledgements run at most MAX_UNFOLDED events ahead of the fold: with the fold
    /// held, that many are acknowledged, and a write beyond waits until the fold goes on.
    #[tokio::test]
    async fn acknowledgements_wait_once_the_fold_is_max_unfolded_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("t.db")).await;
        let tx = hold_writes(&store).await;
        let events: Vec<Event> = (0..MAX_UNFOLDED)
            .map(|i| usage(&format!("e{i}"), &format!("c{}", i % 1_000), 0))
            .collect();
        for chunk in events.chunks(16_384) {
            let acks = tokio::time::timeout(Duration::from_secs(60), store.insert_events(chunk))
                .await
                .expect("acknowledged while within the bound")
                .unwrap();
            assert!(acks.iter().all(|&new| new));
        }
        let beyond = tokio::spawn({
            let store = store.clone();
            async move { store.insert_events(&[usage("beyond", "c1", 0)]).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!beyond.is_finished(), "acknowledged beyond the bound");
        tx.commit().await.unwrap();
        assert_eq!(beyond.await.unwrap().unwrap(), [true]);
        assert_eq!(
            store.counts().await.unwrap().events,
            MAX_UNFOLDED as i64 + 1
        );
    }

    /// An id acknowledged and not folded yet is a duplicate, and so is it once folded.
    #[tokio::test]
    async fn an_unfolded_id_sent_again_is_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("t.db")).await;
        let tx = hold_writes(&store).await;
        let e1 = usage("e1", "c1", 0);
        assert_eq!(
            store
                .insert_events(std::slice::from_ref(&e1))
                .await
                .unwrap(),
            [true]
        );
        let again = [e1.clone(), usage("e2", "c1", 0)];
        assert_eq!(store.insert_events(&again).await.unwrap(), [false, true]);
        tx.commit().await.unwrap();
        assert_eq!(store.insert_events(&again).await.unwrap(), [false, false]);
        let counts = store.counts().await.unwrap();
        assert_eq!(counts.events, 2);
        // Two writes stored something: two steps, as without the log.
        assert_eq!(store.data_version().await.unwrap().events, 2);
    }

    /// What a process acknowledged and did not fold (written here as its log would hold
    /// it) is folded when the store is next migrated: the entries after the position the
    /// database records, each once, the audit lines among them.
    #[tokio::test]
    async fn an_unfolded_log_is_folded_by_the_next_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(open(&path).await);
        {
            // The dropped store's writer task lets go of the log once it runs again.
            let mut conn = None;
            for _ in 0..100 {
                conn = own(&log_path(&path)).unwrap();
                if conn.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let conn = conn.expect("the log is free");
            let line = AuditEntry {
                id: 0,
                at: 5,
                key_id: None,
                method: "POST".into(),
                route: "/api/v1/events".into(),
                status: 200,
                client: None,
            };
            let x = [usage("x", "c1", 0)];
            let y = [usage("y", "c2", 1), usage("z", "c1", 1)];
            let rows: [(i64, &str, i64, Vec<u8>); 3] = [
                (1, "events", 1, log_codec::encode_events(x.iter())),
                (2, "events", 1, log_codec::encode_events(y.iter())),
                (3, "audit", 0, log_codec::encode_audit(&line)),
            ];
            for (seq, kind, bumps, body) in rows {
                conn.execute(
                    "INSERT INTO log (seq, kind, bumps, body) VALUES (?1, ?2, ?3, ?4)",
                    params![seq, kind, bumps, body],
                )
                .unwrap();
            }
            // Entry 1 was folded before the crash.
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute("UPDATE ingest_folded SET seq = 1", [])
                .unwrap();
        }
        let store = open(&path).await;
        assert_eq!(store.counts().await.unwrap().events, 2);
        let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM events ORDER BY id")
            .fetch_all(&store.backend.read)
            .await
            .unwrap();
        assert_eq!(ids, [("y".to_owned(),), ("z".to_owned(),)]);
        assert_eq!(store.data_version().await.unwrap().events, 1);
        let audit = store.list_audit(&PageRequest::default()).await.unwrap();
        assert_eq!(audit.items.len(), 1);
        assert_eq!(audit.items[0].at, 5);
        assert_eq!(folded_in(&path), 3);
        // New entries follow the log's last number; folded, they are not folded again.
        assert_eq!(
            store.insert_events(&[usage("w", "c3", 2)]).await.unwrap(),
            [true]
        );
        assert_eq!(store.counts().await.unwrap().events, 3);
        assert_eq!(folded_in(&path), 4);
        drop(store);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let store = open(&path).await;
        assert!(store.backend.log.get().is_some());
        assert_eq!(store.counts().await.unwrap().events, 3);
        assert_eq!(store.data_version().await.unwrap().events, 2);
    }

    /// A second process on the database finds the log owned and writes events straight
    /// into the database, where the owner reads them.
    #[tokio::test]
    async fn a_second_process_writes_straight_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let owner = open(&path).await;
        let second = open(&path).await;
        assert!(owner.backend.log.get().is_some());
        assert!(second.backend.log.get().is_none());
        assert_eq!(
            second.insert_events(&[usage("e1", "c1", 0)]).await.unwrap(),
            [true]
        );
        assert_eq!(owner.counts().await.unwrap().events, 1);
        // The owner's check sees what the second stored.
        assert_eq!(
            owner.insert_events(&[usage("e1", "c1", 0)]).await.unwrap(),
            [false]
        );
    }
}
