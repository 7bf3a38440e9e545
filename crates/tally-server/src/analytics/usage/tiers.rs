//! Attributing events to the tier their customer was on at the event's time
//! (metrics.md: "Tier of an event"). A customer's tier can change inside a span, so a
//! customer whose subscriptions change within it has the span cut at those instants and
//! each piece aggregated on its own: the attribution is exact, not a guess from the
//! tier at the end of the span.

use super::rows;
use crate::error::ApiResult;
use crate::state::AppState;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tally_core::billing::Book;
use tally_core::time::{Micros, MICROS_PER_DAY};
use tally_store::{Span, UsageDim, UsageQuery, UsageRow};

/// The tier of events without a customer, or whose customer had no active subscription.
pub const NO_TIER: &str = "none";

/// Adds the aggregates of `b` to `a` (dimensions are left alone).
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

fn tier_of(book: &Book, customer: &str, t: i64) -> String {
    book.tier_at(customer, t)
        .unwrap_or_else(|| NO_TIER.to_string())
}

/// `span` cut where the customer's tier changes, with the tier of each piece.
///
/// The book's change points are the instants where the tier *or the MRR* may change
/// (a start, a trial end, a cancellation, a plan change); many leave the tier as it was
/// (a seat change, a change of interval, a new subscription beside an equal one).
/// Between two change points the tier is constant, so neighbouring pieces of one tier
/// are merged: each piece that remains costs the store a lookup, and a customer whose
/// tier does not change at all is attributed from its span total.
fn tier_pieces(book: &Book, customer: &str, span: Span) -> Vec<(Span, String)> {
    let mut out: Vec<(Span, String)> = Vec::new();
    let mut start = span.start;
    let points = book.change_points(customer, span.start, span.end);
    for end in points.into_iter().chain([span.end]) {
        let tier = tier_of(book, customer, start);
        match out.last_mut() {
            Some((last, t)) if *t == tier => last.end = end,
            _ => out.push((Span::new(start, end), tier)),
        }
        start = end;
    }
    out
}

/// Aggregates by tier.
type ByTier = BTreeMap<String, UsageRow>;

/// Aggregates by tier, per day (`Some(day)`) or over the whole span (`None`).
type Attributed = BTreeMap<Option<i64>, ByTier>;

/// Aggregates of the events `base` selects, by the tier of each event's customer at the
/// event's time. `base`'s grouping and customer filter are replaced.
///
/// Two store calls whatever the data: the per-customer totals of the span, then one
/// `usage_pieces` call for every piece of every customer whose subscriptions change
/// inside the span.
pub async fn by_tier(
    state: &AppState,
    book: &Book,
    base: &UsageQuery,
) -> ApiResult<BTreeMap<String, UsageRow>> {
    Ok(attribute(state, book, base, false)
        .await?
        .remove(&None)
        .unwrap_or_default())
}

/// [`by_tier`], per day of the span when `per_day` (each day's figures then cover the
/// part of the day inside the span), in the same two store calls.
async fn attribute(
    state: &AppState,
    book: &Book,
    base: &UsageQuery,
    per_day: bool,
) -> ApiResult<Attributed> {
    let span = base.span;
    let group: &[UsageDim] = if per_day {
        &[UsageDim::Day, UsageDim::Customer]
    } else {
        &[UsageDim::Customer]
    };
    let mut per_customer = base.clone().group(group);
    per_customer.customer = None;
    let mut out = Attributed::new();
    // (customer, piece) of the customers whose tier changes inside the span (or day), and
    // where each piece's figures go.
    let mut pieces: Vec<(String, Span)> = Vec::new();
    let mut piece_places: Vec<(Option<i64>, String)> = Vec::new();
    for row in rows(state, &per_customer).await? {
        if row.events == 0 {
            continue;
        }
        let day = row.day.filter(|_| per_day);
        let tiers = out.entry(day).or_default();
        let Some(customer) = row.customer_id.as_deref() else {
            add(tiers.entry(NO_TIER.to_string()).or_default(), &row);
            continue;
        };
        let within = match day {
            Some(d) => Span::new(
                span.start.max(d * MICROS_PER_DAY),
                span.end.min((d + 1) * MICROS_PER_DAY),
            ),
            None => span,
        };
        let cut = tier_pieces(book, customer, within);
        if let [(_, tier)] = cut.as_slice() {
            add(tiers.entry(tier.clone()).or_default(), &row);
            continue;
        }
        for (piece, tier) in cut {
            pieces.push((customer.to_string(), piece));
            piece_places.push((day, tier));
        }
    }
    if pieces.is_empty() {
        return Ok(out);
    }
    let mut q = base.clone().group(&[]);
    q.customer = None;
    let totals = state.store.usage_pieces(&q, &pieces).await?;
    for ((day, tier), total) in piece_places.into_iter().zip(totals) {
        if total.events > 0 {
            add(out.entry(day).or_default().entry(tier).or_default(), &total);
        }
    }
    Ok(out)
}

/// The figures by tier of whole UTC days, for one kind of query (the owner uses one
/// `base` with every call), kept with the book they were attributed with.
///
/// A day's figures by tier are a function of the book and of that day's events only.
/// Events are never changed or deleted once stored (a retried id is not stored again),
/// so the number of events a query selects on a day identifies the events of that day
/// it aggregates: a day is reused while that count is what it was when it was computed,
/// and the book gives every customer the same tier during it (a new book comes with the
/// days of the old one before its first tier difference, [`TierDays::kept_until`]). A
/// write of events on one day makes that day alone be computed again.
#[derive(Debug, Default)]
pub struct TierDays {
    /// By day: the events counted when it was attributed, and its figures by tier.
    days: Mutex<HashMap<i64, (i64, Arc<ByTier>)>>,
    computed: AtomicUsize,
}

impl TierDays {
    fn get(&self, day: i64, events: i64) -> Option<Arc<ByTier>> {
        let days = self.days.lock().unwrap_or_else(|e| e.into_inner());
        days.get(&day)
            .filter(|(n, _)| *n == events)
            .map(|(_, tiers)| tiers.clone())
    }

    fn put(&self, day: i64, events: i64, tiers: ByTier) {
        let mut days = self.days.lock().unwrap_or_else(|e| e.into_inner());
        days.insert(day, (events, Arc::new(tiers)));
        self.computed.fetch_add(1, Ordering::Relaxed);
    }

    /// How many days were attributed and kept so far (again after their events changed).
    pub fn computed(&self) -> usize {
        self.computed.load(Ordering::Relaxed)
    }

    /// The days that end at or before `until` (all with `None`), for a new book whose
    /// customers have the same tiers as this one's before `until`
    /// (`Book::first_tier_difference`): a write that moves no tier, or moves one from
    /// some instant on, keeps the days before it.
    pub fn kept_until(&self, until: Option<Micros>) -> TierDays {
        let days = self.days.lock().unwrap_or_else(|e| e.into_inner());
        let kept = days
            .iter()
            .filter(|(d, _)| until.is_none_or(|u| (**d + 1) * MICROS_PER_DAY <= u))
            .map(|(d, v)| (*d, v.clone()))
            .collect();
        TierDays {
            days: Mutex::new(kept),
            computed: AtomicUsize::new(0),
        }
    }

    /// How many days are kept.
    pub fn len(&self) -> usize {
        self.days.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The most days [`by_tier_kept`] attributes per pair of store calls.
const MAX_DAYS_PER_READ: usize = 7;

/// [`by_tier`] with the whole days of the span taken from `kept` where they are still
/// right, and those computed here added to it. `events_per_day` holds the number of
/// events `base` selects on each day (its `events` counter grouped by day, read before
/// this call); a day missing from it has none.
///
/// The partial days at the ends of the span (an `as_of` inside a day) are computed each
/// time, except the last one when it holds all of its day's events (the day of an
/// `as_of` of now, `Store::day_holds_only`): it is kept as that day. The days to
/// compute are read in one pair of store calls per run of up to `MAX_DAYS_PER_READ`
/// consecutive days.
pub async fn by_tier_kept(
    state: &AppState,
    book: &Book,
    kept: &TierDays,
    base: &UsageQuery,
    events_per_day: &HashMap<i64, i64>,
) -> ApiResult<BTreeMap<String, UsageRow>> {
    let span = base.span;
    let (first, end) = span.whole_days();
    if first >= end {
        return by_tier(state, book, base).await;
    }
    let mut out: BTreeMap<String, UsageRow> = BTreeMap::new();
    let mut merge = |tiers: &BTreeMap<String, UsageRow>| {
        for (tier, row) in tiers {
            add(out.entry(tier.clone()).or_default(), row);
        }
    };
    let events = |d: i64| events_per_day.get(&d).copied().unwrap_or(0);
    let head = Span::new(span.start, first * MICROS_PER_DAY);
    let tail = Span::new(end * MICROS_PER_DAY, span.end);
    // The day of an `as_of` of now holds nothing after it (asked after the counts were
    // read): what is kept for that day at its count is the tail's answer.
    let tail_is_day = tail.start < tail.end && state.store.day_holds_only(base.kind, tail).await?;
    for edge in [head, tail] {
        if edge.start < edge.end && !(edge == tail && tail_is_day) {
            let mut q = base.clone();
            q.span = edge;
            merge(&by_tier(state, book, &q).await?);
        }
    }
    if tail_is_day && events(end) > 0 {
        match kept.get(end, events(end)) {
            Some(tiers) => merge(&tiers),
            None => {
                let mut q = base.clone();
                q.span = tail;
                let tiers = attribute(state, book, &q, true)
                    .await?
                    .remove(&Some(end))
                    .unwrap_or_default();
                merge(&tiers);
                // Kept only with as many events as counted: more were stored since the
                // count, maybe after the tail, and would not be the day's figures then.
                if tiers.values().map(|r| r.events).sum::<i64>() == events(end) {
                    kept.put(end, events(end), tiers);
                }
            }
        }
    }
    let mut missing: Vec<i64> = Vec::new();
    for d in (first..end).filter(|d| events(*d) > 0) {
        match kept.get(d, events(d)) {
            Some(tiers) => merge(&tiers),
            None => missing.push(d),
        }
    }
    // A read returns a row per customer and day: at most a week per read bounds the
    // memory (~40,000 customers a day at 100,000 customers).
    let runs = missing
        .chunk_by(|a, b| b - a == 1)
        .flat_map(|run| run.chunks(MAX_DAYS_PER_READ));
    for run in runs {
        let (a, b) = (run[0], run[run.len() - 1] + 1);
        let mut q = base.clone();
        q.span = Span::new(a * MICROS_PER_DAY, b * MICROS_PER_DAY);
        let mut computed = attribute(state, book, &q, true).await?;
        for &d in run {
            let tiers = computed.remove(&Some(d)).unwrap_or_default();
            merge(&tiers);
            kept.put(d, events(d), tiers);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use tally_core::model::{Customer, Interval, Plan, Subscription, SubscriptionChange};
    use tally_core::time::parse_instant;

    fn t(s: &str) -> i64 {
        parse_instant("t", s).unwrap()
    }

    fn plan(id: &str, tier: &str, dollars: i64) -> Plan {
        Plan {
            id: id.into(),
            name: id.into(),
            tier: tier.into(),
            interval: Interval::Month,
            amount: dollars * 100,
            currency: "USD".into(),
        }
    }

    fn change(at: &str, plan: Option<&str>, quantity: Option<i64>) -> SubscriptionChange {
        SubscriptionChange {
            subscription_id: "s".into(),
            effective_at: t(at),
            plan_id: plan.map(Into::into),
            quantity,
            discount_percent: None,
        }
    }

    /// One customer on `basic` from 11-03 with a 14-day trial (to 11-17), two seats from
    /// 11-20 (same tier), `pro` from 11-25 (tier changes), over the span [11-01, 12-01).
    #[test]
    fn pieces_are_cut_only_where_the_tier_changes() {
        let book = Book::new(
            &[plan("basic", "basic", 10), plan("pro", "pro", 50)],
            &[Customer {
                id: "c".into(),
                name: None,
                email: None,
                created_at: t("2025-11-01T00:00:00Z"),
                channel: None,
            }],
            &[Subscription {
                id: "s".into(),
                customer_id: "c".into(),
                plan_id: "basic".into(),
                quantity: 1,
                discount_percent: Decimal::ZERO,
                started_at: t("2025-11-03T00:00:00Z"),
                trial_ends_at: Some(t("2025-11-17T00:00:00Z")),
                canceled_at: None,
            }],
            &[
                change("2025-11-20T00:00:00Z", None, Some(2)),
                change("2025-11-25T12:00:00Z", Some("pro"), None),
            ],
        );
        let span = Span::new(t("2025-11-01T00:00:00Z"), t("2025-12-01T00:00:00Z"));
        // Four change points (start, trial end, seats, plan), five raw pieces; the seat
        // change keeps `basic`, so [11-17, 11-25 12:00) is one piece.
        assert_eq!(book.change_points("c", span.start, span.end).len(), 4);
        let got: Vec<(i64, i64, String)> = tier_pieces(&book, "c", span)
            .into_iter()
            .map(|(p, tier)| (p.start, p.end, tier))
            .collect();
        let want = [
            ("2025-11-01T00:00:00Z", "2025-11-03T00:00:00Z", NO_TIER),
            ("2025-11-03T00:00:00Z", "2025-11-17T00:00:00Z", "trial"),
            ("2025-11-17T00:00:00Z", "2025-11-25T12:00:00Z", "basic"),
            ("2025-11-25T12:00:00Z", "2025-12-01T00:00:00Z", "pro"),
        ]
        .map(|(a, b, tier)| (t(a), t(b), tier.to_string()));
        assert_eq!(got, want);

        // A customer without subscriptions: one piece, no tier.
        let none = tier_pieces(&book, "nobody", span);
        assert_eq!(none, [(span, NO_TIER.to_string())]);
    }
}
