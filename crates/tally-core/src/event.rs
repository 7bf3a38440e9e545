//! Usage events: the wire shape, its validation, and the normalized record the stores keep.

use crate::decimal;
use crate::error::FieldError;
use crate::money;
use crate::pricing::PriceTable;
use crate::time::{parse_instant, Micros};
use rust_decimal::Decimal;
use serde::Deserialize;

/// Most events one request may carry; larger batches are a 413.
pub const MAX_BATCH: usize = 10_000;
pub const MAX_ID_LEN: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Usage,
    HealthCheck,
    Gauge,
}

impl EventKind {
    pub const ACCEPTED: &'static str = "usage, health_check, gauge";

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Usage => "usage",
            EventKind::HealthCheck => "health_check",
            EventKind::Gauge => "gauge",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        match s {
            "usage" => Some(EventKind::Usage),
            "health_check" => Some(EventKind::HealthCheck),
            "gauge" => Some(EventKind::Gauge),
            _ => None,
        }
    }
}

/// Where an event's cost came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CostSource {
    /// The client sent `cost_credits`.
    Given,
    /// Priced at ingestion from the model price table.
    Priced,
    /// No cost sent and no price known: counted as 0 and reported as unpriced.
    Unpriced,
}

impl CostSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Given => "given",
            CostSource::Priced => "priced",
            CostSource::Unpriced => "unpriced",
        }
    }

    pub fn parse(s: &str) -> Option<CostSource> {
        match s {
            "given" => Some(CostSource::Given),
            "priced" => Some(CostSource::Priced),
            "unpriced" => Some(CostSource::Unpriced),
            _ => None,
        }
    }
}

/// An event as a client sends it. Everything but `id`, `time` and (for usage and health
/// checks) `service` is optional; unknown fields are ignored.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct EventInput {
    pub id: String,
    pub time: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub customer_id: Option<String>,
    pub service: Option<String>,
    #[serde(default, deserialize_with = "decimal::de_opt")]
    pub quantity: Option<Decimal>,
    pub unit: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub input_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_hit: Option<bool>,
    pub latency_ms: Option<f64>,
    pub status_code: Option<i64>,
    #[serde(default, deserialize_with = "decimal::de_opt")]
    pub cost_credits: Option<Decimal>,
    pub up: Option<bool>,
    pub name: Option<String>,
    pub value: Option<f64>,
}

/// A validated event, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    pub time: Micros,
    pub customer_id: Option<String>,
    pub service: Option<String>,
    /// Units used, in micros (1 unit = 1,000,000).
    pub quantity: i64,
    pub unit: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub input_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub output_tokens: i64,
    pub cache_hit: Option<bool>,
    pub latency_ms: Option<f64>,
    pub status_code: Option<i32>,
    /// Cost in micro-credits: as sent, or priced; 0 when unpriced.
    pub cost: i64,
    pub cost_source: CostSource,
    pub up: Option<bool>,
    pub gauge_name: Option<String>,
    pub gauge_value: Option<f64>,
}

impl Event {
    /// An event with only its id, kind and time set: quantity 1 unit, no tokens, no cost
    /// (unpriced), every optional field absent. Callers set the rest with `..`.
    pub fn blank(id: impl Into<String>, kind: EventKind, time: Micros) -> Event {
        Event {
            id: id.into(),
            kind,
            time,
            customer_id: None,
            service: None,
            quantity: money::MICROS,
            unit: None,
            model: None,
            provider: None,
            input_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            output_tokens: 0,
            cache_hit: None,
            latency_ms: None,
            status_code: None,
            cost: 0,
            cost_source: CostSource::Unpriced,
            up: None,
            gauge_name: None,
            gauge_value: None,
        }
    }
}

/// Checks an identifier sent by a client (entity or event id, service name).
pub fn validate_id(field: &str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_ID_LEN} bytes"),
        ));
    }
    if id.chars().any(|c| c.is_control()) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Service names appear in URLs, so they are kept to a URL-safe alphabet.
pub fn validate_service_name(field: &str, name: &str) -> Result<(), FieldError> {
    validate_id(field, name)?;
    if name.len() > 100
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(FieldError::new(
            field,
            format!(
                "`{name}` is not a service name; use at most 100 letters, digits, '_', '-' or '.'"
            ),
        ));
    }
    Ok(())
}

fn non_negative(field: &str, v: Option<i64>) -> Result<i64, FieldError> {
    match v {
        None => Ok(0),
        Some(n) if n < 0 => Err(FieldError::new(
            field,
            format!("must be a whole number ≥ 0 (got {n})"),
        )),
        Some(n) => Ok(n),
    }
}

fn short_text(field: &str, v: Option<String>) -> Result<Option<String>, FieldError> {
    match v {
        Some(s) if s.len() > MAX_ID_LEN => Err(FieldError::new(
            field,
            format!("must be at most {MAX_ID_LEN} bytes"),
        )),
        Some(s) if s.is_empty() => Ok(None),
        other => Ok(other),
    }
}

impl EventInput {
    /// Validates and normalizes the event, pricing LLM calls that carry no cost.
    pub fn validate(self, prices: &PriceTable) -> Result<Event, FieldError> {
        validate_id("id", &self.id)?;
        let time = parse_instant("time", &self.time)?;
        let kind = match self.kind.as_deref() {
            None => EventKind::Usage,
            Some(k) => EventKind::parse(k).ok_or_else(|| {
                FieldError::new(
                    "type",
                    format!(
                        "`{k}` is not an event type; accepted: {}",
                        EventKind::ACCEPTED
                    ),
                )
            })?,
        };
        let service = match (kind, self.service) {
            (EventKind::Gauge, s) => s,
            (_, None) => {
                return Err(FieldError::new(
                    "service",
                    "is required for usage and health_check events",
                ))
            }
            (_, Some(s)) => Some(s),
        };
        if let Some(s) = &service {
            validate_service_name("service", s)?;
        }
        if let Some(c) = &self.customer_id {
            validate_id("customer_id", c)?;
        }
        let quantity = match self.quantity {
            None => money::MICROS,
            Some(q) => money::to_micros("quantity", q)?,
        };
        let input_tokens = non_negative("input_tokens", self.input_tokens)?;
        let cache_read_tokens = non_negative("cache_read_tokens", self.cache_read_tokens)?;
        let cache_write_tokens = non_negative("cache_write_tokens", self.cache_write_tokens)?;
        let output_tokens = non_negative("output_tokens", self.output_tokens)?;
        if cache_read_tokens.saturating_add(cache_write_tokens) > input_tokens {
            return Err(FieldError::new(
                "cache_read_tokens",
                "cache_read_tokens + cache_write_tokens are parts of input_tokens and cannot exceed it",
            ));
        }
        if let Some(l) = self.latency_ms {
            if !l.is_finite() || l < 0.0 {
                return Err(FieldError::new(
                    "latency_ms",
                    format!("must be a number ≥ 0 (got {l})"),
                ));
            }
        }
        let status_code = match self.status_code {
            None => None,
            Some(c) if (100..=599).contains(&c) => Some(c as i32),
            Some(c) => {
                return Err(FieldError::new(
                    "status_code",
                    format!("must be an HTTP status 100..599 (got {c})"),
                ))
            }
        };
        let model = short_text("model", self.model)?;
        let provider = short_text("provider", self.provider)?;
        let (cost, cost_source) = match self.cost_credits {
            Some(c) => (money::to_micros("cost_credits", c)?, CostSource::Given),
            None => match model.as_deref().and_then(|m| {
                prices.price_micros(
                    m,
                    provider.as_deref(),
                    input_tokens,
                    cache_read_tokens,
                    cache_write_tokens,
                    output_tokens,
                )
            }) {
                Some(c) => (c, CostSource::Priced),
                None => (0, CostSource::Unpriced),
            },
        };
        let (up, gauge_name, gauge_value) = match kind {
            EventKind::Usage => (None, None, None),
            EventKind::HealthCheck => {
                let up = self.up.ok_or_else(|| {
                    FieldError::new("up", "is required for health_check events (true or false)")
                })?;
                (Some(up), None, None)
            }
            EventKind::Gauge => {
                let name = self
                    .name
                    .ok_or_else(|| FieldError::new("name", "is required for gauge events"))?;
                validate_id("name", &name)?;
                let value = self
                    .value
                    .ok_or_else(|| FieldError::new("value", "is required for gauge events"))?;
                if !value.is_finite() {
                    return Err(FieldError::new("value", "must be a finite number"));
                }
                (None, Some(name), Some(value))
            }
        };
        Ok(Event {
            id: self.id,
            kind,
            time,
            customer_id: self.customer_id,
            service,
            quantity,
            unit: short_text("unit", self.unit)?,
            model,
            provider,
            input_tokens,
            cache_read_tokens,
            cache_write_tokens,
            output_tokens,
            cache_hit: self.cache_hit,
            latency_ms: self.latency_ms,
            status_code,
            cost,
            cost_source,
            up,
            gauge_name,
            gauge_value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(json: &str) -> Result<Event, FieldError> {
        let input: EventInput = serde_json::from_str(json).unwrap();
        input.validate(&PriceTable::empty())
    }

    #[test]
    fn minimal_usage_event_gets_defaults() {
        let e = ev(r#"{"id":"e1","time":"2025-11-20T10:00:00Z","service":"search"}"#).unwrap();
        assert_eq!(e.kind, EventKind::Usage);
        assert_eq!(e.quantity, 1_000_000);
        assert_eq!(e.cost, 0);
        assert_eq!(e.cost_source, CostSource::Unpriced);
    }

    #[test]
    fn given_cost_is_exact() {
        let e = ev(r#"{"id":"e1","time":"2025-11-20T10:00:00Z","service":"llm","model":"gpt-4o","cost_credits":8.5}"#).unwrap();
        assert_eq!(e.cost, 8_500_000);
        assert_eq!(e.cost_source, CostSource::Given);
    }

    #[test]
    fn rejections_name_the_field() {
        let cases = [
            (r#"{"id":"e","time":"x","service":"s"}"#, "time"),
            (
                r#"{"id":"","time":"2025-11-20T10:00:00Z","service":"s"}"#,
                "id",
            ),
            (r#"{"id":"e","time":"2025-11-20T10:00:00Z"}"#, "service"),
            (
                r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s","input_tokens":-1}"#,
                "input_tokens",
            ),
            (
                r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s","quantity":-1}"#,
                "quantity",
            ),
            (
                r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s","type":"click"}"#,
                "type",
            ),
            (
                r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s","type":"health_check"}"#,
                "up",
            ),
            (
                r#"{"id":"e","time":"2025-11-20T10:00:00Z","type":"gauge","name":"g"}"#,
                "value",
            ),
            (
                r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"a b"}"#,
                "service",
            ),
            (
                r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s","status_code":99}"#,
                "status_code",
            ),
            (
                r#"{"id":"e","time":"2025-11-20T10:00:00Z","service":"s","input_tokens":5,"cache_read_tokens":6}"#,
                "cache_read_tokens",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(ev(json).unwrap_err().field, field, "{json}");
        }
    }
}
