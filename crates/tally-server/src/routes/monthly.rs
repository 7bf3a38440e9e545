//! Monthly records: costs and marketing spend, upserted in batches.

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::views::UpsertSummary;
use axum::extract::State;
use axum::Json;
use tally_core::input::{CostInput, SpendInput};
use tally_core::{FieldError, InputError};

/// Most records in one batch of costs or spend.
const MAX_RECORDS: usize = 10_000;

/// Validates every record; any invalid record rejects the whole batch (422), naming it by
/// index, so a batch of costs is stored whole or not at all.
fn validate_all<I, T>(
    items: Vec<I>,
    f: impl Fn(I) -> Result<T, FieldError>,
) -> Result<Vec<T>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "the batch is empty; send at least one record",
        ));
    }
    if items.len() > MAX_RECORDS {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} records in one batch; at most {MAX_RECORDS}",
            items.len()
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match f(item) {
            Ok(v) => out.push(v),
            Err(e) => errors.push(FieldError::new(format!("[{i}].{}", e.field), e.message)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(InputError::Invalid(errors).into())
    }
}

/// Upsert monthly costs by (month, category, service).
#[utoipa::path(post, path = "/api/v1/costs", tag = "entities", request_body = Vec<CostInput>,
    responses((status = 200, body = UpsertSummary), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn post_costs(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<Vec<CostInput>>,
) -> ApiResult<Json<UpsertSummary>> {
    let records = validate_all(body, |c| c.validate(&s.money))?;
    let outcomes = s.store.put_costs(&records).await?;
    Ok(Json(UpsertSummary::of(&outcomes)))
}

/// Upsert marketing spend by (month, channel).
#[utoipa::path(post, path = "/api/v1/marketing-spend", tag = "entities", request_body = Vec<SpendInput>,
    responses((status = 200, body = UpsertSummary), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn post_spend(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<Vec<SpendInput>>,
) -> ApiResult<Json<UpsertSummary>> {
    let records = validate_all(body, |c| c.validate(&s.money))?;
    let outcomes = s.store.put_spend(&records).await?;
    Ok(Json(UpsertSummary::of(&outcomes)))
}
