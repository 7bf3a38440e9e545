//! Event ingestion on SQLite: multi-row inserts, as few statements as the bound-parameter
//! limit allows.

use crate::db::EVENT_COLS;
use crate::StoreResult;
use sqlx::{Row as _, Sqlite, SqliteConnection};
use std::collections::{BTreeSet, HashSet};
use tally_core::event::Event;

/// SQLite's limit on bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER).
const MAX_PARAMS: usize = 32_766;
const ROWS_PER_INSERT: usize = MAX_PARAMS / EVENT_COLS.len();

fn values_sql(head: &str, rows: usize, cols: usize, tail: &str) -> String {
    let row = format!("({})", vec!["?"; cols].join(", "));
    format!(
        "{head} VALUES {} {tail}",
        vec![row.as_str(); rows].join(", ")
    )
}

/// Inserts `events` (distinct ids) and registers their services; returns the new ids.
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    events: &[&Event],
) -> StoreResult<HashSet<String>> {
    let mut new = HashSet::with_capacity(events.len());
    let head = format!("INSERT INTO events ({})", EVENT_COLS.join(", "));
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let sql = values_sql(
            &head,
            chunk.len(),
            EVENT_COLS.len(),
            "ON CONFLICT (id) DO NOTHING RETURNING id",
        );
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
        for row in q.fetch_all(&mut *conn).await? {
            new.insert(row.try_get::<String, _>(0)?);
        }
    }
    let services: BTreeSet<&str> = events
        .iter()
        .filter(|e| new.contains(&e.id))
        .filter_map(|e| e.service.as_deref())
        .collect();
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
    Ok(new)
}
