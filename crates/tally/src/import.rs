//! `tally import <kind> <file>`: CSV or NDJSON records through the same validation and
//! store code as the HTTP API, with a progress bar. Invalid records are reported by line
//! and skipped; valid ones are stored, entity records a thousand per transaction (a batch
//! the store refuses is written again one record at a time, so only the refused records
//! are lost, each reported on its line).

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
use tally_core::model::*;
use tally_core::time::Micros;
use tally_core::FieldError;
use tally_store::{EntityWrite, Store};

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

/// One valid non-event record, ready to store.
enum Record {
    Plan(Plan),
    Customer(Customer),
    /// With its cancellation, when the record has `canceled_at`.
    Subscription(Subscription, Option<Micros>),
    Invoice(Invoice),
    Cost(CostRecord),
    Spend(MarketingSpend),
    Service(Service),
}

/// Validates one non-event record.
fn validate_entity(cfg: &Resolved, kind: Kind, mut v: Value) -> Result<Record, String> {
    let fe = |e: FieldError| e.to_string();
    Ok(match kind {
        Kind::Plans => {
            let id = take_id(&mut v, "id").map_err(fe)?;
            Record::Plan(
                from_value::<PlanInput>(v)
                    .map_err(invalid)?
                    .validate(&id, &cfg.money)
                    .map_err(fe)?,
            )
        }
        Kind::Customers => {
            let id = take_id(&mut v, "id").map_err(fe)?;
            Record::Customer(
                from_value::<CustomerInput>(v)
                    .map_err(invalid)?
                    .validate(&id)
                    .map_err(fe)?,
            )
        }
        Kind::Subscriptions => {
            let id = take_id(&mut v, "id").map_err(fe)?;
            let canceled_at = match v.as_object_mut().and_then(|o| o.remove("canceled_at")) {
                Some(Value::String(at)) => {
                    Some(tally_core::time::parse_instant("canceled_at", &at).map_err(fe)?)
                }
                _ => None,
            };
            let s = from_value::<SubscriptionInput>(v)
                .map_err(invalid)?
                .validate(&id)
                .map_err(fe)?;
            Record::Subscription(s, canceled_at)
        }
        Kind::Invoices => {
            let id = take_id(&mut v, "id").map_err(fe)?;
            Record::Invoice(
                from_value::<InvoiceInput>(v)
                    .map_err(invalid)?
                    .validate(&id, &cfg.money)
                    .map_err(fe)?,
            )
        }
        Kind::Costs => Record::Cost(
            from_value::<CostInput>(v)
                .map_err(invalid)?
                .validate(&cfg.money)
                .map_err(fe)?,
        ),
        Kind::Spend => Record::Spend(
            from_value::<SpendInput>(v)
                .map_err(invalid)?
                .validate(&cfg.money)
                .map_err(fe)?,
        ),
        Kind::Services => {
            let name = take_id(&mut v, "name").map_err(fe)?;
            Record::Service(
                from_value::<ServiceInput>(v)
                    .map_err(invalid)?
                    .validate(&name)
                    .map_err(fe)?,
            )
        }
        Kind::Events => unreachable!("events are stored in batches"),
    })
}

impl Record {
    /// The store writes of the record, in order.
    fn writes(&self) -> Vec<EntityWrite<'_>> {
        match self {
            Record::Plan(p) => vec![EntityWrite::Plan(p)],
            Record::Customer(c) => vec![EntityWrite::Customer(c)],
            Record::Subscription(s, canceled_at) => {
                let mut w = vec![EntityWrite::Subscription(s)];
                w.extend(canceled_at.map(|effective_at| EntityWrite::Cancel {
                    subscription_id: &s.id,
                    effective_at,
                }));
                w
            }
            Record::Invoice(i) => vec![EntityWrite::Invoice(i)],
            Record::Service(s) => vec![EntityWrite::Service(s)],
            // Costs and spend have batch calls of their own.
            Record::Cost(_) | Record::Spend(_) => vec![],
        }
    }
}

/// Entity records per transaction (see [`store_records`]).
const ENTITY_BATCH: usize = 1000;

/// Stores valid records in one transaction; when that fails, one by one, so that each
/// record that the store refuses is reported on its own line and the others are kept,
/// exactly as if every record had been written alone.
async fn store_records(
    store: &dyn Store,
    batch: &mut Vec<(u64, Record)>,
    report: &mut ImportReport,
) {
    if batch.is_empty() {
        return;
    }
    let (costs, spend): (Vec<CostRecord>, Vec<MarketingSpend>) = batch.iter().fold(
        (Vec::new(), Vec::new()),
        |(mut costs, mut spend), (_, r)| {
            match r {
                Record::Cost(c) => costs.push(c.clone()),
                Record::Spend(s) => spend.push(s.clone()),
                _ => {}
            }
            (costs, spend)
        },
    );
    let writes: Vec<EntityWrite> = batch.iter().flat_map(|(_, r)| r.writes()).collect();
    let together = async {
        if !writes.is_empty() {
            store.write_entities(&writes).await?;
        }
        if !costs.is_empty() {
            store.put_costs(&costs).await?;
        }
        if !spend.is_empty() {
            store.put_spend(&spend).await?;
        }
        Ok::<(), tally_store::StoreError>(())
    };
    // One file holds one kind, so a batch is one of the three calls: all or nothing.
    if together.await.is_ok() {
        report.stored += batch.len() as u64;
    } else {
        for (line, r) in batch.iter() {
            match store_one(store, r).await {
                Ok(()) => report.stored += 1,
                Err(e) => report.rejected.push((*line, e.to_string())),
            }
        }
    }
    batch.clear();
}

/// Stores one record alone, its writes in one transaction.
async fn store_one(store: &dyn Store, r: &Record) -> Result<(), tally_store::StoreError> {
    match r {
        Record::Cost(c) => store.put_costs(std::slice::from_ref(c)).await.map(drop),
        Record::Spend(s) => store.put_spend(std::slice::from_ref(s)).await.map(drop),
        // A record's writes (a subscription and its cancellation) in one transaction.
        _ => store.write_entities(&r.writes()).await.map(drop),
    }
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
    let mut records: Vec<(u64, Record)> = Vec::new();
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
            match validate_entity(cfg, kind, value) {
                Ok(r) => records.push((line, r)),
                Err(e) => report.rejected.push((line, e)),
            }
            if records.len() >= ENTITY_BATCH {
                store_records(store, &mut records, &mut report).await;
            }
        }
    }
    flush(store, &mut batch, &mut report).await?;
    store_records(store, &mut records, &mut report).await;
    // Refusals of the store come when a batch is written, after later lines' validation.
    report.rejected.sort_by_key(|(line, _)| *line);
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
