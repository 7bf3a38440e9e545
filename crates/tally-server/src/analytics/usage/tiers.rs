//! Attributing events to the tier their customer was on at the event's time
//! (metrics.md: "Tier of an event"). A customer's tier can change inside a span, so a
//! customer whose subscriptions change within it has the span cut at those instants and
//! each piece aggregated on its own: the attribution is exact, not a guess from the
//! tier at the end of the span.

use super::rows;
use crate::error::ApiResult;
use crate::state::AppState;
use std::collections::BTreeMap;
use tally_core::billing::Book;
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
    let span = base.span;
    let mut per_customer = base.clone().group(&[UsageDim::Customer]);
    per_customer.customer = None;
    let mut out: BTreeMap<String, UsageRow> = BTreeMap::new();
    // (customer, piece) of the customers whose tier changes inside the span.
    let mut pieces: Vec<(String, Span)> = Vec::new();
    let mut piece_tiers: Vec<String> = Vec::new();
    for row in rows(state, &per_customer).await? {
        if row.events == 0 {
            continue;
        }
        let Some(customer) = row.customer_id.as_deref() else {
            add(out.entry(NO_TIER.to_string()).or_default(), &row);
            continue;
        };
        let cut = tier_pieces(book, customer, span);
        if let [(_, tier)] = cut.as_slice() {
            add(out.entry(tier.clone()).or_default(), &row);
            continue;
        }
        for (piece, tier) in cut {
            pieces.push((customer.to_string(), piece));
            piece_tiers.push(tier);
        }
    }
    if pieces.is_empty() {
        return Ok(out);
    }
    let mut q = base.clone().group(&[]);
    q.customer = None;
    let totals = state.store.usage_pieces(&q, &pieces).await?;
    for (tier, total) in piece_tiers.into_iter().zip(totals) {
        if total.events > 0 {
            add(out.entry(tier).or_default(), &total);
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
