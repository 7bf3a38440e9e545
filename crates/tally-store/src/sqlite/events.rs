//! Event ingestion on SQLite: multi-row inserts of a few fixed sizes, then the new rows
//! added to the daily rollups.

use super::conn::SqliteConn;
use super::ingest::activity::{self, NumberCache};
use crate::common::rollup_upserts;
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

fn values_sql(head: &str, rows: usize, cols: usize, tail: &str) -> String {
    let row = format!("({})", vec!["?"; cols].join(", "));
    format!(
        "{head} VALUES {} {tail}",
        vec![row.as_str(); rows].join(", ")
    )
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
    let conn = tx.conn();
    let mut stored = HashSet::new();
    for chunk in events.chunks(MAX_PARAMS) {
        let sql = format!(
            "SELECT id FROM events WHERE id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let q = chunk
            .iter()
            .fold(sqlx::query::<Sqlite>(&sql), |q, e| q.bind(e.id.as_str()));
        for row in q.fetch_all(&mut *conn).await? {
            stored.insert(row.try_get::<String, _>(0)?);
        }
    }
    let new: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| !stored.contains(&e.id))
        .collect();
    // Rowids grow: the rows inserted below are exactly those after the current last one.
    let (last_rowid,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(rowid), 0) FROM events")
        .fetch_one(&mut *conn)
        .await?;
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
    if !new.is_empty() {
        for sql in rollup_upserts("FROM events WHERE rowid > $1") {
            sqlx::query::<Sqlite>(&sql)
                .bind(last_rowid)
                .execute(&mut *conn)
                .await?;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
