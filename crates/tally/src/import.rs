//! `tally import <kind> <file>`: CSV or NDJSON records through the same validation and
//! store code as the HTTP API, with a progress bar. Invalid records are reported by line
//! and skipped; valid ones are stored.

use crate::config::Resolved;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;
use tally_core::error::from_value;
use tally_core::event::{Event, EventInput};
use tally_core::input::*;
use tally_core::FieldError;
use tally_store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Plans,
    Customers,
    Subscriptions,
    Invoices,
    Costs,
    Spend,
    Services,
    Events,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Ndjson,
}

/// Events are stored in batches of this many (one transaction each).
const EVENT_BATCH: usize = 5_000;

/// CSV cells are text; these columns are sent to validation as JSON numbers or booleans.
const NUMBER_COLUMNS: &[&str] = &[
    "amount",
    "quantity",
    "discount_percent",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "latency_ms",
    "status_code",
    "cost_credits",
    "value",
];
const BOOL_COLUMNS: &[&str] = &["cache_hit", "up"];

/// Turns one CSV row into the JSON object the API would receive; empty cells are absent.
fn csv_record(headers: &csv::StringRecord, row: &csv::StringRecord) -> Result<Value, String> {
    let mut obj = Map::new();
    for (h, cell) in headers.iter().zip(row.iter()) {
        if cell.is_empty() {
            continue;
        }
        let v = if NUMBER_COLUMNS.contains(&h) {
            Value::Number(
                serde_json::Number::from_str(cell)
                    .map_err(|_| format!("{h}: `{cell}` is not a number"))?,
            )
        } else if BOOL_COLUMNS.contains(&h) {
            match cell.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Value::Bool(true),
                "false" | "0" | "no" => Value::Bool(false),
                _ => return Err(format!("{h}: `{cell}` is not true or false")),
            }
        } else {
            Value::String(cell.to_string())
        };
        obj.insert(h.to_string(), v);
    }
    Ok(Value::Object(obj))
}

/// Reads `(line number, record)` pairs; a record that cannot be read is an error item.
fn records(
    path: &Path,
    format: Format,
    bar: &ProgressBar,
) -> Result<Vec<(u64, Result<Value, String>)>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = BufReader::new(bar.wrap_read(file));
    let mut out = Vec::new();
    match format {
        Format::Ndjson => {
            for (i, line) in reader.lines().enumerate() {
                let line = line.with_context(|| format!("reading {}", path.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                out.push((
                    i as u64 + 1,
                    serde_json::from_str::<Value>(&line)
                        .map_err(|e| format!("not valid JSON: {e}")),
                ));
            }
        }
        Format::Csv => {
            let mut rdr = csv::ReaderBuilder::new()
                .flexible(false)
                .from_reader(Box::new(reader) as Box<dyn Read>);
            let headers = rdr.headers().context("reading the CSV header")?.clone();
            for row in rdr.records() {
                match row {
                    Ok(r) => {
                        let line = r.position().map_or(0, |p| p.line());
                        out.push((line, csv_record(&headers, &r)));
                    }
                    Err(e) => out.push((e.position().map_or(0, |p| p.line()), Err(e.to_string()))),
                }
            }
        }
    }
    Ok(out)
}

fn take_id(v: &mut Value, key: &str) -> Result<String, FieldError> {
    match v.as_object_mut().and_then(|o| o.remove(key)) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(FieldError::new(key, "is required")),
    }
}

fn invalid(e: tally_core::InputError) -> String {
    e.to_string()
}

/// Validates and stores one non-event record.
async fn store_entity(
    store: &dyn Store,
    cfg: &Resolved,
    kind: Kind,
    mut v: Value,
) -> Result<(), String> {
    let fe = |e: FieldError| e.to_string();
    let se = |e: tally_store::StoreError| e.to_string();
    match kind {
        Kind::Plans => {
            let id = take_id(&mut v, "id").map_err(fe)?;
            let p = from_value::<PlanInput>(v)
                .map_err(invalid)?
                .validate(&id, &cfg.money)
                .map_err(fe)?;
            store.put_plan(&p).await.map_err(se)?;
        }
        Kind::Customers => {
            let id = take_id(&mut v, "id").map_err(fe)?;
            let c = from_value::<CustomerInput>(v)
                .map_err(invalid)?
                .validate(&id)
                .map_err(fe)?;
            store.put_customer(&c).await.map_err(se)?;
        }
        Kind::Subscriptions => {
            let id = take_id(&mut v, "id").map_err(fe)?;
            let canceled_at = v.as_object_mut().and_then(|o| o.remove("canceled_at"));
            let s = from_value::<SubscriptionInput>(v)
                .map_err(invalid)?
                .validate(&id)
                .map_err(fe)?;
            store.put_subscription(&s).await.map_err(se)?;
            if let Some(Value::String(at)) = canceled_at {
                let at = tally_core::time::parse_instant("canceled_at", &at).map_err(fe)?;
                store.cancel_subscription(&id, at).await.map_err(se)?;
            }
        }
        Kind::Invoices => {
            let id = take_id(&mut v, "id").map_err(fe)?;
            let i = from_value::<InvoiceInput>(v)
                .map_err(invalid)?
                .validate(&id, &cfg.money)
                .map_err(fe)?;
            store.put_invoice(&i).await.map_err(se)?;
        }
        Kind::Costs => {
            let c = from_value::<CostInput>(v)
                .map_err(invalid)?
                .validate(&cfg.money)
                .map_err(fe)?;
            store.put_costs(&[c]).await.map_err(se)?;
        }
        Kind::Spend => {
            let s = from_value::<SpendInput>(v)
                .map_err(invalid)?
                .validate(&cfg.money)
                .map_err(fe)?;
            store.put_spend(&[s]).await.map_err(se)?;
        }
        Kind::Services => {
            let name = take_id(&mut v, "name").map_err(fe)?;
            let s = from_value::<ServiceInput>(v)
                .map_err(invalid)?
                .validate(&name)
                .map_err(fe)?;
            store.put_service(&s).await.map_err(se)?;
        }
        Kind::Events => unreachable!("events are stored in batches"),
    }
    Ok(())
}

/// Totals of one import.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: Vec<(u64, String)>,
}

pub async fn import(
    store: &dyn Store,
    cfg: &Resolved,
    kind: Kind,
    path: &Path,
    format: Option<Format>,
    bar: &ProgressBar,
) -> Result<ImportReport> {
    let format = format.unwrap_or_else(|| {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            Format::Csv
        } else {
            Format::Ndjson
        }
    });
    let items = records(path, format, bar)?;
    bar.finish_and_clear();
    let bar = bar_for(items.len() as u64, "storing");
    let mut report = ImportReport::default();
    let mut batch: Vec<Event> = Vec::with_capacity(EVENT_BATCH);
    for (line, item) in items {
        bar.inc(1);
        let value = match item {
            Ok(v) => v,
            Err(e) => {
                report.rejected.push((line, e));
                continue;
            }
        };
        if kind == Kind::Events {
            match from_value::<EventInput>(value)
                .map_err(invalid)
                .and_then(|e| e.validate(&cfg.prices).map_err(|e| e.to_string()))
            {
                Ok(e) => batch.push(e),
                Err(e) => report.rejected.push((line, e)),
            }
            if batch.len() >= EVENT_BATCH {
                flush(store, &mut batch, &mut report).await?;
            }
        } else {
            match store_entity(store, cfg, kind, value).await {
                Ok(()) => report.stored += 1,
                Err(e) => report.rejected.push((line, e)),
            }
        }
    }
    flush(store, &mut batch, &mut report).await?;
    bar.finish_and_clear();
    Ok(report)
}

async fn flush(store: &dyn Store, batch: &mut Vec<Event>, report: &mut ImportReport) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let stored = store.insert_events(batch).await.context("storing events")?;
    let n = stored.iter().filter(|&&s| s).count() as u64;
    report.stored += n;
    report.duplicates += stored.len() as u64 - n;
    batch.clear();
    Ok(())
}

fn bar_for(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>8} [{bar:40}] {human_pos}/{human_len} ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

pub async fn run(
    store: &dyn Store,
    cfg: &Resolved,
    kind: Kind,
    path: &Path,
    format: Option<Format>,
) -> Result<ExitCode> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>8} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message("reading");
    let report = import(store, cfg, kind, path, format, &bar).await?;
    if report.stored > 0 {
        // After a bulk load the query planner needs statistics of the new rows.
        store
            .analyze()
            .await
            .context("refreshing the planner statistics")?;
    }
    println!(
        "stored {}, duplicates {}, rejected {}",
        report.stored,
        report.duplicates,
        report.rejected.len()
    );
    for (line, e) in report.rejected.iter().take(20) {
        println!("  line {line}: {e}");
    }
    if report.rejected.len() > 20 {
        println!("  … and {} more", report.rejected.len() - 20);
    }
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
