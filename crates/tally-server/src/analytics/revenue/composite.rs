//! The composite endpoints: metrics summary (16), KPIs (17) and the billing summary (21).
//! Each figure comes from the same function as its own endpoint, so one `as_of` gives one
//! value everywhere.

use super::users::ltv_figures;
use super::{costs_in, load_book, r2, r2o, spend_in};
use crate::analytics::params::{AsOfParam, Range, Window};
use crate::analytics::usage::figures;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use rust_decimal::Decimal;
use serde::Serialize;
use tally_core::billing::churn::{customer_churn_rate, percent};
use tally_core::billing::growth::{growth, pct_change};
use tally_core::billing::ledger::Ledger;
use tally_core::model::CostCategory;
use tally_core::time::{same_point_previous_month, Micros, Month};
use tally_store::Span;
use utoipa::ToSchema;

/// Month-to-date money of the current month, unrounded.
pub(crate) struct Finance {
    pub mrr: Decimal,
    pub mom_growth: Option<Decimal>,
    /// Paid invoices with `paid_at` this month up to `as_of`.
    pub revenue: Decimal,
    pub infrastructure: Decimal,
    pub llm: Decimal,
    pub other: Decimal,
    pub marketing: Decimal,
    pub issued: i64,
    pub paid: i64,
    pub failed: i64,
}

impl Finance {
    pub fn total_costs(&self) -> Decimal {
        self.infrastructure + self.llm + self.other
    }
    pub fn gross_profit(&self) -> Decimal {
        self.revenue - self.total_costs()
    }
    pub fn gross_margin(&self) -> Option<Decimal> {
        percent(self.gross_profit(), self.revenue)
    }
    pub fn net_profit(&self) -> Decimal {
        self.gross_profit() - self.marketing
    }
    pub fn success_rate(&self) -> Option<Decimal> {
        percent(self.paid.into(), (self.paid + self.failed).into())
    }
}

/// Month-to-date finance at the ledger's `as_of`. Callers pass the ledger they already
/// built, so a request loads the book once.
pub(crate) async fn finance(s: &AppState, l: &Ledger<'_>, as_of: Micros) -> ApiResult<Finance> {
    let m = Month::of(as_of);
    let mtd = Span::through(m.start(), as_of);
    let inv = s.store.invoice_stats(mtd, mtd).await?;
    let costs = s.store.cost_data().await?;
    Ok(Finance {
        mrr: l.total_mrr(m),
        mom_growth: growth(l, m, 1),
        revenue: s.money.reporting.from_minor(inv.paid_revenue),
        infrastructure: costs_in(s, &costs, m, CostCategory::Infrastructure),
        llm: figures::llm_cost(s, mtd).await?,
        other: costs_in(s, &costs, m, CostCategory::Other),
        marketing: spend_in(s, &costs, &[m]),
        issued: inv.issued,
        paid: inv.issued_paid,
        failed: inv.issued_failed,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueSummary {
    pub mrr: Decimal,
    /// MoM MRR growth, percent.
    pub change: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsersSummary {
    /// Customers with an active subscription (paying or trial) at `as_of`.
    pub total: u64,
    /// Customers with any usage event in the trailing 30 days.
    pub active: i64,
    /// % change of `total` against the end of the previous month.
    pub change: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiCallsSummary {
    /// Usage events this month up to `as_of`.
    pub this_month: i64,
    /// Usage events last month up to the same point of the month.
    pub last_month_to_date: i64,
    /// % change against `last_month_to_date`.
    pub change: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChurnSummary {
    /// Customer churn rate this month, month-to-date.
    pub percentage: Option<Decimal>,
    /// `percentage` minus last month's full-month rate, percentage points.
    pub change: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsSummary {
    pub revenue: RevenueSummary,
    pub users: UsersSummary,
    pub api_calls: ApiCallsSummary,
    pub churn_rate: ChurnSummary,
}

/// Headline figures with their change against last month.
#[utoipa::path(get, path = "/api/v1/analytics/metrics/summary", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = MetricsSummary), (status = 422, body = ErrorBody)))]
pub async fn summary(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<MetricsSummary>> {
    let as_of = a.resolve(&s)?;
    let book = load_book(&s).await?;
    let l = Ledger::new(&book, as_of);
    let m = l.current;
    // Customers paying or in trial at as_of and at the end of the previous month.
    let users_now = l.subscribed(m);
    let users_prev = l.subscribed(m.prev());
    let calls = figures::api_calls(&s, Span::through(m.start(), as_of)).await?;
    let calls_prev = figures::api_calls(
        &s,
        Span::through(m.prev().start(), same_point_previous_month(as_of)),
    )
    .await?;
    let churn_now = r2o(customer_churn_rate(&l, m));
    let churn_prev = r2o(customer_churn_rate(&l, m.prev()));
    Ok(Json(MetricsSummary {
        revenue: RevenueSummary {
            mrr: r2(l.total_mrr(m)),
            change: r2o(growth(&l, m, 1)),
        },
        users: UsersSummary {
            total: users_now,
            active: figures::active_customers(&s, Range::Month.span(as_of)).await?,
            change: r2o(pct_change(users_now.into(), users_prev.into())),
        },
        api_calls: ApiCallsSummary {
            this_month: calls,
            last_month_to_date: calls_prev,
            change: r2o(pct_change(calls.into(), calls_prev.into())),
        },
        churn_rate: ChurnSummary {
            percentage: churn_now,
            change: churn_now.zip(churn_prev).map(|(a, b)| a - b),
        },
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueKpis {
    pub mrr: Decimal,
    pub arr: Decimal,
    pub ltv: Option<Decimal>,
    pub ltv_cac_ratio: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserKpis {
    /// Customers with an active subscription (paying or trial).
    pub total_users: u64,
    /// Customers with usage in the trailing 30 days.
    pub active_users: i64,
    pub churn_rate: Option<Decimal>,
    pub retention_rate: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceKpis {
    /// Over the last 24 hours; null without health checks.
    pub uptime: Option<Decimal>,
    /// Over the last 24 hours.
    pub avg_response_time_ms: Option<Decimal>,
    /// API calls of the trailing 30 days / 30.
    pub api_calls_per_day: Decimal,
    /// Over the last 24 hours.
    pub error_rate: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Kpis {
    pub revenue_kpis: RevenueKpis,
    pub user_kpis: UserKpis,
    pub service_kpis: ServiceKpis,
}

/// Key figures of revenue, customers and services.
#[utoipa::path(get, path = "/api/v1/analytics/metrics/kpis", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = Kpis), (status = 422, body = ErrorBody)))]
pub async fn kpis(State(s): State<AppState>, Query(a): Query<AsOfParam>) -> ApiResult<Json<Kpis>> {
    let as_of = a.resolve(&s)?;
    let book = load_book(&s).await?;
    let l = Ledger::new(&book, as_of);
    let m = l.current;
    let mrr = l.total_mrr(m);
    let f = ltv_figures(&s, &l).await?;
    let churn = r2o(customer_churn_rate(&l, m));
    let day = Window::Day.span(as_of);
    let month = Range::Month.span(as_of);
    let calls_30 = figures::api_calls(&s, month).await?;
    Ok(Json(Kpis {
        revenue_kpis: RevenueKpis {
            mrr: r2(mrr),
            arr: r2(mrr * Decimal::from(12)),
            ltv: r2o(f.ltv),
            ltv_cac_ratio: r2o(f.ltv_cac_ratio),
        },
        user_kpis: UserKpis {
            total_users: l.subscribed(m),
            active_users: figures::active_customers(&s, month).await?,
            churn_rate: churn,
            retention_rate: churn.map(|c| Decimal::ONE_HUNDRED - c),
        },
        service_kpis: ServiceKpis {
            uptime: r2o(figures::uptime(&s, day).await?),
            avg_response_time_ms: r2o(figures::avg_response_time_ms(&s, day).await?),
            api_calls_per_day: r2(Decimal::from(calls_30) / Decimal::from(Range::Month.days())),
            error_rate: r2o(figures::error_rate(&s, day).await?),
        },
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BillingRevenue {
    pub mrr: Decimal,
    pub arr: Decimal,
    /// Paid invoices with `paid_at` this month up to `as_of`.
    pub total_this_month: Decimal,
    /// MoM MRR growth, percent.
    pub growth_rate: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BillingCosts {
    /// Cost records of this month, category infrastructure.
    pub infrastructure: Decimal,
    /// Metered LLM cost this month to date, converted from credits.
    pub llm_api_costs: Decimal,
    /// Cost records of this month, category other.
    pub other_services: Decimal,
    pub total: Decimal,
    /// total / revenue this month; null without revenue.
    pub percentage_of_revenue: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Profitability {
    /// Revenue − costs.
    pub gross_profit: Decimal,
    pub gross_margin_percentage: Option<Decimal>,
    /// Gross profit − marketing spend of this month.
    pub net_profit: Decimal,
    pub net_margin_percentage: Option<Decimal>,
    pub marketing_spend: Decimal,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Payments {
    /// Invoices issued this month to date.
    pub total_invoices: i64,
    pub paid_invoices: i64,
    pub failed_invoices: i64,
    /// paid / (paid + failed).
    pub success_rate: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BillingSummary {
    pub revenue: BillingRevenue,
    pub costs: BillingCosts,
    pub profitability: Profitability,
    pub payments: Payments,
}

/// Revenue, costs, profit and payments of the current month to date.
#[utoipa::path(get, path = "/api/v1/billing/analytics/summary", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = BillingSummary), (status = 422, body = ErrorBody)))]
pub async fn billing_summary(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<BillingSummary>> {
    let as_of = a.resolve(&s)?;
    let book = load_book(&s).await?;
    let f = finance(&s, &Ledger::new(&book, as_of), as_of).await?;
    Ok(Json(BillingSummary {
        revenue: BillingRevenue {
            mrr: r2(f.mrr),
            arr: r2(f.mrr * Decimal::from(12)),
            total_this_month: r2(f.revenue),
            growth_rate: r2o(f.mom_growth),
        },
        costs: BillingCosts {
            infrastructure: r2(f.infrastructure),
            llm_api_costs: r2(f.llm),
            other_services: r2(f.other),
            total: r2(f.total_costs()),
            percentage_of_revenue: r2o(percent(f.total_costs(), f.revenue)),
        },
        profitability: Profitability {
            gross_profit: r2(f.gross_profit()),
            gross_margin_percentage: r2o(f.gross_margin()),
            net_profit: r2(f.net_profit()),
            net_margin_percentage: r2o(percent(f.net_profit(), f.revenue)),
            marketing_spend: r2(f.marketing),
        },
        payments: Payments {
            total_invoices: f.issued,
            paid_invoices: f.paid,
            failed_invoices: f.failed,
            success_rate: r2o(f.success_rate()),
        },
    }))
}
