//! LLM calls: usage summary, costs (by model, by tier, by day) and response-cache
//! statistics. An LLM call is a usage event with a model.

use super::tiers::by_tier_kept;
use super::{
    credits, day_label, days_of, events_per_day, mean_latency, per_day, percent, r2, r2_opt, rows,
    SpanView,
};
use crate::analytics::params::{calendar_days, parse_days_period, AsOfParam, Range};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tally_core::event::EventKind;
use tally_core::time::MICROS_PER_DAY;
use tally_store::{Measure, Span, UsageDim, UsageQuery, UsageRow};
use utoipa::{IntoParams, ToSchema};

fn llm_query(span: Span) -> UsageQuery {
    let mut q = UsageQuery::new(EventKind::Usage, span);
    q.llm_only = true;
    q
}

/// The longest `period` of `llm/costs`, in days.
const MAX_COST_DAYS: i64 = 365;

/// Attributes the LLM calls and cost of whole days to tiers ahead of `llm/costs`: the
/// days with calls among the `MAX_COST_DAYS` ending with the last such day through
/// tomorrow. Returns how many days are kept afterwards.
pub async fn warm_cost_tiers(s: &AppState) -> ApiResult<usize> {
    let tomorrow = super::day_index(s.clock.now()) + 1;
    let all = llm_query(Span::new(0, (tomorrow + 1) * MICROS_PER_DAY));
    let mut calls_per_day = events_per_day(&per_day(s, &all).await?);
    calls_per_day.retain(|_, n| *n > 0);
    let (book, kept) = s.cache.book_and_llm_tiers(s).await?;
    let Some(&last) = calls_per_day.keys().max() else {
        return Ok(kept.len());
    };
    let first = (last - MAX_COST_DAYS + 1).max(0);
    let span = Span::new(first * MICROS_PER_DAY, (last + 1) * MICROS_PER_DAY);
    let q = llm_query(span).only(&[Measure::Events, Measure::Cost]);
    by_tier_kept(s, &book, &kept, &q, &calls_per_day).await?;
    Ok(kept.len())
}

/// `range`: day, week, month (default) or year.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParam {
    /// day, week, month or year: the last 1, 7, 30 or 365 calendar days through `as_of`.
    pub range: Option<String>,
}

/// `period`: `Nd`, the last N calendar days.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysPeriodParam {
    /// `Nd` with N from 1 to 365 (default 30d): the last N calendar days through `as_of`.
    pub period: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenTotals {
    /// All prompt tokens, cached ones included.
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// input + output.
    pub total_tokens: i64,
    /// Parts of `input_tokens` read from the provider's prompt cache.
    pub cache_read_tokens: i64,
    /// Parts of `input_tokens` written to the provider's prompt cache.
    pub cache_write_tokens: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelUsage {
    pub model: String,
    pub provider: Option<String>,
    pub api_calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub cost_credits: Decimal,
    /// Share of the LLM calls of the range, %.
    pub percentage: Option<Decimal>,
    /// Calls of this model with no cost and no known price (counted as 0 credits).
    pub unpriced_calls: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageSummary {
    /// The `range` asked for.
    pub time_range: &'static str,
    pub span: SpanView,
    /// LLM calls in the range.
    pub total_api_calls: i64,
    pub tokens: TokenTotals,
    /// Every model used in the range, by calls (most first), then cost, then name.
    pub top_models: Vec<ModelUsage>,
    pub total_cost_credits: Decimal,
    /// total_cost_credits / total_api_calls; null without calls.
    pub average_cost_per_call: Option<Decimal>,
    /// LLM calls with no cost and no known price, counted as 0 credits.
    pub unpriced_calls: i64,
}

/// LLM usage over a range: calls, tokens and cost, by model and provider.
#[utoipa::path(get, path = "/api/v1/llm/usage/summary", tag = "analytics", params(AsOfParam, RangeParam),
    responses((status = 200, body = UsageSummary), (status = 422, body = ErrorBody)))]
pub async fn usage_summary(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
    Query(p): Query<RangeParam>,
) -> ApiResult<Json<UsageSummary>> {
    let range = Range::parse(p.range.as_deref())?;
    let as_of = a.resolve(&s)?;
    let span = range.span(as_of);
    let groups = rows(
        &s,
        &llm_query(span).group(&[UsageDim::Model, UsageDim::Provider]),
    )
    .await?;
    let mut total = UsageRow::default();
    for g in &groups {
        super::tiers::add(&mut total, g);
    }
    let mut models: Vec<&UsageRow> = groups.iter().filter(|g| g.events > 0).collect();
    models.sort_by(|a, b| {
        b.events
            .cmp(&a.events)
            .then(b.cost.cmp(&a.cost))
            .then(a.model.cmp(&b.model))
            .then(a.provider.cmp(&b.provider))
    });
    let top_models = models
        .into_iter()
        .map(|g| ModelUsage {
            model: g.model.clone().unwrap_or_default(),
            provider: g.provider.clone(),
            api_calls: g.events,
            input_tokens: g.input_tokens,
            output_tokens: g.output_tokens,
            total_tokens: g.input_tokens + g.output_tokens,
            cost_credits: r2(credits(g.cost)),
            percentage: r2_opt(percent(g.events, total.events)),
            unpriced_calls: g.unpriced,
        })
        .collect();
    let total_cost = credits(total.cost);
    Ok(Json(UsageSummary {
        time_range: range.as_str(),
        span: span.into(),
        total_api_calls: total.events,
        tokens: TokenTotals {
            input_tokens: total.input_tokens,
            output_tokens: total.output_tokens,
            total_tokens: total.input_tokens + total.output_tokens,
            cache_read_tokens: total.cache_read_tokens,
            cache_write_tokens: total.cache_write_tokens,
        },
        top_models,
        total_cost_credits: r2(total_cost),
        average_cost_per_call: r2_opt(
            (total.events > 0).then(|| total_cost / Decimal::from(total.events)),
        ),
        unpriced_calls: total.unpriced,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelCost {
    pub model: String,
    pub cost_credits: Decimal,
    pub api_calls: i64,
    /// Share of the period's LLM cost, %; null when the period cost nothing.
    pub percentage: Option<Decimal>,
    pub unpriced_calls: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TierCost {
    /// The customer's tier at the event's time; `trial`; or `none` (no customer, or no
    /// active subscription then).
    pub tier: String,
    pub cost_credits: Decimal,
    pub api_calls: i64,
    /// Share of the period's LLM cost, %; null when the period cost nothing.
    pub percentage: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DailyCost {
    /// UTC date, YYYY-MM-DD.
    pub date: String,
    pub cost_credits: Decimal,
    pub api_calls: i64,
    pub total_tokens: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostReport {
    /// The `period` asked for, e.g. `30d`.
    pub period: String,
    pub span: SpanView,
    pub total_cost_credits: Decimal,
    /// Total cost / days in the period.
    pub average_daily_cost: Decimal,
    /// By cost (highest first), then name.
    pub cost_by_model: Vec<ModelCost>,
    /// By cost (highest first), then name.
    pub cost_by_tier: Vec<TierCost>,
    /// One row per date of the period, oldest first, zero-filled.
    pub daily_trend: Vec<DailyCost>,
    pub total_api_calls: i64,
    /// LLM calls with no cost and no known price, counted as 0 credits.
    pub unpriced_calls: i64,
}

/// LLM cost over the last N days: by model, by the customer's tier at each call, by day.
#[utoipa::path(get, path = "/api/v1/llm/costs", tag = "analytics", params(AsOfParam, DaysPeriodParam),
    responses((status = 200, body = CostReport), (status = 422, body = ErrorBody)))]
pub async fn costs(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
    Query(p): Query<DaysPeriodParam>,
) -> ApiResult<Json<CostReport>> {
    let days = parse_days_period(p.period.as_deref())?;
    let as_of = a.resolve(&s)?;
    let span = calendar_days(as_of, days);
    let q = llm_query(span);

    let by_model = rows(&s, &q.clone().group(&[UsageDim::Model])).await?;
    let mut total = UsageRow::default();
    for r in &by_model {
        super::tiers::add(&mut total, r);
    }
    let total_cost = credits(total.cost);
    let share = |cost: i64| r2_opt(percent(cost, total.cost));

    let mut cost_by_model: Vec<&UsageRow> = by_model.iter().filter(|r| r.events > 0).collect();
    cost_by_model.sort_by(|a, b| b.cost.cmp(&a.cost).then(a.model.cmp(&b.model)));
    let cost_by_model = cost_by_model
        .into_iter()
        .map(|r| ModelCost {
            model: r.model.clone().unwrap_or_default(),
            cost_credits: r2(credits(r.cost)),
            api_calls: r.events,
            percentage: share(r.cost),
            unpriced_calls: r.unpriced,
        })
        .collect();

    let per_day = per_day(&s, &q).await?;
    let calls_per_day = events_per_day(&per_day);

    let (book, kept) = s.cache.book_and_llm_tiers(&s).await?;
    // The tiers need calls and cost only; a day not kept reads a row per customer.
    let tiers = by_tier_kept(
        &s,
        &book,
        &kept,
        &q.clone().only(&[Measure::Events, Measure::Cost]),
        &calls_per_day,
    )
    .await?;
    let mut cost_by_tier: Vec<(String, UsageRow)> = tiers.into_iter().collect();
    cost_by_tier.sort_by(|a, b| b.1.cost.cmp(&a.1.cost).then(a.0.cmp(&b.0)));
    let cost_by_tier = cost_by_tier
        .into_iter()
        .map(|(tier, r)| TierCost {
            tier,
            cost_credits: r2(credits(r.cost)),
            api_calls: r.events,
            percentage: share(r.cost),
        })
        .collect();

    let daily_trend = days_of(span)
        .map(|d| {
            let r = per_day.get(&d).cloned().unwrap_or_default();
            DailyCost {
                date: day_label(d),
                cost_credits: r2(credits(r.cost)),
                api_calls: r.events,
                total_tokens: r.input_tokens + r.output_tokens,
            }
        })
        .collect();

    Ok(Json(CostReport {
        period: format!("{days}d"),
        span: span.into(),
        total_cost_credits: r2(total_cost),
        average_daily_cost: r2(total_cost / Decimal::from(days)),
        cost_by_model,
        cost_by_tier,
        daily_trend,
        total_api_calls: total.events,
        unpriced_calls: total.unpriced,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CacheLatency {
    /// Mean latency_ms of cache hits that report one; null without any.
    pub cache_hit: Option<Decimal>,
    /// Mean latency_ms of the other LLM calls that report one; null without any.
    pub cache_miss: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CacheStats {
    pub time_range: &'static str,
    pub span: SpanView,
    /// cache_hits / total_requests × 100; null without LLM calls.
    pub cache_hit_rate: Option<Decimal>,
    /// LLM calls in the range.
    pub total_requests: i64,
    /// LLM calls with `cache_hit` true.
    pub cache_hits: i64,
    /// The other LLM calls (`cache_hit` false or not reported).
    pub cache_misses: i64,
    /// Latest `llm_cache_size_bytes` gauge at or before `as_of`, in MiB; null if never
    /// reported.
    pub cache_size_mb: Option<Decimal>,
    /// Σ over models of hits × mean cost of that model's priced misses in the range.
    pub estimated_cost_saved_credits: Decimal,
    /// Hits of models without a priced miss in the range: their saving is unknown and not
    /// in the estimate.
    pub unvalued_cache_hits: i64,
    pub average_response_time_ms: CacheLatency,
    /// LLM calls with no cost and no known price, counted as 0 credits.
    pub unpriced_calls: i64,
}

/// Response-cache hit rate, estimated savings, cache size and latency of hits and misses.
#[utoipa::path(get, path = "/api/v1/llm/cache-stats", tag = "analytics", params(AsOfParam, RangeParam),
    responses((status = 200, body = CacheStats), (status = 422, body = ErrorBody)))]
pub async fn cache_stats(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
    Query(p): Query<RangeParam>,
) -> ApiResult<Json<CacheStats>> {
    let range = Range::parse(p.range.as_deref())?;
    let as_of = a.resolve(&s)?;
    let span = range.span(as_of);
    let groups = rows(
        &s,
        &llm_query(span).group(&[UsageDim::Model, UsageDim::CacheHit]),
    )
    .await?;

    let (mut hits, mut misses, mut all) = (
        UsageRow::default(),
        UsageRow::default(),
        UsageRow::default(),
    );
    // Per model: (hits, miss cost in micro-credits, priced misses).
    let mut per_model: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for g in &groups {
        super::tiers::add(&mut all, g);
        let m = per_model
            .entry(g.model.clone().unwrap_or_default())
            .or_default();
        if g.cache_hit == Some(true) {
            super::tiers::add(&mut hits, g);
            m.0 += g.events;
        } else {
            super::tiers::add(&mut misses, g);
            m.1 += g.cost;
            m.2 += g.events - g.unpriced;
        }
    }
    let mut saved = Decimal::ZERO;
    let mut unvalued = 0;
    for (hit_count, miss_cost, priced_misses) in per_model.values() {
        if *hit_count == 0 {
            continue;
        }
        if *priced_misses == 0 {
            unvalued += hit_count;
        } else {
            saved +=
                Decimal::from(*hit_count) * credits(*miss_cost) / Decimal::from(*priced_misses);
        }
    }
    let gauge = s.store.latest_gauge("llm_cache_size_bytes", as_of).await?;
    let mib = Decimal::from(1024 * 1024);
    let cache_size_mb = gauge
        .and_then(|b| Decimal::try_from(b).ok())
        .map(|b| r2(b / mib));

    Ok(Json(CacheStats {
        time_range: range.as_str(),
        span: span.into(),
        cache_hit_rate: r2_opt(percent(hits.events, all.events)),
        total_requests: all.events,
        cache_hits: hits.events,
        cache_misses: misses.events,
        cache_size_mb,
        estimated_cost_saved_credits: r2(saved),
        unvalued_cache_hits: unvalued,
        average_response_time_ms: CacheLatency {
            cache_hit: r2_opt(mean_latency(&hits)),
            cache_miss: r2_opt(mean_latency(&misses)),
        },
        unpriced_calls: all.unpriced,
    }))
}
