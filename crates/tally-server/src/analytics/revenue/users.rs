//! LTV, churn and acquisition (endpoints 9, 10, 11).

use super::{load_book, r2, r2o, spend_in};
use crate::analytics::params::AsOfParam;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tally_core::billing::acquisition::{signups, signups_by_channel};
use tally_core::billing::churn::{
    churn_by_tier, customer_churn_rate, net_revenue_retention, percent, revenue_churn_rate,
};
use tally_core::billing::growth::pct_change;
use tally_core::billing::ledger::Ledger;
use tally_core::billing::ltv;
use tally_core::time::{same_point_previous_month, Micros};
use utoipa::ToSchema;

/// LTV figures at `as_of`, unrounded; shared with the composite endpoints.
pub(crate) struct LtvFigures {
    pub arpa: Option<Decimal>,
    pub mean_churn: Option<Decimal>,
    pub ltv: Option<Decimal>,
    pub cac: Option<Decimal>,
    pub cac_spend: Decimal,
    pub cac_new_customers: u64,
    pub ltv_cac_ratio: Option<Decimal>,
}

pub(crate) async fn ltv_figures(s: &AppState, l: &Ledger<'_>) -> ApiResult<LtvFigures> {
    let costs = s.store.cost_data().await?;
    let arpa = ltv::arpa(l, l.current);
    let mean_churn = ltv::mean_churn(l);
    let ltv = ltv::ltv_of(arpa, mean_churn);
    let cac_spend = spend_in(s, &costs, &ltv::cac_months(l.current));
    let cac_new_customers = ltv::cac_new_customers(l);
    let cac = ltv::cac(cac_spend, cac_new_customers);
    Ok(LtvFigures {
        arpa,
        mean_churn,
        ltv,
        cac,
        cac_spend,
        cac_new_customers,
        ltv_cac_ratio: ltv::ltv_cac_ratio(ltv, cac),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LtvReport {
    /// ARPA / mean monthly churn of the last 6 complete months; null when churn is 0.
    pub average_ltv: Option<Decimal>,
    /// Per tier with the tier's ARPA and churn; `trial` is 0.
    pub ltv_by_tier: BTreeMap<String, Option<Decimal>>,
    /// LTV / CAC.
    pub ltv_cac_ratio: Option<Decimal>,
    /// 1 / mean monthly churn.
    pub average_customer_lifespan_months: Option<Decimal>,
    /// MRR / paying customers at `as_of`.
    pub arpa: Option<Decimal>,
    /// The mean monthly customer churn rate behind LTV, percent.
    pub mean_monthly_churn_rate: Option<Decimal>,
    /// Marketing spend of the last 3 complete months / new customers in them.
    pub cac: Option<Decimal>,
    pub cac_marketing_spend: Decimal,
    pub cac_new_customers: u64,
}

/// Customer lifetime value, lifespan and LTV:CAC.
#[utoipa::path(get, path = "/api/v1/analytics/users/ltv", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = LtvReport), (status = 422, body = ErrorBody)))]
pub async fn ltv(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<LtvReport>> {
    let as_of = a.resolve(&s)?;
    let book = load_book(&s).await?;
    let l = Ledger::new(&book, as_of);
    let f = ltv_figures(&s, &l).await?;
    Ok(Json(LtvReport {
        average_ltv: r2o(f.ltv),
        ltv_by_tier: ltv::ltv_by_tier(&l)
            .into_iter()
            .map(|(t, v)| (t, r2o(v)))
            .collect(),
        ltv_cac_ratio: r2o(f.ltv_cac_ratio),
        average_customer_lifespan_months: r2o(ltv::lifespan_months(f.mean_churn)),
        arpa: r2o(f.arpa),
        mean_monthly_churn_rate: r2o(f.mean_churn.map(|c| c * Decimal::ONE_HUNDRED)),
        cac: r2o(f.cac),
        cac_marketing_spend: r2(f.cac_spend),
        cac_new_customers: f.cac_new_customers,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChurnReport {
    /// Customer churn rate of the current month, month-to-date, percent.
    pub monthly_churn_rate: Option<Decimal>,
    /// Per tier (customers by tier at the end of the previous month); `trial`: trials that
    /// ended this month without the customer paying at `as_of`.
    pub churn_by_tier: BTreeMap<String, Option<Decimal>>,
    /// 100 − the rounded churn rate.
    pub retention_rate: Option<Decimal>,
    /// Customers with a churn movement this month.
    pub churned_this_month: u64,
    /// Paying customers at `as_of`.
    pub total_customers: u64,
    /// Paying customers at the end of the previous month (the churn rate's base).
    pub customers_at_start_of_month: u64,
    /// Full-month customer churn rate of the previous month.
    pub last_month_churn_rate: Option<Decimal>,
    /// Gross revenue churn this month: (churned + contraction MRR) / starting MRR.
    pub revenue_churn_rate: Option<Decimal>,
    /// (start + expansion − contraction − churn) / start MRR.
    pub net_revenue_retention: Option<Decimal>,
}

/// Customer churn and retention of the current month.
#[utoipa::path(get, path = "/api/v1/analytics/users/churn", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = ChurnReport), (status = 422, body = ErrorBody)))]
pub async fn churn(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<ChurnReport>> {
    let as_of = a.resolve(&s)?;
    let book = load_book(&s).await?;
    let l = Ledger::new(&book, as_of);
    let m = l.current;
    let rate = r2o(customer_churn_rate(&l, m));
    Ok(Json(ChurnReport {
        monthly_churn_rate: rate,
        churn_by_tier: churn_by_tier(&l, m)
            .into_iter()
            .map(|(t, c)| (t, r2o(c.rate())))
            .collect(),
        retention_rate: rate.map(|r| Decimal::ONE_HUNDRED - r),
        churned_this_month: l.movements(m).churned_customers,
        total_customers: l.paying(m),
        customers_at_start_of_month: l.paying(m.prev()),
        last_month_churn_rate: r2o(customer_churn_rate(&l, m.prev())),
        revenue_churn_rate: r2o(revenue_churn_rate(&l, m)),
        net_revenue_retention: r2o(net_revenue_retention(&l, m)),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelRow {
    pub channel: String,
    /// Signups this month (month-to-date).
    pub users: u64,
    /// Share of this month's signups; null when there were none.
    pub percentage: Option<Decimal>,
    /// The channel's spend this month / its signups; null without signups.
    pub cpa: Option<Decimal>,
    pub spend: Decimal,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcquisitionReport {
    /// Customers created this month up to `as_of`.
    pub new_users_this_month: u64,
    /// Customers created in the whole previous month.
    pub new_users_last_month: u64,
    /// Customers created in the previous month up to the same point of the month.
    pub new_users_last_month_to_date: u64,
    /// This month to date against last month to the same point, percent.
    pub growth_rate: Option<Decimal>,
    /// Channels with signups or spend this month, by signups (most first), then name.
    pub acquisition_channels: Vec<ChannelRow>,
    /// All spend this month / all signups this month.
    pub average_cpa: Option<Decimal>,
}

/// Signups by channel this month, with cost per acquisition.
#[utoipa::path(get, path = "/api/v1/analytics/users/acquisition", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = AcquisitionReport), (status = 422, body = ErrorBody)))]
pub async fn acquisition(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<AcquisitionReport>> {
    let as_of: Micros = a.resolve(&s)?;
    let book = load_book(&s).await?;
    let costs = s.store.cost_data().await?;
    let m = tally_core::time::Month::of(as_of);
    let this = signups(&book, m.start(), as_of);
    let last_full = signups(&book, m.prev().start(), m.prev().last_instant());
    let last_to_date = signups(&book, m.prev().start(), same_point_previous_month(as_of));
    let by_channel = signups_by_channel(&book, m.start(), as_of);
    let mut spend: BTreeMap<&str, Decimal> = BTreeMap::new();
    for sp in costs.spend.iter().filter(|sp| sp.month == m) {
        *spend.entry(sp.channel.as_str()).or_default() += s.money.reporting.from_minor(sp.amount);
    }
    let channels: BTreeSet<&str> = by_channel
        .keys()
        .map(String::as_str)
        .chain(spend.keys().copied())
        .collect();
    let mut rows: Vec<ChannelRow> = channels
        .into_iter()
        .map(|ch| {
            let users = by_channel.get(ch).copied().unwrap_or(0);
            let sp = spend.get(ch).copied().unwrap_or_default();
            ChannelRow {
                channel: ch.to_string(),
                users,
                percentage: r2o(percent(users.into(), this.into())),
                cpa: r2o((users > 0).then(|| sp / Decimal::from(users))),
                spend: r2(sp),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.users
            .cmp(&a.users)
            .then_with(|| a.channel.cmp(&b.channel))
    });
    let total_spend: Decimal = spend.values().copied().sum();
    Ok(Json(AcquisitionReport {
        new_users_this_month: this,
        new_users_last_month: last_full,
        new_users_last_month_to_date: last_to_date,
        growth_rate: r2o(pct_change(this.into(), last_to_date.into())),
        acquisition_channels: rows,
        average_cpa: r2o((this > 0).then(|| total_spend / Decimal::from(this))),
    }))
}
