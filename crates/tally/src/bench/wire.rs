//! Events back into the wire shape of `POST /api/v1/events`, and into rows of the
//! `events` table for the raw-store comparison.

use rust_decimal::Decimal;
use serde::Serialize;
use tally_core::event::{CostSource, Event};
use tally_core::money::from_micros;
use tally_core::time::format_micros;

fn dec(micros: i64) -> String {
    from_micros(micros.into()).to_string()
}

#[derive(Serialize)]
struct Wire<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
    quantity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    input_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    output_tokens: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_hit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<i32>,
    /// Only when the generator gave the cost; priced events are priced by the server with
    /// the same builtin table the generator used.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_credits: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    up: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
}

/// Appends `e` as one JSON object (no trailing separator).
pub fn write_json(out: &mut Vec<u8>, e: &Event) -> anyhow::Result<()> {
    let w = Wire {
        id: &e.id,
        kind: e.kind.as_str(),
        time: format_micros(e.time),
        customer_id: e.customer_id.as_deref(),
        service: e.service.as_deref(),
        quantity: dec(e.quantity),
        unit: e.unit.as_deref(),
        model: e.model.as_deref(),
        provider: e.provider.as_deref(),
        input_tokens: e.input_tokens,
        cache_read_tokens: e.cache_read_tokens,
        cache_write_tokens: e.cache_write_tokens,
        output_tokens: e.output_tokens,
        cache_hit: e.cache_hit,
        latency_ms: e.latency_ms,
        status_code: e.status_code,
        cost_credits: (e.cost_source == CostSource::Given).then(|| dec(e.cost)),
        up: e.up,
        name: e.gauge_name.as_deref(),
        value: e.gauge_value,
    };
    serde_json::to_writer(&mut *out, &w)?;
    Ok(())
}

/// A batch as a JSON array or as NDJSON.
pub fn batch_body(events: &[Event], ndjson: bool) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(events.len() * 360);
    if !ndjson {
        out.push(b'[');
    }
    for (i, e) in events.iter().enumerate() {
        if i > 0 && !ndjson {
            out.push(b',');
        }
        write_json(&mut out, e)?;
        if ndjson {
            out.push(b'\n');
        }
    }
    if !ndjson {
        out.push(b']');
    }
    Ok(out)
}

/// The columns of the `events` table, in the order [`csv_row`] writes them.
pub const COLUMNS: &str = "id, kind, time, customer_id, service, quantity, unit, model, provider, \
input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, cache_hit, latency_ms, \
status_code, cost, cost_source, up, gauge_name, gauge_value";

fn opt_str(w: &mut csv::Writer<&mut Vec<u8>>, v: Option<&str>) -> csv::Result<()> {
    // An empty unquoted field is NULL for COPY ... (FORMAT csv); "" would be an empty string.
    w.write_field(v.unwrap_or(""))
}

/// One row of the events table as CSV for PostgreSQL's COPY (booleans as t/f).
pub fn csv_row(w: &mut csv::Writer<&mut Vec<u8>>, e: &Event) -> csv::Result<()> {
    let b = |v: Option<bool>| v.map(|b| if b { "t" } else { "f" });
    w.write_field(&e.id)?;
    w.write_field(e.kind.as_str())?;
    w.write_field(e.time.to_string())?;
    opt_str(w, e.customer_id.as_deref())?;
    opt_str(w, e.service.as_deref())?;
    w.write_field(e.quantity.to_string())?;
    opt_str(w, e.unit.as_deref())?;
    opt_str(w, e.model.as_deref())?;
    opt_str(w, e.provider.as_deref())?;
    w.write_field(e.input_tokens.to_string())?;
    w.write_field(e.cache_read_tokens.to_string())?;
    w.write_field(e.cache_write_tokens.to_string())?;
    w.write_field(e.output_tokens.to_string())?;
    opt_str(w, b(e.cache_hit))?;
    opt_str(w, e.latency_ms.map(|v| v.to_string()).as_deref())?;
    opt_str(w, e.status_code.map(|v| v.to_string()).as_deref())?;
    w.write_field(e.cost.to_string())?;
    w.write_field(e.cost_source.as_str())?;
    opt_str(w, b(e.up))?;
    opt_str(w, e.gauge_name.as_deref())?;
    opt_str(w, e.gauge_value.map(|v| v.to_string()).as_deref())?;
    w.write_record(None::<&[u8]>)
}

/// Credits as the API shows them: micros rounded half away from zero to 2 places.
pub fn credits_r2(micros: i64) -> Decimal {
    tally_core::decimal::round(from_micros(micros.into()), 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::event::EventInput;
    use tally_core::pricing::PriceTable;

    #[test]
    fn wire_round_trips_through_validation() {
        let prices = PriceTable::builtin(1000.into());
        let input: EventInput = serde_json::from_str(
            r#"{"id":"e1","time":"2025-11-20T10:00:00.123456Z","customer_id":"c","service":"llm_inference",
               "model":"gpt-4o","provider":"openai","input_tokens":1200,"cache_read_tokens":100,
               "output_tokens":300,"cache_hit":false,"latency_ms":850.25,"status_code":200,"quantity":"1.5"}"#,
        )
        .unwrap();
        let e = input.validate(&prices).unwrap();
        let mut out = Vec::new();
        write_json(&mut out, &e).unwrap();
        let back: EventInput = serde_json::from_slice(&out).unwrap();
        assert_eq!(back.validate(&prices).unwrap(), e);
        let ndjson = batch_body(&[e.clone(), e.clone()], true).unwrap();
        assert_eq!(ndjson.iter().filter(|&&c| c == b'\n').count(), 2);
        let json: Vec<EventInput> =
            serde_json::from_slice(&batch_body(&[e.clone(), e], false).unwrap()).unwrap();
        assert_eq!(json.len(), 2);
    }
}
