//! Values passed to and from a [`crate::Store`].

pub use roaring::RoaringBitmap;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use tally_core::event::EventKind;
use tally_core::model::*;
use tally_core::time::{Micros, MICROS_PER_DAY};

/// A half-open span of time `[start, end)`. An inclusive `as_of` is `end = as_of + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Micros,
    pub end: Micros,
}

impl Span {
    pub fn new(start: Micros, end: Micros) -> Span {
        Span { start, end }
    }

    /// `[start, as_of]`.
    pub fn through(start: Micros, as_of: Micros) -> Span {
        Span {
            start,
            end: as_of + 1,
        }
    }

    pub fn contains(&self, t: Micros) -> bool {
        self.start <= t && t < self.end
    }

    /// The whole UTC days `[first, end)` inside the span, as day indexes (empty when
    /// `first >= end`); what is left at either end is a partial day.
    pub fn whole_days(&self) -> (i64, i64) {
        let first =
            self.start.div_euclid(MICROS_PER_DAY) + i64::from(self.start % MICROS_PER_DAY != 0);
        (first, self.end.div_euclid(MICROS_PER_DAY))
    }
}

/// A page request: at most `limit` items after the opaque `cursor` of the previous page.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when more items follow.
    pub next_cursor: Option<String>,
}

/// Cursors are the last id of a page, hex-encoded so they are opaque and URL-safe.
pub fn encode_cursor(last_id: &str) -> String {
    last_id.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_cursor(cursor: &str) -> Option<String> {
    if cursor.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A subscription with its changes, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub subscription: Subscription,
    pub changes: Vec<SubscriptionChange>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub plans: i64,
    pub customers: i64,
    pub subscriptions: i64,
    pub subscription_changes: i64,
    pub invoices: i64,
    pub costs: i64,
    pub marketing_spend: i64,
    pub services: i64,
    pub events: i64,
}

/// How far the stored data has come (see [`crate::Store::data_version`]): one counter per
/// kind of data, each raised in the same transaction as every write that changed data of
/// its kind. Values only grow; equal values mean equal data of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataVersion {
    /// Plans, customers, subscriptions, their changes and cancellations, invoices, costs,
    /// marketing spend, services and alert rules.
    pub entities: i64,
    /// Events (usage events, health checks, gauges) and the services they register.
    pub events: i64,
}

#[derive(Debug, Clone, Default)]
pub struct BillingData {
    /// The data version of the snapshot the rest was read from.
    pub version: DataVersion,
    pub plans: Vec<Plan>,
    pub customers: Vec<Customer>,
    pub subscriptions: Vec<Subscription>,
    /// All changes of all subscriptions.
    pub changes: Vec<SubscriptionChange>,
}

#[derive(Debug, Clone, Default)]
pub struct CostData {
    pub costs: Vec<CostRecord>,
    pub spend: Vec<MarketingSpend>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceStats {
    /// Sum of `paid` invoices whose `paid_at` is in the paid span, minor units.
    pub paid_revenue: i64,
    /// Counts by status of invoices whose `issued_at` is in the issued span, as the
    /// statuses stood at the span's end: an invoice paid at or after it counts as open.
    pub issued: i64,
    pub issued_paid: i64,
    pub issued_failed: i64,
    pub issued_open: i64,
    pub issued_void: i64,
}

/// A dimension to group events by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageDim {
    Service,
    Model,
    Provider,
    Customer,
    /// UTC date of the event.
    Day,
    CacheHit,
}

/// Which events to aggregate and how to group them.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub span: Span,
    pub kind: EventKind,
    /// Only this service.
    pub service: Option<String>,
    /// Only this customer.
    pub customer: Option<String>,
    /// Only LLM calls (events with a model).
    pub llm_only: bool,
    pub group_by: Vec<UsageDim>,
    /// The counters of `UsageRow` to compute; `None` computes all of them. The others
    /// come back 0 (see [`UsageQuery::only`]).
    pub measures: Option<Vec<Measure>>,
}

impl UsageQuery {
    pub fn new(kind: EventKind, span: Span) -> UsageQuery {
        UsageQuery {
            span,
            kind,
            service: None,
            customer: None,
            llm_only: false,
            group_by: Vec::new(),
            measures: None,
        }
    }

    /// Computes only these counters; the others of each row are 0. The database sums
    /// every counter over every row it reads, so a query over many rows (one per
    /// customer and day) that needs two counters is cheaper asking for two.
    pub fn only(mut self, measures: &[Measure]) -> UsageQuery {
        self.measures = Some(measures.to_vec());
        self
    }

    pub fn group(mut self, dims: &[UsageDim]) -> UsageQuery {
        self.group_by = dims.to_vec();
        self
    }
}

/// One write of [`Store::write_entities`](crate::Store::write_entities): the arguments
/// of the single call of the same name.
#[derive(Debug, Clone, Copy)]
pub enum EntityWrite<'a> {
    Plan(&'a Plan),
    Customer(&'a Customer),
    Subscription(&'a Subscription),
    Change(&'a SubscriptionChange),
    Cancel {
        subscription_id: &'a str,
        effective_at: Micros,
    },
    Invoice(&'a Invoice),
    Service(&'a Service),
}

/// Names the write for messages: its kind and id, never the rest of the record.
impl std::fmt::Display for EntityWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntityWrite::Plan(p) => write!(f, "plan {}", p.id),
            EntityWrite::Customer(c) => write!(f, "customer {}", c.id),
            EntityWrite::Subscription(s) => write!(f, "subscription {}", s.id),
            EntityWrite::Change(c) => write!(f, "a change of subscription {}", c.subscription_id),
            EntityWrite::Cancel {
                subscription_id, ..
            } => write!(f, "the cancellation of subscription {subscription_id}"),
            EntityWrite::Invoice(i) => write!(f, "invoice {}", i.id),
            EntityWrite::Service(s) => write!(f, "service {}", s.name),
        }
    }
}

/// A counter of `UsageRow` (two for latency and for status codes, which are read
/// together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Events,
    Quantity,
    InputTokens,
    OutputTokens,
    CacheReadTokens,
    CacheWriteTokens,
    Cost,
    Unpriced,
    /// `latency_sum` and `latency_count`.
    Latency,
    /// `status_count` and `error_count`.
    Status,
    Up,
}

/// The customers with events of one kind in a span, as sets of the store's customer
/// numbers (`Store::customer_numbers` gives a customer's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActiveCustomers {
    /// Per service, the numbers of its customers: `None` for events without a service, and
    /// for every event when the query was not by service. No set is empty.
    pub by_service: BTreeMap<Option<String>, RoaringBitmap>,
}

impl ActiveCustomers {
    /// Every customer, whatever the service.
    pub fn all(&self) -> RoaringBitmap {
        self.by_service
            .values()
            .fold(RoaringBitmap::new(), |all, set| all | set)
    }

    /// The number of distinct customers of `service` (0 when it has none).
    pub fn count(&self, service: Option<&str>) -> u64 {
        self.by_service
            .get(&service.map(str::to_owned))
            .map_or(0, RoaringBitmap::len)
    }
}

/// One group of events. Dimension fields not grouped by are `None`; an ungrouped query
/// returns exactly one row (with zero counts when nothing matched).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageRow {
    pub service: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub customer_id: Option<String>,
    /// Days since 1970-01-01 (UTC).
    pub day: Option<i64>,
    pub cache_hit: Option<bool>,

    pub events: i64,
    /// Sum of quantities, micros.
    pub quantity: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// Sum of costs, micro-credits.
    pub cost: i64,
    /// Events with a model and no known cost.
    pub unpriced: i64,
    pub latency_sum: f64,
    pub latency_count: i64,
    /// Events with a status code, and those with status ≥ 500.
    pub status_count: i64,
    pub error_count: i64,
    /// Health checks that were up.
    pub up_count: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Admin,
    Analyst,
    Ingest,
}

impl Role {
    pub const ACCEPTED: &'static str = "admin, analyst, ingest";

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Ingest => "ingest",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "analyst" => Some(Role::Analyst),
            "ingest" => Some(Role::Ingest),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// SHA-256 of the secret, hex. The secret itself is never stored.
    pub secret_hash: String,
    pub created_at: Micros,
    pub revoked_at: Option<Micros>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Above,
    Below,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Above => "above",
            Direction::Below => "below",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "above" => Some(Direction::Above),
            "below" => Some(Direction::Below),
            _ => None,
        }
    }
}

/// An alert rule on one metric: which way is bad, and the thresholds per severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    pub metric: String,
    pub direction: Direction,
    pub critical: Decimal,
    pub warning: Decimal,
    pub info: Option<Decimal>,
    pub enabled: bool,
}

/// One line of the audit log: who called which route, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Assigned by the store; ignored (pass 0) when appending.
    pub id: i64,
    pub at: Micros,
    /// The API key used, if the request carried a known one.
    pub key_id: Option<String>,
    pub method: String,
    pub route: String,
    pub status: u16,
    pub client: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        for id in ["cus_1", "ü/x y", ""] {
            assert_eq!(decode_cursor(&encode_cursor(id)).as_deref(), Some(id));
        }
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(decode_cursor("abc"), None);
    }
}
