//! The event side of the analytics (metrics.md "Usage, services and LLM calls"): LLM usage,
//! costs and cache, service popularity, cost per user, adoption and performance, and
//! metering. `figures` holds the single numbers the composite endpoints reuse.

pub mod figures;
pub mod llm;
pub mod metering;
pub mod services;
pub mod tiers;
pub mod users_kept;

use crate::error::ApiResult;
use crate::state::AppState;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tally_core::billing::Book;
use tally_core::model::Service;
use tally_core::money;
use tally_core::time::{date_of, format_micros, Micros, MICROS_PER_DAY};
use tally_store::{PageRequest, Span, UsageDim, UsageQuery, UsageRow};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(llm::usage_summary))
        .routes(routes!(llm::costs))
        .routes(routes!(llm::cache_stats))
        .routes(routes!(services::popularity))
        .routes(routes!(services::cost_per_user))
        .routes(routes!(services::adoption))
        .routes(routes!(services::performance))
        .routes(routes!(metering::service))
        .routes(routes!(metering::summary))
}

/// Runs a usage query.
pub(crate) async fn rows(state: &AppState, q: &UsageQuery) -> ApiResult<Vec<UsageRow>> {
    Ok(state.store.usage(q).await?)
}

/// Runs `q` grouped by day: each day's row, by day index.
pub(crate) async fn per_day(state: &AppState, q: &UsageQuery) -> ApiResult<HashMap<i64, UsageRow>> {
    Ok(rows(state, &q.clone().group(&[UsageDim::Day]))
        .await?
        .into_iter()
        .filter_map(|r| Some((r.day?, r)))
        .collect())
}

/// The `events` counter of each day of `per_day`: what the kept whole days are checked
/// against.
pub(crate) fn events_per_day(per_day: &HashMap<i64, UsageRow>) -> HashMap<i64, i64> {
    per_day.iter().map(|(d, r)| (*d, r.events)).collect()
}

/// Runs an ungrouped usage query: the store answers exactly one row.
pub(crate) async fn totals(state: &AppState, q: &UsageQuery) -> ApiResult<UsageRow> {
    Ok(rows(state, q).await?.into_iter().next().unwrap_or_default())
}

/// `num / den × 100`, unrounded; `None` when `den` is 0 (an undefined ratio).
pub(crate) fn percent(num: impl Into<Decimal>, den: impl Into<Decimal>) -> Option<Decimal> {
    let den = den.into();
    (!den.is_zero()).then(|| num.into() * Decimal::from(100) / den)
}

/// Micro-credits as credits.
pub(crate) fn credits(micros: i64) -> Decimal {
    money::from_micros(micros.into())
}

/// Credits as money of the reporting currency.
pub(crate) fn credits_to_money(state: &AppState, credits: Decimal) -> Decimal {
    credits / state.prices.credits_per_unit()
}

/// Mean latency of the events of `row` that carry one. Latencies are client-sent floats;
/// their sum is converted once, at the end.
pub(crate) fn mean_latency(row: &UsageRow) -> Option<Decimal> {
    if row.latency_count == 0 {
        return None;
    }
    let sum = Decimal::try_from(row.latency_sum).unwrap_or_default();
    Some(sum / Decimal::from(row.latency_count))
}

/// Money, credits and percentages leave the server rounded to 2 decimals (half away from
/// zero), only at the end.
pub(crate) fn r2(v: Decimal) -> Decimal {
    tally_core::decimal::round(v, 2)
}

pub(crate) fn r2_opt(v: Option<Decimal>) -> Option<Decimal> {
    v.map(r2)
}

/// Day index (days since the epoch, as the store groups) of an instant.
pub(crate) fn day_index(t: Micros) -> i64 {
    t.div_euclid(MICROS_PER_DAY)
}

/// `YYYY-MM-DD` of a day index.
pub(crate) fn day_label(day: i64) -> String {
    date_of(day * MICROS_PER_DAY).to_string()
}

/// Every day index the span touches, in order: the rows of a zero-filled daily series.
pub(crate) fn days_of(span: Span) -> std::ops::RangeInclusive<i64> {
    day_index(span.start)..=day_index(span.end - 1)
}

/// The half-open span `[start, end)` a figure covers, for the response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpanView {
    /// First instant included.
    pub start: String,
    /// First instant no longer included.
    pub end: String,
}

impl From<Span> for SpanView {
    fn from(s: Span) -> Self {
        SpanView {
            start: format_micros(s.start),
            end: format_micros(s.end),
        }
    }
}

/// The subscription book, reading plan amounts in the reporting currency (shared, see
/// `crate::cache`).
pub(crate) async fn book(state: &AppState) -> ApiResult<Arc<Book>> {
    state.cache.book(state).await
}

/// Every registered service, by name.
pub(crate) async fn registry(state: &AppState) -> ApiResult<BTreeMap<String, Service>> {
    let mut out = BTreeMap::new();
    let mut page = PageRequest {
        limit: 1000,
        cursor: None,
    };
    loop {
        let p = state.store.list_services(&page).await?;
        out.extend(p.items.into_iter().map(|s| (s.name.clone(), s)));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::time::parse_instant;

    fn t(s: &str) -> Micros {
        parse_instant("t", s).unwrap()
    }

    #[test]
    fn undefined_ratios_are_none() {
        assert_eq!(percent(1, 0), None);
        assert_eq!(percent(2, 3).map(r2), Some(Decimal::new(6667, 2)));
    }

    #[test]
    fn daily_rows_cover_every_touched_date() {
        // Through 10:00 on the 20th, from midnight of the 18th: the 18th, 19th and 20th.
        let span = Span::through(t("2025-11-18T00:00:00Z"), t("2025-11-20T10:00:00Z"));
        let days: Vec<String> = days_of(span).map(day_label).collect();
        assert_eq!(days, ["2025-11-18", "2025-11-19", "2025-11-20"]);
        // A span ending exactly at midnight does not touch the next date.
        let span = Span::new(t("2025-10-01T00:00:00Z"), t("2025-11-01T00:00:00Z"));
        assert_eq!(days_of(span).count(), 31);
    }

    #[test]
    fn mean_latency_needs_a_latency() {
        let row = UsageRow {
            latency_sum: 90.0,
            latency_count: 2,
            ..Default::default()
        };
        assert_eq!(mean_latency(&row), Some(Decimal::from(45)));
        assert_eq!(mean_latency(&UsageRow::default()), None);
    }

    #[test]
    fn credits_are_exact() {
        assert_eq!(credits(2_800_000), Decimal::new(28, 1));
        assert_eq!(credits(1), Decimal::new(1, 6));
    }
}
