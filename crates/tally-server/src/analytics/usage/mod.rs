//! The event side of the analytics (metrics.md "Usage, services and LLM calls"): LLM usage,
//! costs and cache, service popularity, cost per user, adoption and performance, and
//! metering. `figures` holds the single numbers the composite endpoints reuse.

pub mod figures;

use crate::error::ApiResult;
use crate::state::AppState;
use rust_decimal::Decimal;
use tally_core::money;
use tally_store::{UsageQuery, UsageRow};
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

/// Runs a usage query.
pub(crate) async fn rows(state: &AppState, q: &UsageQuery) -> ApiResult<Vec<UsageRow>> {
    Ok(state.store.usage(q).await?)
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
