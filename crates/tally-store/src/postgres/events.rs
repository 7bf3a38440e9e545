//! Event ingestion on PostgreSQL: one `INSERT ... SELECT FROM UNNEST(arrays)` per group,
//! so the statement and its 21 parameters are the same whatever the group size; then one
//! upsert per rollup, from the deltas added up in Rust (also `UNNEST` of arrays).

use super::super::sqlite::ingest::activity::{self, NumberCache};
use super::super::sqlite::ingest::rollup_delta::{
    insert_head, on_conflict_add, Agg, Deltas, AGG_COLS, CUSTOMER_KEYS, DAILY_KEYS, LATENCY_SUM_AT,
};
use super::conn::PgConn;
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
    format!(
        "INSERT INTO events ({}) SELECT * FROM UNNEST({}) ON CONFLICT (id) DO NOTHING RETURNING id",
        EVENT_COLS.join(", "),
        arrays.join(", ")
    )
}

/// `INSERT INTO table ... SELECT * FROM UNNEST(arrays) ON CONFLICT ... DO UPDATE`, with
/// one array per key column (of `key_types`) and per aggregate.
fn upsert_sql(table: &str, keys: &[&str], key_types: &[&str]) -> String {
    let types = key_types.iter().copied().chain(AGG_COLS.iter().map(|c| {
        if *c == "latency_sum" {
            "float8"
        } else {
            "int8"
        }
    }));
    let arrays: Vec<String> = types
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    format!(
        "{} SELECT * FROM UNNEST({}) {}",
        insert_head(table, keys),
        arrays.join(", "),
        on_conflict_add(table, keys)
    )
}

/// The aggregate arrays of `rows`, in `AGG_COLS` order, bound after the keys.
fn bind_aggs<'q>(mut q: PgQuery<'q>, aggs: &[&Agg]) -> PgQuery<'q> {
    for i in 0..12 {
        if i == LATENCY_SUM_AT {
            q = q.bind(aggs.iter().map(|a| a.latency_sum).collect::<Vec<_>>());
        }
        q = q.bind(aggs.iter().map(|a| a.ints()[i]).collect::<Vec<_>>());
    }
    q
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Adds what the new events bring to the daily rollups: one upsert per key, in key order
/// (the order the row locks are taken in, the same in every writer).
async fn add_to_rollups(conn: &mut PgConnection, deltas: &Deltas<'_>) -> StoreResult<()> {
    if !deltas.daily.is_empty() {
        let sql = upsert_sql(
            "usage_daily",
            &DAILY_KEYS,
            &["text", "int8", "text", "text", "text", "int8"],
        );
        let keys: Vec<_> = deltas.daily.keys().collect();
        let aggs: Vec<_> = deltas.daily.values().collect();
        let q = sqlx::query::<Postgres>(&sql)
            .bind(keys.iter().map(|k| k.kind).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.day).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.service).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.model).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.provider).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.cache_hit).collect::<Vec<_>>());
        bind_aggs(q, &aggs).execute(&mut *conn).await?;
    }
    if !deltas.customer.is_empty() {
        let sql = upsert_sql(
            "usage_daily_customer",
            &CUSTOMER_KEYS,
            &["text", "int8", "text", "text", "int8"],
        );
        let keys: Vec<_> = deltas.customer.keys().collect();
        let aggs: Vec<_> = deltas.customer.values().collect();
        let q = sqlx::query::<Postgres>(&sql)
            .bind(keys.iter().map(|k| k.kind).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.day).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.customer_id).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.service).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.llm).collect::<Vec<_>>());
        bind_aggs(q, &aggs).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts `events` (distinct ids) and registers their services; returns the new ids.
///
/// Rows are inserted in id order, and services in name order after all events: two
/// processes inserting overlapping batches then wait on each other's rows in the same
/// order, which cannot deadlock.
pub(super) async fn insert(
    tx: &mut PgConn,
    events: &[&Event],
    numbers: &NumberCache,
) -> StoreResult<(HashSet<String>, Vec<(String, u32)>)> {
    let conn = tx.conn();
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
    let stored: Vec<&Event> = sorted
        .iter()
        .copied()
        .filter(|e| new.contains(&e.id))
        .collect();
    add_to_rollups(conn, &Deltas::of(&stored)?).await?;
    let services: BTreeSet<&str> = stored.iter().filter_map(|e| e.service.as_deref()).collect();
    if !services.is_empty() {
        sqlx::query::<Postgres>("INSERT INTO services (name) SELECT * FROM UNNEST($1::text[]) ON CONFLICT (name) DO NOTHING")
            .bind(services.into_iter().collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    let numbers = activity::mark(tx, true, &activity::marks_of(&stored), numbers).await?;
    Ok((new, numbers))
}

#[cfg(test)]
mod tests {
    use super::super::super::sqlite::ingest::rollup_delta::random_events;
    use crate::common::rollup_upserts;
    use crate::Store;
    use sqlx::{Connection, Executor, Row};

    /// Every row of both rollups, as text, in key order.
    async fn rollups(conn: &mut sqlx::PgConnection) -> Vec<String> {
        let mut out = Vec::new();
        for sql in [
            "SELECT CAST(t AS TEXT) FROM usage_daily t \
             ORDER BY kind, day, service, model, provider, cache_hit",
            "SELECT CAST(t AS TEXT) FROM usage_daily_customer t \
             ORDER BY kind, day, customer_id, service, llm",
        ] {
            for row in conn.fetch_all(sql).await.unwrap() {
                out.push(row.get::<String, _>(0));
            }
            out.push("--".into());
        }
        out
    }

    /// The rollups that ingestion builds from its deltas equal `rollup_upserts` (the
    /// definition of the rollups, which ingestion on neither store runs) over every stored
    /// event: random events in several groups, with ids sent again (the first payload
    /// counts), several days, every kind of missing value. And the activity bitmaps hold
    /// the customers of the stored events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rollups_from_deltas_equal_the_rollup_statements_over_all_events() {
        let Ok(admin) = std::env::var("TALLY_TEST_DATABASE_URL") else {
            eprintln!("skipped: TALLY_TEST_DATABASE_URL is not set");
            return;
        };
        let name = format!("tally_deltas_{}", std::process::id());
        let mut admin_conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        admin_conn
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .unwrap();
        admin_conn
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        let store = crate::PgStore::connect(url.as_str()).await.unwrap();
        store.migrate().await.unwrap();

        let events = random_events();
        let store = std::sync::Arc::new(store);
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

        let mut conn = sqlx::PgConnection::connect(url.as_str()).await.unwrap();
        let from_deltas = rollups(&mut conn).await;
        let mut tx = conn.begin().await.unwrap();
        tx.execute("DELETE FROM usage_daily").await.unwrap();
        tx.execute("DELETE FROM usage_daily_customer")
            .await
            .unwrap();
        for sql in rollup_upserts("FROM events WHERE TRUE") {
            tx.execute(sql.as_str()).await.unwrap();
        }
        let from_statements = rollups(&mut tx).await;
        tx.rollback().await.unwrap();
        // The activity bitmaps, written by concurrent writers that lock their rows, hold
        // exactly the (kind, day, service, customer) of the stored events.
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
        let marked = super::activity::marked(&names, rows);
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
        conn.close().await.unwrap();
        drop(store);
        admin_conn
            .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
            .await
            .unwrap();
        assert!(from_deltas.len() > 50, "{}", from_deltas.len());
        assert_eq!(from_deltas, from_statements);
    }
}
