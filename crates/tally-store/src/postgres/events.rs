//! Event ingestion on PostgreSQL: one `INSERT ... SELECT FROM UNNEST(arrays)` per batch,
//! so the statement and its 21 parameters are the same whatever the batch size.

use crate::common::rollup_upserts;
use crate::db::EVENT_COLS;
use crate::StoreResult;
use sqlx::{PgConnection, Postgres, Row as _};
use std::collections::{BTreeSet, HashSet};
use tally_core::event::Event;

/// The SQL type of each of `EVENT_COLS`, for the arrays.
const EVENT_TYPES: [&str; 21] = [
    "text", "text", "int8", "text", "text", "int8", "text", "text", "text", "int8", "int8", "int8",
    "int8", "bool", "float8", "int4", "int8", "text", "bool", "text", "float8",
];

fn insert_sql() -> String {
    let arrays: Vec<String> = EVENT_TYPES
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    // The rows actually inserted (not those skipped as duplicates) feed the rollups, in
    // the same statement.
    let [daily, customer] = rollup_upserts("FROM new_events WHERE TRUE");
    format!(
        "WITH new_events AS (INSERT INTO events ({}) SELECT * FROM UNNEST({}) \
         ON CONFLICT (id) DO NOTHING RETURNING *), \
         daily AS ({daily}), by_customer AS ({customer}) \
         SELECT id FROM new_events",
        EVENT_COLS.join(", "),
        arrays.join(", ")
    )
}

/// Inserts `events` (distinct ids) and registers their services; returns the new ids.
///
/// Rows are inserted in id order, and services in name order after all events: two
/// processes inserting overlapping batches then wait on each other's rows in the same
/// order, which cannot deadlock.
pub(super) async fn insert(
    conn: &mut PgConnection,
    events: &[&Event],
) -> StoreResult<HashSet<String>> {
    let mut sorted = events.to_vec();
    sorted.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let col = |f: &dyn Fn(&Event) -> Option<&str>| sorted.iter().map(|e| f(e)).collect::<Vec<_>>();
    let ints = |f: &dyn Fn(&Event) -> i64| sorted.iter().map(|e| f(e)).collect::<Vec<_>>();
    let sql = insert_sql();
    let rows = sqlx::query::<Postgres>(&sql)
        .bind(sorted.iter().map(|e| e.id.as_str()).collect::<Vec<_>>())
        .bind(sorted.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
        .bind(ints(&|e| e.time))
        .bind(col(&|e| e.customer_id.as_deref()))
        .bind(col(&|e| e.service.as_deref()))
        .bind(ints(&|e| e.quantity))
        .bind(col(&|e| e.unit.as_deref()))
        .bind(col(&|e| e.model.as_deref()))
        .bind(col(&|e| e.provider.as_deref()))
        .bind(ints(&|e| e.input_tokens))
        .bind(ints(&|e| e.cache_read_tokens))
        .bind(ints(&|e| e.cache_write_tokens))
        .bind(ints(&|e| e.output_tokens))
        .bind(sorted.iter().map(|e| e.cache_hit).collect::<Vec<_>>())
        .bind(sorted.iter().map(|e| e.latency_ms).collect::<Vec<_>>())
        .bind(sorted.iter().map(|e| e.status_code).collect::<Vec<_>>())
        .bind(ints(&|e| e.cost))
        .bind(
            sorted
                .iter()
                .map(|e| e.cost_source.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(sorted.iter().map(|e| e.up).collect::<Vec<_>>())
        .bind(col(&|e| e.gauge_name.as_deref()))
        .bind(sorted.iter().map(|e| e.gauge_value).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
    let new = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<HashSet<_>, _>>()?;
    let services: BTreeSet<&str> = sorted
        .iter()
        .filter(|e| new.contains(&e.id))
        .filter_map(|e| e.service.as_deref())
        .collect();
    if !services.is_empty() {
        sqlx::query::<Postgres>("INSERT INTO services (name) SELECT * FROM UNNEST($1::text[]) ON CONFLICT (name) DO NOTHING")
            .bind(services.into_iter().collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    Ok(new)
}
