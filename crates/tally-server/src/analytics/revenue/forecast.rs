//! MRR forecast (endpoint 7).

use super::{load_book, r2};
use crate::analytics::params::{bounded, AsOfParam};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tally_core::billing::ledger::Ledger;
use tally_core::forecast::{self as fc, Model, MIN_POINTS};
use tally_core::time::Month;
use utoipa::{IntoParams, ToSchema};

/// Complete months the forecast is fitted on, at most.
const MAX_FIT_MONTHS: i32 = 24;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForecastParams {
    /// Months after the current month, 1..12 (default 6).
    pub months_ahead: Option<String>,
    /// Prediction interval level in percent: 95 (default) or 80.
    pub confidence: Option<String>,
    /// linear_trend (default) or holt.
    pub model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastMonth {
    #[schema(value_type = String)]
    pub month: Month,
    pub forecasted_mrr: Decimal,
    /// Clamped at 0.
    pub lower_bound: Decimal,
    pub upper_bound: Decimal,
    /// The interval level, percent.
    pub confidence: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastReport {
    /// Empty when there are fewer than 3 complete months to fit (see `reason`).
    pub forecast: Vec<ForecastMonth>,
    /// linear_trend or holt.
    pub model: String,
    /// Fitted monthly trend / MRR of the last complete month × 100; null without a fit or
    /// when that MRR is 0.
    pub growth_rate: Option<Decimal>,
    /// Complete months the model was fitted on.
    pub fitted_months: u64,
    /// First and last fitted month.
    #[schema(value_type = Option<String>)]
    pub fitted_from: Option<Month>,
    #[schema(value_type = Option<String>)]
    pub fitted_to: Option<Month>,
    /// Mean absolute percentage error of one-step-ahead forecasts over the fitted months.
    pub backtest_mape: Option<Decimal>,
    /// Why the forecast is empty, if it is.
    pub reason: Option<String>,
}

fn dec(v: f64) -> Decimal {
    Decimal::from_f64(v).unwrap_or_default()
}

/// Forecast of month-end MRR for the months after the current one.
#[utoipa::path(get, path = "/api/v1/analytics/revenue/forecast", tag = "analytics", params(AsOfParam, ForecastParams),
    responses((status = 200, body = ForecastReport), (status = 422, body = ErrorBody)))]
pub async fn forecast(
    State(s): State<AppState>,
    Query(a): Query<AsOfParam>,
    Query(p): Query<ForecastParams>,
) -> ApiResult<Json<ForecastReport>> {
    let as_of = a.resolve(&s)?;
    let ahead = bounded("months_ahead", p.months_ahead.as_deref(), 6, 1, 12)? as usize;
    let confidence: u32 = match p.confidence.as_deref().unwrap_or("95") {
        "95" => 95,
        "80" => 80,
        other => {
            return Err(ApiError::invalid(
                "confidence",
                format!("`{other}` is not accepted; accepted values: 95, 80"),
            ))
        }
    };
    let model = match p.model.as_deref() {
        None => Model::LinearTrend,
        Some(m) => Model::parse(m).ok_or_else(|| {
            ApiError::invalid(
                "model",
                format!(
                    "`{m}` is not accepted; accepted values: {}",
                    Model::ACCEPTED
                ),
            )
        })?,
    };
    let book = load_book(&s).await?;
    let l = Ledger::new(&book, as_of);
    // The last up-to-24 complete months, leaving out the months before MRR first
    // appeared: a business's pre-launch zeros are not part of its trend.
    let mut months: Vec<Month> = (1..=MAX_FIT_MONTHS)
        .rev()
        .map(|k| l.current.add(-k))
        .collect();
    let y_dec: Vec<Decimal> = months.iter().map(|&m| l.total_mrr(m)).collect();
    let skip = y_dec
        .iter()
        .position(|v| !v.is_zero())
        .unwrap_or(y_dec.len());
    months.drain(..skip);
    let y: Vec<f64> = y_dec[skip..]
        .iter()
        .map(|v| v.to_f64().unwrap_or(0.0))
        .collect();
    let mut report = ForecastReport {
        forecast: Vec::new(),
        model: model.as_str().to_string(),
        growth_rate: None,
        fitted_months: y.len() as u64,
        fitted_from: months.first().copied(),
        fitted_to: months.last().copied(),
        backtest_mape: None,
        reason: None,
    };
    // Month M + j lies j + 1 months after the last complete month M − 1.
    let steps: Vec<usize> = (1..=ahead).map(|j| j + 1).collect();
    let Some(f) = fc::forecast(&y, model, &steps, confidence as f64) else {
        report.reason = Some(format!(
            "a forecast needs at least {MIN_POINTS} complete months with MRR; {} available",
            y.len()
        ));
        return Ok(Json(report));
    };
    let last = y_dec[y_dec.len() - 1];
    report.growth_rate = (!last.is_zero()).then(|| r2(dec(f.slope) / last * Decimal::ONE_HUNDRED));
    report.backtest_mape = f.mape.map(|v| r2(dec(v)));
    report.forecast = f
        .points
        .iter()
        .enumerate()
        .map(|(j, pt)| ForecastMonth {
            month: l.current.add(j as i32 + 1),
            forecasted_mrr: r2(dec(pt.value)),
            lower_bound: r2(dec(pt.lower)),
            upper_bound: r2(dec(pt.upper)),
            confidence,
        })
        .collect();
    Ok(Json(report))
}
