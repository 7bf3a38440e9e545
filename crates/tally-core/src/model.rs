//! The entities tally stores, after validation. Money is in minor units of the reporting
//! currency, times in UTC microseconds, quantities and credits in micros (6 decimals).

use crate::time::{Micros, Month};
use rust_decimal::Decimal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    Month,
    Quarter,
    Year,
}

impl Interval {
    pub const ACCEPTED: &'static str = "month, quarter, year";

    pub fn months(self) -> u32 {
        match self {
            Interval::Month => 1,
            Interval::Quarter => 3,
            Interval::Year => 12,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Month => "month",
            Interval::Quarter => "quarter",
            Interval::Year => "year",
        }
    }

    pub fn parse(s: &str) -> Option<Interval> {
        match s {
            "month" => Some(Interval::Month),
            "quarter" => Some(Interval::Quarter),
            "year" => Some(Interval::Year),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub tier: String,
    pub interval: Interval,
    /// Price per interval, minor units of the reporting currency.
    pub amount: i64,
    /// The currency the client sent (the reporting currency, or one with a configured rate).
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub created_at: Micros,
    pub channel: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub customer_id: String,
    pub plan_id: String,
    pub quantity: i64,
    pub discount_percent: Decimal,
    pub started_at: Micros,
    pub trial_ends_at: Option<Micros>,
    /// When service ends (the cancellation's `effective_at`), if cancelled.
    pub canceled_at: Option<Micros>,
}

/// A change of plan, quantity or discount from `effective_at` on. Fields left `None`
/// keep their previous value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionChange {
    pub subscription_id: String,
    pub effective_at: Micros,
    pub plan_id: Option<String>,
    pub quantity: Option<i64>,
    pub discount_percent: Option<Decimal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceStatus {
    Paid,
    Failed,
    Open,
    Void,
}

impl InvoiceStatus {
    pub const ACCEPTED: &'static str = "paid, failed, open, void";

    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Failed => "failed",
            InvoiceStatus::Open => "open",
            InvoiceStatus::Void => "void",
        }
    }

    pub fn parse(s: &str) -> Option<InvoiceStatus> {
        match s {
            "paid" => Some(InvoiceStatus::Paid),
            "failed" => Some(InvoiceStatus::Failed),
            "open" => Some(InvoiceStatus::Open),
            "void" => Some(InvoiceStatus::Void),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    pub customer_id: String,
    /// Minor units of the reporting currency.
    pub amount: i64,
    pub currency: String,
    pub status: InvoiceStatus,
    pub issued_at: Micros,
    pub paid_at: Option<Micros>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CostCategory {
    Infrastructure,
    Other,
}

impl CostCategory {
    pub const ACCEPTED: &'static str = "infrastructure, other";

    pub fn as_str(self) -> &'static str {
        match self {
            CostCategory::Infrastructure => "infrastructure",
            CostCategory::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<CostCategory> {
        match s {
            "infrastructure" => Some(CostCategory::Infrastructure),
            "other" => Some(CostCategory::Other),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostRecord {
    pub month: Month,
    pub category: CostCategory,
    /// Empty when the cost is not tied to one service.
    pub service: String,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketingSpend {
    pub month: Month,
    pub channel: String,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub display_name: Option<String>,
    pub unit_type: Option<String>,
    pub health_url: Option<String>,
}

/// Whether a stored write changed anything; drives 201 vs 200 and idempotency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Created,
    Updated,
    Unchanged,
}
