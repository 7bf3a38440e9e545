//! Liveness, readiness, and the API's own description.

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()), responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can reach its store.
#[utoipa::path(get, path = "/readyz", tag = "meta", security(()),
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(s): State<AppState>) -> ApiResult<Json<Health>> {
    s.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::Unavailable("the store does not answer".into())
    })?;
    Ok(Json(Health { status: "ready" }))
}

/// The OpenAPI 3.1 description of this API, generated from the code.
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi_json(),
    )
}

/// A readable page of the API description that needs no internet access.
pub async fn docs_page() -> Html<&'static str> {
    Html(include_str!("../../assets/docs.html"))
}
