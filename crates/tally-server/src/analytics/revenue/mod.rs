//! The subscription side of the analytics (metrics.md "Subscriptions and MRR" through
//! "Alerts"): MRR, ARR, growth, forecast and tiers; LTV, churn and acquisition; the
//! composite summaries; alerts and their rules. The rules themselves live in
//! `tally_core::billing` and `tally_core::forecast`; handlers load data, call them and
//! round at the end.

pub mod alerts;
pub mod composite;
pub mod forecast;
pub mod mrr;
pub mod users;

use crate::error::ApiResult;
use crate::state::AppState;
use rust_decimal::Decimal;
use std::sync::Arc;
use tally_core::billing::Book;
use tally_core::model::CostCategory;
use tally_core::time::Month;
use tally_store::CostData;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mrr::mrr))
        .routes(routes!(mrr::arr))
        .routes(routes!(mrr::growth))
        .routes(routes!(mrr::by_tier))
        .routes(routes!(forecast::forecast))
        .routes(routes!(users::ltv))
        .routes(routes!(users::churn))
        .routes(routes!(users::acquisition))
        .routes(routes!(composite::summary))
        .routes(routes!(composite::kpis))
        .routes(routes!(composite::billing_summary))
        .routes(routes!(alerts::alerts))
        .routes(routes!(alerts::list_rules))
        .routes(routes!(alerts::put_rule, alerts::delete_rule))
}

/// Every plan, customer, subscription and change, as a book in the reporting currency:
/// built once per entities version and shared (see `crate::cache`).
pub(crate) async fn load_book(state: &AppState) -> ApiResult<Arc<Book>> {
    state.cache.book(state).await
}

/// Rounds money and percentages to 2 decimals, half away from zero.
pub(crate) fn r2(v: Decimal) -> Decimal {
    tally_core::decimal::round(v, 2)
}

pub(crate) fn r2o(v: Option<Decimal>) -> Option<Decimal> {
    v.map(r2)
}

/// Marketing spend of the given months (records count in full), in money.
pub(crate) fn spend_in(state: &AppState, costs: &CostData, months: &[Month]) -> Decimal {
    let minor: i64 = costs
        .spend
        .iter()
        .filter(|s| months.contains(&s.month))
        .map(|s| s.amount)
        .sum();
    state.money.reporting.from_minor(minor)
}

/// Cost records of `month` in `category`, in money.
pub(crate) fn costs_in(
    state: &AppState,
    costs: &CostData,
    month: Month,
    category: CostCategory,
) -> Decimal {
    let minor: i64 = costs
        .costs
        .iter()
        .filter(|c| c.month == month && c.category == category)
        .map(|c| c.amount)
        .sum();
    state.money.reporting.from_minor(minor)
}
