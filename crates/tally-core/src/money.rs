//! Money as integer minor units of the reporting currency. A client's decimal amount is
//! accepted only if it fits the currency's minor unit exactly, so stored sums are exact.

use crate::error::FieldError;
use rust_decimal::Decimal;

/// ISO 4217 codes tally knows, with their number of decimal places.
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("PHP", 2),
    ("PLN", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

/// A known currency and the number of decimals of its minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    pub code: &'static str,
    pub exponent: u32,
}

impl Currency {
    pub fn lookup(code: &str) -> Option<Currency> {
        CURRENCIES
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(code))
            .map(|&(code, exponent)| Currency { code, exponent })
    }

    pub fn usd() -> Currency {
        Currency {
            code: "USD",
            exponent: 2,
        }
    }

    /// `amount` in minor units, or an error naming `field` when it has more decimals than
    /// the currency, is negative where that is not allowed, or is too large to store.
    pub fn to_minor(
        &self,
        field: &str,
        amount: Decimal,
        allow_negative: bool,
    ) -> Result<i64, FieldError> {
        if !allow_negative && amount.is_sign_negative() && !amount.is_zero() {
            return Err(FieldError::new(
                field,
                format!("must not be negative (got {amount})"),
            ));
        }
        let scaled = amount * Decimal::from(10i64.pow(self.exponent));
        if scaled.fract() != Decimal::ZERO {
            return Err(FieldError::new(
                field,
                format!(
                    "{amount} has more decimal places than {} allows ({}); send at most {} decimals",
                    self.code, self.exponent, self.exponent
                ),
            ));
        }
        i64::try_from(scaled.trunc())
            .map_err(|_| FieldError::new(field, format!("{amount} is too large")))
    }

    /// Minor units back to a decimal amount, e.g. 4900 → 49.00 for USD.
    pub fn from_minor(&self, minor: i64) -> Decimal {
        Decimal::new(minor, self.exponent)
    }

    pub fn from_minor_i128(&self, minor: i128) -> Decimal {
        Decimal::from_i128_with_scale(minor, self.exponent)
    }
}

/// Fixed-point scale for quantities and credits: 6 decimals, stored as i64 "micros".
pub const MICROS: i64 = 1_000_000;

/// A non-negative decimal with at most 6 places as integer micros (credits, units).
pub fn to_micros(field: &str, v: Decimal) -> Result<i64, FieldError> {
    if v.is_sign_negative() && !v.is_zero() {
        return Err(FieldError::new(
            field,
            format!("must not be negative (got {v})"),
        ));
    }
    let scaled = v * Decimal::from(MICROS);
    if scaled.fract() != Decimal::ZERO {
        return Err(FieldError::new(
            field,
            format!("{v} has more than 6 decimal places"),
        ));
    }
    i64::try_from(scaled.trunc()).map_err(|_| FieldError::new(field, format!("{v} is too large")))
}

pub fn from_micros(m: i128) -> Decimal {
    Decimal::from_i128_with_scale(m, 6).normalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn minor_units_are_exact() {
        let usd = Currency::usd();
        assert_eq!(usd.to_minor("amount", d("49.00"), false).unwrap(), 4900);
        assert_eq!(usd.to_minor("amount", d("0.1"), false).unwrap(), 10);
        assert_eq!(usd.from_minor(4905).to_string(), "49.05");
        let jpy = Currency::lookup("jpy").unwrap();
        assert_eq!(jpy.to_minor("amount", d("1200"), false).unwrap(), 1200);
    }

    #[test]
    fn too_precise_or_negative_amounts_are_rejected() {
        let usd = Currency::usd();
        let e = usd.to_minor("amount", d("49.001"), false).unwrap_err();
        assert_eq!(e.field, "amount");
        assert!(
            e.message
                .contains("more decimal places than USD allows (2)"),
            "{}",
            e.message
        );
        assert!(usd.to_minor("amount", d("-1"), false).is_err());
        assert_eq!(usd.to_minor("amount", d("-1"), true).unwrap(), -100);
        assert!(Currency::lookup("XYZ").is_none());
    }

    #[test]
    fn micros() {
        assert_eq!(to_micros("q", d("8.5")).unwrap(), 8_500_000);
        assert!(to_micros("q", d("0.0000001")).is_err());
        assert!(to_micros("q", d("-2")).is_err());
        assert_eq!(from_micros(8_500_000).to_string(), "8.5");
    }
}
