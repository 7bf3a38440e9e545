//! Exactness at scale: the LLM figures tally serves, checked against totals accumulated
//! from the generated events themselves (before they were sent), so a lost, doubled or
//! mispriced event anywhere between the generator and the response shows up.

use super::wire::credits_r2;
use anyhow::{Context, Result};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::str::FromStr;
use tally_core::event::{Event, EventKind};
use tally_core::time::MICROS_PER_DAY;

#[derive(Debug, Clone, Copy, Default)]
pub struct Acc {
    pub calls: i64,
    pub input: i64,
    pub output: i64,
    pub cost: i64,
}

impl Acc {
    fn add(&mut self, o: &Acc) {
        self.calls += o.calls;
        self.input += o.input;
        self.output += o.output;
        self.cost += o.cost;
    }
}

/// LLM usage events (those with a model) by (day index, model, provider).
#[derive(Debug, Default)]
pub struct LlmTally {
    pub by_day_model: BTreeMap<(i64, String, Option<String>), Acc>,
    pub usage_events: u64,
}

impl LlmTally {
    pub fn add(&mut self, e: &Event) {
        if e.kind != EventKind::Usage {
            return;
        }
        self.usage_events += 1;
        let Some(model) = &e.model else { return };
        let acc = self
            .by_day_model
            .entry((
                e.time.div_euclid(MICROS_PER_DAY),
                model.clone(),
                e.provider.clone(),
            ))
            .or_default();
        acc.calls += 1;
        acc.input += e.input_tokens;
        acc.output += e.output_tokens;
        acc.cost += e.cost;
    }

    fn days(
        &self,
        first: i64,
        last: i64,
    ) -> impl Iterator<Item = (&(i64, String, Option<String>), &Acc)> {
        self.by_day_model
            .range((first, String::new(), None)..)
            .take_while(move |((d, _, _), _)| *d <= last)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub figure: String,
    pub expected: String,
    pub served: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Exactness {
    pub checks: usize,
    pub mismatches: Vec<Check>,
    pub ok: bool,
}

fn num(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .ok(),
        Value::String(s) => Decimal::from_str(s).ok(),
        _ => None,
    }
}

struct Checker(Exactness);

impl Checker {
    fn eq(&mut self, figure: String, expected: Decimal, served: Option<&Value>) {
        let got = served.and_then(num);
        self.0.checks += 1;
        if got != Some(expected) {
            self.0.mismatches.push(Check {
                figure,
                expected: expected.to_string(),
                served: served
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "missing".into()),
                ok: false,
            });
        }
    }
}

/// Compares `llm/usage/summary?range=month` and `llm/costs?period=30d`, both at the end
/// of day `last_day` (a day index), with the tally.
pub fn check(tally: &LlmTally, last_day: i64, summary: &Value, costs: &Value) -> Result<Exactness> {
    let mut c = Checker(Exactness::default());
    let first = last_day - 29;

    // Usage summary: totals and every model × provider.
    let mut total = Acc::default();
    let mut models: BTreeMap<(String, Option<String>), Acc> = BTreeMap::new();
    for ((_, m, p), a) in tally.days(first, last_day) {
        total.add(a);
        models.entry((m.clone(), p.clone())).or_default().add(a);
    }
    c.eq(
        "summary.total_api_calls".into(),
        total.calls.into(),
        summary.get("total_api_calls"),
    );
    c.eq(
        "summary.tokens.input_tokens".into(),
        total.input.into(),
        summary.pointer("/tokens/input_tokens"),
    );
    c.eq(
        "summary.tokens.output_tokens".into(),
        total.output.into(),
        summary.pointer("/tokens/output_tokens"),
    );
    c.eq(
        "summary.total_cost_credits".into(),
        credits_r2(total.cost),
        summary.get("total_cost_credits"),
    );
    let served_models = summary
        .get("top_models")
        .and_then(Value::as_array)
        .context("summary has no top_models")?;
    c.eq(
        "summary.top_models.len".into(),
        (models.len() as i64).into(),
        Some(&Value::from(served_models.len())),
    );
    for ((m, p), a) in &models {
        let row = served_models.iter().find(|r| {
            r.get("model").and_then(Value::as_str) == Some(m.as_str())
                && r.get("provider").and_then(Value::as_str) == p.as_deref()
        });
        let f = |k: &str| {
            format!(
                "summary.top_models[{m}/{}].{k}",
                p.as_deref().unwrap_or("-")
            )
        };
        c.eq(
            f("api_calls"),
            a.calls.into(),
            row.and_then(|r| r.get("api_calls")),
        );
        c.eq(
            f("input_tokens"),
            a.input.into(),
            row.and_then(|r| r.get("input_tokens")),
        );
        c.eq(
            f("output_tokens"),
            a.output.into(),
            row.and_then(|r| r.get("output_tokens")),
        );
        c.eq(
            f("cost_credits"),
            credits_r2(a.cost),
            row.and_then(|r| r.get("cost_credits")),
        );
    }

    // Costs: by model (all providers together) and every day of the trend.
    c.eq(
        "costs.total_api_calls".into(),
        total.calls.into(),
        costs.get("total_api_calls"),
    );
    c.eq(
        "costs.total_cost_credits".into(),
        credits_r2(total.cost),
        costs.get("total_cost_credits"),
    );
    let mut by_model: BTreeMap<&str, Acc> = BTreeMap::new();
    for ((m, _), a) in &models {
        by_model.entry(m.as_str()).or_default().add(a);
    }
    let served = costs
        .get("cost_by_model")
        .and_then(Value::as_array)
        .context("costs has no cost_by_model")?;
    for (m, a) in &by_model {
        let row = served
            .iter()
            .find(|r| r.get("model").and_then(Value::as_str) == Some(m));
        c.eq(
            format!("costs.cost_by_model[{m}].api_calls"),
            a.calls.into(),
            row.and_then(|r| r.get("api_calls")),
        );
        c.eq(
            format!("costs.cost_by_model[{m}].cost_credits"),
            credits_r2(a.cost),
            row.and_then(|r| r.get("cost_credits")),
        );
    }
    let trend = costs
        .get("daily_trend")
        .and_then(Value::as_array)
        .context("costs has no daily_trend")?;
    c.eq(
        "costs.daily_trend.len".into(),
        30.into(),
        Some(&Value::from(trend.len())),
    );
    for (i, d) in (first..=last_day).enumerate() {
        let mut day = Acc::default();
        for (_, a) in tally.days(d, d) {
            day.add(a);
        }
        let row = trend.get(i);
        c.eq(
            format!("costs.daily_trend[{i}].api_calls"),
            day.calls.into(),
            row.and_then(|r| r.get("api_calls")),
        );
        c.eq(
            format!("costs.daily_trend[{i}].total_tokens"),
            (day.input + day.output).into(),
            row.and_then(|r| r.get("total_tokens")),
        );
        c.eq(
            format!("costs.daily_trend[{i}].cost_credits"),
            credits_r2(day.cost),
            row.and_then(|r| r.get("cost_credits")),
        );
    }
    let mut e = c.0;
    e.ok = e.mismatches.is_empty();
    e.mismatches.truncate(50);
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tally_core::event::CostSource;

    fn llm(id: &str, day: i64, model: &str, input: i64, output: i64, cost: i64) -> Event {
        Event {
            customer_id: Some("c".into()),
            service: Some("llm_inference".into()),
            model: Some(model.into()),
            provider: Some("p".into()),
            input_tokens: input,
            output_tokens: output,
            cost,
            cost_source: CostSource::Given,
            ..Event::blank(id, EventKind::Usage, day * MICROS_PER_DAY + 3_600_000_000)
        }
    }

    fn responses(last: i64, calls_on_last: i64) -> (Value, Value) {
        let summary = json!({
            "total_api_calls": 3, "total_cost_credits": 0.01,
            "tokens": {"input_tokens": 60, "output_tokens": 6},
            "top_models": [
                {"model": "a", "provider": "p", "api_calls": 2, "input_tokens": 30,
                 "output_tokens": 3, "cost_credits": 0.01},
                {"model": "b", "provider": "p", "api_calls": 1, "input_tokens": 30,
                 "output_tokens": 3, "cost_credits": 0.01}
            ]
        });
        let trend: Vec<Value> = (last - 29..=last)
            .map(|d| {
                if d == last {
                    json!({"api_calls": calls_on_last, "total_tokens": 44, "cost_credits": 0.01})
                } else if d == last - 1 {
                    json!({"api_calls": 1, "total_tokens": 22, "cost_credits": 0})
                } else {
                    json!({"api_calls": 0, "total_tokens": 0, "cost_credits": 0})
                }
            })
            .collect();
        let costs = json!({
            "total_api_calls": 3, "total_cost_credits": "0.01",
            "cost_by_model": [
                {"model": "a", "api_calls": 2, "cost_credits": 0.01},
                {"model": "b", "api_calls": 1, "cost_credits": 0.01}
            ],
            "daily_trend": trend
        });
        (summary, costs)
    }

    #[test]
    fn served_figures_equal_the_generated_totals_or_a_mismatch_is_named() {
        let last = 20_000;
        let mut t = LlmTally::default();
        // Outside the 30 days: ignored. Costs are totalled in micros, then rounded: model
        // a's 0.005 shows as 0.01, day 28's 0.004 as 0.
        t.add(&llm("old", last - 30, "a", 1000, 1000, 9_999_999));
        t.add(&llm("1", last - 1, "a", 20, 2, 4_000));
        t.add(&llm("2", last, "a", 10, 1, 1_000));
        t.add(&llm("3", last, "b", 30, 3, 5_000));
        let (summary, costs) = responses(last, 2);
        let ok = check(&t, last, &summary, &costs).unwrap();
        assert!(ok.ok, "{:?}", ok.mismatches);
        assert!(ok.checks > 100);

        let (summary, costs) = responses(last, 3);
        let bad = check(&t, last, &summary, &costs).unwrap();
        assert!(!bad.ok);
        assert_eq!(bad.mismatches.len(), 1);
        assert_eq!(bad.mismatches[0].figure, "costs.daily_trend[29].api_calls");
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(crate::bench::percentile(&mut v, 50.0), 50.0);
        assert_eq!(crate::bench::percentile(&mut v, 99.0), 99.0);
        assert_eq!(crate::bench::percentile(&mut [7.0], 99.0), 7.0);
        assert_eq!(crate::bench::percentile(&mut [], 50.0), 0.0);
    }
}
