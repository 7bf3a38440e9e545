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
    for row in rows(state, &per_customer).await? {
        if row.events == 0 {
            continue;
        }
        let Some(customer) = row.customer_id.as_deref() else {
            add(out.entry(NO_TIER.to_string()).or_default(), &row);
            continue;
        };
        let points = book.change_points(customer, span.start, span.end);
        if points.is_empty() {
            add(
                out.entry(tier_of(book, customer, span.start)).or_default(),
                &row,
            );
            continue;
        }
        let mut bounds = vec![span.start];
        bounds.extend(points);
        bounds.push(span.end);
        pieces.extend(
            bounds
                .windows(2)
                .map(|w| (customer.to_string(), Span::new(w[0], w[1]))),
        );
    }
    if pieces.is_empty() {
        return Ok(out);
    }
    let mut q = base.clone().group(&[]);
    q.customer = None;
    let totals = state.store.usage_pieces(&q, &pieces).await?;
    for ((customer, piece), total) in pieces.iter().zip(totals) {
        if total.events > 0 {
            add(
                out.entry(tier_of(book, customer, piece.start)).or_default(),
                &total,
            );
        }
    }
    Ok(out)
}
