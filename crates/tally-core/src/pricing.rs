//! Model prices for LLM calls sent without `cost_credits`.
//!
//! The built-in table covers widely used models. Its prices are the providers' published
//! list prices per token in USD, as recorded in LiteLLM's
//! `model_prices_and_context_window.json` and on the providers' pricing pages, captured
//! on [`BUILTIN_PRICES_AS_OF`]. An installation replaces or extends it with a file in
//! that same LiteLLM format (`--price-file`).

use crate::decimal;
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::str::FromStr;

pub const BUILTIN_PRICES_AS_OF: &str = "2025-06-01";
pub const BUILTIN_PRICES_SOURCE: &str =
    "providers' published list prices (OpenAI, Anthropic, Google, Mistral, DeepSeek) as recorded in LiteLLM's model_prices_and_context_window.json";

/// Per-token prices in units of the reporting currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    pub provider: Option<String>,
    pub input: Decimal,
    pub output: Decimal,
    /// Price of prompt tokens read from the provider's prompt cache; input price if absent.
    pub cache_read: Option<Decimal>,
    /// Price of prompt tokens written to the provider's prompt cache; input price if absent.
    pub cache_write: Option<Decimal>,
}

/// (model, provider, input, output, cache read, cache write), USD per million tokens.
type BuiltinPrice = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

#[rustfmt::skip]
const BUILTIN: &[BuiltinPrice] = &[
    ("gpt-4o", "openai", "2.50", "10.00", Some("1.25"), None),
    ("gpt-4o-mini", "openai", "0.15", "0.60", Some("0.075"), None),
    ("gpt-4.1", "openai", "2.00", "8.00", Some("0.50"), None),
    ("gpt-4.1-mini", "openai", "0.40", "1.60", Some("0.10"), None),
    ("gpt-4.1-nano", "openai", "0.10", "0.40", Some("0.025"), None),
    ("o1", "openai", "15.00", "60.00", Some("7.50"), None),
    ("o3-mini", "openai", "1.10", "4.40", Some("0.55"), None),
    ("text-embedding-3-small", "openai", "0.02", "0", None, None),
    ("text-embedding-3-large", "openai", "0.13", "0", None, None),
    ("claude-3-5-sonnet", "anthropic", "3.00", "15.00", Some("0.30"), Some("3.75")),
    ("claude-3-7-sonnet", "anthropic", "3.00", "15.00", Some("0.30"), Some("3.75")),
    ("claude-sonnet-4", "anthropic", "3.00", "15.00", Some("0.30"), Some("3.75")),
    ("claude-3-5-haiku", "anthropic", "0.80", "4.00", Some("0.08"), Some("1.00")),
    ("claude-3-opus", "anthropic", "15.00", "75.00", Some("1.50"), Some("18.75")),
    ("claude-opus-4", "anthropic", "15.00", "75.00", Some("1.50"), Some("18.75")),
    ("gemini-1.5-pro", "google", "1.25", "5.00", None, None),
    ("gemini-1.5-flash", "google", "0.075", "0.30", None, None),
    ("gemini-2.0-flash", "google", "0.10", "0.40", Some("0.025"), None),
    ("mistral-large-latest", "mistral", "2.00", "6.00", None, None),
    ("mistral-small-latest", "mistral", "0.20", "0.60", None, None),
    ("deepseek-chat", "deepseek", "0.27", "1.10", Some("0.07"), None),
];

/// Model → price, plus the credits-per-currency-unit rate that turns prices into credits.
#[derive(Debug, Clone)]
pub struct PriceTable {
    prices: HashMap<String, ModelPrice>,
    credits_per_unit: Decimal,
}

impl PriceTable {
    /// No prices at all: every LLM call without a cost is unpriced.
    pub fn empty() -> Self {
        PriceTable {
            prices: HashMap::new(),
            credits_per_unit: Decimal::from(1000),
        }
    }

    /// The built-in table, with `credits_per_unit` credits to one unit of currency.
    pub fn builtin(credits_per_unit: Decimal) -> Self {
        let per_million = Decimal::from(1_000_000);
        let p = |s: &str| Decimal::from_str(s).expect("built-in prices parse") / per_million;
        let prices = BUILTIN
            .iter()
            .map(|&(model, provider, input, output, cr, cw)| {
                (
                    model.to_string(),
                    ModelPrice {
                        provider: Some(provider.to_string()),
                        input: p(input),
                        output: p(output),
                        cache_read: cr.map(p),
                        cache_write: cw.map(p),
                    },
                )
            })
            .collect();
        PriceTable {
            prices,
            credits_per_unit,
        }
    }

    pub fn credits_per_unit(&self) -> Decimal {
        self.credits_per_unit
    }

    pub fn len(&self) -> usize {
        self.prices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }

    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.prices.get(model)
    }

    /// Replaces (`replace = true`) or extends the table with a LiteLLM-format JSON
    /// document: `{"model": {"input_cost_per_token": .., "output_cost_per_token": ..,
    /// "cache_read_input_token_cost": .., "cache_creation_input_token_cost": ..,
    /// "litellm_provider": ..}, ...}`. Entries without both token prices (images, audio,
    /// the `sample_spec` entry) are skipped. Returns how many models were loaded.
    pub fn load_litellm(&mut self, json: &str, replace: bool) -> Result<usize, String> {
        let doc: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("price file is not valid JSON: {e}"))?;
        let obj = doc
            .as_object()
            .ok_or("price file must be a JSON object keyed by model name")?;
        let num = |v: Option<&serde_json::Value>| -> Option<Decimal> {
            let v = v?;
            match v {
                serde_json::Value::Number(n) => decimal::parse_decimal_text(&n.to_string()),
                serde_json::Value::String(s) => decimal::parse_decimal_text(s),
                _ => None,
            }
        };
        let mut loaded = HashMap::new();
        for (model, spec) in obj {
            if model == "sample_spec" {
                continue;
            }
            let (Some(input), Some(output)) = (
                num(spec.get("input_cost_per_token")),
                num(spec.get("output_cost_per_token")),
            ) else {
                continue;
            };
            loaded.insert(
                model.clone(),
                ModelPrice {
                    provider: spec
                        .get("litellm_provider")
                        .and_then(|p| p.as_str())
                        .map(str::to_string),
                    input,
                    output,
                    cache_read: num(spec.get("cache_read_input_token_cost")),
                    cache_write: num(spec.get("cache_creation_input_token_cost")),
                },
            );
        }
        let n = loaded.len();
        if replace {
            self.prices = loaded;
        } else {
            self.prices.extend(loaded);
        }
        Ok(n)
    }

    fn lookup(&self, model: &str, provider: Option<&str>) -> Option<&ModelPrice> {
        if let Some(p) = provider {
            if let Some(price) = self.prices.get(&format!("{p}/{model}")) {
                return Some(price);
            }
        }
        self.prices.get(model).or_else(|| {
            // Dated snapshots ("claude-3-5-sonnet-20241022") fall back to their family.
            let base = model
                .rsplit_once('-')
                .filter(|(_, d)| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))?
                .0;
            self.prices.get(base)
        })
    }

    /// Cost of one call in micro-credits, rounded half away from zero; `None` when the
    /// model has no price.
    pub fn price_micros(
        &self,
        model: &str,
        provider: Option<&str>,
        input_tokens: i64,
        cache_read_tokens: i64,
        cache_write_tokens: i64,
        output_tokens: i64,
    ) -> Option<i64> {
        let p = self.lookup(model, provider)?;
        let uncached = Decimal::from(input_tokens - cache_read_tokens - cache_write_tokens);
        let money = uncached * p.input
            + Decimal::from(cache_read_tokens) * p.cache_read.unwrap_or(p.input)
            + Decimal::from(cache_write_tokens) * p.cache_write.unwrap_or(p.input)
            + Decimal::from(output_tokens) * p.output;
        let micros = decimal::round(money * self.credits_per_unit * Decimal::from(1_000_000), 0);
        i64::try_from(micros).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt4o_call_priced_by_hand() {
        // 1,200 input tokens (200 of them cache reads) and 300 output tokens of gpt-4o:
        // 1,000 × $2.50/M + 200 × $1.25/M + 300 × $10/M = $0.0025 + $0.00025 + $0.003
        // = $0.00575 = 5.75 credits at 1,000 credits per dollar.
        let t = PriceTable::builtin(Decimal::from(1000));
        assert_eq!(
            t.price_micros("gpt-4o", Some("openai"), 1200, 200, 0, 300),
            Some(5_750_000)
        );
        assert_eq!(t.price_micros("no-such-model", None, 1, 0, 0, 1), None);
        // Dated snapshots use the family price.
        assert_eq!(
            t.price_micros("claude-3-5-sonnet-20241022", None, 1_000_000, 0, 0, 0),
            Some(3_000_000_000)
        );
    }

    #[test]
    fn litellm_file_extends_and_replaces() {
        let json = r#"{"sample_spec": {"input_cost_per_token": 0},
            "my-model": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "litellm_provider": "local"},
            "dall-e-3": {"output_cost_per_pixel": 1e-9}}"#;
        let mut t = PriceTable::builtin(Decimal::from(1000));
        let before = t.len();
        assert_eq!(t.load_litellm(json, false).unwrap(), 1);
        assert_eq!(t.len(), before + 1);
        // 1,000 × $1/M + 500 × $2/M = $0.002 = 2 credits.
        assert_eq!(
            t.price_micros("my-model", None, 1000, 0, 0, 500),
            Some(2_000_000)
        );
        t.load_litellm(json, true).unwrap();
        assert_eq!(t.len(), 1);
        assert!(t.load_litellm("[1]", true).is_err());
    }
}
