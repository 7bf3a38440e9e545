//! Event ingestion on SQLite: a connection of its own, through rusqlite, used on a
//! blocking thread, that stores each group with statements prepared once (the events
//! many rows to a statement, [`insert_rows`]).
//!
//! Why not sqlx, which the rest of the store writes through: its SQLite driver collects
//! each statement's arguments on the async side, one value at a time, and hands them to
//! its worker thread. For the 21 values of an event that cost 5.8-6.5 us, where SQLite
//! itself takes about 2 (docs/performance.md). rusqlite calls SQLite's C API from the
//! thread it runs on, and a statement prepared once is bound and stepped again and again.
//!
//! So two connections of one process write the file: this one (events) and the store's
//! sqlx connection (everything else, the audit lines among them). Both take the store's
//! [`WriteLock`] before `BEGIN IMMEDIATE`, so writers in the process queue in arrival
//! order, as they did on one connection, instead of meeting SQLITE_BUSY and polling in
//! SQLite's busy handler (which sleeps up to 100 ms between tries). Other processes meet
//! the busy timeout, as before.

use super::ingest::activity::{self, Mark, NumberCache};
use super::ingest::group_commit::{Batches, Failed, Group, WriteGroup};
use super::ingest::rollup_delta::{
    insert_head, on_conflict_add, Agg, Deltas, AGG_COLS, CUSTOMER_KEYS, DAILY_KEYS, LATENCY_SUM_AT,
};
use crate::db::EVENT_COLS;
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use roaring::RoaringBitmap;
use rusqlite::types::{ToSql, ToSqlOutput};
use rusqlite::{
    params, params_from_iter, OptionalExtension as _, Transaction, TransactionBehavior,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use tally_core::event::Event;

/// Held by whichever connection of the process writes, from before `BEGIN IMMEDIATE`
/// until after its commit or rollback (see the module's docs).
pub(super) type WriteLock = Arc<tokio::sync::Mutex<()>>;

/// Ids per duplicate check: one JSON array each, bound as one value (binding each id on
/// its own cost ~1 us per event in sqlx's groups of 250,000; the array 0.3-0.4 us).
const IDS_PER_STATEMENT: usize = 10_000;

/// Stores groups of event batches through a connection of its own.
#[derive(Clone)]
pub(super) struct EventWriter {
    conn: Arc<Mutex<rusqlite::Connection>>,
    lock: WriteLock,
    /// Customer numbers known to be committed (shared with the store).
    numbers: Arc<NumberCache>,
}

impl EventWriter {
    /// Opens the writer's connection to the database at `path`, which the store's sqlx
    /// connection has created and put in WAL mode, with that connection's settings
    /// (`pragmas`: name and value).
    pub(super) fn open(
        path: &Path,
        pragmas: &[(&str, String)],
        lock: WriteLock,
        numbers: Arc<NumberCache>,
    ) -> StoreResult<EventWriter> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(super::BUSY_TIMEOUT)?;
        for (name, value) in pragmas {
            // Stepped through: some pragmas answer with a row, which `execute` refuses.
            conn.prepare(&format!("PRAGMA {name} = {value}"))?
                .query([])?
                .next()?;
        }
        Ok(EventWriter {
            conn: Arc::new(Mutex::new(conn)),
            lock,
            numbers,
        })
    }
}

impl EventWriter {
    /// Runs `work` in one `BEGIN IMMEDIATE` transaction of the writer's connection under
    /// the store's write lock, on the calling thread, which must not be a runtime's
    /// worker (the ingest log's fold thread). `work` gives back its result and the
    /// customer numbers it assigned, remembered once the transaction has committed.
    pub(super) fn blocking_transaction<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>, &NumberCache) -> StoreResult<(T, Fresh)>,
    ) -> StoreResult<T> {
        let _turn = self.lock.blocking_lock();
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (out, fresh) = work(&tx, &self.numbers)?;
        tx.commit()?;
        self.numbers.remember(fresh);
        Ok(out)
    }
}

#[cfg(test)]
impl EventWriter {
    /// The value of an integer pragma on the writer's connection.
    pub(super) fn pragma(&self, name: &str) -> i64 {
        let conn = self.conn.lock().unwrap();
        conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .unwrap()
    }
}

#[async_trait]
impl WriteGroup for EventWriter {
    async fn write(&self, batches: Batches) -> Result<Vec<Vec<bool>>, Failed> {
        let _turn = self.lock.lock().await;
        let (conn, numbers) = (self.conn.clone(), self.numbers.clone());
        let (written, batches) = tokio::task::spawn_blocking(move || {
            // A panic in an earlier group poisons the mutex; its transaction was rolled
            // back when it unwound, so the connection is fine to use.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            let group = Group::new(&batches);
            let written = write(&mut conn, &group, &numbers)
                .map(|(new, fresh)| (group.per_batch(&new), fresh));
            drop(group);
            (written, batches)
        })
        .await
        .map_err(|_| Failed {
            error: StoreError::Database(sqlx::Error::WorkerCrashed),
            batches: None,
        })?;
        match written {
            Ok((flags, fresh)) => {
                self.numbers.remember(fresh);
                Ok(flags)
            }
            Err(e) => Err(Failed::with(e, batches)),
        }
    }
}

/// Customer numbers a transaction assigned, to remember once it has committed.
pub(super) type Fresh = Vec<(String, u32)>;

/// What a group's transaction gives back: per event of the group, whether it was new,
/// and the customer numbers to remember once it has committed.
type Written = (Vec<bool>, Fresh);

/// Writes one group in one transaction: the duplicate check, then [`store`], one step of
/// the events' version per batch that stored something (as if each had had its own
/// transaction). Returns, per event of the group, whether it was new, and the customer
/// numbers not taken from `numbers`, to remember once committed.
fn write(
    conn: &mut rusqlite::Connection,
    group: &Group<'_>,
    numbers: &NumberCache,
) -> StoreResult<Written> {
    // IMMEDIATE takes the write lock up front: a deferred transaction that reads first
    // and then writes could fail with SQLITE_BUSY (no waiting) if another process wrote
    // between.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = stored_ids(&tx, group.events())?;
    let new: Vec<&Event> = group
        .events()
        .iter()
        .copied()
        .filter(|e| !stored.contains(&e.id))
        .collect();
    let (inserted, fresh) = store(&tx, &new, numbers)?;
    // Those inserted are a subsequence of the group's events, in order.
    let mut inserted = inserted.into_iter().peekable();
    let new: Vec<bool> = group
        .events()
        .iter()
        .map(|e| inserted.next_if(|i| std::ptr::eq(*i, *e)).is_some())
        .collect();
    bump(&tx, group.changed_writes(&new))?;
    tx.commit()?;
    Ok((new, fresh))
}

/// Steps the events' data version `times` times.
pub(super) fn bump(tx: &Transaction<'_>, times: usize) -> StoreResult<()> {
    for _ in 0..times {
        tx.prepare_cached(crate::common::BUMP_EVENTS)?.execute([])?;
    }
    Ok(())
}

/// Events from which [`store`] works out what they add to the rollups and bitmaps on a
/// second thread while SQLite inserts their rows: the fold's runs, of thousands of
/// events. Smaller groups keep to one thread, for which starting another (tens of µs)
/// would be a visible share of the work (not measured).
const ADDITIONS_APART_FROM: usize = 2_048;

/// What new events add besides their rows, worked out from the events alone.
struct Additions<'e> {
    deltas: Deltas<'e>,
    marks: Vec<Mark<'e>>,
    /// The customers of `marks`, sorted (the order first-seen ones are numbered in).
    customers: Vec<&'e str>,
    services: BTreeSet<&'e str>,
}

impl<'e> Additions<'e> {
    fn of(events: &[&'e Event]) -> StoreResult<Additions<'e>> {
        let marks = activity::marks_of(events);
        Ok(Additions {
            deltas: Deltas::of(events)?,
            customers: activity::customers(&marks),
            marks,
            services: events.iter().filter_map(|e| e.service.as_deref()).collect(),
        })
    }
}

/// Inserts those of `events` (distinct ids) whose id `events` does not hold yet, and
/// adds them to the rollups, the services and the activity bitmaps. Returns the events
/// inserted, and the customer numbers not taken from `numbers`, to remember once
/// committed.
pub(super) fn store<'e>(
    tx: &Transaction<'_>,
    events: &[&'e Event],
    numbers: &NumberCache,
) -> StoreResult<(Vec<&'e Event>, Fresh)> {
    // SQLite's inserts take one thread; the additions of every event are worked out on
    // another meanwhile, and used when every event was new (the writers check the ids
    // first, so a conflict is a replay or another process's write, and rare). The fold
    // of the ingest log, the one serial stage of ingestion, is shorter by that much.
    let (new, apart) = if events.len() >= ADDITIONS_APART_FROM {
        std::thread::scope(|s| {
            // A thread that cannot start leaves the work to this one (below).
            let apart = std::thread::Builder::new()
                .name("tally-additions".into())
                .spawn_scoped(s, || Additions::of(events))
                .ok();
            let new = insert_rows(tx, events);
            let apart = apart.map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            (new, apart)
        })
    } else {
        (insert_rows(tx, events), None)
    };
    let new = new?;
    let add = match apart {
        Some(add) if new.len() == events.len() => add?,
        _ => Additions::of(&new)?,
    };
    add_to_rollups(tx, &add.deltas)?;
    add_services(tx, &add.services)?;
    let fresh = mark(tx, &add.marks, &add.customers, numbers)?;
    Ok((new, fresh))
}

/// The ids of `events` that `events` holds already. Under the write lock nothing can come
/// in between this and the inserts.
pub(super) fn stored_ids(
    tx: &rusqlite::Connection,
    events: &[&Event],
) -> StoreResult<HashSet<String>> {
    // CROSS JOIN keeps the ids as the outer loop: one lookup in `events`' id index each.
    let mut find = tx.prepare_cached(
        "SELECT e.id FROM json_each(?1) AS j CROSS JOIN events AS e ON e.id = j.value",
    )?;
    let mut stored = HashSet::new();
    for chunk in events.chunks(IDS_PER_STATEMENT) {
        let ids: Vec<&str> = chunk.iter().map(|e| e.id.as_str()).collect();
        let ids = serde_json::to_string(&ids).expect("strings into JSON");
        for id in find.query_map([ids], |row| row.get::<_, String>(0))? {
            stored.insert(id?);
        }
    }
    Ok(stored)
}

/// `?1, ?2, …, ?n`.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows per statement of [`insert_rows`].
const ROWS_PER_INSERT: usize = 64;

/// `INSERT OR FAIL INTO events … VALUES` with `rows` rows, skipping a stored id. The
/// parameters are bare `?`s, numbered in order: row after row, column after column.
fn insert_sql(rows: usize) -> String {
    let row = format!("({})", vec!["?"; EVENT_COLS.len()].join(", "));
    format!(
        "INSERT OR FAIL INTO events ({}) VALUES {} ON CONFLICT (id) DO NOTHING",
        EVENT_COLS.join(", "),
        vec![row; rows].join(", ")
    )
}

/// Inserts each event whose id is not stored yet; returns those inserted. The writers
/// check the ids first; the conflict clause keeps a fold of the ingest log (which may
/// replay what a crash left, or meet an id another process stored meanwhile) from
/// counting an event twice.
///
/// [`ROWS_PER_INSERT`] rows to a statement: its B-tree cursors stay open from row to row,
/// so a row whose keys follow the last ones (the table's rowid, ids and times that
/// arrive in order) is placed without descending from each index's root again, and the
/// statement's fixed cost is shared. `OR FAIL` keeps SQLite from writing a statement
/// journal (a copy of each page before the statement first changes it, so that a failed
/// row could undo the statement's earlier ones, as `ABORT`, the default, requires): a
/// failure fails the whole transaction anyway. With the default, 64 rows to a statement
/// measured slower than one (docs/performance.md).
///
/// Which rows went in: SQLite gives an appended row the largest rowid plus one, so when
/// a statement skips a stored id, the rows it inserted are those past the largest rowid
/// before it.
fn insert_rows<'e>(tx: &Transaction<'_>, events: &[&'e Event]) -> StoreResult<Vec<&'e Event>> {
    let mut inserted = Vec::with_capacity(events.len());
    let mut chunks = events.chunks_exact(ROWS_PER_INSERT);
    if events.len() >= ROWS_PER_INSERT {
        let mut many = tx.prepare_cached(&insert_sql(ROWS_PER_INSERT))?;
        let mut top: i64 = tx.query_row("SELECT COALESCE(MAX(rowid), 0) FROM events", [], |r| {
            r.get(0)
        })?;
        for chunk in &mut chunks {
            let values = chunk
                .iter()
                .map(|e| event_values(e))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let n = many.execute(params_from_iter(values.iter().flatten()))?;
            if n == chunk.len() {
                inserted.extend_from_slice(chunk);
            } else if n > 0 {
                let mut after = tx.prepare_cached("SELECT id FROM events WHERE rowid > ?1")?;
                let ids = after
                    .query_map([top], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<HashSet<String>>>()?;
                inserted.extend(chunk.iter().filter(|e| ids.contains(&e.id)));
            }
            if n > 0 {
                top = tx.last_insert_rowid();
            }
        }
    }
    let mut one = tx.prepare_cached(&insert_sql(1))?;
    for &e in chunks.remainder() {
        if one.execute(params_from_iter(event_values(e)?))? == 1 {
            inserted.push(e);
        }
    }
    Ok(inserted)
}

/// An event's values in the order of the stored columns (`EVENT_COLS`), for an SQLite
/// `INSERT`: the event writer's, and the benchmark's raw-insert comparison.
pub fn event_values(e: &Event) -> rusqlite::Result<[ToSqlOutput<'_>; 21]> {
    Ok([
        e.id.to_sql()?,
        e.kind.as_str().to_sql()?,
        e.time.to_sql()?,
        e.customer_id.to_sql()?,
        e.service.to_sql()?,
        e.quantity.to_sql()?,
        e.unit.to_sql()?,
        e.model.to_sql()?,
        e.provider.to_sql()?,
        e.input_tokens.to_sql()?,
        e.cache_read_tokens.to_sql()?,
        e.cache_write_tokens.to_sql()?,
        e.output_tokens.to_sql()?,
        e.cache_hit.to_sql()?,
        e.latency_ms.to_sql()?,
        e.status_code.to_sql()?,
        e.cost.to_sql()?,
        e.cost_source.as_str().to_sql()?,
        e.up.to_sql()?,
        e.gauge_name.to_sql()?,
        e.gauge_value.to_sql()?,
    ])
}

/// Adds `deltas` to both rollups, one upsert per key.
fn add_to_rollups(tx: &Transaction<'_>, deltas: &Deltas<'_>) -> StoreResult<()> {
    upsert(tx, "usage_daily", &DAILY_KEYS, &deltas.daily, |k| {
        vec![
            &k.kind,
            &k.day,
            &k.service,
            &k.model,
            &k.provider,
            &k.cache_hit,
        ]
    })?;
    upsert(
        tx,
        "usage_daily_customer",
        &CUSTOMER_KEYS,
        &deltas.customer,
        |k| vec![&k.kind, &k.day, &k.customer_id, &k.service, &k.llm],
    )
}

/// Adds `rows` to `table`, whose key columns `keys` take the values `key` gives.
fn upsert<'k, K>(
    tx: &Transaction<'_>,
    table: &str,
    keys: &[&str],
    rows: &'k BTreeMap<K, Agg>,
    key: impl Fn(&'k K) -> Vec<&'k dyn ToSql>,
) -> StoreResult<()> {
    let sql = format!(
        "{} VALUES ({}) {}",
        insert_head(table, keys),
        placeholders(keys.len() + AGG_COLS.len()),
        on_conflict_add(table, keys)
    );
    let mut add = tx.prepare_cached(&sql)?;
    for (k, a) in rows {
        let ints = a.ints();
        let (before, after) = ints.split_at(LATENCY_SUM_AT);
        let mut values = key(k);
        values.extend(before.iter().map(|i| i as &dyn ToSql));
        values.push(&a.latency_sum);
        values.extend(after.iter().map(|i| i as &dyn ToSql));
        add.execute(values.as_slice())?;
    }
    Ok(())
}

fn add_services(tx: &Transaction<'_>, services: &BTreeSet<&str>) -> StoreResult<()> {
    let mut add =
        tx.prepare_cached("INSERT INTO services (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")?;
    for s in services {
        add.execute([s])?;
    }
    Ok(())
}

/// Adds `marks` to `customer_activity` (`activity::mark` on this connection): numbers
/// the customers `cache` does not know (`ids`, the marks' customers, sorted), first seen
/// ones in that order, then unites each touched bitmap with its new numbers. Returns the
/// numbers not taken from `cache`.
fn mark(
    tx: &Transaction<'_>,
    marks: &[Mark<'_>],
    ids: &[&str],
    cache: &NumberCache,
) -> StoreResult<Vec<(String, u32)>> {
    if marks.is_empty() {
        return Ok(vec![]);
    }
    let known = cache.known(ids);
    let mut find = tx.prepare_cached("SELECT n FROM customer_numbers WHERE customer_id = ?1")?;
    let mut add =
        tx.prepare_cached("INSERT INTO customer_numbers (customer_id) VALUES (?1) RETURNING n")?;
    let mut numbers = HashMap::with_capacity(ids.len());
    let mut fresh = Vec::new();
    for (&id, n) in ids.iter().zip(known) {
        let n = match n {
            Some(n) => n,
            None => {
                let n = match find.query_row([id], |row| row.get(0)).optional()? {
                    Some(n) => n,
                    None => add.query_row([id], |row| row.get(0))?,
                };
                let n = activity::number(n)?;
                fresh.push((id.to_owned(), n));
                n
            }
        };
        numbers.insert(id, n);
    }
    let mut read = tx.prepare_cached(
        "SELECT bits FROM customer_activity \
         WHERE kind = ?1 AND day = ?2 AND service = ?3 AND chunk = ?4",
    )?;
    let mut put = tx.prepare_cached(
        "INSERT INTO customer_activity (kind, day, service, chunk, bits) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (kind, day, service, chunk) DO UPDATE SET bits = excluded.bits",
    )?;
    for (k, bits) in activity::additions(marks, &numbers) {
        let key = params![k.kind, k.day, k.service, k.chunk];
        let stored: Option<Vec<u8>> = read.query_row(key, |row| row.get(0)).optional()?;
        let mut all = match stored {
            Some(stored) => activity::deserialize(&stored)?,
            None => RoaringBitmap::new(),
        };
        // Most marks are of customers already active that day: leave their page clean.
        if !all.is_empty() && bits.is_subset(&all) {
            continue;
        }
        all |= bits;
        put.execute(params![
            k.kind,
            k.day,
            k.service,
            k.chunk,
            activity::serialize(&all)
        ])?;
    }
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use super::*;
    use crate::common::rollup_upserts;
    use crate::sqlite::ingest::rollup_delta::random_events;
    use crate::Store;
    use sqlx::{Connection, Executor, SqliteConnection};
    use std::path::Path;

    async fn open(path: &Path) -> SqliteStore {
        let store = SqliteStore::open(path).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    async fn connect(path: &Path) -> SqliteConnection {
        SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap()
    }

    async fn count(conn: &mut SqliteConnection, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
    }

    /// The duplicate check sends the ids as one JSON array: ids that JSON escapes are
    /// found again all the same.
    #[tokio::test]
    async fn ids_that_json_escapes_are_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("t.db")).await;
        let ids = ["a\"b", "c\\d", "e\u{1}f", "g/h", "ü✓", "tab\tline\n", ""];
        let events: Vec<Event> = ids
            .iter()
            .map(|id| Event::blank(*id, tally_core::event::EventKind::Usage, 0))
            .collect();
        assert_eq!(store.insert_events(&events).await.unwrap(), [true; 7]);
        assert_eq!(store.insert_events(&events).await.unwrap(), [false; 7]);
        assert_eq!(store.counts().await.unwrap().events, 7);
    }

    /// Without the ingest log (another store on the file owns it, as another process
    /// would), the event writer and the store's other writes share one lock: a write
    /// transaction open elsewhere in the process holds a group back (it neither fails
    /// with SQLITE_BUSY nor writes), and the group is stored once that transaction
    /// commits.
    #[tokio::test]
    async fn a_write_transaction_holds_events_back_until_it_commits() {
        use crate::db::{Arg, Backend as _};
        let dir = tempfile::tempdir().unwrap();
        let owner = open(&dir.path().join("t.db")).await;
        let store = std::sync::Arc::new(open(&dir.path().join("t.db")).await);
        assert!(owner.backend.log.get().is_some());
        assert!(store.backend.log.get().is_none());
        let mut tx = store.backend.write().await.unwrap();
        tx.exec(
            "INSERT INTO services (name) VALUES ($1)",
            vec![Arg::from("first")],
        )
        .await
        .unwrap();
        let insert = tokio::spawn({
            let store = store.clone();
            async move {
                let event = Event::blank("e1", tally_core::event::EventKind::Usage, 0);
                store.insert_events(&[event]).await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!insert.is_finished());
        assert_eq!(store.counts().await.unwrap().events, 0);
        tx.commit().await.unwrap();
        assert_eq!(insert.await.unwrap().unwrap(), [true]);
        assert_eq!(store.counts().await.unwrap().events, 1);
        assert_eq!(owner.counts().await.unwrap().events, 1);
    }

    /// What ingestion adds to the rollups (sums added up in Rust, one upsert per key)
    /// equals `rollup_upserts`, the rollups' definition, run over every stored event:
    /// random events from concurrent callers (so in groups, and folded from the ingest
    /// log in runs), ids sent again. The activity bitmaps hold exactly the customers of
    /// the stored events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rollups_from_deltas_equal_the_rollup_statements_over_all_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = std::sync::Arc::new(open(&path).await);
        let events = random_events();
        let mut tasks = Vec::new();
        for chunk in events.chunks(250) {
            let (store, chunk) = (store.clone(), chunk.to_vec());
            tasks.push(tokio::spawn(async move {
                store.insert_events(&chunk).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let distinct: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(store.counts().await.unwrap().events, distinct.len() as i64);

        assert_rollups_and_bitmaps_hold_the_stored_events(&path).await;
    }

    /// A run of at least [`ADDITIONS_APART_FROM`] events has its additions worked out on
    /// a second thread: used when every event was new, worked out again from the rows
    /// inserted when some ids were stored already (the second run below would count
    /// those twice otherwise).
    #[tokio::test]
    async fn additions_worked_out_apart_count_only_the_rows_inserted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = open(&path).await;
        let mut seen = HashSet::new();
        let events: Vec<Event> = random_events()
            .into_iter()
            .filter(|e| seen.insert(e.id.clone()))
            .collect();
        let first = ADDITIONS_APART_FROM + 10;
        assert!(events.len() > first + 500, "{}", events.len());
        let writer = store.backend.writer.clone();
        let (inserted, total) = tokio::task::spawn_blocking(move || {
            let all: Vec<&Event> = events.iter().collect();
            let mut inserted = Vec::new();
            for run in [&all[..first], &all[..]] {
                let n = writer
                    .blocking_transaction(|tx, numbers| {
                        let (new, fresh) = super::store(tx, run, numbers)?;
                        Ok((new.len(), fresh))
                    })
                    .unwrap();
                inserted.push(n);
            }
            (inserted, all.len())
        })
        .await
        .unwrap();
        assert_eq!(inserted, [first, total - first]);
        assert_rollups_and_bitmaps_hold_the_stored_events(&path).await;
    }

    /// Inserts that meet ids stored already add and return exactly the others, in order,
    /// and store each row's own values: statements of ROWS_PER_INSERT rows that meet
    /// only stored ids, none, and every third, then the single rows left over.
    #[tokio::test]
    async fn rows_inserted_among_stored_ids_are_told_apart() {
        use tally_core::event::EventKind;
        assert_eq!(ROWS_PER_INSERT, 64, "the cases below are laid out for 64");
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("t.db")).await;
        let events: Vec<Event> = (0..300)
            .map(|i| Event {
                customer_id: Some(format!("c{i}")),
                quantity: 2 * i,
                ..Event::blank(format!("e{i:03}"), EventKind::Usage, i)
            })
            .collect();
        let was_stored = |i: i64| i < 64 || (i >= 128 && i % 3 == 0);
        let stored: Vec<Event> = events
            .iter()
            .filter(|e| was_stored(e.time))
            .cloned()
            .collect();
        store.insert_events(&stored).await.unwrap();
        assert_eq!(store.counts().await.unwrap().events, 64 + 57);
        let writer = store.backend.writer.clone();
        let new = tokio::task::spawn_blocking(move || {
            writer.blocking_transaction(|tx, _| {
                let all: Vec<&Event> = events.iter().collect();
                let new = insert_rows(tx, &all)?;
                Ok((new.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![]))
            })
        })
        .await
        .unwrap()
        .unwrap();
        let expected: Vec<String> = (0..300)
            .filter(|&i| !was_stored(i))
            .map(|i| format!("e{i:03}"))
            .collect();
        assert_eq!(new, expected);
        assert_eq!(store.counts().await.unwrap().events, 300);
        let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
        let rows: Vec<(String, i64, String, i64)> = conn
            .prepare("SELECT id, time, customer_id, quantity FROM events ORDER BY time")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(String, i64, String, i64)> = (0..300)
            .map(|i| (format!("e{i:03}"), i, format!("c{i}"), 2 * i))
            .collect();
        assert_eq!(rows, want);
    }

    /// A run whose customer rollup keys are partly stored already (the upsert's update
    /// half) and partly new adds each event once, to its own key.
    #[tokio::test]
    async fn rollup_rows_of_a_run_add_to_the_stored_ones() {
        use tally_core::event::EventKind;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = open(&path).await;
        let event = |id: String, customer: i64| Event {
            customer_id: Some(format!("c{customer:03}")),
            quantity: customer + 1,
            ..Event::blank(id, EventKind::Usage, 1_000)
        };
        // 150 customers, each a key of its own.
        let first: Vec<Event> = (0..150).map(|c| event(format!("a{c}"), c)).collect();
        // Every other one of them again, and 100 new ones: 75 updates, 100 inserts.
        let second: Vec<Event> = (0..150)
            .step_by(2)
            .chain(150..250)
            .map(|c| event(format!("b{c}"), c))
            .collect();
        store.insert_events(&first).await.unwrap();
        // Folded before the second run is acknowledged: two runs, not one.
        assert_eq!(store.counts().await.unwrap().events, 150);
        store.insert_events(&second).await.unwrap();
        assert_eq!(store.counts().await.unwrap().events, 325);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let rows: Vec<(String, i64, i64)> = conn
            .prepare(
                "SELECT customer_id, events, quantity FROM usage_daily_customer \
                 ORDER BY customer_id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(String, i64, i64)> = (0..250)
            .map(|c| {
                let n = if c < 150 && c % 2 == 0 { 2 } else { 1 };
                (format!("c{c:03}"), n, n * (c + 1))
            })
            .collect();
        assert_eq!(rows, want);
        // 1..=250, plus 1, 3, ..., 149 sent again.
        let total: (i64, i64) = conn
            .query_row("SELECT events, quantity FROM usage_daily", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(total, (325, 250 * 251 / 2 + 75 * 75));
    }

    /// Both rollups equal `rollup_upserts` run over every stored event, and the activity
    /// bitmaps hold exactly the stored events' customers.
    async fn assert_rollups_and_bitmaps_hold_the_stored_events(path: &Path) {
        let mut conn = connect(path).await;
        let mut tx = conn.begin().await.unwrap();
        for sql in [
            "CREATE TEMP TABLE folded_daily AS SELECT * FROM usage_daily",
            "CREATE TEMP TABLE folded_customer AS SELECT * FROM usage_daily_customer",
            "DELETE FROM usage_daily",
            "DELETE FROM usage_daily_customer",
        ] {
            tx.execute(sql).await.unwrap();
        }
        for sql in rollup_upserts("FROM events WHERE TRUE") {
            tx.execute(sql.as_str()).await.unwrap();
        }
        for (folded, defined) in [
            ("folded_daily", "usage_daily"),
            ("folded_customer", "usage_daily_customer"),
        ] {
            let rows = count(&mut tx, &format!("SELECT COUNT(*) FROM {defined}")).await;
            assert!(rows > 20, "{defined}: {rows} rows");
            let differ = format!(
                "SELECT COUNT(*) FROM (SELECT * FROM {folded} EXCEPT SELECT * FROM {defined} \
                 UNION ALL SELECT * FROM {defined} EXCEPT SELECT * FROM {folded})"
            );
            assert_eq!(count(&mut tx, &differ).await, 0, "{defined}");
            let same = format!("SELECT COUNT(*) FROM {folded}");
            assert_eq!(count(&mut tx, &same).await, rows, "{defined}");
        }
        tx.rollback().await.unwrap();

        let names: std::collections::HashMap<i64, String> =
            sqlx::query_as("SELECT n, customer_id FROM customer_numbers")
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .into_iter()
                .collect();
        let rows: Vec<(String, i64, String, Vec<u8>)> =
            sqlx::query_as("SELECT kind, day, service, bits FROM customer_activity")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let marked = activity::marked(&names, rows);
        let scanned: std::collections::BTreeSet<(String, i64, String, String)> = sqlx::query_as(
            "SELECT DISTINCT kind, time / 86400000000, COALESCE(service, ''), customer_id \
             FROM events WHERE customer_id IS NOT NULL",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
        assert!(scanned.len() > 20, "{}", scanned.len());
        assert_eq!(marked, scanned);
    }
}
