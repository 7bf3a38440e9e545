//! Single usage figures over a span, unrounded, for the composite endpoints (metrics
//! summary, KPIs, alerts, billing summary) and for this module's own endpoints.

use super::{credits, credits_to_money, mean_latency, percent, totals};
use crate::error::ApiResult;
use crate::state::AppState;
use rust_decimal::Decimal;
use tally_core::event::EventKind;
use tally_store::{Span, UsageQuery};

/// API calls: usage events in the span.
pub async fn api_calls(state: &AppState, span: Span) -> ApiResult<i64> {
    Ok(totals(state, &UsageQuery::new(EventKind::Usage, span))
        .await?
        .events)
}

/// Active customers: distinct customers with at least one usage event in the span.
pub async fn active_customers(state: &AppState, span: Span) -> ApiResult<i64> {
    let active = state
        .store
        .active_customers(EventKind::Usage, span, false)
        .await?;
    Ok(active.all().len() as i64)
}

/// Uptime %: successful health checks / health checks × 100; `None` without checks.
pub async fn uptime(state: &AppState, span: Span) -> ApiResult<Option<Decimal>> {
    let t = totals(state, &UsageQuery::new(EventKind::HealthCheck, span)).await?;
    Ok(percent(t.up_count, t.events))
}

/// Error rate %: usage events with status ≥ 500 / usage events with a status × 100.
pub async fn error_rate(state: &AppState, span: Span) -> ApiResult<Option<Decimal>> {
    let t = totals(state, &UsageQuery::new(EventKind::Usage, span)).await?;
    Ok(percent(t.error_count, t.status_count))
}

/// Mean `latency_ms` of the usage events that carry one.
pub async fn avg_response_time_ms(state: &AppState, span: Span) -> ApiResult<Option<Decimal>> {
    let t = totals(state, &UsageQuery::new(EventKind::Usage, span)).await?;
    Ok(mean_latency(&t))
}

/// Cost of the LLM calls in the span, in money of the reporting currency.
pub async fn llm_cost(state: &AppState, span: Span) -> ApiResult<Decimal> {
    Ok(credits_to_money(
        state,
        llm_cost_credits(state, span).await?,
    ))
}

/// Cost of the LLM calls in the span, in credits.
pub async fn llm_cost_credits(state: &AppState, span: Span) -> ApiResult<Decimal> {
    let mut q = UsageQuery::new(EventKind::Usage, span);
    q.llm_only = true;
    Ok(credits(totals(state, &q).await?.cost))
}
