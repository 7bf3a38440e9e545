//! Plans and subscriptions (with their changes and cancellation).

use super::write_status;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Query};
use crate::state::AppState;
use crate::views::*;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tally_core::input::{CancelInput, ChangeInput, PlanInput, SubscriptionInput};

/// Create or update a plan.
#[utoipa::path(put, path = "/api/v1/plans/{id}", tag = "entities", request_body = PlanInput,
    params(("id" = String, Path, description = "your plan id")),
    responses((status = 201, body = PlanView, description = "created"), (status = 200, body = PlanView, description = "updated or unchanged"),
        (status = 422, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn put_plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PlanInput>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    let plan = body.validate(&id, &s.money)?;
    let outcome = s.store.put_plan(&plan).await?;
    Ok((
        write_status(outcome),
        Json(PlanView::new(plan, s.money.reporting)),
    ))
}

/// One plan.
#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "entities", params(("id" = String, Path)),
    responses((status = 200, body = PlanView), (status = 404, body = ErrorBody)))]
pub async fn get_plan(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PlanView>> {
    let plan = s
        .store
        .get_plan(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("plan `{id}` does not exist")))?;
    Ok(Json(PlanView::new(plan, s.money.reporting)))
}

/// Plans in id order.
#[utoipa::path(get, path = "/api/v1/plans", tag = "entities", params(ListParams),
    responses((status = 200, body = ListPage<PlanView>), (status = 422, body = ErrorBody)))]
pub async fn list_plans(
    State(s): State<AppState>,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<ListPage<PlanView>>> {
    let page = s.store.list_plans(&q.page()?).await?;
    let c = s.money.reporting;
    Ok(Json(ListPage::map(page, |p| PlanView::new(p, c))))
}

/// Create a subscription; the same content again is a no-op, other content a 409.
#[utoipa::path(put, path = "/api/v1/subscriptions/{id}", tag = "entities", request_body = SubscriptionInput,
    params(("id" = String, Path)),
    responses((status = 201, body = SubscriptionView), (status = 200, body = SubscriptionView),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_subscription(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SubscriptionInput>,
) -> ApiResult<(StatusCode, Json<SubscriptionView>)> {
    let sub = body.validate(&id)?;
    let outcome = s.store.put_subscription(&sub).await?;
    Ok((
        write_status(outcome),
        Json(load_subscription(&s, &id).await?),
    ))
}

/// Change plan, quantity or discount from `effective_at` on (keyed by subscription and
/// `effective_at`).
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/changes", tag = "entities", request_body = ChangeInput,
    params(("id" = String, Path)),
    responses((status = 201, body = SubscriptionView), (status = 200, body = SubscriptionView),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn post_change(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ChangeInput>,
) -> ApiResult<(StatusCode, Json<SubscriptionView>)> {
    let change = body.validate(&id)?;
    let outcome = s.store.put_change(&change).await?;
    Ok((
        write_status(outcome),
        Json(load_subscription(&s, &id).await?),
    ))
}

/// Cancel: service ends at `effective_at`.
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/cancel", tag = "entities", request_body = CancelInput,
    params(("id" = String, Path)),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn cancel_subscription(
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CancelInput>,
) -> ApiResult<Json<SubscriptionView>> {
    let at = body.validate()?;
    s.store.cancel_subscription(&id, at).await?;
    Ok(Json(load_subscription(&s, &id).await?))
}

/// One subscription with its changes.
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}", tag = "entities", params(("id" = String, Path)),
    responses((status = 200, body = SubscriptionView), (status = 404, body = ErrorBody)))]
pub async fn get_subscription(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionView>> {
    Ok(Json(load_subscription(&s, &id).await?))
}

/// Subscriptions in id order.
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "entities", params(ListParams),
    responses((status = 200, body = ListPage<SubscriptionView>), (status = 422, body = ErrorBody)))]
pub async fn list_subscriptions(
    State(s): State<AppState>,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<ListPage<SubscriptionView>>> {
    let page = s.store.list_subscriptions(&q.page()?).await?;
    Ok(Json(ListPage::map(page, Into::into)))
}

async fn load_subscription(s: &AppState, id: &str) -> ApiResult<SubscriptionView> {
    let rec = s
        .store
        .get_subscription(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("subscription `{id}` does not exist")))?;
    Ok(rec.into())
}
