//! Exact decimals from JSON. Amounts arrive as numbers (`49.00`) or strings (`"49.00"`);
//! neither may pass through a binary float, so numbers are read from their source text
//! (serde_json's `arbitrary_precision`).

use rust_decimal::Decimal;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::fmt;
use std::str::FromStr;

/// serde_json's private key for a number kept as text under `arbitrary_precision`.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

struct DecimalVisitor;

impl<'de> Visitor<'de> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal number or a decimal string such as \"49.00\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        parse_decimal_text(v).ok_or_else(|| {
            E::custom(format!(
                "`{v}` is not a decimal number; expected digits with an optional sign and decimal point, such as \"49.00\""
            ))
        })
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        // Reached only when a caller deserializes from a non-JSON source; the shortest
        // round-trip text of the float is what the sender meant.
        self.visit_str(&v.to_string())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Decimal, A::Error> {
        match map.next_key::<String>()? {
            Some(k) if k == NUMBER_TOKEN => {
                let text: String = map.next_value()?;
                self.visit_str(&text)
            }
            _ => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }
}

/// Parses plain decimal text (also exponent notation such as `1e-3`, which JSON allows).
pub fn parse_decimal_text(v: &str) -> Option<Decimal> {
    let t = v.trim();
    if t.is_empty() || t.len() > 64 {
        return None;
    }
    if t.contains(['e', 'E']) {
        return Decimal::from_scientific(t).ok();
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+')
    {
        return None;
    }
    Decimal::from_str(t).ok()
}

/// `#[serde(deserialize_with = "tally_core::decimal::de")]`
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_any(DecimalVisitor)
}

/// Optional variant: `null` and an absent field are `None`.
pub fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    struct OptVisitor;
    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<Decimal>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            DecimalVisitor.expecting(f)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            de(d).map(Some)
        }
    }
    d.deserialize_option(OptVisitor)
}

/// Rounds half away from zero to `dp` places: the rounding every response uses.
pub fn round(v: Decimal, dp: u32) -> Decimal {
    v.round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct A {
        #[serde(deserialize_with = "de")]
        v: Decimal,
        #[serde(default, deserialize_with = "de_opt")]
        o: Option<Decimal>,
    }

    fn parse(s: &str) -> Result<A, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        // 0.1 + 0.2 style values that a float would blur.
        assert_eq!(parse(r#"{"v": 0.1}"#).unwrap().v.to_string(), "0.1");
        assert_eq!(parse(r#"{"v": 49.00}"#).unwrap().v.to_string(), "49.00");
        assert_eq!(
            parse(r#"{"v": 12345678901234567.89}"#)
                .unwrap()
                .v
                .to_string(),
            "12345678901234567.89"
        );
        assert_eq!(parse(r#"{"v": 1e-3}"#).unwrap().v.to_string(), "0.001");
    }

    #[test]
    fn strings_and_nulls() {
        let a = parse(r#"{"v": "49.99", "o": null}"#).unwrap();
        assert_eq!(a.v.to_string(), "49.99");
        assert_eq!(a.o, None);
        assert_eq!(
            parse(r#"{"v": 1, "o": "2.5"}"#)
                .unwrap()
                .o
                .unwrap()
                .to_string(),
            "2.5"
        );
        assert!(parse(r#"{"v": "4 9"}"#).is_err());
        assert!(parse(r#"{"v": "abc"}"#).is_err());
        assert!(parse(r#"{"v": true}"#).is_err());
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round(Decimal::new(2345, 3), 2).to_string(), "2.35");
        assert_eq!(round(Decimal::new(-2345, 3), 2).to_string(), "-2.35");
        assert_eq!(round(Decimal::new(2344, 3), 2).to_string(), "2.34");
    }
}
