//! Services: popularity, infrastructure cost per user, adoption by subscribers, and
//! performance (uptime, latency, errors, throughput). A service is listed when it has
//! data in the spans an endpoint looks at; the registry is not consulted, because it has
//! no time and would show services first seen after `as_of`.

use super::{book, mean_latency, percent, r2, r2_opt, rows, totals, SpanView};
use crate::analytics::params::{AsOfParam, Window};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tally_core::event::EventKind;
use tally_core::model::CostCategory;
use tally_core::time::{same_point_previous_month, Micros, Month};
use tally_store::{ActiveCustomers, RoaringBitmap, Span, UsageDim, UsageQuery, UsageRow};
use utoipa::{IntoParams, ToSchema};

/// Label of cost records not tied to one service.
pub const SHARED: &str = "shared";

/// Month-to-date: from the first instant of the month of `as_of` through `as_of`.
pub(crate) fn month_to_date(as_of: Micros) -> Span {
    Span::through(Month::of(as_of).start(), as_of)
}

/// Usage events per service with any in `span`: one row per service from the day
/// rollup, whatever the number of customers.
async fn calls_by_service(s: &AppState, span: Span) -> ApiResult<HashMap<String, i64>> {
    let q = UsageQuery::new(EventKind::Usage, span).group(&[UsageDim::Service]);
    Ok(rows(s, &q)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.service?, r.events)))
        .collect())
}

/// The customers with usage events in `span`, per service, from the store's activity
/// bitmaps. Each endpoint asks for it once, and only for the span whose customers it
/// reports.
async fn active_by_service(s: &AppState, span: Span) -> ApiResult<ActiveCustomers> {
    Ok(s.store
        .active_customers(EventKind::Usage, span, true)
        .await?)
}

/// Per service with usage events in `span`: its events and the set of customers among
/// them (empty when none of its events has a customer).
async fn users_by_service(
    s: &AppState,
    span: Span,
    active: ActiveCustomers,
) -> ApiResult<HashMap<String, (i64, RoaringBitmap)>> {
    let mut out: HashMap<String, (i64, RoaringBitmap)> = calls_by_service(s, span)
        .await?
        .into_iter()
        .map(|(service, events)| (service, (events, RoaringBitmap::new())))
        .collect();
    for (service, customers) in active.by_service {
        if let Some(service) = service {
            out.entry(service).or_default().1 = customers;
        }
    }
    Ok(out)
}

/// Per service with usage events in `span`: (events, distinct customers).
async fn calls_and_users(s: &AppState, span: Span) -> ApiResult<HashMap<String, (i64, i64)>> {
    let active = active_by_service(s, span).await?;
    Ok(users_by_service(s, span, active)
        .await?
        .into_iter()
        .map(|(service, (events, users))| (service, (events, users.len() as i64)))
        .collect())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServicePopularity {
    pub service: String,
    /// Distinct customers with usage events month-to-date.
    pub active_users: i64,
    /// Usage events month-to-date.
    pub api_calls_this_month: i64,
    /// Usage events of the previous month up to the same point of the month.
    pub api_calls_last_month_to_date: i64,
    /// Usage events of the whole previous month.
    pub api_calls_last_month: i64,
    /// % change of api_calls_this_month against api_calls_last_month_to_date; null when
    /// that is 0.
    pub growth: Option<Decimal>,
    /// 1 = most API calls month-to-date (ties: more active users, then name).
    pub rank: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Popularity {
    pub services: Vec<ServicePopularity>,
    pub total_services: i64,
    pub span: SpanView,
}

/// Services by API calls month-to-date, with active users and growth against the previous
/// month up to the same point.
#[utoipa::path(get, path = "/api/v1/analytics/services/popularity", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = Popularity), (status = 422, body = ErrorBody)))]
pub async fn popularity(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<Popularity>> {
    let as_of = a.resolve(&s)?;
    let mtd = month_to_date(as_of);
    let prev = Month::of(as_of).prev();
    let now = calls_and_users(&s, mtd).await?;
    // The previous month's figures are calls only: its users are not reported.
    let to_date = calls_by_service(
        &s,
        Span::through(prev.start(), same_point_previous_month(as_of)),
    )
    .await?;
    let full = calls_by_service(&s, Span::new(prev.start(), prev.end())).await?;

    let names: BTreeSet<String> = now.keys().chain(full.keys()).cloned().collect();
    let mut services: Vec<ServicePopularity> = names
        .into_iter()
        .map(|name| {
            let (calls, users) = now.get(&name).copied().unwrap_or_default();
            let before = to_date.get(&name).copied().unwrap_or(0);
            ServicePopularity {
                active_users: users,
                api_calls_this_month: calls,
                api_calls_last_month_to_date: before,
                api_calls_last_month: full.get(&name).copied().unwrap_or(0),
                growth: r2_opt(percent(calls - before, before)),
                rank: 0,
                service: name,
            }
        })
        .collect();
    services.sort_by(|a, b| {
        b.api_calls_this_month
            .cmp(&a.api_calls_this_month)
            .then(b.active_users.cmp(&a.active_users))
            .then(a.service.cmp(&b.service))
    });
    for (i, svc) in services.iter_mut().enumerate() {
        svc.rank = i as i64 + 1;
    }
    Ok(Json(Popularity {
        total_services: services.len() as i64,
        services,
        span: mtd.into(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceCost {
    /// The service of the cost record; `shared` for records not tied to one service.
    pub service: String,
    /// Infrastructure cost of the current month, reporting currency.
    pub cost: Decimal,
    /// Share of total_cost, %.
    pub percentage: Option<Decimal>,
    /// Distinct customers who used this service month-to-date.
    pub active_users: i64,
    /// cost / active_users; null without users.
    pub cost_per_user: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostPerUser {
    /// Infrastructure cost records of the current month (the month of `as_of`), in full.
    pub total_cost: Decimal,
    /// Distinct customers with any usage event month-to-date.
    pub active_users: i64,
    /// total_cost / active_users; null without active users.
    pub cost_per_user: Option<Decimal>,
    /// By cost (highest first), then service.
    pub cost_breakdown: Vec<ServiceCost>,
    /// YYYY-MM of the cost records used.
    pub month: String,
    pub currency: &'static str,
}

/// Infrastructure cost of the current month per active user, by service.
#[utoipa::path(get, path = "/api/v1/analytics/services/cost-per-user", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = CostPerUser), (status = 422, body = ErrorBody)))]
pub async fn cost_per_user(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<CostPerUser>> {
    let as_of = a.resolve(&s)?;
    let month = Month::of(as_of);
    let currency = s.money.reporting;
    let mut by_service: BTreeMap<String, i64> = BTreeMap::new();
    for c in s.store.cost_data().await?.costs {
        if c.month == month && c.category == CostCategory::Infrastructure {
            *by_service.entry(c.service).or_default() += c.amount;
        }
    }
    let total_minor: i64 = by_service.values().sum();
    let total = currency.from_minor(total_minor);
    let mtd = month_to_date(as_of);
    // One read of the activity answers both the total and the per-service users: the
    // customers with any usage event are the union of every service's.
    let activity = active_by_service(&s, mtd).await?;
    let active = activity.all().len() as i64;
    let users: HashMap<&str, i64> = activity
        .by_service
        .iter()
        .filter_map(|(service, set)| Some((service.as_deref()?, set.len() as i64)))
        .collect();

    let mut cost_breakdown: Vec<ServiceCost> = by_service
        .into_iter()
        .map(|(service, minor)| {
            let cost = currency.from_minor(minor);
            let svc_users = users.get(service.as_str()).copied().unwrap_or(0);
            ServiceCost {
                percentage: r2_opt(percent(minor, total_minor)),
                active_users: svc_users,
                cost_per_user: r2_opt((svc_users > 0).then(|| cost / Decimal::from(svc_users))),
                cost: r2(cost),
                service: if service.is_empty() {
                    SHARED.to_string()
                } else {
                    service
                },
            }
        })
        .collect();
    cost_breakdown.sort_by(|a, b| b.cost.cmp(&a.cost).then(a.service.cmp(&b.service)));
    Ok(Json(CostPerUser {
        total_cost: r2(total),
        active_users: active,
        cost_per_user: r2_opt((active > 0).then(|| total / Decimal::from(active))),
        cost_breakdown,
        month: month.to_string(),
        currency: currency.code,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceAdoption {
    pub service: String,
    /// Subscribers (paying or trial at `as_of`) who used the service month-to-date / all
    /// subscribers × 100; null without subscribers.
    pub overall_adoption: Option<Decimal>,
    /// The same within each tier (tier at `as_of`; `trial` for trial customers).
    #[schema(value_type = Object)]
    pub by_tier: BTreeMap<String, Option<Decimal>>,
    /// Subscribers who used the service month-to-date.
    pub adopters: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Adoption {
    pub services: Vec<ServiceAdoption>,
    /// Customers paying or in trial at `as_of`.
    pub subscribers: i64,
    /// Subscribers per tier.
    #[schema(value_type = Object)]
    pub subscribers_by_tier: BTreeMap<String, i64>,
}

/// Share of subscribers (paying or trial) who used each service month-to-date, overall
/// and per tier.
#[utoipa::path(get, path = "/api/v1/analytics/services/adoption", tag = "analytics", params(AsOfParam),
    responses((status = 200, body = Adoption), (status = 422, body = ErrorBody)))]
pub async fn adoption(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
) -> ApiResult<Json<Adoption>> {
    let as_of = a.resolve(&s)?;
    let book = book(&s).await?;
    // (customer, tier) of the customers paying or in trial at as_of, from the book's
    // timelines.
    let subscribers: Vec<(&str, &str)> = book
        .subscriber_states_at(as_of)
        .filter(|st| st.mrr > Decimal::ZERO || st.trial)
        .filter_map(|st| Some((st.customer_id, st.tier?)))
        .collect();
    let mut per_tier: BTreeMap<String, i64> = BTreeMap::new();
    for (_, tier) in &subscribers {
        *per_tier.entry((*tier).to_owned()).or_default() += 1;
    }
    let mtd = month_to_date(as_of);
    let users = users_by_service(&s, mtd, active_by_service(&s, mtd).await?).await?;
    // Each tier's subscribers as a set of customer numbers, to intersect with the users.
    let ids: Vec<&str> = subscribers.iter().map(|(customer, _)| *customer).collect();
    let numbers = s.store.customer_numbers(&ids).await?;
    let mut tier_sets: BTreeMap<&str, RoaringBitmap> = BTreeMap::new();
    for ((_, tier), n) in subscribers.iter().zip(numbers) {
        let set = tier_sets.entry(*tier).or_default();
        // A subscriber without a number never had an event: in no service's set.
        if let Some(n) = n {
            set.insert(n);
        }
    }
    // Services used last month are listed too, so one nobody uses any more shows 0 %.
    let prev = Month::of(as_of).prev();
    let earlier = calls_by_service(&s, Span::new(prev.start(), mtd.start)).await?;
    let names: BTreeSet<String> = users.keys().chain(earlier.keys()).cloned().collect();
    let empty = RoaringBitmap::new();
    let services = names
        .into_iter()
        .map(|name| {
            let used = users.get(&name).map_or(&empty, |u| &u.1);
            let adopters_by_tier: BTreeMap<&str, i64> = tier_sets
                .iter()
                .map(|(tier, set)| (*tier, used.intersection_len(set) as i64))
                .collect();
            let adopters: i64 = adopters_by_tier.values().sum();
            let by_tier = per_tier
                .iter()
                .map(|(tier, n)| {
                    let k = adopters_by_tier.get(tier.as_str()).copied().unwrap_or(0);
                    (tier.clone(), r2_opt(percent(k, *n)))
                })
                .collect();
            ServiceAdoption {
                overall_adoption: r2_opt(percent(adopters, subscribers.len() as i64)),
                by_tier,
                adopters,
                service: name,
            }
        })
        .collect();
    Ok(Json(Adoption {
        services,
        subscribers: subscribers.len() as i64,
        subscribers_by_tier: per_tier,
    }))
}

/// `window`: 1h, 24h (default), 7d or 30d.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowParam {
    /// 1h, 24h, 7d or 30d: the rolling span (as_of − window, as_of]. Default 24h.
    pub window: Option<String>,
}

const NO_CHECKS: &str = "no health checks in the window";

#[derive(Debug, Serialize, ToSchema)]
pub struct ServicePerformance {
    pub service: String,
    /// Successful health checks / health checks × 100; null without checks (see
    /// uptime_note).
    pub uptime: Option<Decimal>,
    /// Set when uptime is null, saying why.
    pub uptime_note: Option<&'static str>,
    pub health_checks: i64,
    /// Mean latency_ms of usage events that report one; null without any.
    pub avg_response_time_ms: Option<Decimal>,
    /// Events with status ≥ 500 / events with a status × 100; null without statuses.
    pub error_rate: Option<Decimal>,
    /// Usage events in the window / minutes in the window.
    pub requests_per_minute: Decimal,
    pub api_calls: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Performance {
    pub window: &'static str,
    pub span: SpanView,
    pub services: Vec<ServicePerformance>,
    /// Over every health check of every service in the window; null without checks.
    pub overall_uptime: Option<Decimal>,
    pub overall_uptime_note: Option<&'static str>,
}

/// Uptime, latency, error rate and throughput of each service over a rolling window.
#[utoipa::path(get, path = "/api/v1/analytics/services/performance", tag = "analytics", params(AsOfParam, WindowParam),
    responses((status = 200, body = Performance), (status = 422, body = ErrorBody)))]
pub async fn performance(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
    Query(p): Query<WindowParam>,
) -> ApiResult<Json<Performance>> {
    let window = Window::parse(p.window.as_deref())?;
    let as_of = a.resolve(&s)?;
    let span = window.span(as_of);
    let keyed = |rows: Vec<UsageRow>| -> HashMap<String, UsageRow> {
        rows.into_iter()
            .filter_map(|r| Some((r.service.clone()?, r)))
            .collect()
    };
    let usage = keyed(
        rows(
            &s,
            &UsageQuery::new(EventKind::Usage, span).group(&[UsageDim::Service]),
        )
        .await?,
    );
    let checks = keyed(
        rows(
            &s,
            &UsageQuery::new(EventKind::HealthCheck, span).group(&[UsageDim::Service]),
        )
        .await?,
    );
    let all_checks = totals(&s, &UsageQuery::new(EventKind::HealthCheck, span)).await?;

    let names: BTreeSet<String> = usage.keys().chain(checks.keys()).cloned().collect();
    let minutes = Decimal::from(window.minutes());
    let services = names
        .into_iter()
        .map(|name| {
            let u = usage.get(&name).cloned().unwrap_or_default();
            let c = checks.get(&name).cloned().unwrap_or_default();
            let uptime = percent(c.up_count, c.events);
            ServicePerformance {
                uptime: r2_opt(uptime),
                uptime_note: uptime.is_none().then_some(NO_CHECKS),
                health_checks: c.events,
                avg_response_time_ms: r2_opt(mean_latency(&u)),
                error_rate: r2_opt(percent(u.error_count, u.status_count)),
                requests_per_minute: r2(Decimal::from(u.events) / minutes),
                api_calls: u.events,
                service: name,
            }
        })
        .collect();
    let overall = percent(all_checks.up_count, all_checks.events);
    Ok(Json(Performance {
        window: window.as_str(),
        span: span.into(),
        services,
        overall_uptime: r2_opt(overall),
        overall_uptime_note: overall.is_none().then_some(NO_CHECKS),
    }))
}
