//! Event ingestion: a JSON array or NDJSON. Valid events of a batch are stored even when
//! others are rejected; the answer comes only after the store has made them durable.

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{body_type, read_body, BodyType};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::Json;
use serde::Serialize;
use serde_json::value::RawValue;
use tally_core::event::{Event, EventInput};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResult {
    /// Events stored by this request.
    pub accepted: usize,
    /// Events whose id was already stored (before, or earlier in this batch): not counted again.
    pub duplicates: usize,
    /// Events that were not valid, by their position in the batch.
    pub rejected: Vec<Rejection>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rejection {
    /// 0-based position in the array (or among the non-empty NDJSON lines).
    pub index: usize,
    /// The event's id, when it had a readable one.
    pub id: Option<String>,
    pub error: String,
}

/// Splits the body into one raw JSON text per event.
fn split_batch(kind: BodyType, body: &str) -> Result<Vec<&str>, ApiError> {
    match kind {
        BodyType::Json => {
            let items: Vec<&RawValue> = serde_json::from_str(body).map_err(|e| {
                if e.classify() == serde_json::error::Category::Data {
                    ApiError::invalid("body", "expected a JSON array of events (or NDJSON with Content-Type: application/x-ndjson)")
                } else {
                    ApiError::BadRequest(format!("the body is not valid JSON ({e})"))
                }
            })?;
            Ok(items.into_iter().map(RawValue::get).collect())
        }
        BodyType::Ndjson => Ok(body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()),
    }
}

fn parse_event(raw: &str, state: &AppState) -> Result<Event, String> {
    let mut de = serde_json::Deserializer::from_str(raw);
    let input: EventInput = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let msg = msg
            .rsplit_once(" at line ")
            .map_or(msg.as_str(), |(m, _)| m)
            .to_string();
        if inner.is_syntax() || inner.is_eof() {
            format!("not valid JSON: {msg}")
        } else if path == "." {
            msg
        } else {
            format!("{path}: {msg}")
        }
    })?;
    input.validate(&state.prices).map_err(|e| e.to_string())
}

fn id_of(raw: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Value>,
    }
    match serde_json::from_str::<IdOnly>(raw).ok()?.id? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    }
}

/// Ingest usage events, health checks and gauges.
#[utoipa::path(post, path = "/api/v1/events", tag = "events",
    request_body(description = "a JSON array of events, or NDJSON (one event per line) with Content-Type: application/x-ndjson",
        content((Vec<EventInput> = "application/json"), (EventInput = "application/x-ndjson"))),
    responses((status = 200, body = IngestResult, description = "every accepted event is durably stored"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "empty batch, or no valid event in it")))]
pub async fn post_events(
    State(state): State<AppState>,
    req: Request,
) -> ApiResult<Json<IngestResult>> {
    let kind = body_type(req.headers(), true)?;
    let bytes = read_body(req).await?;
    let body = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
    let raws = split_batch(kind, body)?;
    if raws.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "the batch is empty; send at least one event",
        ));
    }
    if raws.len() > state.config.max_batch {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} events in one batch; at most {} per request",
            raws.len(),
            state.config.max_batch
        )));
    }
    let mut events = Vec::with_capacity(raws.len());
    let mut rejected = Vec::new();
    for (index, raw) in raws.iter().enumerate() {
        match parse_event(raw, &state) {
            Ok(e) => events.push(e),
            Err(error) => rejected.push(Rejection {
                index,
                id: id_of(raw),
                error,
            }),
        }
    }
    if events.is_empty() {
        let result = IngestResult {
            accepted: 0,
            duplicates: 0,
            rejected,
        };
        return Err(ApiError::Invalid {
            message: "no event in the batch is valid; see details.rejected".into(),
            details: serde_json::to_value(&result).map_err(anyhow::Error::from)?,
        });
    }
    let stored = state.store.insert_events(&events).await?;
    let accepted = stored.iter().filter(|&&s| s).count();
    Ok(Json(IngestResult {
        accepted,
        duplicates: stored.len() - accepted,
        rejected,
    }))
}
