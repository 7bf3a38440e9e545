//! Metering over calendar periods: one service in detail, and every service with the
//! period's revenue and gross margin.

use super::users_kept::top_users;
use super::{
    credits, day_label, days_of, events_per_day, per_day, percent, r2, r2_opt, registry, rows,
    totals, SpanView,
};
use crate::analytics::params::{AsOfParam, CalendarPeriod};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tally_core::event::EventKind;
use tally_core::model::CostCategory;
use tally_core::money;
use tally_core::time::{Month, MICROS_PER_DAY};
use tally_store::{Span, UsageDim, UsageQuery};
use utoipa::{IntoParams, ToSchema};

/// Most customers listed in `top_users`.
pub const TOP_USERS: usize = 10;

/// `period`: a calendar span.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodParam {
    /// this_month (default), last_month, this_quarter, last_quarter, this_year or
    /// last_year; the "this" ones end at `as_of`.
    pub period: Option<String>,
}

/// Quantities are kept in micros; reported in units, exactly.
fn units(micros: i64) -> Decimal {
    money::from_micros(micros.into())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopUser {
    pub customer_id: String,
    pub api_calls: i64,
    pub total_tokens: i64,
    pub cost_credits: Decimal,
    pub units: Decimal,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayUsage {
    /// UTC date, YYYY-MM-DD.
    pub date: String,
    pub api_calls: i64,
    pub total_tokens: i64,
    pub cost_credits: Decimal,
    /// Sum of the events' quantities.
    pub units: Decimal,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceMetering {
    pub service: String,
    pub period: &'static str,
    pub span: SpanView,
    /// From the service registry; null when never set.
    pub unit_type: Option<String>,
    pub total_api_calls: i64,
    pub total_tokens: i64,
    pub total_cost_credits: Decimal,
    pub total_units: Decimal,
    /// The 10 customers with the most API calls (ties: higher cost, then id). Events
    /// without a customer are in the totals but not here.
    pub top_users: Vec<TopUser>,
    /// One row per date from the start of the period to its end (or `as_of`),
    /// zero-filled.
    pub usage_by_day: Vec<DayUsage>,
    /// LLM calls with no cost and no known price, counted as 0 credits.
    pub unpriced_calls: i64,
}

/// One service's metered usage over a calendar period: totals, top customers, by day.
#[utoipa::path(get, path = "/api/v1/metering/service/{service_name}", tag = "analytics",
    params(("service_name" = String, Path), AsOfParam, PeriodParam),
    responses((status = 200, body = ServiceMetering), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn service(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(a): Query<AsOfParam>,
    Query(p): Query<PeriodParam>,
) -> ApiResult<Json<ServiceMetering>> {
    let period = CalendarPeriod::parse(p.period.as_deref())?;
    let as_of = a.resolve(&s)?;
    let svc = s
        .store
        .get_service(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("service `{name}` does not exist")))?;
    let span = period.span(as_of);
    let mut q = UsageQuery::new(EventKind::Usage, span);
    q.service = Some(name.clone());

    let total = totals(&s, &q).await?;
    let per_day = per_day(&s, &q).await?;
    let top_users = top_users(&s, &s.cache.users, &q, &events_per_day(&per_day), TOP_USERS)
        .await?
        .into_iter()
        .map(|(customer_id, t)| TopUser {
            api_calls: t.events,
            total_tokens: t.input_tokens + t.output_tokens,
            cost_credits: r2(credits(t.cost)),
            units: units(t.quantity),
            customer_id,
        })
        .collect();
    let usage_by_day = days_of(span)
        .map(|d| {
            let r = per_day.get(&d).cloned().unwrap_or_default();
            DayUsage {
                date: day_label(d),
                api_calls: r.events,
                total_tokens: r.input_tokens + r.output_tokens,
                cost_credits: r2(credits(r.cost)),
                units: units(r.quantity),
            }
        })
        .collect();
    Ok(Json(ServiceMetering {
        service: name,
        period: period.as_str(),
        span: span.into(),
        unit_type: svc.unit_type,
        total_api_calls: total.events,
        total_tokens: total.input_tokens + total.output_tokens,
        total_cost_credits: r2(credits(total.cost)),
        total_units: units(total.quantity),
        top_users,
        usage_by_day,
        unpriced_calls: total.unpriced,
    }))
}

/// Keeps every service's customers' totals of the month of its latest events (through
/// tomorrow), before the last day, ahead of `metering/service` (its default period is
/// this month). Returns how many services had events.
pub async fn warm_top_users(s: &AppState) -> ApiResult<usize> {
    let tomorrow = super::day_index(s.clock.now()) + 1;
    let all = UsageQuery::new(
        EventKind::Usage,
        Span::new(0, (tomorrow + 1) * MICROS_PER_DAY),
    );
    let mut per_service: HashMap<String, HashMap<i64, i64>> = HashMap::new();
    for r in rows(s, &all.group(&[UsageDim::Service, UsageDim::Day])).await? {
        if let (Some(service), Some(day), true) = (r.service, r.day, r.events > 0) {
            per_service
                .entry(service)
                .or_default()
                .insert(day, r.events);
        }
    }
    for (service, events_per_day) in &per_service {
        let Some(&last) = events_per_day.keys().max() else {
            continue;
        };
        let as_of = (last + 1) * MICROS_PER_DAY - 1;
        let mut q = UsageQuery::new(EventKind::Usage, CalendarPeriod::ThisMonth.span(as_of));
        q.service = Some(service.clone());
        top_users(s, &s.cache.users, &q, events_per_day, TOP_USERS).await?;
    }
    Ok(per_service.len())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceTotal {
    pub service: String,
    /// Sum of the events' quantities.
    pub units: Decimal,
    /// From the service registry; null when never set.
    pub unit_type: Option<String>,
    pub api_calls: i64,
    pub cost_credits: Decimal,
    /// Share of total_cost_credits, %; null when nothing cost anything.
    pub percentage_of_total: Option<Decimal>,
    pub unpriced_calls: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodCosts {
    /// Cost of the LLM calls of the period, credits converted with credits_per_unit.
    pub llm_usage: Decimal,
    /// Infrastructure cost records of every month the period touches, in full.
    pub infrastructure: Decimal,
    /// `other` cost records of every month the period touches, in full.
    pub other: Decimal,
    pub total: Decimal,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeteringSummary {
    pub period: &'static str,
    pub span: SpanView,
    /// Services with usage in the period, by cost (highest first), then name.
    pub services: Vec<ServiceTotal>,
    /// Cost of every usage event of the period, credits.
    pub total_cost_credits: Decimal,
    /// Paid invoices whose paid_at falls in the period, reporting currency.
    pub total_revenue: Decimal,
    /// The costs set against revenue, reporting currency.
    pub costs: PeriodCosts,
    /// total_revenue − costs.total (gross profit), reporting currency.
    pub gross_margin: Decimal,
    /// gross_margin / total_revenue × 100; null without revenue.
    pub gross_margin_percentage: Option<Decimal>,
    pub currency: &'static str,
    pub unpriced_calls: i64,
}

/// Metered usage of every service over a calendar period, with revenue and gross margin.
#[utoipa::path(get, path = "/api/v1/metering/summary", tag = "analytics", params(AsOfParam, PeriodParam),
    responses((status = 200, body = MeteringSummary), (status = 422, body = ErrorBody)))]
pub async fn summary(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
    Query(p): Query<PeriodParam>,
) -> ApiResult<Json<MeteringSummary>> {
    let period = CalendarPeriod::parse(p.period.as_deref())?;
    let as_of = a.resolve(&s)?;
    let span = period.span(as_of);
    let currency = s.money.reporting;

    let groups = rows(
        &s,
        &UsageQuery::new(EventKind::Usage, span).group(&[UsageDim::Service]),
    )
    .await?;
    let registry = registry(&s).await?;
    let total_cost: i64 = groups.iter().map(|g| g.cost).sum();
    let unpriced: i64 = groups.iter().map(|g| g.unpriced).sum();
    let mut services: Vec<ServiceTotal> = groups
        .into_iter()
        .filter(|g| g.events > 0)
        .filter_map(|g| {
            let name = g.service?;
            Some(ServiceTotal {
                units: units(g.quantity),
                unit_type: registry.get(&name).and_then(|r| r.unit_type.clone()),
                api_calls: g.events,
                cost_credits: r2(credits(g.cost)),
                percentage_of_total: r2_opt(percent(g.cost, total_cost)),
                unpriced_calls: g.unpriced,
                service: name,
            })
        })
        .collect();
    services.sort_by(|a, b| {
        b.cost_credits
            .cmp(&a.cost_credits)
            .then(a.service.cmp(&b.service))
    });

    let revenue = currency.from_minor(s.store.invoice_stats(span, span).await?.paid_revenue);
    let llm = super::figures::llm_cost(&s, span).await?;
    let (first, last) = (Month::of(span.start), Month::of(span.end - 1));
    let (mut infra, mut other) = (0i64, 0i64);
    for c in s.store.cost_data().await?.costs {
        if first <= c.month && c.month <= last {
            match c.category {
                CostCategory::Infrastructure => infra += c.amount,
                CostCategory::Other => other += c.amount,
            }
        }
    }
    let (infra, other) = (currency.from_minor(infra), currency.from_minor(other));
    let cost_total = llm + infra + other;
    let margin = revenue - cost_total;
    Ok(Json(MeteringSummary {
        period: period.as_str(),
        span: span.into(),
        services,
        total_cost_credits: r2(credits(total_cost)),
        total_revenue: r2(revenue),
        costs: PeriodCosts {
            llm_usage: r2(llm),
            infrastructure: r2(infra),
            other: r2(other),
            total: r2(cost_total),
        },
        gross_margin: r2(margin),
        gross_margin_percentage: r2_opt(percent(margin, revenue)),
        currency: currency.code,
        unpriced_calls: unpriced,
    }))
}
