//! Request extractors that turn every client mistake into an [`ApiError`] with the status
//! of api.md, instead of axum's plain-text rejections.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

/// The media type of a request body, as far as tally cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Ndjson,
}

/// Reads the `Content-Type`; anything but JSON (or NDJSON where `allow_ndjson`) is a 415.
pub fn body_type(headers: &HeaderMap, allow_ndjson: bool) -> Result<BodyType, ApiError> {
    let accepted = if allow_ndjson {
        "application/json or application/x-ndjson"
    } else {
        "application/json"
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "missing Content-Type; send {accepted}"
        )));
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(BodyType::Json),
        m if m.starts_with("application/") && m.ends_with("+json") => Ok(BodyType::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" if allow_ndjson => {
            Ok(BodyType::Ndjson)
        }
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type `{mime}` is not accepted here; send {accepted}"
        ))),
    }
}

/// Reads the whole body, mapping the body-size limit to a 413.
pub async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, &()).await.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("the request body is larger than this server accepts".into())
        } else {
            ApiError::BadRequest(format!(
                "could not read the request body: {}",
                rej.body_text()
            ))
        }
    })
}

/// A JSON body parsed into `T`: 415 for another content type, 413 when too large, 400 for
/// a syntax error, 422 naming the field for a wrong type or a missing field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        body_type(req.headers(), false)?;
        let bytes = read_body(req).await?;
        Ok(JsonBody(tally_core::error::parse_json(&bytes)?))
    }
}

/// Query parameters parsed into `T`; a bad one is a 422 naming it.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let field = e.path().to_string();
                ApiError::invalid(
                    if field == "." {
                        "query".to_string()
                    } else {
                        field
                    },
                    e.into_inner().to_string(),
                )
            })
    }
}
