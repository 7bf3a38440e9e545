//! Event ingestion on SQLite: the duplicate check, multi-row inserts of a few fixed
//! sizes, and the rollup sums added up in Rust (`rollup_delta`), one upsert per key.

use super::conn::SqliteConn;
use super::ingest::activity::{self, NumberCache};
use super::ingest::rollup_delta::{
    insert_head, on_conflict_add, Agg, Deltas, AGG_COLS, CUSTOMER_KEYS, DAILY_KEYS, LATENCY_SUM_AT,
};
use crate::db::EVENT_COLS;
use crate::StoreResult;
use sqlx::{Row as _, Sqlite};
use std::collections::{BTreeSet, HashSet};
use tally_core::event::Event;

/// SQLite's limit on bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER).
const MAX_PARAMS: usize = 32_766;
/// Rows per multi-row insert. A statement is prepared once per distinct row count and
/// kept in the connection's statement cache, so with groups of any size the counts come
/// from a small fixed set: this many, then powers of two for the rest. (Larger statements
/// were not faster: 1,024 rows per statement measured the same.)
const ROWS_PER_INSERT: usize = 128;

/// Splits `n` rows into statement sizes from the fixed set.
fn insert_sizes(n: usize) -> impl Iterator<Item = usize> {
    let full = std::iter::repeat_n(ROWS_PER_INSERT, n / ROWS_PER_INSERT);
    let rest = n % ROWS_PER_INSERT;
    let parts = (0..usize::BITS)
        .rev()
        .map(|b| 1usize << b)
        .filter(move |p| rest & p != 0);
    full.chain(parts)
}

/// Ids per duplicate check: one JSON array each, bound as one value (binding each id on
/// its own cost ~1 us per event in groups of 250,000; the array 0.3-0.4 us).
const ROWS_PER_STATEMENT: usize = 10_000;

fn values_sql(head: &str, rows: usize, cols: usize, tail: &str) -> String {
    let row = format!("({})", vec!["?"; cols].join(", "));
    format!(
        "{head} VALUES {} {tail}",
        vec![row.as_str(); rows].join(", ")
    )
}

/// The ids of `events` that `events` holds already.
async fn stored_ids(tx: &mut SqliteConn, events: &[&Event]) -> StoreResult<HashSet<String>> {
    let conn = tx.conn();
    let mut stored = HashSet::new();
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let ids: Vec<&str> = chunk.iter().map(|e| e.id.as_str()).collect();
        let ids = serde_json::to_string(&ids).expect("strings into JSON");
        // CROSS JOIN keeps the ids as the outer loop: one lookup in `events`' id index
        // each.
        let rows = sqlx::query(
            "SELECT e.id FROM json_each(?) AS j CROSS JOIN events AS e ON e.id = j.value",
        )
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            stored.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(stored)
}

/// Inserts `events` (distinct ids) and registers their services; returns the new ids.
///
/// Which ids are new is found by looking up the ids first rather than with `RETURNING`:
/// sqlx hands each returned row over from SQLite's thread separately, which costs more
/// than the inserts, while the lookup returns only the duplicates, usually none. Under
/// the write lock nothing can come in between.
pub(super) async fn insert(
    tx: &mut SqliteConn,
    events: &[&Event],
    numbers: &NumberCache,
) -> StoreResult<(HashSet<String>, Vec<(String, u32)>)> {
    let stored = stored_ids(tx, events).await?;
    let conn = tx.conn();
    let new: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| !stored.contains(&e.id))
        .collect();
    let head = format!("INSERT INTO events ({})", EVENT_COLS.join(", "));
    let mut rest = new.as_slice();
    for size in insert_sizes(new.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let sql = values_sql(&head, chunk.len(), EVENT_COLS.len(), "");
        let mut q = sqlx::query::<Sqlite>(&sql);
        for e in chunk {
            q = q
                .bind(e.id.as_str())
                .bind(e.kind.as_str())
                .bind(e.time)
                .bind(e.customer_id.as_deref())
                .bind(e.service.as_deref())
                .bind(e.quantity)
                .bind(e.unit.as_deref())
                .bind(e.model.as_deref())
                .bind(e.provider.as_deref())
                .bind(e.input_tokens)
                .bind(e.cache_read_tokens)
                .bind(e.cache_write_tokens)
                .bind(e.output_tokens)
                .bind(e.cache_hit)
                .bind(e.latency_ms)
                .bind(e.status_code)
                .bind(e.cost)
                .bind(e.cost_source.as_str())
                .bind(e.up)
                .bind(e.gauge_name.as_deref())
                .bind(e.gauge_value);
        }
        q.execute(&mut *conn).await?;
    }
    add_to_rollups(conn, &Deltas::of(&new)?).await?;
    let services: BTreeSet<&str> = new.iter().filter_map(|e| e.service.as_deref()).collect();
    let services: Vec<&str> = services.into_iter().collect();
    for chunk in services.chunks(MAX_PARAMS) {
        let sql = values_sql(
            "INSERT INTO services (name)",
            chunk.len(),
            1,
            "ON CONFLICT (name) DO NOTHING",
        );
        let q = chunk
            .iter()
            .fold(sqlx::query::<Sqlite>(&sql), |q, s| q.bind(*s));
        q.execute(&mut *conn).await?;
    }
    let numbers = activity::mark(tx, false, &activity::marks_of(&new), numbers).await?;
    Ok((new.into_iter().map(|e| e.id.clone()).collect(), numbers))
}

type Query<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Adds `deltas` to both rollups: one upsert per key, keys in order.
async fn add_to_rollups(conn: &mut sqlx::SqliteConnection, deltas: &Deltas<'_>) -> StoreResult<()> {
    upsert(conn, "usage_daily", &DAILY_KEYS, &deltas.daily, |q, k| {
        q.bind(k.kind)
            .bind(k.day)
            .bind(k.service)
            .bind(k.model)
            .bind(k.provider)
            .bind(k.cache_hit)
    })
    .await?;
    upsert(
        conn,
        "usage_daily_customer",
        &CUSTOMER_KEYS,
        &deltas.customer,
        |q, k| {
            q.bind(k.kind)
                .bind(k.day)
                .bind(k.customer_id)
                .bind(k.service)
                .bind(k.llm)
        },
    )
    .await
}

/// Adds `rows` to `table`, whose key columns `keys` hold what `bind_key` binds, in
/// multi-row upserts of the fixed sizes.
async fn upsert<'a, K: 'a>(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    keys: &[&str],
    rows: &'a std::collections::BTreeMap<K, Agg>,
    bind_key: impl for<'q> Fn(Query<'q>, &'q K) -> Query<'q>,
) -> StoreResult<()> {
    let rows: Vec<(&K, &Agg)> = rows.iter().collect();
    let (head, tail) = (insert_head(table, keys), on_conflict_add(table, keys));
    let mut rest = rows.as_slice();
    for size in insert_sizes(rows.len()) {
        let (chunk, more) = rest.split_at(size);
        rest = more;
        let sql = values_sql(&head, size, keys.len() + AGG_COLS.len(), &tail);
        let mut q = sqlx::query::<Sqlite>(&sql);
        for &(k, a) in chunk {
            q = bind_key(q, k);
            let ints = a.ints();
            let (before, after) = ints.split_at(LATENCY_SUM_AT);
            q = before.iter().fold(q, |q, &i| q.bind(i));
            q = q.bind(a.latency_sum);
            q = after.iter().fold(q, |q, &i| q.bind(i));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
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

    /// What ingestion adds to the rollups (sums added up in Rust, one upsert per key)
    /// equals `rollup_upserts`, the rollups' definition, run over every stored event:
    /// random events from concurrent callers (so in groups), ids sent again. The
    /// activity bitmaps hold exactly the customers of the stored events.
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

        let mut conn = connect(&path).await;
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

    #[test]
    fn insert_sizes_cover_the_rows_from_a_fixed_set() {
        for n in [0, 1, 5, 127, 128, 129, 1000, 3000, 10_007] {
            let sizes: Vec<usize> = insert_sizes(n).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n, "{n}");
            assert!(sizes
                .iter()
                .all(|&s| s == ROWS_PER_INSERT || (s.is_power_of_two() && s < ROWS_PER_INSERT)));
        }
        let thousand: Vec<usize> = insert_sizes(1000).collect();
        assert_eq!(thousand, [128, 128, 128, 128, 128, 128, 128, 64, 32, 8]);
    }
}
