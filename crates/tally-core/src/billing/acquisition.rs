//! Signups by `created_at` and channel, and cost per acquisition (metrics.md
//! "Customers, churn, LTV, acquisition").

use super::Book;
use crate::time::Micros;
use std::collections::BTreeMap;

/// The channel name of customers without one.
pub const UNKNOWN_CHANNEL: &str = "unknown";

/// Signups with `created_at` in `[start, end]`, per channel.
pub fn signups_by_channel(book: &Book, start: Micros, end: Micros) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for c in book
        .customers()
        .filter(|c| start <= c.created_at && c.created_at <= end)
    {
        let ch = c
            .channel
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(UNKNOWN_CHANNEL);
        *out.entry(ch.to_string()).or_insert(0) += 1;
    }
    out
}

/// Signups with `created_at` in `[start, end]`.
pub fn signups(book: &Book, start: Micros, end: Micros) -> u64 {
    book.customers()
        .filter(|c| start <= c.created_at && c.created_at <= end)
        .count() as u64
}
