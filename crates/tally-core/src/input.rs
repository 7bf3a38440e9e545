//! Request bodies of the write API and their validation into [`crate::model`] types.
//! Every rejection names the field and says what is accepted there.

use crate::decimal;
use crate::error::FieldError;
use crate::event::{validate_id, validate_service_name};
use crate::model::*;
use crate::money::Currency;
use crate::time::{parse_instant, Month};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::HashMap;

/// How amounts in a currency become minor units of the reporting currency.
#[derive(Debug, Clone)]
pub struct CurrencyPolicy {
    pub reporting: Currency,
    /// Units of the reporting currency per unit of another currency.
    pub rates: HashMap<String, Decimal>,
}

impl Default for CurrencyPolicy {
    fn default() -> Self {
        CurrencyPolicy {
            reporting: Currency::usd(),
            rates: HashMap::new(),
        }
    }
}

impl CurrencyPolicy {
    /// Validates `amount` in `code` and converts it to reporting-currency minor units.
    pub fn to_reporting(
        &self,
        amount: Decimal,
        code: &str,
        allow_negative: bool,
    ) -> Result<i64, FieldError> {
        let currency = Currency::lookup(code).ok_or_else(|| {
            FieldError::new(
                "currency",
                format!(
                    "`{code}` is not an ISO 4217 currency code tally knows, such as USD or EUR"
                ),
            )
        })?;
        // The amount must fit its own currency's minor unit first.
        currency.to_minor("amount", amount, allow_negative)?;
        if currency == self.reporting {
            return self.reporting.to_minor("amount", amount, allow_negative);
        }
        let rate = self.rates.get(currency.code).ok_or_else(|| {
            FieldError::new(
                "currency",
                format!(
                    "{} is not the reporting currency ({}) and no exchange rate is configured for it; send {} or configure a rate",
                    currency.code, self.reporting.code, self.reporting.code
                ),
            )
        })?;
        let converted = decimal::round(amount * rate, self.reporting.exponent);
        self.reporting.to_minor("amount", converted, allow_negative)
    }

    /// An amount that is always in the reporting currency (costs, marketing spend).
    pub fn reporting_amount(&self, field: &str, amount: Decimal) -> Result<i64, FieldError> {
        self.reporting.to_minor(field, amount, false)
    }
}

fn opt_text(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, FieldError> {
    match v {
        Some(s) if s.chars().count() > max => Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(s) if s.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

fn label(field: &str, v: &str) -> Result<(), FieldError> {
    if v.trim().is_empty() || v.len() > 100 {
        return Err(FieldError::new(field, "must be 1 to 100 characters"));
    }
    Ok(())
}

fn discount(field: &str, d: Option<Decimal>) -> Result<Option<Decimal>, FieldError> {
    match d {
        Some(d) if d < Decimal::ZERO || d > Decimal::from(100) => Err(FieldError::new(
            field,
            format!("must be a percentage from 0 to 100 (got {d})"),
        )),
        other => Ok(other.map(|d| d.normalize())),
    }
}

fn quantity(field: &str, q: Option<i64>) -> Result<Option<i64>, FieldError> {
    match q {
        Some(q) if q < 1 => Err(FieldError::new(
            field,
            format!("must be a whole number ≥ 1 (got {q})"),
        )),
        other => Ok(other),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PlanInput {
    pub name: String,
    pub tier: String,
    pub interval: String,
    #[serde(deserialize_with = "decimal::de")]
    pub amount: Decimal,
    pub currency: String,
}

impl PlanInput {
    pub fn validate(self, id: &str, money: &CurrencyPolicy) -> Result<Plan, FieldError> {
        validate_id("id", id)?;
        label("name", &self.name)?;
        label("tier", &self.tier)?;
        if self.tier == "trial" || self.tier == "none" {
            return Err(FieldError::new(
                "tier",
                "`trial` and `none` are reserved tier names",
            ));
        }
        let interval = Interval::parse(&self.interval).ok_or_else(|| {
            FieldError::new(
                "interval",
                format!(
                    "`{}` is not an interval; accepted: {}",
                    self.interval,
                    Interval::ACCEPTED
                ),
            )
        })?;
        let amount = money.to_reporting(self.amount, &self.currency, false)?;
        Ok(Plan {
            id: id.to_string(),
            name: self.name,
            tier: self.tier,
            interval,
            amount,
            currency: self.currency.to_ascii_uppercase(),
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CustomerInput {
    pub name: Option<String>,
    pub email: Option<String>,
    pub created_at: String,
    pub channel: Option<String>,
}

impl CustomerInput {
    pub fn validate(self, id: &str) -> Result<Customer, FieldError> {
        validate_id("id", id)?;
        let created_at = parse_instant("created_at", &self.created_at)?;
        let email = opt_text("email", self.email, 320)?;
        if let Some(e) = &email {
            if !e.contains('@') {
                return Err(FieldError::new(
                    "email",
                    format!("`{e}` is not an email address"),
                ));
            }
        }
        let channel = opt_text("channel", self.channel, 100)?;
        Ok(Customer {
            id: id.to_string(),
            name: opt_text("name", self.name, 200)?,
            email,
            created_at,
            channel,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionInput {
    pub customer_id: String,
    pub plan_id: String,
    pub quantity: Option<i64>,
    #[serde(default, deserialize_with = "decimal::de_opt")]
    pub discount_percent: Option<Decimal>,
    pub started_at: String,
    pub trial_ends_at: Option<String>,
}

impl SubscriptionInput {
    pub fn validate(self, id: &str) -> Result<Subscription, FieldError> {
        validate_id("id", id)?;
        validate_id("customer_id", &self.customer_id)?;
        validate_id("plan_id", &self.plan_id)?;
        let started_at = parse_instant("started_at", &self.started_at)?;
        let trial_ends_at = self
            .trial_ends_at
            .as_deref()
            .map(|t| parse_instant("trial_ends_at", t))
            .transpose()?;
        if let Some(t) = trial_ends_at {
            if t < started_at {
                return Err(FieldError::new(
                    "trial_ends_at",
                    "must not be before started_at",
                ));
            }
        }
        Ok(Subscription {
            id: id.to_string(),
            customer_id: self.customer_id,
            plan_id: self.plan_id,
            quantity: quantity("quantity", self.quantity)?.unwrap_or(1),
            discount_percent: discount("discount_percent", self.discount_percent)?
                .unwrap_or(Decimal::ZERO),
            started_at,
            trial_ends_at,
            canceled_at: None,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ChangeInput {
    pub effective_at: String,
    pub plan_id: Option<String>,
    pub quantity: Option<i64>,
    #[serde(default, deserialize_with = "decimal::de_opt")]
    pub discount_percent: Option<Decimal>,
}

impl ChangeInput {
    pub fn validate(self, subscription_id: &str) -> Result<SubscriptionChange, FieldError> {
        let effective_at = parse_instant("effective_at", &self.effective_at)?;
        if let Some(p) = &self.plan_id {
            validate_id("plan_id", p)?;
        }
        let change = SubscriptionChange {
            subscription_id: subscription_id.to_string(),
            effective_at,
            plan_id: self.plan_id,
            quantity: quantity("quantity", self.quantity)?,
            discount_percent: discount("discount_percent", self.discount_percent)?,
        };
        if change.plan_id.is_none()
            && change.quantity.is_none()
            && change.discount_percent.is_none()
        {
            return Err(FieldError::new(
                "plan_id",
                "a change needs at least one of plan_id, quantity, discount_percent",
            ));
        }
        Ok(change)
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CancelInput {
    pub effective_at: String,
}

impl CancelInput {
    pub fn validate(self) -> Result<i64, FieldError> {
        parse_instant("effective_at", &self.effective_at)
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct InvoiceInput {
    pub customer_id: String,
    #[serde(deserialize_with = "decimal::de")]
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub issued_at: String,
    pub paid_at: Option<String>,
}

impl InvoiceInput {
    pub fn validate(self, id: &str, money: &CurrencyPolicy) -> Result<Invoice, FieldError> {
        validate_id("id", id)?;
        validate_id("customer_id", &self.customer_id)?;
        let status = InvoiceStatus::parse(&self.status).ok_or_else(|| {
            FieldError::new(
                "status",
                format!(
                    "`{}` is not an invoice status; accepted: {}",
                    self.status,
                    InvoiceStatus::ACCEPTED
                ),
            )
        })?;
        let amount = money.to_reporting(self.amount, &self.currency, false)?;
        let issued_at = parse_instant("issued_at", &self.issued_at)?;
        let paid_at = self
            .paid_at
            .as_deref()
            .map(|t| parse_instant("paid_at", t))
            .transpose()?;
        if status == InvoiceStatus::Paid && paid_at.is_none() {
            return Err(FieldError::new(
                "paid_at",
                "is required when status is paid",
            ));
        }
        Ok(Invoice {
            id: id.to_string(),
            customer_id: self.customer_id,
            amount,
            currency: self.currency.to_ascii_uppercase(),
            status,
            issued_at,
            paid_at,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CostInput {
    pub month: String,
    pub category: String,
    pub service: Option<String>,
    #[serde(deserialize_with = "decimal::de")]
    pub amount: Decimal,
}

impl CostInput {
    pub fn validate(self, money: &CurrencyPolicy) -> Result<CostRecord, FieldError> {
        let month = Month::parse("month", &self.month)?;
        let category = CostCategory::parse(&self.category).ok_or_else(|| {
            FieldError::new(
                "category",
                format!(
                    "`{}` is not a cost category; accepted: {}",
                    self.category,
                    CostCategory::ACCEPTED
                ),
            )
        })?;
        let service = self.service.unwrap_or_default();
        if !service.is_empty() {
            validate_service_name("service", &service)?;
        }
        let amount = money.reporting_amount("amount", self.amount)?;
        Ok(CostRecord {
            month,
            category,
            service,
            amount,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SpendInput {
    pub month: String,
    pub channel: String,
    #[serde(deserialize_with = "decimal::de")]
    pub amount: Decimal,
}

impl SpendInput {
    pub fn validate(self, money: &CurrencyPolicy) -> Result<MarketingSpend, FieldError> {
        let month = Month::parse("month", &self.month)?;
        label("channel", &self.channel)?;
        let amount = money.reporting_amount("amount", self.amount)?;
        Ok(MarketingSpend {
            month,
            channel: self.channel,
            amount,
        })
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ServiceInput {
    pub display_name: Option<String>,
    pub unit_type: Option<String>,
    pub health_url: Option<String>,
}

impl ServiceInput {
    pub fn validate(self, name: &str) -> Result<Service, FieldError> {
        validate_service_name("name", name)?;
        let health_url = opt_text("health_url", self.health_url, 2000)?;
        if let Some(u) = &health_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(FieldError::new(
                    "health_url",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        Ok(Service {
            name: name.to_string(),
            display_name: opt_text("display_name", self.display_name, 200)?,
            unit_type: opt_text("unit_type", self.unit_type, 100)?,
            health_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn plan_amount_in_minor_units() {
        let p: PlanInput = serde_json::from_str(r#"{"name":"Pro","tier":"professional","interval":"year","amount":"1200.00","currency":"usd"}"#).unwrap();
        let plan = p.validate("pro_y", &CurrencyPolicy::default()).unwrap();
        assert_eq!(plan.amount, 120_000);
        assert_eq!(plan.interval, Interval::Year);
        assert_eq!(plan.currency, "USD");
    }

    #[test]
    fn other_currency_needs_a_rate() {
        let mut policy = CurrencyPolicy::default();
        let e = policy
            .to_reporting(Decimal::from(10), "EUR", false)
            .unwrap_err();
        assert_eq!(e.field, "currency");
        assert_eq!(
            policy
                .to_reporting(Decimal::from(10), "ZZZ", false)
                .unwrap_err()
                .field,
            "currency"
        );
        policy
            .rates
            .insert("EUR".into(), Decimal::from_str("1.085").unwrap());
        // 10.01 EUR × 1.085 = 10.86085 → $10.86
        assert_eq!(
            policy
                .to_reporting(Decimal::from_str("10.01").unwrap(), "EUR", false)
                .unwrap(),
            1086
        );
        // JPY has no minor unit: 1.5 JPY is too precise for yen itself.
        policy
            .rates
            .insert("JPY".into(), Decimal::from_str("0.0067").unwrap());
        assert_eq!(
            policy
                .to_reporting(Decimal::from_str("1.5").unwrap(), "JPY", false)
                .unwrap_err()
                .field,
            "amount"
        );
    }

    #[test]
    fn paid_invoice_needs_paid_at() {
        let i: InvoiceInput = serde_json::from_str(r#"{"customer_id":"c","amount":10,"currency":"USD","status":"paid","issued_at":"2025-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(
            i.validate("i1", &CurrencyPolicy::default())
                .unwrap_err()
                .field,
            "paid_at"
        );
    }

    #[test]
    fn empty_change_is_rejected() {
        let c: ChangeInput =
            serde_json::from_str(r#"{"effective_at":"2025-01-01T00:00:00Z"}"#).unwrap();
        assert!(c.validate("s").is_err());
        let c: ChangeInput = serde_json::from_str(
            r#"{"effective_at":"2025-01-01T00:00:00Z","discount_percent":101}"#,
        )
        .unwrap();
        assert_eq!(c.validate("s").unwrap_err().field, "discount_percent");
    }
}
