//! The daily rollups of events (`usage_daily`, `usage_daily_customer`; see migration
//! 0002): how ingestion adds to them, and how a usage query is answered from them plus
//! the partial days at the edges of its span from `events`, exactly.
//!
//! A span `[start, end)` splits into whole UTC days `[d0, d1)` and at most two partial
//! days. The whole days are summed from a rollup, the edges from `events` (by
//! `(kind, time)`), all in one statement (`UNION ALL`), and the rows of the parts are
//! added up by their dimensions. Every aggregate is a sum or a count, so the result equals
//! a scan of `events` over the span (latency sums are floats added in another order,
//! which can differ in the last bits).
//!
//! One customer's figures (tier attribution's pieces, `UsageQuery::customer`) are looked
//! up by day, then customer: whole days through `usage_daily_customer`'s primary key
//! `(kind, day, customer_id, ...)`, partial days through `events_day_customer`
//! (`time / 86400000000, customer_id, time`, migration 0007), with the day always an
//! equality (or a short `IN` list). No index is led by the customer: such an index takes a
//! random B-tree page per ingested event, while these take their inserts in the current
//! day's pages since events arrive roughly in time order.

use super::analytics::{usage_row, AGGREGATES};
use crate::db::{Arg, Conn, Row};
use crate::*;
use tally_core::time::MICROS_PER_DAY;

/// The aggregate columns of both rollups, in the order of `AGGREGATES` and `UsageRow`.
const AGG_COLS: [&str; 13] = [
    "events",
    "quantity",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost",
    "unpriced",
    "latency_sum",
    "latency_count",
    "status_count",
    "error_count",
    "up_count",
];

/// The key columns of each rollup, and the expression over `events` that fills them.
#[cfg(test)]
const DAILY_KEYS: [(&str, &str); 6] = [
    ("kind", "kind"),
    ("day", "time / 86400000000"),
    ("service", "COALESCE(service, '')"),
    ("model", "COALESCE(model, '')"),
    ("provider", "COALESCE(provider, '')"),
    (
        "cache_hit",
        "CASE WHEN cache_hit IS NULL THEN -1 WHEN cache_hit THEN 1 ELSE 0 END",
    ),
];
#[cfg(test)]
const CUSTOMER_KEYS: [(&str, &str); 5] = [
    ("kind", "kind"),
    ("day", "time / 86400000000"),
    ("customer_id", "COALESCE(customer_id, '')"),
    ("service", "COALESCE(service, '')"),
    ("llm", "CASE WHEN model IS NULL THEN 0 ELSE 1 END"),
];

/// The two statements that add the events `source` selects (`FROM ... WHERE ...`, with
/// `events`' columns) to the rollups. Rows go in key order, so that concurrent writers on
/// PostgreSQL lock shared rollup rows in the same order and cannot deadlock.
#[cfg(test)]
pub(crate) fn rollup_upserts(source: &str) -> [String; 2] {
    let one = |table: &str, keys: &[(&str, &str)]| {
        let cols: Vec<&str> = keys.iter().map(|k| k.0).chain(AGG_COLS).collect();
        let exprs: Vec<&str> = keys.iter().map(|k| k.1).collect();
        let positions: Vec<String> = (1..=keys.len()).map(|i| i.to_string()).collect();
        let set: Vec<String> = AGG_COLS
            .iter()
            .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
            .collect();
        format!(
            "INSERT INTO {table} ({}) SELECT {}, {} {source} GROUP BY {} ORDER BY {} \
             ON CONFLICT ({}) DO UPDATE SET {}",
            cols.join(", "),
            exprs.join(", "),
            AGGREGATES.join(", "),
            positions.join(", "),
            positions.join(", "),
            keys.iter().map(|k| k.0).collect::<Vec<_>>().join(", "),
            set.join(", ")
        )
    };
    [
        one("usage_daily", &DAILY_KEYS),
        one("usage_daily_customer", &CUSTOMER_KEYS),
    ]
}

/// Sums of a rollup's aggregate columns, typed like `AGGREGATES`, as `measured` wants them.
fn rollup_aggregates(alias: &str, q: &UsageQuery, shape: Shape) -> String {
    measured(
        q,
        AGG_COLS.map(|c| format!("CAST(COALESCE(SUM({alias}{c}), 0) AS {})", sql_type(c))),
        shape,
    )
}

/// Raw events' aggregates (`AGGREGATES`), as `measured` wants them.
fn raw_aggregates(q: &UsageQuery, shape: Shape) -> String {
    measured(q, AGGREGATES.map(String::from), shape)
}

fn sql_type(col: &str) -> &'static str {
    if col == "latency_sum" {
        "DOUBLE PRECISION"
    } else {
        "BIGINT"
    }
}

/// Which `Measure` an aggregate column belongs to.
fn measure_of(col: &str) -> Measure {
    match col {
        "events" => Measure::Events,
        "quantity" => Measure::Quantity,
        "input_tokens" => Measure::InputTokens,
        "output_tokens" => Measure::OutputTokens,
        "cache_read_tokens" => Measure::CacheReadTokens,
        "cache_write_tokens" => Measure::CacheWriteTokens,
        "cost" => Measure::Cost,
        "unpriced" => Measure::Unpriced,
        "latency_sum" | "latency_count" => Measure::Latency,
        "status_count" | "error_count" => Measure::Status,
        _ => Measure::Up,
    }
}

/// Which columns of `AGG_COLS` (by index) `q` measures: the others are 0 in its rows.
/// Each aggregate the database need not compute saves work on every row it reads: a
/// query per customer over a month reads ~40 rollup rows per customer, and summing 2
/// columns instead of 13 took a third of the time on SQLite.
fn measured_cols(q: &UsageQuery) -> Vec<usize> {
    let cols: Vec<usize> = (0..AGG_COLS.len())
        .filter(|&i| {
            q.measures
                .as_ref()
                .is_none_or(|m| m.contains(&measure_of(AGG_COLS[i])))
        })
        .collect();
    // A statement selects something: the event count when nothing was asked for.
    if cols.is_empty() {
        vec![0]
    } else {
        cols
    }
}

/// How a statement's rows are shaped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Every dimension and every aggregate, in `UsageRow` order, NULL and typed zeros
    /// where not grouped or not measured (the rows of `usage_pieces`, decoded as always).
    Full,
    /// Only the grouped dimensions and the measured aggregates, in that order: a query
    /// can return a row per customer and day, and each column costs on every row.
    Narrow,
}

/// The select list of the aggregates: `exprs` (one per column of `AGG_COLS`, in order)
/// where `q` measures the column; elsewhere a typed zero (`Full`) or nothing (`Narrow`).
fn measured(q: &UsageQuery, exprs: [String; 13], shape: Shape) -> String {
    let cols = measured_cols(q);
    exprs
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| {
            if cols.contains(&i) {
                Some(e)
            } else {
                (shape == Shape::Full).then(|| format!("CAST(0 AS {})", sql_type(AGG_COLS[i])))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Bound parameters, numbered in the order they first appear in the SQL.
#[derive(Default)]
pub(crate) struct Params(pub Vec<Arg>);

impl Params {
    pub fn push(&mut self, a: impl Into<Arg>) -> String {
        self.0.push(a.into());
        format!("${}", self.0.len())
    }
}

/// A dimension's column in `events` and in the rollups (where '' and -1 mean null).
fn dim_cols(d: UsageDim) -> (&'static str, &'static str) {
    match d {
        UsageDim::Service => ("service", "NULLIF(service, '')"),
        UsageDim::Model => ("model", "NULLIF(model, '')"),
        UsageDim::Provider => ("provider", "NULLIF(provider, '')"),
        UsageDim::Customer => ("customer_id", "NULLIF(customer_id, '')"),
        // Times are never negative, so integer division is the floor.
        UsageDim::Day => ("time / 86400000000", "day"),
        UsageDim::CacheHit => (
            "cache_hit",
            "CASE cache_hit WHEN 1 THEN TRUE WHEN 0 THEN FALSE END",
        ),
    }
}

/// A dimension's stored column in the rollups.
fn rollup_col(d: UsageDim) -> &'static str {
    match d {
        UsageDim::Service => "service",
        UsageDim::Model => "model",
        UsageDim::Provider => "provider",
        UsageDim::Customer => "customer_id",
        UsageDim::Day => "day",
        UsageDim::CacheHit => "cache_hit",
    }
}

/// Every dimension, in `UsageRow` order (each SELECT has all six).
const DIMS: [UsageDim; 6] = [
    UsageDim::Service,
    UsageDim::Model,
    UsageDim::Provider,
    UsageDim::Customer,
    UsageDim::Day,
    UsageDim::CacheHit,
];

const _: () = assert!(MICROS_PER_DAY == 86_400_000_000);

/// Which rollup can answer the whole days of `q`, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rollup {
    Daily,
    Customer,
}

fn rollup_for(q: &UsageQuery) -> Option<Rollup> {
    let by_customer = q.customer.is_some() || q.group_by.contains(&UsageDim::Customer);
    if !by_customer {
        return Some(Rollup::Daily);
    }
    let finer = [UsageDim::Model, UsageDim::Provider, UsageDim::CacheHit];
    (!q.group_by.iter().any(|d| finer.contains(d))).then_some(Rollup::Customer)
}

/// The whole days `[d0, d1)` inside a span, and the partial spans around them.
pub(crate) fn split(span: Span) -> (Option<(i64, i64)>, Vec<Span>) {
    if span.start >= span.end {
        return (None, vec![]);
    }
    let (d0, d1) = span.whole_days();
    if d0 >= d1 {
        return (None, vec![span]);
    }
    let mut edges = Vec::new();
    if span.start < d0 * MICROS_PER_DAY {
        edges.push(Span::new(span.start, d0 * MICROS_PER_DAY));
    }
    if d1 * MICROS_PER_DAY < span.end {
        edges.push(Span::new(d1 * MICROS_PER_DAY, span.end));
    }
    (Some((d0, d1)), edges)
}

/// The day of an instant as the SQL expression `time / 86400000000` computes it (the
/// rollups' `day`, the lead of the index `events_day_customer`): integer division, which
/// truncates toward zero in SQLite, PostgreSQL and Rust alike. For times before 1970 this
/// is not the calendar day (`div_euclid`); what matters is that the lookups use the same
/// value as the index.
fn sql_day(t: i64) -> i64 {
    t / MICROS_PER_DAY
}

/// `span` cut where `sql_day` changes, so that each part lies in one SQL day and can be
/// looked up by `time / 86400000000 = <day> AND customer_id = ? AND time in part`. An edge
/// from `split` is at most one day long or crosses one midnight, so it gives one or two
/// parts.
pub(crate) fn sql_day_parts(span: Span) -> Vec<Span> {
    let mut parts = Vec::new();
    let mut start = span.start;
    while start < span.end {
        let d = sql_day(start);
        // The first instant after `start` whose SQL day is not `d`: days after 0 begin at
        // a multiple of a day, day 0 spans (-1 day, 1 day) and earlier days end at one.
        let next = if d > 0 || (d == 0 && start >= 0) {
            (d + 1).saturating_mul(MICROS_PER_DAY)
        } else if d == 0 {
            MICROS_PER_DAY
        } else {
            d * MICROS_PER_DAY + 1
        };
        let end = next.min(span.end);
        parts.push(Span::new(start, end));
        start = end;
    }
    parts
}

/// The SQL days `[lo, hi]` that the instants of `span` fall on, when there are at most
/// this many: a usage query for one customer then looks them up in the day-led indexes
/// with an `IN` list; a longer span reads the `(kind, ...)` indexes and filters.
const MAX_IN_DAYS: i64 = 366;

fn sql_days_in(span: Span, p: &mut Params) -> Option<String> {
    if span.start >= span.end {
        return None;
    }
    let (lo, hi) = (sql_day(span.start), sql_day(span.end - 1));
    (hi - lo < MAX_IN_DAYS).then(|| {
        let days: Vec<String> = (lo..=hi).map(|d| p.push(d)).collect();
        days.join(", ")
    })
}

/// One SELECT over raw events in `span`; with `when` (an SQL condition), only if it holds
/// (see [`only_when`]).
fn raw_part(q: &UsageQuery, span: Span, when: Option<&str>, p: &mut Params) -> String {
    let mut filter = format!(
        "kind = {} AND time >= {} AND time < {}",
        p.push(q.kind.as_str()),
        p.push(span.start),
        only_when(when, p.push(span.end))
    );
    if let Some(service) = &q.service {
        filter += &format!(" AND service = {}", p.push(service));
    }
    if let Some(customer) = &q.customer {
        filter += &format!(" AND customer_id = {}", p.push(customer));
        // One customer's events: through `events_day_customer`, one seek per day.
        if let Some(days) = sql_days_in(span, p) {
            filter += &format!(" AND time / 86400000000 IN ({days})");
        }
    }
    if q.llm_only {
        filter += " AND model IS NOT NULL";
    }
    select(
        q,
        "events",
        filter,
        &raw_aggregates(q, Shape::Narrow),
        |d| dim_cols(d).0,
        |d| dim_cols(d).0,
    )
}

/// One SELECT over the days `[d0, d1)` of a rollup.
fn rollup_part(q: &UsageQuery, rollup: Rollup, (d0, d1): (i64, i64), p: &mut Params) -> String {
    // One customer's days: a seek of the primary key (kind, day, customer_id, ...) per
    // day, rather than every customer's rows of the days.
    let days = match &q.customer {
        Some(_) if d1 - d0 <= MAX_IN_DAYS => {
            let days: Vec<String> = (d0..d1).map(|d| p.push(d)).collect();
            format!("day IN ({})", days.join(", "))
        }
        _ => format!("day >= {} AND day < {}", p.push(d0), p.push(d1)),
    };
    rollup_select(q, rollup, days, p)
}

/// One SELECT over the rollup rows of `day`; with `when` (an SQL condition), only if it
/// holds (see [`only_when`]).
fn rollup_day(
    q: &UsageQuery,
    rollup: Rollup,
    day: i64,
    when: Option<&str>,
    p: &mut Params,
) -> String {
    let day = format!("day = {}", only_when(when, p.push(day)));
    rollup_select(q, rollup, day, p)
}

/// `value`, or with `when` the SQL `CASE WHEN {when} THEN {value} END`: NULL when the
/// condition fails. Put as a bound of an index range or lookup, a NULL bound reads
/// nothing, and the condition is evaluated once, before the lookup. (As a plain term of
/// the `WHERE` clause SQLite tests it on every row the index range yields, and a day's
/// events would still be read through.)
pub(crate) fn only_when(when: Option<&str>, value: String) -> String {
    match when {
        Some(when) => format!("CASE WHEN {when} THEN {value} END"),
        None => value,
    }
}

/// The SELECT of a rollup's rows of `days` (an SQL condition on `day`).
fn rollup_select(q: &UsageQuery, rollup: Rollup, days: String, p: &mut Params) -> String {
    let kind = p.push(q.kind.as_str());
    let mut filter = format!("kind = {kind} AND {days}");
    if let Some(service) = &q.service {
        filter += &format!(" AND service = {}", p.push(service));
    }
    if let Some(customer) = &q.customer {
        filter += &format!(" AND customer_id = {}", p.push(customer));
    }
    let table = match rollup {
        Rollup::Daily => {
            if q.llm_only {
                filter += " AND model <> ''";
            }
            "usage_daily"
        }
        Rollup::Customer => {
            if q.llm_only {
                filter += " AND llm = 1";
            }
            "usage_daily_customer"
        }
    };
    select(
        q,
        table,
        filter,
        &rollup_aggregates("", q, Shape::Narrow),
        |d| dim_cols(d).1,
        rollup_col,
    )
}

/// `col` gives each dimension's value, `group` what to group by for it: the stored
/// column itself in a rollup, where the value maps '' and -1 to null (one to one, so the
/// groups are the same), because SQLite reads groups of bare columns in the order of an
/// index that has them and needs no sort.
fn select(
    q: &UsageQuery,
    table: &str,
    filter: String,
    aggregates: &str,
    col: impl Fn(UsageDim) -> &'static str,
    group: impl Fn(UsageDim) -> &'static str,
) -> String {
    let select: Vec<&str> = DIMS
        .iter()
        .filter(|d| q.group_by.contains(d))
        .map(|&d| col(d))
        .chain([aggregates])
        .collect();
    let mut sql = format!("SELECT {} FROM {table} WHERE {filter}", select.join(", "));
    // The day first: both rollups' keys, and `events_day_customer`, lead with it.
    let grouped: Vec<&str> = [UsageDim::Day]
        .iter()
        .chain(DIMS.iter().filter(|d| **d != UsageDim::Day))
        .filter(|d| q.group_by.contains(d))
        .map(|&d| group(d))
        .collect();
    if !grouped.is_empty() {
        sql += &format!(" GROUP BY {}", grouped.join(", "));
    }
    sql
}

/// The SQL and arguments of a usage query: rollup and edges in one statement.
pub(crate) fn usage_sql(q: &UsageQuery) -> (String, Vec<Arg>) {
    let mut p = Params::default();
    let Some(rollup) = rollup_for(q) else {
        return (raw_part(q, q.span, None, &mut p), p.0);
    };
    let (days, edges) = split(q.span);
    let mut parts: Vec<String> = days
        .map(|days| rollup_part(q, rollup, days, &mut p))
        .into_iter()
        .collect();
    for edge in edges.into_iter().flat_map(sql_day_parts) {
        parts.extend(edge_parts(q, rollup, edge, &mut p));
    }
    if parts.is_empty() {
        // An empty span: a statement that reads nothing, for the row shape.
        parts.push(raw_part(q, q.span, None, &mut p));
    }
    (parts.join(" UNION ALL "), p.0)
}

/// A partial day `edge` (inside one SQL day) as two SELECTs of which one reads: the
/// day's rollup rows when the day has no event of the kind outside `edge`, else the raw
/// events of `edge` (see [`outside_edge`]).
fn edge_parts(q: &UsageQuery, rollup: Rollup, edge: Span, p: &mut Params) -> Vec<String> {
    match outside_edge(q.kind, edge, p) {
        Some((day, outside)) => vec![
            rollup_day(q, rollup, day, Some(&format!("NOT ({outside})")), p),
            raw_part(q, edge, Some(&outside), p),
        ],
        None => vec![raw_part(q, edge, None, p)],
    }
}

/// For a partial day `edge` inside one SQL day: that day, and an SQL condition that holds
/// when the day has an event of `kind` outside `edge`. When it does not, the day's
/// pre-aggregated rows (rollups, activity bitmaps) are exactly `edge`'s events.
///
/// This is the common case of an `as_of` of now: the day's events so far, read one by
/// one from `events` (a day of L's events takes 0.3-0.5 s), are the whole day as long
/// as no event is dated after `as_of`. Callers put the condition in the same statement
/// as both readings (one read only when it holds, one only when it fails): an
/// uncorrelated subquery, evaluated once before reading, which sees the same snapshot
/// as the rows (as a bound, see [`only_when`]). Each probe is one seek of
/// `events (kind, time)`.
///
/// `None` before 1970, where the SQL day (truncated) is not the calendar day `split`
/// cuts by: read `events`.
pub(crate) fn outside_edge(kind: EventKind, edge: Span, p: &mut Params) -> Option<(i64, String)> {
    if edge.start < 0 {
        return None;
    }
    let day = sql_day(edge.start);
    debug_assert_eq!(day, sql_day(edge.end - 1), "{edge:?} crosses a SQL day");
    let (day_start, day_end) = (day * MICROS_PER_DAY, (day + 1) * MICROS_PER_DAY);
    let probes: Vec<String> = [(day_start, edge.start), (edge.end, day_end)]
        .into_iter()
        .filter(|(from, to)| from < to)
        .map(|(from, to)| {
            format!(
                "EXISTS (SELECT 1 FROM events WHERE kind = {} AND time >= {} AND time < {})",
                p.push(kind.as_str()),
                p.push(from),
                p.push(to)
            )
        })
        .collect();
    let outside = if probes.is_empty() {
        "FALSE".to_owned()
    } else {
        probes.join(" OR ")
    };
    Some((day, outside))
}

/// See `Store::day_holds_only`.
pub(crate) async fn day_holds_only(
    conn: &mut dyn Conn,
    kind: EventKind,
    edge: Span,
) -> StoreResult<bool> {
    if edge.start >= edge.end || sql_day(edge.start) != sql_day(edge.end - 1) {
        return Ok(false);
    }
    let mut p = Params::default();
    let Some((_, outside)) = outside_edge(kind, edge, &mut p) else {
        return Ok(false);
    };
    let sql = format!("SELECT CAST(CASE WHEN {outside} THEN 1 ELSE 0 END AS BIGINT)");
    match conn.row(&sql, p.0).await? {
        Some(row) => Ok(row.int(0)? == 0),
        None => Ok(false),
    }
}

/// Adds the aggregates of `b` to `a`.
pub(crate) fn add(a: &mut UsageRow, b: &UsageRow) {
    a.events += b.events;
    a.quantity += b.quantity;
    a.input_tokens += b.input_tokens;
    a.output_tokens += b.output_tokens;
    a.cache_read_tokens += b.cache_read_tokens;
    a.cache_write_tokens += b.cache_write_tokens;
    a.cost += b.cost;
    a.unpriced += b.unpriced;
    a.latency_sum += b.latency_sum;
    a.latency_count += b.latency_count;
    a.status_count += b.status_count;
    a.error_count += b.error_count;
    a.up_count += b.up_count;
}

/// Orders like `ORDER BY c IS NULL, c` for each dimension: values ascending (bytewise for
/// text, as both databases compare here), nulls last.
fn by_dims(a: &UsageRow, b: &UsageRow) -> std::cmp::Ordering {
    fn last<T: Ord>(a: &Option<T>, b: &Option<T>) -> std::cmp::Ordering {
        (a.is_none(), a).cmp(&(b.is_none(), b))
    }
    last(&a.service, &b.service)
        .then_with(|| last(&a.model, &b.model))
        .then_with(|| last(&a.provider, &b.provider))
        .then_with(|| last(&a.customer_id, &b.customer_id))
        .then_with(|| last(&a.day, &b.day))
        .then_with(|| last(&a.cache_hit, &b.cache_hit))
}

/// Adds up the rows of the parts by their dimensions: one row when ungrouped, else one
/// per group with events, in dimension order. Sorted in place and folded, so that no key
/// is copied (a query can return a row per customer and day).
fn merge(q: &UsageQuery, mut rows: Vec<UsageRow>) -> Vec<UsageRow> {
    if q.group_by.is_empty() {
        let mut total = UsageRow::default();
        for r in &rows {
            add(&mut total, r);
        }
        return vec![total];
    }
    rows.sort_unstable_by(by_dims);
    rows.dedup_by(|later, kept| {
        let same = by_dims(later, kept).is_eq();
        if same {
            add(kept, later);
        }
        same
    });
    rows
}

/// A row of `usage_sql` (`Shape::Narrow`): the grouped dimensions in `DIMS` order, then
/// the measured aggregates in `AGG_COLS` order.
fn narrow_row(q: &UsageQuery, cols: &[usize], r: &Row) -> StoreResult<UsageRow> {
    let mut u = UsageRow::default();
    let mut i = 0;
    for d in DIMS.iter().filter(|d| q.group_by.contains(d)) {
        match d {
            UsageDim::Service => u.service = r.opt_text(i)?,
            UsageDim::Model => u.model = r.opt_text(i)?,
            UsageDim::Provider => u.provider = r.opt_text(i)?,
            UsageDim::Customer => u.customer_id = r.opt_text(i)?,
            UsageDim::Day => u.day = r.opt_int(i)?,
            UsageDim::CacheHit => u.cache_hit = r.opt_bool(i)?,
        }
        i += 1;
    }
    for &c in cols {
        match AGG_COLS[c] {
            "events" => u.events = r.int(i)?,
            "quantity" => u.quantity = r.int(i)?,
            "input_tokens" => u.input_tokens = r.int(i)?,
            "output_tokens" => u.output_tokens = r.int(i)?,
            "cache_read_tokens" => u.cache_read_tokens = r.int(i)?,
            "cache_write_tokens" => u.cache_write_tokens = r.int(i)?,
            "cost" => u.cost = r.int(i)?,
            "unpriced" => u.unpriced = r.int(i)?,
            "latency_sum" => u.latency_sum = r.float(i)?,
            "latency_count" => u.latency_count = r.int(i)?,
            "status_count" => u.status_count = r.int(i)?,
            "error_count" => u.error_count = r.int(i)?,
            _ => u.up_count = r.int(i)?,
        }
        i += 1;
    }
    Ok(u)
}

pub(crate) async fn usage(conn: &mut dyn Conn, q: &UsageQuery) -> StoreResult<Vec<UsageRow>> {
    let (sql, args) = usage_sql(q);
    let cols = measured_cols(q);
    let rows = conn
        .rows(&sql, args)
        .await?
        .iter()
        .map(|r| narrow_row(q, &cols, r))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(merge(q, rows))
}

/// Pieces per chunk: one statement for their whole days and one for their edges.
const PIECES_PER_STATEMENT: usize = 2000;

/// Rows of one statement's `VALUES` list, 4 parameters each (16,002 parameters with the
/// kind and the service), inside SQLite's 32,766 and PostgreSQL's 65,535. A chunk has one
/// whole-days row per piece and at most two edge rows (an edge that crosses midnight is
/// two), so a chunk is two statements; only pieces before 1970, whose edges can cross two
/// SQL day boundaries, could need a third.
const ROWS_PER_STATEMENT: usize = 4000;

/// How a statement makes the database look each piece up through an index, rather than
/// scan the big table once and hash-join the pieces against it, or read every customer's
/// rows of the piece's days.
///
/// Both indexes read are led by the day (migration 0007), so that ingestion, which
/// arrives in time order, writes into the current day's index pages only, not a random
/// page of a customer-led index per event. Whole days are seeks of
/// `usage_daily_customer`'s primary key `(kind, day, customer_id, ...)`, one per (piece,
/// day); partial days are seeks of `events_day_customer` (`time / 86400000000`,
/// `customer_id`, `time`), one per edge, with each edge cut where that day changes
/// ([`sql_day_parts`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PieceLookup {
    /// `rows CROSS JOIN table`: SQLite keeps the join order `CROSS JOIN` states, so it
    /// loops over the rows and seeks the table for each. Whole days: a recursive CTE turns
    /// each piece `[d0, d1)` into its days. Edges: the kind is compared as `kind || ''` so
    /// that SQLite leaves `(kind, time)` alone (which would read every customer's events
    /// of the edge for each piece) and takes `events_day_customer`.
    CrossJoin,
    /// `pieces CROSS JOIN LATERAL (aggregate over table)`: PostgreSQL plans a plain join
    /// of ~1,000 pieces as a parallel sequential scan of `events` and a hash join (400 ms
    /// on the demo); the lateral subquery is index lookups of that piece alone (18 ms),
    /// its whole days as `day = ANY (ARRAY(SELECT generate_series(d0, d1 - 1)))`.
    Lateral,
}

impl PieceLookup {
    /// The shape that suits the backend called `name` (`Backend::NAME`).
    pub(crate) fn for_backend(name: &str) -> PieceLookup {
        if name == "postgres" {
            PieceLookup::Lateral
        } else {
            PieceLookup::CrossJoin
        }
    }
}

/// What one statement of `usage_pieces` reads.
#[derive(Clone, Copy)]
enum Part {
    /// Rows `(i, customer, d0, d1)`: the whole days `[d0, d1)`, from `usage_daily_customer`.
    Days,
    /// Rows `(i, customer, from, to)`, `[from, to)` inside one SQL day, from `events`.
    Edges,
}

/// One statement over `rows` of pieces: the totals of each piece `i` (several rows may
/// share an `i`; their totals add up).
fn pieces_sql(
    lookup: PieceLookup,
    q: &UsageQuery,
    rows: &[(usize, &String, i64, i64)],
    part: Part,
) -> (String, Vec<Arg>) {
    let mut p = Params::default();
    let values: Vec<String> = rows
        .iter()
        .map(|(i, c, from, to)| {
            format!(
                "(CAST({} AS BIGINT), CAST({} AS TEXT), CAST({} AS BIGINT), CAST({} AS BIGINT))",
                p.push(*i as i64),
                p.push(c.as_str()),
                p.push(*from),
                p.push(*to)
            )
        })
        .collect();
    let with = format!("w(i, c, lo, hi) AS (VALUES {})", values.join(", "));
    let (table, llm_filter, aggregates) = match part {
        Part::Days => (
            "usage_daily_customer",
            "t.llm = 1",
            rollup_aggregates("t.", q, Shape::Full),
        ),
        // Unqualified: no column of `events` is named like one of `w`'s.
        Part::Edges => (
            "events",
            "t.model IS NOT NULL",
            raw_aggregates(q, Shape::Full),
        ),
    };
    let kind = match (lookup, part) {
        (PieceLookup::CrossJoin, Part::Edges) => "t.kind || ''",
        _ => "t.kind",
    };
    let mut rest = format!("{kind} = {}", p.push(q.kind.as_str()));
    if let Some(service) = &q.service {
        rest += &format!(" AND t.service = {}", p.push(service));
    }
    if q.llm_only {
        rest += &format!(" AND {llm_filter}");
    }
    // Same day expression as the index (and the rollups), so that the lookup is a seek.
    let edge = format!(
        "t.time / 86400000000 = w.lo / 86400000000 AND t.customer_id = w.c \
         AND t.time >= w.lo AND t.time < w.hi AND {rest}"
    );
    let sql = match (lookup, part) {
        (PieceLookup::CrossJoin, Part::Days) => format!(
            "WITH RECURSIVE {with}, wd(i, c, d, hi) AS (SELECT i, c, lo, hi FROM w \
             UNION ALL SELECT i, c, d + 1, hi FROM wd WHERE d + 1 < hi) \
             SELECT wd.i, {aggregates} FROM wd CROSS JOIN {table} t \
             WHERE t.day = wd.d AND t.customer_id = wd.c AND {rest} GROUP BY wd.i"
        ),
        (PieceLookup::CrossJoin, Part::Edges) => format!(
            "WITH {with} SELECT w.i, {aggregates} FROM w CROSS JOIN {table} t \
             WHERE {edge} GROUP BY w.i"
        ),
        // `day = ANY (array)`: the index scan descends once per day of the array. Joining
        // `generate_series` instead, whose row estimate is 1,000 per piece, made the plan
        // look costly enough for JIT compilation (~175 ms of a 2,000-piece statement).
        (PieceLookup::Lateral, Part::Days) => format!(
            "WITH {with} SELECT w.i, x.* FROM w CROSS JOIN LATERAL \
             (SELECT {aggregates} FROM {table} t \
             WHERE t.day = ANY (ARRAY(SELECT generate_series(w.lo, w.hi - 1))) \
             AND t.customer_id = w.c AND {rest}) x"
        ),
        (PieceLookup::Lateral, Part::Edges) => format!(
            "WITH {with} SELECT w.i, x.* FROM w CROSS JOIN LATERAL \
             (SELECT {aggregates} FROM {table} t WHERE {edge}) x"
        ),
    };
    (sql, p.0)
}

/// Totals of the events `q` selects (ignoring its span, customer and grouping) for each
/// piece `(customer, span)`, in order: whole days from `usage_daily_customer`, edges from
/// `events`; two statements per 2000 pieces, each looking the pieces up one by one
/// through indexes led by the day (see [`PieceLookup`]).
pub(crate) async fn usage_pieces(
    conn: &mut dyn Conn,
    lookup: PieceLookup,
    q: &UsageQuery,
    pieces: &[(String, Span)],
) -> StoreResult<Vec<UsageRow>> {
    let mut out = vec![UsageRow::default(); pieces.len()];
    for (n, chunk) in pieces.chunks(PIECES_PER_STATEMENT).enumerate() {
        let offset = n * PIECES_PER_STATEMENT;
        let mut whole = Vec::new();
        let mut edges = Vec::new();
        for (i, (customer, span)) in chunk.iter().enumerate() {
            let (days, parts) = split(*span);
            if let Some((d0, d1)) = days {
                whole.push((i, customer, d0, d1));
            }
            for e in parts.into_iter().flat_map(sql_day_parts) {
                edges.push((i, customer, e.start, e.end));
            }
        }
        for (rows, part) in [(whole, Part::Days), (edges, Part::Edges)] {
            for rows in rows.chunks(ROWS_PER_STATEMENT) {
                let (sql, args) = pieces_sql(lookup, q, rows, part);
                for row in conn.rows(&sql, args).await? {
                    let i = row.int(0)? as usize;
                    add(&mut out[offset + i], &piece_row(&row)?);
                }
            }
        }
    }
    Ok(out)
}

/// A row `(i, aggregates...)`: the aggregates as a `UsageRow`.
fn piece_row(row: &crate::db::Row) -> StoreResult<UsageRow> {
    let mut vals = vec![crate::db::Val::Null; 6];
    vals.extend(row.0.iter().skip(1).cloned());
    usage_row(&crate::db::Row(vals))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = MICROS_PER_DAY;

    #[test]
    fn spans_split_into_whole_days_and_edges() {
        assert_eq!(split(Span::new(0, DAY)), (Some((0, 1)), vec![]));
        assert_eq!(split(Span::new(5, DAY)), (None, vec![Span::new(5, DAY)]));
        assert_eq!(
            split(Span::new(5, 3 * DAY + 7)),
            (
                Some((1, 3)),
                vec![Span::new(5, DAY), Span::new(3 * DAY, 3 * DAY + 7)]
            )
        );
        assert_eq!(
            split(Span::new(DAY - 1, DAY + 1)),
            (None, vec![Span::new(DAY - 1, DAY + 1)])
        );
        assert_eq!(split(Span::new(4, 4)), (None, vec![]));
    }

    #[test]
    fn a_partial_day_reads_its_rollup_unless_the_day_has_events_outside_it() {
        let q = |span| UsageQuery::new(EventKind::Usage, span);
        // Whole day 1, then day 2 up to an instant: the day's rollup row under the guard
        // that nothing of the day lies after the span, else its events.
        let (sql, args) = usage_sql(&q(Span::new(DAY, 2 * DAY + 7)));
        let parts: Vec<&str> = sql.split(" UNION ALL ").collect();
        assert_eq!(parts.len(), 3, "{sql}");
        assert!(parts[0].contains("FROM usage_daily WHERE") && !parts[0].contains("EXISTS"));
        assert!(parts[1].contains("FROM usage_daily WHERE"), "{sql}");
        assert!(parts[1].contains("day = CASE WHEN NOT (EXISTS"), "{sql}");
        assert!(parts[2].contains("FROM events WHERE"), "{sql}");
        assert!(parts[2].contains("time < CASE WHEN EXISTS"), "{sql}");
        assert_eq!(
            parts[1].matches("EXISTS").count(),
            1,
            "one probe: after the span"
        );
        let times: Vec<i64> = args
            .iter()
            .filter_map(|a| match a {
                Arg::Int(v) => *v,
                _ => None,
            })
            .collect();
        assert!(times.contains(&(2 * DAY + 7)) && times.contains(&(3 * DAY)));
        // Inside one day: probes before and after.
        let (sql, _) = usage_sql(&q(Span::new(DAY + 5, DAY + 9)));
        assert_eq!(
            sql.split(" UNION ALL ")
                .next()
                .unwrap()
                .matches("EXISTS")
                .count(),
            2
        );
        // Before 1970 the SQL day is not the calendar day: events only.
        let (sql, _) = usage_sql(&q(Span::new(-DAY + 5, -DAY + 9)));
        assert!(
            !sql.contains("EXISTS") && !sql.contains("usage_daily"),
            "{sql}"
        );
    }

    #[test]
    fn edges_are_cut_where_the_sql_day_changes() {
        // Within one day, and from a day's start to the next midnight: one part.
        assert_eq!(sql_day_parts(Span::new(5, 9)), vec![Span::new(5, 9)]);
        assert_eq!(
            sql_day_parts(Span::new(3 * DAY, 4 * DAY)),
            vec![Span::new(3 * DAY, 4 * DAY)]
        );
        // Across one midnight: two.
        assert_eq!(
            sql_day_parts(Span::new(3 * DAY - 2, 3 * DAY + 7)),
            vec![
                Span::new(3 * DAY - 2, 3 * DAY),
                Span::new(3 * DAY, 3 * DAY + 7)
            ]
        );
        // Before 1970 the SQL day truncates toward zero: day 0 is (-1 day, 1 day) and
        // day -1 is (-2 days, -1 day].
        assert_eq!(
            sql_day_parts(Span::new(-DAY - 3, DAY + 1)),
            vec![
                Span::new(-DAY - 3, -DAY + 1),
                Span::new(-DAY + 1, DAY),
                Span::new(DAY, DAY + 1)
            ]
        );
        for part in sql_day_parts(Span::new(-5 * DAY + 17, 2 * DAY - 3)) {
            assert_eq!(sql_day(part.start), sql_day(part.end - 1), "{part:?}");
        }
        assert_eq!(sql_day_parts(Span::new(4, 4)), vec![]);
    }
}
