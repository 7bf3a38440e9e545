//! Event ingestion: a JSON array or NDJSON. Valid events of a batch are stored even when
//! others are rejected; the answer comes only after the store has made them durable.

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{body_type, read_body, BodyType};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::Json;
use serde::{Deserialize as _, Serialize};
use serde_json::value::RawValue;
use tally_core::event::{Event, EventInput};
use tally_core::pricing::PriceTable;
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

fn parse_event(raw: &str, prices: &PriceTable) -> Result<Event, String> {
    // Most events are valid: parse them directly, and only an event that fails is parsed
    // again through serde_path_to_error, whose path makes the message (tracking the path
    // of every field of every event cost about a third of the parsing). Neither checks
    // for anything after the value, so both accept and refuse the same texts.
    let mut de = serde_json::Deserializer::from_str(raw);
    let input = match EventInput::deserialize(&mut de) {
        Ok(input) => input,
        Err(_) => return Err(parse_error(raw)),
    };
    input.validate(prices).map_err(|e| e.to_string())
}

/// Why `raw` is not an event, naming the field.
fn parse_error(raw: &str) -> String {
    let mut de = serde_json::Deserializer::from_str(raw);
    let Err(e) = serde_path_to_error::deserialize::<_, EventInput>(&mut de) else {
        // Unreachable: the same input failed to parse a moment ago.
        return "not a valid event".into();
    };
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
        match parse_event(raw, &state.prices) {
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
    let stored = state.store.insert_owned_events(events).await?;
    let accepted = stored.iter().filter(|&&s| s).count();
    Ok(Json(IngestResult {
        accepted,
        duplicates: stored.len() - accepted,
        rejected,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch like the benchmark's: LLM calls with every field a client sends.
    pub(crate) fn sample_batch(n: usize, ndjson: bool) -> String {
        let events: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"id":"evt_42_{i:08}","type":"usage","time":"2025-08-30T{:02}:{:02}:{:02}.{:06}Z","customer_id":"cus_{:06}","service":"llm_inference","quantity":"1","unit":"tokens","model":"{}","provider":"openai","input_tokens":{},"cache_read_tokens":{},"cache_write_tokens":0,"output_tokens":{},"cache_hit":{},"latency_ms":{}.25,"status_code":200}}"#,
                    i % 24,
                    i % 60,
                    (i * 7) % 60,
                    (i * 7919) % 1_000_000,
                    (i * 37) % 10_000,
                    ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"][i % 3],
                    1000 + i % 3000,
                    i % 500,
                    200 + i % 700,
                    i % 4 == 0,
                    300 + i % 2000,
                )
            })
            .collect();
        if ndjson {
            events.join("\n")
        } else {
            format!("[{}]", events.join(","))
        }
    }

    /// The parser as it was before the fast path: every event through serde_path_to_error.
    fn parse_event_tracked(raw: &str, prices: &PriceTable) -> Result<Event, String> {
        let mut de = serde_json::Deserializer::from_str(raw);
        match serde_path_to_error::deserialize::<_, EventInput>(&mut de) {
            Ok(input) => input.validate(prices).map_err(|e| e.to_string()),
            Err(_) => Err(parse_error(raw)),
        }
    }

    #[test]
    fn the_fast_path_accepts_and_refuses_as_the_tracked_parser_does() {
        let prices = PriceTable::builtin(1000.into());
        let ok = r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s"}"#;
        let cases = [
            ok.to_string(),
            format!("{ok} trailing"),
            r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s","input_tokens":"x"}"#.into(),
            r#"{"time":"2025-11-20T10:00:00Z","service":"s"}"#.into(),
            r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s","#.into(),
            r#"{"id":"e","time":"yesterday","service":"s"}"#.into(),
            r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s","quantity":"1e400"}"#.into(),
            r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s","cost_credits":-1}"#.into(),
            r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s","cache_hit":1}"#.into(),
            r#"{"id":"e","time":"2025-11-20T10:00:00Z","type":"gauge","name":"g","value":1.5}"#
                .into(),
            "[1, 2]".into(),
            "null".into(),
            "".into(),
        ];
        for raw in &cases {
            assert_eq!(
                parse_event(raw, &prices),
                parse_event_tracked(raw, &prices),
                "{raw}"
            );
        }
        assert_eq!(
            parse_event(&cases[2], &prices).unwrap_err(),
            r#"input_tokens: invalid type: string "x", expected i64"#
        );
        assert_eq!(
            parse_event(&cases[3], &prices).unwrap_err(),
            "missing field `id`"
        );
        for body in [sample_batch(50, false), sample_batch(50, true)] {
            let kind = if body.starts_with('[') {
                BodyType::Json
            } else {
                BodyType::Ndjson
            };
            for raw in split_batch(kind, &body).unwrap() {
                let fast = parse_event(raw, &prices).unwrap();
                assert_eq!(Ok(fast), parse_event_tracked(raw, &prices));
            }
        }
    }

    #[test]
    #[ignore = "a measurement, not a test; run in release"]
    fn parse_speed() {
        let prices = PriceTable::builtin(1000.into());
        for ndjson in [false, true] {
            let body = sample_batch(1000, ndjson);
            let kind = if ndjson {
                BodyType::Ndjson
            } else {
                BodyType::Json
            };
            let rounds = 200;
            let t = std::time::Instant::now();
            let mut n = 0;
            for _ in 0..rounds {
                for raw in split_batch(kind, &body).unwrap() {
                    n += parse_event(raw, &prices).is_ok() as usize;
                }
            }
            let per = t.elapsed().as_secs_f64() / (rounds * 1000) as f64 * 1e6;
            assert_eq!(n, rounds * 1000);
            println!(
                "ndjson {ndjson}: {per:.2} us/event ({} bytes/event)",
                body.len() / 1000
            );
        }
    }
}
