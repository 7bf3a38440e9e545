//! Services: registered here, or known from their first event.

use super::write_status;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Query};
use crate::state::AppState;
use crate::views::*;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use tally_core::input::ServiceInput;

/// Register or update a service.
#[utoipa::path(put, path = "/api/v1/services/{name}", tag = "entities", request_body = ServiceInput,
    params(("name" = String, Path)),
    responses((status = 201, body = ServiceView), (status = 200, body = ServiceView), (status = 422, body = ErrorBody)))]
pub async fn put_service(
    State(s): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<ServiceInput>,
) -> ApiResult<(StatusCode, Json<ServiceView>)> {
    let service = body.validate(&name)?;
    let outcome = s.store.put_service(&service).await?;
    Ok((write_status(outcome), Json(service.into())))
}

/// One service.
#[utoipa::path(get, path = "/api/v1/services/{name}", tag = "entities", params(("name" = String, Path)),
    responses((status = 200, body = ServiceView), (status = 404, body = ErrorBody)))]
pub async fn get_service(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ServiceView>> {
    let svc = s
        .store
        .get_service(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("service `{name}` does not exist")))?;
    Ok(Json(svc.into()))
}

/// Services in name order.
#[utoipa::path(get, path = "/api/v1/services", tag = "entities", params(ListParams),
    responses((status = 200, body = ListPage<ServiceView>), (status = 422, body = ErrorBody)))]
pub async fn list_services(
    State(s): State<AppState>,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<ListPage<ServiceView>>> {
    let page = s.store.list_services(&q.page()?).await?;
    Ok(Json(ListPage::map(page, Into::into)))
}
