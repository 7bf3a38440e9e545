//! What the database alone does with the same rows, and the export DuckDB reads.
//!
//! - SQLite: one prepared single-row INSERT per row, in one transaction, through SQLite's C
//!   API (rusqlite, as the store's event writer), into a scratch database file with the
//!   store's own `events` DDL (table and indexes) and the store's pragmas (WAL,
//!   synchronous=FULL).
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

/// A connection with the store's own settings (tally-store/src/sqlite/mod.rs): WAL,
/// synchronous=FULL, 256 MiB page cache, 1 GiB mmap, temp tables in memory.
fn sqlite_conn(path: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    for pragma in [
        "journal_mode = WAL",
        "synchronous = FULL",
        "temp_store = MEMORY",
        "cache_size = -262144",
        "mmap_size = 1073741824",
    ] {
        // Stepped through: some pragmas answer with a row, which `execute` refuses.
        conn.prepare(&format!("PRAGMA {pragma}"))?
            .query([])?
            .next()?;
    }
    Ok(conn)
}

/// SQLite's own insert rate: one prepared single-row `INSERT` stepped per row, through
/// SQLite's C API (rusqlite), all rows in one transaction, into a scratch database file
/// with the store's `events` table and indexes.
pub async fn sqlite_insert(
    store_file: &Path,
    plan: &DemoPlan,
    opts: &DemoOptions,
    limit: usize,
) -> Result<RawInsert> {
    // Blocking calls, on a thread the runtime can spare (nothing else runs meanwhile).
    tokio::task::block_in_place(|| {
        let ddl: Vec<String> = sqlite_conn(store_file)?
            .prepare(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL \
                 ORDER BY type DESC",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let scratch = PathBuf::from(format!("{}.bench-raw", store_file.display()));
        remove_sqlite(&scratch);
        let mut conn = sqlite_conn(&scratch)?;
        for stmt in &ddl {
            conn.execute(stmt, [])?;
        }
        let sql = format!(
            "INSERT INTO events ({}) VALUES ({})",
            wire::COLUMNS,
            vec!["?"; 21].join(", ")
        );
        let mut timed = Duration::ZERO;
        let mut rows = 0;
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare(&sql)?;
            for day in usage_days(plan, opts, limit) {
                let t = Instant::now();
                for e in &day {
                    insert.execute(rusqlite::params_from_iter(
                        tally_store::sqlite_event_values(e)?,
                    ))?;
                }
                timed += t.elapsed();
                rows += day.len();
            }
        }
        let t = Instant::now();
        tx.commit()?;
        timed += t.elapsed();
        drop(conn);
        remove_sqlite(&scratch);
        Ok(RawInsert {
            method: "sqlite: one prepared single-row INSERT per row (SQLite's C API, through rusqlite), one transaction, the store's pragmas (WAL, synchronous=FULL, 256 MiB cache), table and indexes of the store",
            rows,
            seconds: timed.as_secs_f64(),
            rows_per_sec: rows as f64 / timed.as_secs_f64(),
        })
    })
}

fn remove_sqlite(p: &Path) {
    for suffix in ["", "-wal", "-shm", "-ingest", "-ingest-wal"] {
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
        tokio::task::block_in_place(|| -> Result<()> {
            let conn = sqlite_conn(&path)?;
            let mut stmt = conn.prepare(EXPORT)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                write(
                    (0..HEADER.len())
                        .map(|i| r.get(i))
                        .collect::<Result<_, _>>()?,
                )?;
            }
            Ok(())
        })?;
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
