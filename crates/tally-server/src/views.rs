//! JSON shapes of stored entities as the API returns them.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tally_core::model::*;
use tally_core::money::Currency;
use tally_core::time::format_micros;
use tally_store::{Page, SubscriptionRecord};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    pub tier: String,
    /// month, quarter or year
    pub interval: &'static str,
    /// Price per interval in the reporting currency.
    pub amount: Decimal,
    /// The reporting currency (amounts sent in another currency were converted).
    pub currency: &'static str,
}

impl PlanView {
    pub fn new(p: Plan, c: Currency) -> Self {
        PlanView {
            id: p.id,
            name: p.name,
            tier: p.tier,
            interval: p.interval.as_str(),
            amount: c.from_minor(p.amount),
            currency: c.code,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerView {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub created_at: String,
    pub channel: Option<String>,
}

impl From<Customer> for CustomerView {
    fn from(c: Customer) -> Self {
        CustomerView {
            id: c.id,
            name: c.name,
            email: c.email,
            created_at: format_micros(c.created_at),
            channel: c.channel,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    pub effective_at: String,
    pub plan_id: Option<String>,
    pub quantity: Option<i64>,
    pub discount_percent: Option<Decimal>,
}

impl From<SubscriptionChange> for ChangeView {
    fn from(c: SubscriptionChange) -> Self {
        ChangeView {
            effective_at: format_micros(c.effective_at),
            plan_id: c.plan_id,
            quantity: c.quantity,
            discount_percent: c.discount_percent,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: String,
    pub customer_id: String,
    pub plan_id: String,
    pub quantity: i64,
    pub discount_percent: Decimal,
    pub started_at: String,
    pub trial_ends_at: Option<String>,
    /// When service ends, if cancelled.
    pub canceled_at: Option<String>,
    /// Changes of plan, quantity or discount, oldest first.
    pub changes: Vec<ChangeView>,
}

impl From<SubscriptionRecord> for SubscriptionView {
    fn from(r: SubscriptionRecord) -> Self {
        let s = r.subscription;
        SubscriptionView {
            id: s.id,
            customer_id: s.customer_id,
            plan_id: s.plan_id,
            quantity: s.quantity,
            discount_percent: s.discount_percent,
            started_at: format_micros(s.started_at),
            trial_ends_at: s.trial_ends_at.map(format_micros),
            canceled_at: s.canceled_at.map(format_micros),
            changes: r.changes.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceView {
    pub id: String,
    pub customer_id: String,
    pub amount: Decimal,
    pub currency: &'static str,
    /// paid, failed, open or void
    pub status: &'static str,
    pub issued_at: String,
    pub paid_at: Option<String>,
}

impl InvoiceView {
    pub fn new(i: Invoice, c: Currency) -> Self {
        InvoiceView {
            id: i.id,
            customer_id: i.customer_id,
            amount: c.from_minor(i.amount),
            currency: c.code,
            status: i.status.as_str(),
            issued_at: format_micros(i.issued_at),
            paid_at: i.paid_at.map(format_micros),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceView {
    pub name: String,
    pub display_name: Option<String>,
    pub unit_type: Option<String>,
    pub health_url: Option<String>,
}

impl From<Service> for ServiceView {
    fn from(s: Service) -> Self {
        ServiceView {
            name: s.name,
            display_name: s.display_name,
            unit_type: s.unit_type,
            health_url: s.health_url,
        }
    }
}

/// A page of a list, in id order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListPage<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> ListPage<T> {
    pub fn map<S>(page: Page<S>, f: impl FnMut(S) -> T) -> Self {
        ListPage {
            items: page.items.into_iter().map(f).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// `limit` (1..1000, default 100) and `cursor` of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl ListParams {
    pub fn page(self) -> Result<tally_store::PageRequest, crate::error::ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(crate::error::ApiError::invalid(
                "limit",
                format!("must be 1 to 1000 (got {limit})"),
            ));
        }
        Ok(tally_store::PageRequest {
            limit,
            cursor: self.cursor,
        })
    }
}

/// How many records a batch upsert created, updated or left unchanged.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct UpsertSummary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

impl UpsertSummary {
    pub fn of(outcomes: &[WriteOutcome]) -> Self {
        let mut s = UpsertSummary::default();
        for o in outcomes {
            match o {
                WriteOutcome::Created => s.created += 1,
                WriteOutcome::Updated => s.updated += 1,
                WriteOutcome::Unchanged => s.unchanged += 1,
            }
        }
        s
    }
}
