//! MRR history with movements, ARR, growth and revenue by tier (endpoints 4, 5, 6, 8).

use super::{load_book, r2, r2o};
use crate::analytics::params::{bounded, AsOfParam};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tally_core::billing::churn::percent;
use tally_core::billing::growth::{growth as growth_over, growth_trend};
use tally_core::billing::ledger::Ledger;
use tally_core::billing::ltv::tier_totals;
use tally_core::billing::TRIAL_TIER;
use tally_core::time::Month;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthsParam {
    /// Months ending with the current month, 1..24 (default 12).
    pub months: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MrrMonth {
    /// YYYY-MM.
    #[schema(value_type = String)]
    pub month: Month,
    /// Month-end MRR (at `as_of` for the current month).
    pub mrr: Decimal,
    /// MoM growth %, null when the previous month had no MRR.
    pub growth_rate: Option<Decimal>,
    /// Customers with a new movement.
    pub new_customers: u64,
    /// Customers with a churn movement.
    pub churned_customers: u64,
    pub reactivated_customers: u64,
    pub new_mrr: Decimal,
    pub expansion_mrr: Decimal,
    pub contraction_mrr: Decimal,
    pub churned_mrr: Decimal,
    pub reactivation_mrr: Decimal,
    /// Net new MRR: new + reactivation + expansion − contraction − churn.
    pub net_new_mrr: Decimal,
    /// Customers with MRR > 0 at month end.
    pub paying_customers: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MrrReport {
    pub mrr_data: Vec<MrrMonth>,
    /// MRR at `as_of`.
    pub current_mrr: Decimal,
    /// MRR at the end of the previous month.
    pub previous_mrr: Decimal,
    pub total_months: u64,
}

/// Month-end MRR with its movements, for the months ending with the current one.
#[utoipa::path(get, path = "/api/v1/analytics/revenue/mrr", tag = "analytics", params(AsOfParam, MonthsParam),
    responses((status = 200, body = MrrReport), (status = 422, body = ErrorBody)))]
pub async fn mrr(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
    Query(p): Query<MonthsParam>,
) -> ApiResult<Json<MrrReport>> {
    let as_of = a.resolve(&s)?;
    let months = bounded("months", p.months.as_deref(), 12, 1, 24)?;
    let book = load_book(&s).await?;
    let l = Ledger::new(&book, as_of);
    let mrr_data = (0..months as i32)
        .rev()
        .map(|k| {
            let m = l.current.add(-k);
            let mv = l.movements(m);
            MrrMonth {
                month: m,
                mrr: r2(l.total_mrr(m)),
                growth_rate: r2o(growth_over(&l, m, 1)),
                new_customers: mv.new_customers,
                churned_customers: mv.churned_customers,
                reactivated_customers: mv.reactivated_customers,
                new_mrr: r2(mv.new),
                expansion_mrr: r2(mv.expansion),
                contraction_mrr: r2(mv.contraction),
                churned_mrr: r2(mv.churn),
                reactivation_mrr: r2(mv.reactivation),
                net_new_mrr: r2(mv.net()),
                paying_customers: l.paying(m),
            }
        })
        .collect();
    Ok(Json(MrrReport {
        mrr_data,
        current_mrr: r2(l.total_mrr(l.current)),
        previous_mrr: r2(l.total_mrr(l.current.prev())),
        total_months: months as u64,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArrReport {
    /// MRR at `as_of` × 12.
    pub arr: Decimal,
    /// ARR per tier (customers by their tier at `as_of`); every plan tier appears.
    pub arr_by_tier: BTreeMap<String, Decimal>,
    /// % against MRR at the end of the same month last year; null when that was 0.
    pub yoy_growth: Option<Decimal>,
    pub mrr: Decimal,
}

/// Annual recurring revenue, overall and by tier.
#[utoipa::path(get, path = "/api/v1/analytics/revenue/arr", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = ArrReport), (status = 422, body = ErrorBody)))]
pub async fn arr(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<ArrReport>> {
    let as_of = a.resolve(&s)?;
    let book = load_book(&s).await?;
    let l = Ledger::new(&book, as_of);
    let twelve = Decimal::from(12);
    let mut arr_by_tier: BTreeMap<String, Decimal> = book
        .tiers()
        .map(|t| (t.to_string(), Decimal::ZERO))
        .collect();
    for (tier, (mrr, _)) in tier_totals(&l, l.current) {
        if tier != TRIAL_TIER {
            arr_by_tier.insert(tier, r2(mrr * twelve));
        }
    }
    let mrr = l.total_mrr(l.current);
    Ok(Json(ArrReport {
        arr: r2(mrr * twelve),
        arr_by_tier,
        yoy_growth: r2o(growth_over(&l, l.current, 12)),
        mrr: r2(mrr),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrowthReport {
    /// % against the end of the previous month.
    pub mom_growth: Option<Decimal>,
    /// % against the end of the month three months back.
    pub qoq_growth: Option<Decimal>,
    /// % against the end of the same month last year.
    pub yoy_growth: Option<Decimal>,
    /// accelerating, decelerating, steady or insufficient_data.
    pub growth_trend: String,
    /// MRR at `as_of`.
    pub current_month_revenue: Decimal,
    /// MRR at the end of the previous month.
    pub previous_month_revenue: Decimal,
    /// MRR at the end of the month three months back.
    pub previous_quarter_revenue: Decimal,
    /// MRR at the end of the same month last year.
    pub same_month_last_year: Decimal,
}

/// MRR growth over one, three and twelve months, and its trend.
#[utoipa::path(get, path = "/api/v1/analytics/revenue/growth", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = GrowthReport), (status = 422, body = ErrorBody)))]
pub async fn growth(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<GrowthReport>> {
    let as_of = a.resolve(&s)?;
    let book = load_book(&s).await?;
    let l = Ledger::new(&book, as_of);
    let m = l.current;
    Ok(Json(GrowthReport {
        mom_growth: r2o(growth_over(&l, m, 1)),
        qoq_growth: r2o(growth_over(&l, m, 3)),
        yoy_growth: r2o(growth_over(&l, m, 12)),
        growth_trend: growth_trend(&l).as_str().to_string(),
        current_month_revenue: r2(l.total_mrr(m)),
        previous_month_revenue: r2(l.total_mrr(m.prev())),
        previous_quarter_revenue: r2(l.total_mrr(m.add(-3))),
        same_month_last_year: r2(l.total_mrr(m.add(-12))),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TierRow {
    pub tier: String,
    /// MRR of the tier's customers at `as_of`.
    pub revenue: Decimal,
    /// Paying customers on the tier (for `trial`: trial customers).
    pub customers: u64,
    /// Average revenue per customer; null without customers.
    pub arpc: Option<Decimal>,
    /// Share of total MRR; null when total MRR is 0.
    pub percentage: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ByTierReport {
    /// Every plan tier and `trial`, by revenue (largest first), then name.
    pub tiers: Vec<TierRow>,
    pub total_revenue: Decimal,
    /// Paying plus trial customers.
    pub total_customers: u64,
}

/// MRR and customers per tier at `as_of`.
#[utoipa::path(get, path = "/api/v1/analytics/revenue/by-tier", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = ByTierReport), (status = 422, body = ErrorBody)))]
pub async fn by_tier(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<ByTierReport>> {
    let as_of = a.resolve(&s)?;
    let book = load_book(&s).await?;
    let l = Ledger::new(&book, as_of);
    let mut totals = tier_totals(&l, l.current);
    for t in book.tiers().chain([TRIAL_TIER]) {
        totals.entry(t.to_string()).or_default();
    }
    let total: Decimal = totals.values().map(|(m, _)| *m).sum();
    let total_customers = totals.values().map(|(_, n)| *n).sum();
    let mut rows: Vec<(String, Decimal, u64)> =
        totals.into_iter().map(|(t, (m, n))| (t, m, n)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let tiers = rows
        .into_iter()
        .map(|(tier, revenue, customers)| TierRow {
            tier,
            revenue: r2(revenue),
            customers,
            arpc: r2o((customers > 0).then(|| revenue / Decimal::from(customers))),
            percentage: r2o(percent(revenue, total)),
        })
        .collect();
    Ok(Json(ByTierReport {
        tiers,
        total_revenue: r2(total),
        total_customers,
    }))
}
