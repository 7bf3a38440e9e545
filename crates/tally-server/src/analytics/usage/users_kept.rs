//! Each customer's totals of one service over the days of a span before its last day,
//! kept between requests for `metering/service`'s top users.
//!
//! Ranking a span's customers needs every customer's totals over the span: one rollup
//! row per customer and day, 100,000 customers × a month of days at scale L. A period
//! ending at `as_of` changes only at its end as data arrives, so the whole days before
//! the last one are kept as one span and the last whole day as another (read again as
//! its events arrive); only partial days (an `as_of` inside a day) are read each time,
//! except the day of an `as_of` of now, which holds nothing after it
//! (`Store::day_holds_only`) and is kept like a whole day.
//!
//! Events are never changed or deleted once stored (a retried id is not stored again),
//! so the number of a service's events on a day identifies the events of that day: a kept
//! span is used while the event count of each of its days is what it was when it was
//! read (the caller reads them first, in the same request). A write of events on any of
//! its days makes it be read again. Nothing here depends on entities.

use super::rows;
use crate::error::ApiResult;
use crate::state::AppState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tally_core::time::MICROS_PER_DAY;
use tally_store::{Measure, Span, UsageDim, UsageQuery, UsageRow};

/// The counters the top users show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserTotals {
    pub events: i64,
    pub cost: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub quantity: i64,
}

impl UserTotals {
    fn of(r: &UsageRow) -> UserTotals {
        UserTotals {
            events: r.events,
            cost: r.cost,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            quantity: r.quantity,
        }
    }

    fn plus(mut self, o: &UserTotals) -> UserTotals {
        self.events += o.events;
        self.cost += o.cost;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.quantity += o.quantity;
        self
    }
}

/// Only these counters are summed: a row per customer and day is read.
const MEASURES: [Measure; 5] = [
    Measure::Events,
    Measure::Cost,
    Measure::InputTokens,
    Measure::OutputTokens,
    Measure::Quantity,
];

/// Bytes an entry is counted for, per customer (the id's heap bytes are added): the
/// map's slot, the id's pointer and length, the counters.
const BYTES_PER_USER: usize = 16 + 40 + 8;

/// One kept span: the event count of each of its days when it was read, and every
/// customer's totals.
struct Kept {
    events_per_day: Vec<i64>,
    users: HashMap<Box<str>, UserTotals>,
}

/// Kept spans by (service, first day, end day), bounded by bytes.
pub struct KeptUsers {
    spans: moka::sync::Cache<(String, i64, i64), Arc<Kept>>,
    reads: AtomicUsize,
}

impl KeptUsers {
    pub fn new(max_bytes: u64) -> KeptUsers {
        KeptUsers {
            spans: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &(String, i64, i64), v: &Arc<Kept>| {
                    let ids: usize = v.users.keys().map(|id| id.len()).sum();
                    let bytes = k.0.len()
                        + 64
                        + v.events_per_day.len() * 8
                        + v.users.len() * BYTES_PER_USER
                        + ids;
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .build(),
            reads: AtomicUsize::new(0),
        }
    }

    /// How many spans were read to be kept so far (again after their events changed).
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }
}

/// Every customer's totals of `q`'s events in `span`, grouped by customer, and the number
/// of those events (with the events without a customer).
async fn read(state: &AppState, q: &UsageQuery, span: Span) -> ApiResult<(Vec<UsageRow>, i64)> {
    let mut q = q.clone().group(&[UsageDim::Customer]).only(&MEASURES);
    q.span = span;
    q.customer = None;
    let rows = rows(state, &q).await?;
    let events = rows.iter().map(|r| r.events).sum();
    let users = rows
        .into_iter()
        .filter(|r| r.customer_id.is_some() && r.events > 0)
        .collect();
    Ok((users, events))
}

/// Every customer's totals of `q` over the whole days `[a, b)`, kept while the event
/// count of each of those days is what `events_per_day` says.
///
/// `so_far`: the days are one day of which only this span (from its start) is asked,
/// known to hold all of the day's events (`Store::day_holds_only`, asked after the
/// counts). That span is read, and kept for the day only if it holds as many events as
/// counted (more would be events stored since the count, maybe after the span).
async fn kept_days(
    state: &AppState,
    kept: &KeptUsers,
    q: &UsageQuery,
    (a, b): (i64, i64),
    so_far: Option<Span>,
    events_per_day: &HashMap<i64, i64>,
) -> ApiResult<Arc<Kept>> {
    let counts: Vec<i64> = (a..b)
        .map(|d| events_per_day.get(&d).copied().unwrap_or(0))
        .collect();
    let key = (q.service.clone().unwrap_or_default(), a, b);
    if let Some(k) = kept.spans.get(&key).filter(|k| k.events_per_day == counts) {
        return Ok(k);
    }
    let span = so_far.unwrap_or(Span::new(a * MICROS_PER_DAY, b * MICROS_PER_DAY));
    let (rows, read_events) = read(state, q, span).await?;
    let users = rows
        .into_iter()
        .filter_map(|r| Some((r.customer_id.clone()?.into(), UserTotals::of(&r))))
        .collect();
    let k = Arc::new(Kept {
        events_per_day: counts,
        users,
    });
    kept.reads.fetch_add(1, Ordering::Relaxed);
    if so_far.is_none() || read_events == k.events_per_day.iter().sum::<i64>() {
        kept.spans.insert(key, k.clone());
    }
    Ok(k)
}

/// The `n` customers with the most events of `q` (one service over its span), then the
/// highest cost, then by id, with their totals. `events_per_day` holds the number of
/// events `q` selects on each day (its `events` counter grouped by day, read before this
/// call); a day missing from it has none.
///
/// The whole days before the span's last whole day are kept as one span, the last whole
/// day (where data arrives) as another; partial days at the ends are read each time,
/// unless the last one holds all of its day's events (then it is kept as that day).
pub async fn top_users(
    state: &AppState,
    kept: &KeptUsers,
    q: &UsageQuery,
    events_per_day: &HashMap<i64, i64>,
    n: usize,
) -> ApiResult<Vec<(String, UserTotals)>> {
    let span = q.span;
    let (first, end) = span.whole_days();
    let mut parts: Vec<Arc<Kept>> = Vec::new();
    let mut partial: Vec<Span> = Vec::new();
    if first < end {
        if first + 1 < end {
            parts.push(kept_days(state, kept, q, (first, end - 1), None, events_per_day).await?);
        }
        parts.push(kept_days(state, kept, q, (end - 1, end), None, events_per_day).await?);
        partial.push(Span::new(span.start, first * MICROS_PER_DAY));
        // The day of an `as_of` of now holds nothing after it: kept like a whole day.
        let tail = Span::new(end * MICROS_PER_DAY, span.end);
        if tail.start < tail.end && state.store.day_holds_only(q.kind, tail).await? {
            let day = (end, end + 1);
            parts.push(kept_days(state, kept, q, day, Some(tail), events_per_day).await?);
        } else {
            partial.push(tail);
        }
    } else {
        partial.push(span);
    }
    let mut recent: HashMap<Box<str>, UserTotals> = HashMap::new();
    for part in partial.into_iter().filter(|s| s.start < s.end) {
        for r in read(state, q, part).await?.0 {
            let t = UserTotals::of(&r);
            let e = recent
                .entry(r.customer_id.unwrap_or_default().into())
                .or_default();
            *e = e.plus(&t);
        }
    }
    let largest = parts.iter().map(|k| k.users.len()).max().unwrap_or(0);
    let mut totals: HashMap<&str, UserTotals> = HashMap::with_capacity(largest);
    for users in parts.iter().map(|k| &k.users).chain([&recent]) {
        for (id, t) in users {
            let e = totals.entry(id).or_default();
            *e = e.plus(t);
        }
    }
    let mut all: Vec<(&str, UserTotals)> = totals.into_iter().collect();
    let order = |a: &(&str, UserTotals), b: &(&str, UserTotals)| {
        b.1.events
            .cmp(&a.1.events)
            .then(b.1.cost.cmp(&a.1.cost))
            .then(a.0.cmp(b.0))
    };
    if all.len() > n && n > 0 {
        all.select_nth_unstable_by(n - 1, order);
    }
    all.truncate(n);
    all.sort_by(order);
    Ok(all.into_iter().map(|(id, t)| (id.to_string(), t)).collect())
}
