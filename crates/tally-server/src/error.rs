//! The one error type of the HTTP API and its mapping to statuses (api.md "Errors").
//! Internal errors are logged once here and answered with a generic message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tally_core::{FieldError, InputError};
use tally_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A value is invalid; `details` lists each field and what it accepts.
    #[error("{message}")]
    Invalid {
        message: String,
        details: serde_json::Value,
    },
    #[error("rate limited; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// `{"error": {"code", "message", "details"}}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: bad_request, unauthorized, forbidden, not_found,
    /// conflict, payload_too_large, unsupported_media_type, invalid, rate_limited,
    /// unavailable, internal.
    pub code: &'static str,
    /// For a person.
    pub message: String,
    /// Structured specifics, such as the invalid fields.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        FieldError::new(field, message).into()
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Invalid { .. } => "invalid",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, details) = match &self {
            ApiError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                (
                    "internal error; the server logged the cause".to_string(),
                    serde_json::Value::Null,
                )
            }
            ApiError::Invalid { message, details } => (message.clone(), details.clone()),
            other => (other.to_string(), serde_json::Value::Null),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                details,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        resp
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Invalid {
            message: e.to_string(),
            details: serde_json::json!({ "fields": [e] }),
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Malformed(m) => ApiError::BadRequest(m),
            InputError::Invalid(fields) => {
                let message = InputError::Invalid(fields.clone()).to_string();
                ApiError::Invalid {
                    message,
                    details: serde_json::json!({ "fields": fields }),
                }
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::UnknownReference { field, .. } => {
                let msg = e.to_string();
                let detail = msg
                    .strip_prefix(&format!("{field}: "))
                    .unwrap_or(&msg)
                    .to_string();
                FieldError::new(field, detail).into()
            }
            StoreError::BadCursor => ApiError::invalid(
                "cursor",
                "is not a cursor this API returned; start again without one",
            ),
            other => ApiError::Internal(other.into()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
