//! What the database alone does with the same rows, and the export DuckDB reads.
//!
//! - SQLite: prepared INSERTs of every row in one transaction, into a scratch database
//!   file with the store's own `events` DDL (table and indexes) and the store's pragmas
//!   (WAL, synchronous=FULL).
//! - PostgreSQL: COPY into a scratch table `LIKE events INCLUDING ALL` in the same database,
//!   dropped afterwards.
//!
//! Only the database's work is timed: each day of events is generated first, untimed.

use super::wire;
use crate::demo::{DemoOptions, DemoPlan};
use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Row};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tally_core::event::{Event, EventKind};

#[derive(Debug, Clone, Serialize)]
pub struct RawInsert {
    pub method: &'static str,
    pub rows: usize,
    pub seconds: f64,
    pub rows_per_sec: f64,
}

/// The SQLite file a URL names (the forms `tally_store::open` accepts).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let p = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let p = p.split('?').next().unwrap_or(p);
    Some(PathBuf::from(p))
}

fn usage_days(
    plan: &DemoPlan,
    opts: &DemoOptions,
    limit: usize,
) -> impl Iterator<Item = Vec<Event>> {
    let mut stream = plan.event_stream(opts);
    let mut left = limit;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let mut day: Vec<Event> = stream
            .next_day()?
            .into_iter()
            .filter(|e| e.kind == EventKind::Usage)
            .collect();
        day.truncate(left);
        left -= day.len();
        Some(day)
    })
}

async fn sqlite_conn(path: &Path, create: bool) -> Result<SqliteConnection> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        // The store's own settings (tally-store/src/sqlite/mod.rs): 64 MiB page cache,
        // 1 GiB mmap, temp tables in memory.
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-65536")
        .pragma("mmap_size", (1u64 << 30).to_string());
    Ok(SqliteConnection::connect_with(&opts).await?)
}

pub async fn sqlite_insert(
    store_file: &Path,
    plan: &DemoPlan,
    opts: &DemoOptions,
    limit: usize,
) -> Result<RawInsert> {
    let mut store = sqlite_conn(store_file, false).await?;
    let ddl: Vec<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL ORDER BY type DESC",
    )
    .fetch_all(&mut store)
    .await?;
    store.close().await?;
    let scratch = PathBuf::from(format!("{}.bench-raw", store_file.display()));
    remove_sqlite(&scratch);
    let mut conn = sqlite_conn(&scratch, true).await?;
    for stmt in &ddl {
        sqlx::query(stmt).execute(&mut conn).await?;
    }
    // 45 rows per statement (945 parameters): one round trip to sqlx's worker thread per
    // 45 rows rather than per row, so the figure is SQLite's, not the channel's.
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let sql_for = |n: usize| {
        format!(
            "INSERT INTO events ({}) VALUES {}",
            wire::COLUMNS,
            vec![row; n].join(", ")
        )
    };
    let full = sql_for(ROWS_PER_INSERT);
    let mut timed = Duration::ZERO;
    let mut rows = 0;
    let mut tx = conn.begin().await?;
    for day in usage_days(plan, opts, limit) {
        let t = Instant::now();
        for chunk in day.chunks(ROWS_PER_INSERT) {
            let tail;
            let sql = if chunk.len() == ROWS_PER_INSERT {
                &full
            } else {
                tail = sql_for(chunk.len());
                &tail
            };
            let mut q = sqlx::query(sql);
            for e in chunk {
                q = q
                    .bind(&e.id)
                    .bind(e.kind.as_str())
                    .bind(e.time)
                    .bind(&e.customer_id)
                    .bind(&e.service)
                    .bind(e.quantity)
                    .bind(&e.unit)
                    .bind(&e.model)
                    .bind(&e.provider)
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
                    .bind(&e.gauge_name)
                    .bind(e.gauge_value);
            }
            q.execute(&mut *tx).await?;
        }
        timed += t.elapsed();
        rows += day.len();
    }
    let t = Instant::now();
    tx.commit().await?;
    timed += t.elapsed();
    conn.close().await?;
    remove_sqlite(&scratch);
    Ok(RawInsert {
        method: "sqlite: prepared INSERTs of 45 rows, one transaction, the store's pragmas (WAL, synchronous=FULL, 64 MiB cache), table and indexes of the store",
        rows,
        seconds: timed.as_secs_f64(),
        rows_per_sec: rows as f64 / timed.as_secs_f64(),
    })
}

const ROWS_PER_INSERT: usize = 45;

fn remove_sqlite(p: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
}

pub async fn pg_copy(
    url: &str,
    plan: &DemoPlan,
    opts: &DemoOptions,
    limit: usize,
) -> Result<RawInsert> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::query("DROP TABLE IF EXISTS bench_raw_events")
        .execute(&mut conn)
        .await?;
    sqlx::query("CREATE TABLE bench_raw_events (LIKE events INCLUDING ALL)")
        .execute(&mut conn)
        .await?;
    let mut timed = Duration::ZERO;
    let mut rows = 0;
    let t = Instant::now();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY bench_raw_events ({}) FROM STDIN WITH (FORMAT csv)",
            wire::COLUMNS
        ))
        .await?;
    timed += t.elapsed();
    for day in usage_days(plan, opts, limit) {
        let mut buf = Vec::with_capacity(day.len() * 260);
        {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(&mut buf);
            for e in &day {
                wire::csv_row(&mut w, e)?;
            }
            w.flush()?;
        }
        let t = Instant::now();
        copy.send(buf).await?;
        timed += t.elapsed();
        rows += day.len();
    }
    let t = Instant::now();
    let copied = copy.finish().await?;
    timed += t.elapsed();
    anyhow::ensure!(
        copied as usize == rows,
        "COPY stored {copied} of {rows} rows"
    );
    sqlx::query("DROP TABLE bench_raw_events")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(RawInsert {
        method: "postgres: COPY FROM STDIN (csv) into a table LIKE events INCLUDING ALL",
        rows,
        seconds: timed.as_secs_f64(),
        rows_per_sec: rows as f64 / timed.as_secs_f64(),
    })
}

/// The usage events as the store holds them, for DuckDB: one CSV with a header.
const EXPORT: &str = "SELECT CAST(time AS TEXT), customer_id, service, model, provider, \
CAST(input_tokens AS TEXT), CAST(output_tokens AS TEXT), \
CASE WHEN cache_hit THEN '1' WHEN NOT cache_hit THEN '0' END, \
CAST(status_code AS TEXT), CAST(quantity AS TEXT), CAST(cost AS TEXT) \
FROM events WHERE kind = 'usage'";
const HEADER: [&str; 11] = [
    "time",
    "customer_id",
    "service",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cache_hit",
    "status_code",
    "quantity",
    "cost",
];

pub async fn export_usage_csv(database_url: &str, out: &Path) -> Result<usize> {
    let mut w =
        csv::Writer::from_path(out).with_context(|| format!("creating {}", out.display()))?;
    w.write_record(HEADER)?;
    let mut n = 0;
    let mut write = |row: Vec<Option<String>>| -> Result<()> {
        for f in &row {
            w.write_field(f.as_deref().unwrap_or(""))?;
        }
        w.write_record(None::<&[u8]>)?;
        n += 1;
        Ok(())
    };
    if let Some(path) = sqlite_path(database_url) {
        let mut conn = sqlite_conn(&path, false).await?;
        let mut rows = sqlx::query(EXPORT).fetch(&mut conn);
        while let Some(r) = rows.try_next().await? {
            write(
                (0..HEADER.len())
                    .map(|i| r.try_get(i))
                    .collect::<Result<_, _>>()?,
            )?;
        }
    } else {
        let mut conn = PgConnection::connect(database_url).await?;
        let mut rows = sqlx::query(EXPORT).fetch(&mut conn);
        while let Some(r) = rows.try_next().await? {
            write(
                (0..HEADER.len())
                    .map(|i| r.try_get(i))
                    .collect::<Result<_, _>>()?,
            )?;
        }
    }
    w.flush()?;
    Ok(n)
}
