//! Properties of the 21 analytics endpoints over generated datasets, through the HTTP API
//! (issue 3). Each case generates plans, customers, subscriptions (trials, discounts,
//! plan/quantity/discount changes, cancellations, reactivations), invoices, costs,
//! marketing spend, alert rules and usage events (LLM calls priced, given or unpriced,
//! service requests with status and latency, storage units, health checks, cache-size
//! gauges) over 20 months, and three `as_of` instants (a month end, a mid-month instant,
//! and one more of any kind) plus none (the clock's now, after all the data). Then:
//!
//! 1. **Relations.** On a store loaded in canonical order, at every `as_of`, every
//!    relation between endpoints that metrics.md (spec and project docs) implies holds:
//!    the same quantity is the same everywhere, movements add up month by month, totals
//!    equal the sums of their breakdowns, shares sum to 100 up to rounding, ratios follow
//!    from the counts they are built on. See [`check_relations`] for the list.
//! 2. **Data after `as_of` changes nothing.** A fresh store receives only the data dated at
//!    or before one of the `as_of`s (entities by their own time, cost and spend records by
//!    month); its answers there equal the full store's, and still do after the rest
//!    arrives.
//! 3. **Ingestion order changes nothing.** That second store receives everything in a
//!    shuffled order (dependencies kept: a plan and a customer before their
//!    subscription, a subscription before its changes; changes and cancellations of one
//!    subscription in any order; events in batches of random size; about one write in
//!    ten sent twice). Every endpoint answers the same JSON as the canonical store at
//!    every `as_of`. The canonical store runs without the response cache, the second
//!    with it; before the rest arrives, the second is also asked at the other `as_of`s
//!    (whose answers the rest changes), so an answer kept too long by the cache shows
//!    up as a difference.
//!
//! Exactness: half of the datasets use amounts that make every monthly amount a whole cent
//! and every event cost a whole hundredth of a credit (`exact`); there, identities over
//! rounded figures must hold exactly and ratios are recomputed from the figures they
//! divide. The others use amounts that do not divide evenly and costs priced from the
//! model table; there, sums of rounded parts are compared within their rounding error.
//!
//! Nothing here copies a figure from a response into the test: every assertion compares
//! one route with another, a figure with the counts it is computed from, or one store
//! with another. A coverage table (printed at the end) makes sure each relation met
//! non-zero values on most datasets.

use chrono::Datelike;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Instant;
use tally_core::time::{date_of, format_micros, Micros, Month, MICROS_PER_DAY, MICROS_PER_SEC};
use tally_server::ServerConfig;
use tally_testkit::{TestApp, TestStore, PG_ENV};

// ---------------------------------------------------------------------------------------
// Timeline

/// Data spans 2024-01 .. 2025-08 (20 months); `as_of`s fall in 2025-02 .. 2025-07.
const TIMELINE_MONTHS: i32 = 20;
const FIRST_AS_OF_MONTH: i32 = 13;
const LAST_AS_OF_MONTH: i32 = 18;

fn month(i: i32) -> Month {
    Month::new(2024, 1).expect("month").add(i)
}

fn start() -> Micros {
    month(0).start()
}

fn end() -> Micros {
    month(TIMELINE_MONTHS).start()
}

/// The app's clock: after every generated instant (requests always pass `as_of`).
fn now() -> Micros {
    month(TIMELINE_MONTHS).start() + 14 * MICROS_PER_DAY
}

/// An event offset meaning "the first instant of the `as_of`'s month".
const MONTH_EDGE: i64 = i64::MIN / 4;

const DAY: Micros = MICROS_PER_DAY;
const SEC: Micros = MICROS_PER_SEC;

// ---------------------------------------------------------------------------------------
// Generated specifications

/// (id, tier, interval). `free_m` costs nothing: its customers are neither paying nor
/// in trial.
const PLANS: [(&str, &str, &str); 6] = [
    ("basic_m", "basic", "month"),
    ("pro_m", "pro", "month"),
    ("pro_y", "pro", "year"),
    ("team_q", "team", "quarter"),
    ("ent_y", "enterprise", "year"),
    ("free_m", "free", "month"),
];

/// Discount percents; the first six keep a multiple of 12 dollars a whole number of
/// cents per month under any interval.
const DISCOUNTS: [&str; 8] = ["0", "0", "10", "25", "50", "15", "12.5", "33.3"];
const CHANNELS: [Option<&str>; 4] = [Some("ads"), Some("organic"), Some("referral"), None];
const SPEND_CHANNELS: [&str; 4] = ["ads", "organic", "referral", "events"];
const COST_SERVICES: [&str; 4] = ["llm_inference", "search", "storage", "db"];
/// (model, provider): two in the built-in price table, one not.
const MODELS: [(&str, &str); 3] = [
    ("gpt-4o", "openai"),
    ("claude-3-5-haiku", "anthropic"),
    ("acme-internal", "acme"),
];
const STATUSES: [i64; 7] = [200, 200, 200, 201, 404, 500, 503];
const SERVICES: [&str; 3] = ["llm_inference", "search", "storage"];
const PERIODS: [&str; 6] = [
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "last_year",
];
/// (metric, default direction).
const RULE_METRICS: [(&str, &str); 6] = [
    ("churn_rate", "above"),
    ("error_rate", "above"),
    ("mrr_growth", "below"),
    ("uptime", "below"),
    ("payment_success_rate", "below"),
    ("gross_margin", "below"),
];

#[derive(Debug, Clone)]
struct ChangeSpec {
    /// Effective near an `as_of` (its index; minutes from it, 0 exactly at it, 1 one
    /// microsecond after it), when that is after the start; else `after_days`.
    anchor: Option<(usize, i64)>,
    after_days: i64,
    edge: u8,
    secs: i64,
    plan: Option<usize>,
    quantity: Option<i64>,
    discount: Option<usize>,
}

#[derive(Debug, Clone)]
struct SubSpec {
    plan: usize,
    start_after_days: i64,
    edge: u8,
    secs: i64,
    quantity: i64,
    discount: usize,
    trial_days: Option<i64>,
    changes: Vec<ChangeSpec>,
    /// Days after the start; `Some(-1)` cancels exactly when the trial ends.
    cancel: Option<i64>,
    /// Instead, a cancellation near an `as_of` (its index; days before it, or −2 exactly
    /// at it, −1 one microsecond after it), when that is after the start.
    cancel_anchor: Option<(usize, i64)>,
    /// (days after the cancellation, plan): a new subscription of the same customer.
    reactivate: Option<(i64, usize)>,
}

#[derive(Debug, Clone)]
struct InvoiceSpec {
    /// Issued some days before an `as_of` (its index, days; negative: after it), or
    /// after the signup.
    anchor: Option<(usize, i64)>,
    after_days: i64,
    secs: i64,
    cents: i64,
    status: u8,
    pay_delay_hours: i64,
}

#[derive(Debug, Clone)]
struct CustomerSpec {
    /// Created some days before an `as_of` (its index, days; negative: after it), or on
    /// `created_day`.
    anchor: Option<(usize, i64)>,
    created_day: i64,
    secs: i64,
    channel: usize,
    subs: Vec<SubSpec>,
    invoices: Vec<InvoiceSpec>,
}

#[derive(Debug, Clone)]
struct AsOfSpec {
    month: i32,
    /// 0: last instant of the month; 1: a date (end of that day); 2: a mid-month
    /// instant; 3: the first instant of the month.
    kind: u8,
    day: u32,
    secs: i64,
}

#[derive(Debug, Clone)]
struct EventSpec {
    /// Index of the `as_of` the event clusters around, or spread over the timeline.
    anchor: Option<usize>,
    offset_s: i64,
    edge_us: i64,
    /// 0–3 LLM call, 4–5 search request, 6 storage, 7 health check, 8 gauge.
    kind: u8,
    customer: Option<usize>,
    model: usize,
    provider: bool,
    tokens: (i64, i64, i64, i64),
    cost: Option<i64>,
    cache_hit: Option<bool>,
    latency: i64,
    status: usize,
    quantity_milli: i64,
    up: bool,
}

#[derive(Debug, Clone)]
struct RuleSpec {
    metric: usize,
    flip: bool,
    thresholds: (i64, i64, Option<i64>),
    enabled: bool,
}

#[derive(Debug, Clone)]
struct Spec {
    exact: bool,
    plan_factors: Vec<i64>,
    plan_cents: Vec<i64>,
    customers: Vec<CustomerSpec>,
    /// (month, or the month of an `as_of`; infrastructure?; service; cents).
    costs: Vec<(i32, Option<usize>, bool, usize, i64)>,
    spend: Vec<(i32, usize, i64)>,
    events: Vec<EventSpec>,
    as_ofs: Vec<AsOfSpec>,
    rules: Vec<RuleSpec>,
    split: usize,
    seed: u64,
}

fn change_spec() -> impl Strategy<Value = ChangeSpec> {
    (
        prop::option::weighted(0.3, (0usize..3, -4000i64..4000)),
        0i64..240,
        0u8..4,
        0i64..86_400,
        prop::option::of(0usize..PLANS.len()),
        prop::option::of(1i64..4),
        prop::option::of(0usize..DISCOUNTS.len()),
    )
        .prop_map(
            |(anchor, after_days, edge, secs, plan, quantity, discount)| ChangeSpec {
                anchor,
                after_days,
                edge,
                secs,
                plan,
                quantity,
                discount,
            },
        )
}

fn sub_spec() -> impl Strategy<Value = SubSpec> {
    (
        (
            0usize..PLANS.len() - 1,
            prop_oneof![0i64..5, 0i64..60],
            0u8..4,
            0i64..86_400,
            1i64..4,
        ),
        (
            0usize..DISCOUNTS.len(),
            prop::option::weighted(0.5, 0i64..35),
            prop::collection::vec(change_spec(), 0..3),
            prop::option::weighted(0.5, prop_oneof![3 => 0i64..300, 1 => Just(-1i64)]),
            prop::option::weighted(0.3, (0usize..3, -2i64..25)),
            prop::option::weighted(0.5, (1i64..90, 0usize..PLANS.len())),
        ),
    )
        .prop_map(
            |(
                (plan, start_after_days, edge, secs, quantity),
                (discount, trial_days, changes, cancel, cancel_anchor, reactivate),
            )| SubSpec {
                plan,
                start_after_days,
                edge,
                secs,
                quantity,
                discount,
                trial_days,
                changes,
                cancel,
                cancel_anchor,
                reactivate,
            },
        )
}

fn invoice_spec() -> impl Strategy<Value = InvoiceSpec> {
    (
        prop::option::weighted(0.5, (0usize..3, -3i64..28)),
        0i64..500,
        0i64..86_400,
        100i64..200_000,
        0u8..10,
        0i64..400,
    )
        .prop_map(
            |(anchor, after_days, secs, cents, status, pay_delay_hours)| InvoiceSpec {
                anchor,
                after_days,
                secs,
                cents,
                status,
                pay_delay_hours,
            },
        )
}

fn customer_spec() -> impl Strategy<Value = CustomerSpec> {
    (
        prop::option::weighted(0.3, (0usize..3, -3i64..30)),
        0i64..580,
        0i64..86_400,
        0usize..CHANNELS.len(),
        prop::collection::vec(sub_spec(), 1..3),
        prop::collection::vec(invoice_spec(), 0..6),
    )
        .prop_map(
            |(anchor, created_day, secs, channel, subs, invoices)| CustomerSpec {
                anchor,
                created_day,
                secs,
                channel,
                subs,
                invoices,
            },
        )
}

fn as_of_spec(kinds: &'static [u8]) -> impl Strategy<Value = AsOfSpec> {
    (
        FIRST_AS_OF_MONTH..=LAST_AS_OF_MONTH,
        prop::sample::select(kinds),
        1u32..=31,
        0i64..86_400,
    )
        .prop_map(|(month, kind, day, secs)| AsOfSpec {
            month,
            kind,
            day,
            secs,
        })
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    let anchored = prop_oneof![
        4 => (-172_800i64..=0).prop_map(|s| (s, 0i64)),
        4 => (-3_000_000i64..=0).prop_map(|s| (s, 0)),
        2 => (1i64..300_000).prop_map(|s| (s, 0)),
        1 => prop::sample::select(vec![(0i64, 0i64), (0, 1), (0, -1)]),
        // The edges of the 1 h, 24 h, 7 d and 30 d windows, and of the month.
        1 => (
            prop::sample::select(vec![-3600i64, -86_400, -604_800, -2_592_000, MONTH_EDGE]),
            -1i64..=1,
        ),
    ];
    let whole = (end() - start()) / SEC;
    (
        (
            prop::option::weighted(0.75, 0usize..3),
            anchored,
            0i64..whole,
            prop::sample::select(vec![0u8, 0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 7, 8]),
            prop::option::weighted(0.85, 0usize..16),
        ),
        (
            0usize..MODELS.len(),
            prop::bool::weighted(0.8),
            (0i64..6000, 0i64..3, 0i64..3, 0i64..2500),
            prop::option::weighted(0.8, 0i64..5000),
            prop::option::of(any::<bool>()),
            1i64..3000,
            0usize..STATUSES.len(),
            1i64..20_000,
            prop::bool::weighted(0.9),
        ),
    )
        .prop_map(
            |(
                (anchor, (a_off, edge_us), w_off, kind, customer),
                (model, provider, tokens, cost, cache_hit, latency, status, quantity_milli, up),
            )| {
                let offset_s = if anchor.is_some() { a_off } else { w_off };
                EventSpec {
                    anchor,
                    offset_s,
                    edge_us,
                    kind,
                    customer,
                    model,
                    provider,
                    tokens,
                    cost,
                    cache_hit,
                    latency,
                    status,
                    quantity_milli,
                    up,
                }
            },
        )
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        0usize..RULE_METRICS.len(),
        prop::bool::weighted(0.2),
        (-100i64..100, 0i64..200, prop::option::of(0i64..100)),
        prop::bool::weighted(0.85),
    )
        .prop_map(|(metric, flip, thresholds, enabled)| RuleSpec {
            metric,
            flip,
            thresholds,
            enabled,
        })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            any::<bool>(),
            prop::collection::vec(1i64..=20, PLANS.len()),
            prop::collection::vec(500i64..90_000, PLANS.len()),
            prop::collection::vec(customer_spec(), 4..13),
        ),
        (
            prop::collection::vec(
                (
                    0..TIMELINE_MONTHS,
                    prop::option::weighted(0.5, 0usize..3),
                    any::<bool>(),
                    0usize..4,
                    1_000i64..80_000,
                ),
                0..24,
            ),
            prop::collection::vec((0..TIMELINE_MONTHS, 0usize..4, 1_000i64..60_000), 0..20),
            prop::collection::vec(event_spec(), 60..220),
        ),
        (
            as_of_spec(&[0, 1]),
            as_of_spec(&[2]),
            as_of_spec(&[0, 1, 2, 3]),
            prop::collection::vec(rule_spec(), 1..6),
            0usize..3,
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (exact, plan_factors, plan_cents, customers),
                (costs, spend, events),
                (a0, a1, a2, rules, split, seed),
            )| Spec {
                exact,
                plan_factors,
                plan_cents,
                customers,
                costs,
                spend,
                events,
                as_ofs: vec![a0, a1, a2],
                rules,
                split,
                seed,
            },
        )
}

// ---------------------------------------------------------------------------------------
// Datasets: the writes a spec turns into

#[derive(Debug, Clone)]
enum Req {
    Put(String, Value),
    Post(String, Value),
    Event(Value),
}

/// One write with the instant it is dated by (`i64::MIN` for undated configuration:
/// plans, services, alert rules) and its dependency level (0 configuration, 1
/// customers, 2 subscriptions and invoices, 3 changes and cancellations; events,
/// costs and spend have none and go anywhere).
#[derive(Debug, Clone)]
struct Item {
    level: Option<u8>,
    at: Micros,
    req: Req,
}

#[derive(Debug, Clone)]
struct AsOf {
    param: String,
    t: Micros,
}

impl AsOf {
    fn label(&self) -> &str {
        if self.param.is_empty() {
            "(none: the clock's now)"
        } else {
            &self.param
        }
    }
}

#[derive(Debug)]
struct Dataset {
    exact: bool,
    items: Vec<Item>,
    as_ofs: Vec<AsOf>,
    split: usize,
    seed: u64,
}

fn money_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Hundredths as a decimal text; non-exact datasets get some sub-cent digits.
fn credits_text(hundredths: i64, exact: bool) -> String {
    if exact || hundredths % 3 != 0 {
        money_text(hundredths)
    } else {
        format!("{}.{:02}7", hundredths / 100, hundredths % 100)
    }
}

/// Latency in ms, whole or with up to three decimals (clients send floats).
fn latency(e: &EventSpec) -> Value {
    if e.latency < 1500 {
        json!(e.latency)
    } else {
        json!(e.latency as f64 + (e.quantity_milli % 1000) as f64 / 1000.0)
    }
}

fn at_edge(t: Micros, edge: u8, secs: i64, not_before: Micros) -> Micros {
    let day = t.div_euclid(DAY) * DAY;
    let v = match edge % 4 {
        0 => day,
        1 => Month::of(t).start(),
        2 => day + 7,
        _ => day + secs * SEC,
    };
    v.max(not_before)
}

fn as_of_of(a: &AsOfSpec) -> AsOf {
    let m = month(a.month);
    let day = (a.day as i64).min(m.days());
    let day_start = m.start() + (day - 1) * DAY;
    match a.kind {
        0 => AsOf {
            param: format_micros(m.last_instant()),
            t: m.last_instant(),
        },
        1 => AsOf {
            param: date_of(day_start).to_string(),
            t: day_start + DAY - 1,
        },
        2 => {
            let t = day_start + a.secs * SEC;
            AsOf {
                param: format_micros(t),
                t,
            }
        }
        _ => AsOf {
            param: format_micros(m.start()),
            t: m.start(),
        },
    }
}

fn build(spec: &Spec) -> Dataset {
    let exact = spec.exact;
    let mut as_ofs: Vec<AsOf> = spec.as_ofs.iter().map(as_of_of).collect();
    let mut items: Vec<Item> = Vec::new();
    let config = |req| Item {
        level: Some(0),
        at: i64::MIN,
        req,
    };
    for (i, (id, tier, interval)) in PLANS.iter().enumerate() {
        let cents = if *tier == "free" {
            0
        } else if exact {
            // A multiple of 12 dollars: a whole number of cents a month for every
            // interval and integer discount.
            let months = match *interval {
                "year" => 12,
                "quarter" => 3,
                _ => 1,
            };
            1200 * spec.plan_factors[i] * months
        } else {
            spec.plan_cents[i]
                * match *interval {
                    "year" => 10,
                    "quarter" => 3,
                    _ => 1,
                }
                + 1
        };
        items.push(config(Req::Put(
            format!("/api/v1/plans/{id}"),
            json!({"name": id, "tier": tier, "interval": interval, "amount": money_text(cents), "currency": "USD"}),
        )));
    }
    items.push(config(Req::Put(
        "/api/v1/services/storage".into(),
        json!({"display_name": "Storage", "unit_type": "GB"}),
    )));
    items.push(config(Req::Put(
        "/api/v1/services/llm_inference".into(),
        json!({"unit_type": "api_calls"}),
    )));
    items.push(config(Req::Put(
        "/api/v1/services/search".into(),
        json!({}),
    )));
    let mut ruled = BTreeSet::new();
    for r in &spec.rules {
        if !ruled.insert(r.metric) {
            continue;
        }
        let (metric, dir) = RULE_METRICS[r.metric];
        let dir = match (dir, r.flip) {
            ("above", false) | ("below", true) => "above",
            _ => "below",
        };
        let (a, b, c) = r.thresholds;
        // Severity grows in the rule's direction.
        let mut v = vec![a, a + b];
        if let Some(c) = c {
            v.push(a + b + c);
        }
        if dir == "below" {
            // below: critical ≤ warning ≤ info, so the smallest first.
            v.sort();
        } else {
            v.sort_by(|x, y| y.cmp(x));
        }
        let mut body =
            json!({"direction": dir, "critical": v[0], "warning": v[1], "enabled": r.enabled});
        if v.len() > 2 {
            body["info"] = json!(v[2]);
        }
        items.push(config(Req::Put(
            format!("/api/v1/alert-rules/{metric}"),
            body,
        )));
    }

    let discount = |i: usize| {
        if exact {
            DISCOUNTS[i % 6]
        } else {
            DISCOUNTS[i]
        }
    };
    let mut invoice_no = 0;
    for (ci, c) in spec.customers.iter().enumerate() {
        let cid = format!("c{ci}");
        let created = match c.anchor {
            Some((k, days)) => as_ofs[k].t - days * DAY - c.secs * SEC,
            None => start() + c.created_day * DAY + c.secs * SEC,
        };
        let mut body = json!({"created_at": format_micros(created)});
        if let Some(ch) = CHANNELS[c.channel] {
            body["channel"] = json!(ch);
        }
        items.push(Item {
            level: Some(1),
            at: created,
            req: Req::Put(format!("/api/v1/customers/{cid}"), body),
        });
        let mut sub_no = 0;
        for s in &c.subs {
            // The subscription, and its reactivation (a new subscription) if any.
            let mut next: Option<(Micros, usize)> = Some((
                at_edge(created + s.start_after_days * DAY, s.edge, s.secs, created),
                s.plan,
            ));
            let mut first = true;
            while let Some((started, plan)) = next.take() {
                let sid = format!("s{ci}_{sub_no}");
                sub_no += 1;
                let mut body = json!({
                    "customer_id": cid, "plan_id": PLANS[plan].0, "started_at": format_micros(started),
                    "quantity": s.quantity, "discount_percent": discount(s.discount),
                });
                let trial_end = s.trial_days.map(|d| started + d * DAY);
                if let Some(te) = trial_end {
                    body["trial_ends_at"] = json!(format_micros(te));
                }
                items.push(Item {
                    level: Some(2),
                    at: started,
                    req: Req::Put(format!("/api/v1/subscriptions/{sid}"), body),
                });
                if first {
                    let mut seen = BTreeSet::new();
                    for ch in &s.changes {
                        let near_as_of = ch.anchor.and_then(|(k, minutes)| {
                            let t = as_ofs[k].t;
                            let at = match minutes {
                                0 => t,
                                1 => t + 1,
                                _ => t + minutes * 60 * SEC,
                            };
                            (at >= started).then_some(at)
                        });
                        let at = near_as_of.unwrap_or_else(|| {
                            at_edge(started + ch.after_days * DAY, ch.edge, ch.secs, started)
                        });
                        if !seen.insert(at) {
                            continue; // keyed by (subscription, effective_at)
                        }
                        let mut body = json!({"effective_at": format_micros(at)});
                        if let Some(p) = ch.plan {
                            body["plan_id"] = json!(PLANS[p].0);
                        }
                        if let Some(q) = ch.quantity {
                            body["quantity"] = json!(q);
                        }
                        if let Some(d) = ch.discount {
                            body["discount_percent"] = json!(discount(d));
                        }
                        if ch.plan.is_none() && ch.quantity.is_none() && ch.discount.is_none() {
                            body["quantity"] = json!(s.quantity + 1);
                        }
                        items.push(Item {
                            level: Some(3),
                            at,
                            req: Req::Post(format!("/api/v1/subscriptions/{sid}/changes"), body),
                        });
                    }
                }
                if first {
                    let near_as_of = s.cancel_anchor.and_then(|(k, days)| {
                        let t = as_ofs[k].t;
                        let at = match days {
                            -2 => t,
                            -1 => t + 1,
                            _ => t - days * DAY - 3600 * SEC,
                        };
                        (at >= started).then_some(at)
                    });
                    let cancel_at = near_as_of.or(match s.cancel {
                        Some(-1) => Some(trial_end.unwrap_or(started + 30 * DAY)),
                        Some(d) => Some(started + d * DAY + 3600 * SEC),
                        None => None,
                    });
                    if let Some(at) = cancel_at {
                        items.push(Item {
                            level: Some(3),
                            at,
                            req: Req::Post(
                                format!("/api/v1/subscriptions/{sid}/cancel"),
                                json!({"effective_at": format_micros(at)}),
                            ),
                        });
                        if let Some((days, plan)) = s.reactivate {
                            next = Some((at + days * DAY, plan));
                        }
                    }
                }
                first = false;
            }
        }
        for inv in &c.invoices {
            let issued = match inv.anchor {
                Some((k, days)) => (as_ofs[k].t - days * DAY - inv.secs * SEC).max(created),
                None => created + inv.after_days * DAY + inv.secs * SEC,
            };
            let status = match inv.status {
                0..=5 => "paid",
                6 | 7 => "failed",
                8 => "open",
                _ => "void",
            };
            let mut body = json!({"customer_id": cid, "amount": money_text(inv.cents), "currency": "USD", "status": status, "issued_at": format_micros(issued)});
            if status == "paid" {
                body["paid_at"] = json!(format_micros(issued + inv.pay_delay_hours * 3600 * SEC));
            }
            items.push(Item {
                level: Some(2),
                at: issued,
                req: Req::Put(format!("/api/v1/invoices/i{invoice_no}"), body),
            });
            invoice_no += 1;
        }
    }

    // Monthly records: one per key (they are upserts, so a second would make the
    // answer depend on the order).
    let mut keys = BTreeSet::new();
    for (m, anchor, infra, svc, cents) in &spec.costs {
        let m = &anchor.map_or(*m, |k| spec.as_ofs[k].month);
        let category = if *infra { "infrastructure" } else { "other" };
        if !keys.insert((*m, category, *svc)) {
            continue;
        }
        items.push(Item {
            level: None,
            at: month(*m).start(),
            req: Req::Post(
                "/api/v1/costs".into(),
                json!([{"month": month(*m).to_string(), "category": category, "service": COST_SERVICES[*svc], "amount": money_text(*cents)}]),
            ),
        });
    }
    let mut keys = BTreeSet::new();
    for (m, ch, cents) in &spec.spend {
        if !keys.insert((*m, *ch)) {
            continue;
        }
        items.push(Item {
            level: None,
            at: month(*m).start(),
            req: Req::Post(
                "/api/v1/marketing-spend".into(),
                json!([{"month": month(*m).to_string(), "channel": SPEND_CHANNELS[*ch], "amount": money_text(*cents)}]),
            ),
        });
    }

    let n_customers = spec.customers.len();
    for (i, e) in spec.events.iter().enumerate() {
        let time = match e.anchor {
            Some(a) if e.offset_s == MONTH_EDGE => Month::of(as_ofs[a].t).start() + e.edge_us,
            Some(a) => as_ofs[a].t + e.offset_s * SEC + e.edge_us,
            None => start() + e.offset_s * SEC,
        };
        let mut ev = json!({"id": format!("e{i}"), "time": format_micros(time)});
        if e.kind <= 6 {
            match e.customer {
                Some(c) if c < n_customers => ev["customer_id"] = json!(format!("c{c}")),
                Some(c) => ev["customer_id"] = json!(format!("ghost{c}")),
                None => {}
            }
        }
        match e.kind {
            0..=3 => {
                let (model, provider) = MODELS[e.model];
                let (input, read, write, output) = e.tokens;
                ev["service"] = json!("llm_inference");
                ev["model"] = json!(model);
                if e.provider {
                    ev["provider"] = json!(provider);
                }
                ev["input_tokens"] = json!(input);
                ev["cache_read_tokens"] = json!(input * read / 6);
                ev["cache_write_tokens"] = json!(input * write / 8);
                ev["output_tokens"] = json!(output);
                ev["latency_ms"] = latency(e);
                if let Some(h) = e.cache_hit {
                    ev["cache_hit"] = json!(h);
                }
                // Exact datasets give every priced model's cost in hundredths of a credit;
                // the others leave it to the price table. The unknown model is unpriced
                // unless a cost comes with it.
                let cost = match (exact, e.model == 2) {
                    (true, false) => Some(e.cost.unwrap_or(e.latency)),
                    _ => e.cost,
                };
                if let Some(c) = cost {
                    ev["cost_credits"] = Value::String(credits_text(c, exact));
                }
            }
            4 | 5 => {
                ev["service"] = json!("search");
                ev["latency_ms"] = latency(e);
                ev["status_code"] = json!(STATUSES[e.status]);
            }
            6 => {
                ev["service"] = json!("storage");
                ev["quantity"] = Value::String(format!(
                    "{}.{:03}",
                    e.quantity_milli / 1000,
                    e.quantity_milli % 1000
                ));
                ev["unit"] = json!("GB");
                if let Some(c) = e.cost {
                    ev["cost_credits"] = Value::String(money_text(c));
                }
            }
            7 => {
                ev["type"] = json!("health_check");
                ev["service"] = json!(if e.model == 0 {
                    "llm_inference"
                } else {
                    "search"
                });
                ev["up"] = json!(e.up);
                if e.provider {
                    ev["latency_ms"] = latency(e);
                }
            }
            _ => {
                ev["type"] = json!("gauge");
                ev["name"] = json!("llm_cache_size_bytes");
                ev["value"] = json!(e.tokens.0 * 97_313 + e.latency);
            }
        }
        items.push(Item {
            level: None,
            at: time,
            req: Req::Event(ev),
        });
    }
    // And no `as_of` at all: the clock's now, after every generated instant.
    as_ofs.push(AsOf {
        param: String::new(),
        t: now(),
    });
    Dataset {
        exact,
        items,
        as_ofs,
        split: spec.split,
        seed: spec.seed,
    }
}

// ---------------------------------------------------------------------------------------
// Ingestion

/// A small deterministic generator for the shuffled order.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The app without rate limits; `cached` keeps the default response cache, else it is
/// off.
async fn new_app(store: TestStore, cached: bool) -> TestApp {
    let mut config = ServerConfig {
        rate_limit_per_second: 0,
        ..ServerConfig::default()
    };
    if !cached {
        config.response_cache_bytes = 0;
    }
    TestApp::with_config(store, now(), config).await
}

async fn send(app: &TestApp, req: &Req) {
    let (status, body) = match req {
        Req::Put(path, body) => app.put(path, body.clone()).await,
        Req::Post(path, body) => app.post(path, body.clone()).await,
        Req::Event(ev) => app.post("/api/v1/events", json!([ev])).await,
    };
    assert!(status.is_success(), "{req:?}: {status} {body}");
}

async fn send_events(app: &TestApp, batch: &[Value]) {
    if batch.is_empty() {
        return;
    }
    let (status, body) = app
        .post("/api/v1/events", Value::from(batch.to_vec()))
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(body["rejected"], json!([]), "{body}");
}

/// Canonical order: configuration, customers, subscriptions and invoices, changes and
/// cancellations (each by date), costs and spend, then the events by time in large
/// batches.
async fn ingest_canonical(app: &TestApp, items: &[Item]) {
    let mut writes: Vec<&Item> = items
        .iter()
        .filter(|i| !matches!(i.req, Req::Event(_)))
        .collect();
    writes.sort_by_key(|i| (i.level.unwrap_or(4), i.at));
    for i in writes {
        send(app, &i.req).await;
    }
    let mut events: Vec<&Item> = items
        .iter()
        .filter(|i| matches!(i.req, Req::Event(_)))
        .collect();
    events.sort_by_key(|i| i.at);
    let values: Vec<Value> = events
        .iter()
        .map(|i| match &i.req {
            Req::Event(v) => v.clone(),
            _ => unreachable!(),
        })
        .collect();
    for batch in values.chunks(250) {
        send_events(app, batch).await;
    }
}

/// A random order that keeps dependencies (by level), with events in batches of random
/// size and about one write in ten sent twice.
async fn ingest_shuffled(app: &TestApp, items: &[Item], rng: &mut Lcg) {
    let mut order: Vec<(u8, usize)> = (0..items.len())
        .map(|i| {
            let level = items[i].level.unwrap_or_else(|| rng.below(4) as u8);
            (level, i)
        })
        .collect();
    for i in (1..order.len()).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    order.sort_by_key(|(level, _)| *level);
    let mut seq: Vec<usize> = order.into_iter().map(|(_, i)| i).collect();
    let n = seq.len();
    for k in 0..n {
        if rng.below(10) == 0 {
            let pos = k + 1 + rng.below(seq.len() - k);
            let again = seq[k];
            seq.insert(pos.min(seq.len()), again);
        }
    }
    let mut batch: Vec<Value> = Vec::new();
    let mut batch_size = 1 + rng.below(40);
    for i in seq {
        match &items[i].req {
            Req::Event(v) => {
                batch.push(v.clone());
                if batch.len() >= batch_size {
                    send_events(app, &batch).await;
                    batch.clear();
                    batch_size = 1 + rng.below(40);
                }
            }
            other => {
                if rng.below(3) == 0 {
                    send_events(app, &batch).await;
                    batch.clear();
                }
                send(app, other).await;
            }
        }
    }
    send_events(app, &batch).await;
}

// ---------------------------------------------------------------------------------------
// Reading the endpoints

fn with_as_of(path: &str, as_of: &str) -> String {
    if as_of.is_empty() {
        return path.to_string();
    }
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}as_of={as_of}")
}

async fn get(app: &TestApp, path: &str, as_of: &str) -> Value {
    let url = with_as_of(path, as_of);
    let (status, body) = app.get(&url).await;
    assert!(status.is_success(), "GET {url}: {status} {body}");
    body
}

/// Every endpoint with the parameter values the relations use.
fn endpoint_paths(as_of: Micros) -> Vec<String> {
    let dom = date_of(as_of).day();
    let mut p: Vec<String> = Vec::new();
    for r in ["day", "week", "month", "year"] {
        p.push(format!("/api/v1/llm/usage/summary?range={r}"));
        p.push(format!("/api/v1/llm/cache-stats?range={r}"));
    }
    for d in [1, 7, 30, 365] {
        p.push(format!("/api/v1/llm/costs?period={d}d"));
    }
    if ![1, 7, 30].contains(&dom) {
        p.push(format!("/api/v1/llm/costs?period={dom}d"));
    }
    p.extend(
        [
            "/api/v1/analytics/revenue/mrr?months=24",
            "/api/v1/analytics/revenue/mrr",
            "/api/v1/analytics/revenue/arr",
            "/api/v1/analytics/revenue/growth",
            "/api/v1/analytics/revenue/forecast?months_ahead=6",
            "/api/v1/analytics/revenue/forecast?model=holt&confidence=80",
            "/api/v1/analytics/revenue/by-tier",
            "/api/v1/analytics/users/ltv",
            "/api/v1/analytics/users/churn",
            "/api/v1/analytics/users/acquisition",
            "/api/v1/analytics/services/popularity",
            "/api/v1/analytics/services/cost-per-user",
            "/api/v1/analytics/services/adoption",
            "/api/v1/analytics/metrics/summary",
            "/api/v1/analytics/metrics/kpis",
            "/api/v1/analytics/metrics/alerts",
            "/api/v1/billing/analytics/summary",
            "/api/v1/alert-rules",
        ]
        .map(String::from),
    );
    for w in ["1h", "24h", "7d", "30d"] {
        p.push(format!("/api/v1/analytics/services/performance?window={w}"));
    }
    for period in PERIODS {
        p.push(format!("/api/v1/metering/summary?period={period}"));
        for s in SERVICES {
            p.push(format!("/api/v1/metering/service/{s}?period={period}"));
        }
    }
    p
}

type Snapshot = BTreeMap<String, Value>;

async fn snapshot(app: &TestApp, as_of: &AsOf) -> Snapshot {
    let mut out = Snapshot::new();
    for path in endpoint_paths(as_of.t) {
        let v = get(app, &path, &as_of.param).await;
        out.insert(path, v);
    }
    out
}

/// The first place two JSON values differ, as a JSON pointer with both sides.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{at}/{k}"),
                )
                .or_else(|| {
                    (x.contains_key(k) != y.contains_key(k))
                        .then(|| format!("{at}/{k}: key on one side only"))
                })
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(format!("{at}: {a} vs {b}")),
    }
}

#[track_caller]
fn same_snapshots(what: &str, a: &Snapshot, b: &Snapshot) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (path, va) in a {
        if let Some(d) = first_difference(va, &b[path], "") {
            panic!("{what}: {path} differs at {d}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Numbers

fn num(v: &Value) -> Option<Decimal> {
    match v {
        Value::Null => None,
        Value::Number(n) => {
            let t = n.to_string();
            Some(
                Decimal::from_str(&t)
                    .or_else(|_| Decimal::from_scientific(&t))
                    .unwrap_or_else(|_| panic!("not a decimal: {t}")),
            )
        }
        other => panic!("not a number: {other}"),
    }
}

#[track_caller]
fn dec(v: &Value) -> Decimal {
    num(v).unwrap_or_else(|| panic!("expected a number, got null"))
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("expected an integer, got {v}"))
}

fn list(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
}

fn r2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn hundred() -> Decimal {
    Decimal::ONE_HUNDRED
}

/// `num / den × 100` as the subscription side computes it; `None` for a zero `den`.
fn pct_b(num: Decimal, den: Decimal) -> Option<Decimal> {
    (!den.is_zero()).then(|| num / den * hundred())
}

/// `num × 100 / den` as the usage side computes it; `None` for a zero `den`.
fn pct_u(num: Decimal, den: Decimal) -> Option<Decimal> {
    (!den.is_zero()).then(|| num * hundred() / den)
}

fn d(n: i64) -> Decimal {
    Decimal::from(n)
}

/// Half a unit of the second decimal: the rounding error of one rounded figure.
fn half_cent() -> Decimal {
    Decimal::new(5, 3)
}

/// Assertions with a context line, exact or within rounding.
struct Check<'a> {
    ctx: &'a str,
}

impl Check<'_> {
    /// The same quantity in two places: equal values (or both null).
    #[track_caller]
    fn same(&self, what: &str, a: &Value, b: &Value) {
        match (num_or_other(a), num_or_other(b)) {
            (Ok(x), Ok(y)) => assert_eq!(x, y, "{}: {what}: {a} vs {b}", self.ctx),
            _ => assert_eq!(a, b, "{}: {what}", self.ctx),
        }
    }

    #[track_caller]
    fn eq_opt(&self, what: &str, got: &Value, want: Option<Decimal>) {
        assert_eq!(num(got), want, "{}: {what}: got {got}", self.ctx);
    }

    #[track_caller]
    fn near(&self, what: &str, a: Decimal, b: Decimal, tol: Decimal) {
        assert!(
            (a - b).abs() <= tol,
            "{}: {what}: {a} vs {b} (tolerance {tol})",
            self.ctx
        );
    }

    /// A total against the sum of its `n` rounded parts: exact on exact datasets
    /// (`exact_here`), else within the parts' rounding error.
    #[track_caller]
    fn sum(&self, what: &str, parts: Decimal, n: usize, total: Decimal, exact_here: bool) {
        let tol = if exact_here {
            Decimal::ZERO
        } else {
            half_cent() * d(n as i64 + 1)
        };
        self.near(what, parts, total, tol);
    }

    /// Shares of a whole that sum to 100 up to rounding. A whole that rounds to zero has
    /// null shares, unless (`exact_here` false) it is only rounded to zero.
    #[track_caller]
    fn shares(
        &self,
        what: &str,
        shares: &[Option<Decimal>],
        whole_is_zero: bool,
        exact_here: bool,
    ) {
        let all_null = shares.iter().all(Option::is_none);
        if whole_is_zero && (exact_here || all_null) {
            assert!(
                all_null,
                "{}: {what}: shares of nothing must be null: {shares:?}",
                self.ctx
            );
            return;
        }
        let s: Decimal = shares
            .iter()
            .map(|v| {
                v.unwrap_or_else(|| panic!("{}: {what}: a null share in {shares:?}", self.ctx))
            })
            .sum();
        self.near(what, s, hundred(), half_cent() * d(shares.len() as i64));
    }
}

fn num_or_other(v: &Value) -> Result<Option<Decimal>, ()> {
    match v {
        Value::Null => Ok(None),
        Value::Number(_) => Ok(num(v)),
        _ => Err(()),
    }
}

// ---------------------------------------------------------------------------------------
// Coverage: which relations met non-zero values

/// Per backend, per feature: the cases that exercised it.
static COVERAGE: Mutex<BTreeMap<(String, &'static str), u32>> = Mutex::new(BTreeMap::new());

#[derive(Default)]
struct Seen(BTreeSet<&'static str>);

impl Seen {
    fn mark(&mut self, what: &'static str, cond: bool) {
        if cond {
            self.0.insert(what);
        }
    }
    fn commit(self, backend: Backend) {
        let b = format!("{backend:?}");
        let mut c = COVERAGE.lock().unwrap_or_else(|e| e.into_inner());
        *c.entry((b.clone(), "cases")).or_default() += 1;
        for k in self.0 {
            *c.entry((b.clone(), k)).or_default() += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Relations

fn ep<'a>(s: &'a Snapshot, path: &str) -> &'a Value {
    s.get(path)
        .unwrap_or_else(|| panic!("no {path} in the snapshot"))
}

fn tier_of<'a>(tiers: &'a [Value], name: &str) -> Option<&'a Value> {
    tiers.iter().find(|t| t["tier"] == json!(name))
}

fn prev_end(m: Month) -> String {
    format_micros(m.prev().last_instant())
}

/// Every relation between endpoints at one `as_of`:
///
/// - MRR: `metrics/summary.revenue.mrr` = `revenue/mrr.current_mrr` = the last
///   `mrr_data` row = `billing/analytics/summary.revenue.mrr` = `kpis.revenue_kpis.mrr`
///   = `revenue/arr.mrr` = `growth.current_month_revenue` = `by-tier.total_revenue`;
///   `revenue/arr.arr` = `kpis.arr` = `billing.arr`, and arr / 12 = MRR (exactly on
///   exact datasets, up to rounding otherwise); `arr_by_tier` = by-tier revenue × 12 and
///   sums to arr.
/// - MRR history (24 months): every month, previous + new + reactivation + expansion −
///   contraction − churn = MRR and = previous + net_new_mrr; paying customers move by
///   new + reactivated − churned; growth_rate from consecutive MRRs; each row equals the
///   row of the same month asked at that month's last instant (month-end state = state
///   at as_of there); `months=12` is the tail of `months=24`; `previous_mrr` and growth's
///   previous month / quarter / same month last year are the rows 1, 3 and 12 back;
///   MoM / QoQ / YoY and the growth trend follow from those rows; `arr.yoy_growth` =
///   growth's; the history as of the end of last month is this history shifted by one.
/// - Forecast (both models): fitted on the complete months of that history after its
///   leading zeros (count, first and last month), forecast months follow the current
///   one, 0 ≤ lower ≤ point ≤ upper; the linear trend's points and growth rate are the
///   OLS line of those months (exact datasets).
/// - By tier: revenue, customers and shares add up; arpc = revenue / customers;
///   total customers = `summary.users.total` = `kpis.total_users` =
///   `adoption.subscribers`, per tier = `adoption.subscribers_by_tier`; the non-trial
///   tiers' customers = the paying customers of the history; every plan tier and `trial`
///   are listed; `summary.users.change` against by-tier at the end of last month;
///   `summary.users.active` = `kpis.active_users`.
/// - Churn: the rate = churned / paying at the start (both from the MRR history) =
///   `kpis.churn_rate` = `summary.churn_rate.percentage`; retention = 100 − churn (churn
///   and KPI endpoints); last month's rate from the history; summary's change = the
///   difference; revenue churn and NRR from the movements; churn by tier = churned / base
///   with the base from by-tier at the end of the previous month, and the per-tier
///   churned add up to `churned_this_month`.
/// - LTV: ARPA = MRR / paying; mean churn over the last 6 complete months from the
///   history; LTV = ARPA / c; lifespan = 1 / c; CAC = spend of the last 3 complete months
///   (= the acquisition endpoint's spend in those months) / their new customers (from the
///   history); LTV:CAC; per tier from by-tier and the churn endpoint of those months;
///   `kpis.ltv` and `kpis.ltv_cac_ratio` = the LTV endpoint's.
/// - Acquisition: channels add up to this month's signups; shares; CPA per channel and
///   average; last month's signups = this month's as of the end of last month; growth;
///   the billing summary's marketing spend = the channels' spend.
/// - Billing: costs add up; profit and margins follow; payment success rate from the
///   counts; = the metering summary of `this_month` (revenue, LLM, infrastructure and
///   other costs, gross margin and its %); infrastructure = cost-per-user's total, whose
///   breakdown adds up; LLM cost = the LLM cost endpoint over the month's days / 1000.
/// - Alerts: each watched metric's value is its endpoint's value; each enabled rule's
///   alert lands in the list of the most severe threshold strictly crossed, or nowhere,
///   or in `no_data` when the value is null.
/// - LLM: usage summary, costs and cache stats over the same days agree on calls, cost,
///   unpriced calls and span; per-model, per-provider, per-tier and per-day breakdowns
///   add up to the totals (tokens too); shares sum to 100; hit rate and average cost per
///   call follow from the counts; the metering of `llm_inference` this month equals the
///   LLM cost endpoint over the month's days, day by day.
/// - Services and metering: popularity, the metering summary and each service's metering
///   agree on calls this month (and `summary.api_calls`), last month to date and last
///   month; ranks and growth; adoption lists the same services, adopters ≤ subscribers,
///   adoption from the counts; `last_*` periods equal the `this_*` periods asked at their
///   end; each service's metering adds up by day and equals its summary row.
/// - Performance: `kpis.uptime` = 24 h overall uptime = the pooled per-service uptime;
///   `kpis.error_rate` = the error rate of `search` (the only service with status codes);
///   `kpis.avg_response_time_ms` = the call-weighted mean of the services' latencies;
///   requests per minute; at an end-of-day `as_of` the rolling 24 h / 7 d / 30 d windows
///   are the calendar ranges day / week / month, so LLM calls and
///   `kpis.api_calls_per_day` follow.
async fn check_relations(app: &TestApp, ds: &Dataset, a: &AsOf, s: &Snapshot, seen: &mut Seen) {
    let ctx = format!("as_of {}", a.label());
    let c = Check { ctx: &ctx };
    let ex = ds.exact;
    let cur = Month::of(a.t);

    let mrr24 = ep(s, "/api/v1/analytics/revenue/mrr?months=24");
    let mrr12 = ep(s, "/api/v1/analytics/revenue/mrr");
    let arr = ep(s, "/api/v1/analytics/revenue/arr");
    let growth = ep(s, "/api/v1/analytics/revenue/growth");
    let by_tier = ep(s, "/api/v1/analytics/revenue/by-tier");
    let ltv = ep(s, "/api/v1/analytics/users/ltv");
    let churn = ep(s, "/api/v1/analytics/users/churn");
    let acq = ep(s, "/api/v1/analytics/users/acquisition");
    let summary = ep(s, "/api/v1/analytics/metrics/summary");
    let kpis = ep(s, "/api/v1/analytics/metrics/kpis");
    let alerts = ep(s, "/api/v1/analytics/metrics/alerts");
    let billing = ep(s, "/api/v1/billing/analytics/summary");
    let rules = ep(s, "/api/v1/alert-rules");
    let popularity = ep(s, "/api/v1/analytics/services/popularity");
    let cpu = ep(s, "/api/v1/analytics/services/cost-per-user");
    let adoption = ep(s, "/api/v1/analytics/services/adoption");

    // --- MRR everywhere
    let rows = list(&mrr24["mrr_data"]);
    assert_eq!(rows.len(), 24, "{ctx}");
    let last = &rows[23];
    assert_eq!(last["month"], json!(cur.to_string()), "{ctx}");
    let mrr = &mrr24["current_mrr"];
    for (what, v) in [
        ("summary.revenue.mrr", &summary["revenue"]["mrr"]),
        ("mrr_data[-1].mrr", &last["mrr"]),
        ("billing.revenue.mrr", &billing["revenue"]["mrr"]),
        ("kpis.revenue_kpis.mrr", &kpis["revenue_kpis"]["mrr"]),
        ("arr.mrr", &arr["mrr"]),
        (
            "growth.current_month_revenue",
            &growth["current_month_revenue"],
        ),
        ("by_tier.total_revenue", &by_tier["total_revenue"]),
        ("mrr?months=12 current_mrr", &mrr12["current_mrr"]),
    ] {
        c.same(what, mrr, v);
    }
    let mrr_d = dec(mrr);
    seen.mark("mrr>0", mrr_d > Decimal::ZERO);
    c.same("kpis.arr", &arr["arr"], &kpis["revenue_kpis"]["arr"]);
    c.same("billing.arr", &arr["arr"], &billing["revenue"]["arr"]);
    let arr_d = dec(&arr["arr"]);
    if ex {
        assert_eq!(arr_d, mrr_d * d(12), "{ctx}: arr = 12 × mrr");
    } else {
        c.near("arr / 12 = mrr", arr_d / d(12), mrr_d, half_cent());
    }
    // months=12 is the tail of months=24.
    assert_eq!(
        list(&mrr12["mrr_data"])[..],
        rows[12..],
        "{ctx}: months=12 tail"
    );
    c.same("previous_mrr", &mrr24["previous_mrr"], &rows[22]["mrr"]);
    c.same(
        "mrr12.previous_mrr",
        &mrr12["previous_mrr"],
        &rows[22]["mrr"],
    );

    // --- the MRR history
    for i in 1..24 {
        let (p, r) = (&rows[i - 1], &rows[i]);
        let what = format!("month {}", r["month"]);
        let (pm, m) = (dec(&p["mrr"]), dec(&r["mrr"]));
        let moves = dec(&r["new_mrr"]) + dec(&r["reactivation_mrr"]) + dec(&r["expansion_mrr"])
            - dec(&r["contraction_mrr"])
            - dec(&r["churned_mrr"]);
        c.sum(
            &format!(
                "{what}: previous + new + reactivation + expansion − contraction − churn = mrr"
            ),
            pm + moves,
            6,
            m,
            ex,
        );
        c.sum(
            &format!("{what}: net_new_mrr = the movements"),
            moves,
            5,
            dec(&r["net_new_mrr"]),
            ex,
        );
        c.sum(
            &format!("{what}: previous + net_new = mrr"),
            pm + dec(&r["net_new_mrr"]),
            1,
            m,
            ex,
        );
        assert_eq!(
            int(&r["paying_customers"]),
            int(&p["paying_customers"])
                + int(&r["new_customers"])
                + int(&r["reactivated_customers"])
                - int(&r["churned_customers"]),
            "{ctx}: {what}: paying customers move by new + reactivated − churned"
        );
        for (count, amount) in [
            ("new_customers", "new_mrr"),
            ("churned_customers", "churned_mrr"),
            ("reactivated_customers", "reactivation_mrr"),
        ] {
            assert_eq!(
                int(&r[count]) > 0,
                dec(&r[amount]) > Decimal::ZERO,
                "{ctx}: {what}: {count} and {amount}"
            );
        }
        if ex {
            c.eq_opt(
                &format!("{what}: growth_rate"),
                &r["growth_rate"],
                pct_b(m - pm, pm).map(r2),
            );
        } else {
            assert_eq!(
                r["growth_rate"].is_null(),
                pm.is_zero(),
                "{ctx}: {what}: growth null"
            );
        }
        seen.mark("movement:new", dec(&r["new_mrr"]) > Decimal::ZERO);
        seen.mark("movement:churn", dec(&r["churned_mrr"]) > Decimal::ZERO);
        seen.mark(
            "movement:reactivation",
            dec(&r["reactivation_mrr"]) > Decimal::ZERO,
        );
        seen.mark(
            "movement:expansion",
            dec(&r["expansion_mrr"]) > Decimal::ZERO,
        );
        seen.mark(
            "movement:contraction",
            dec(&r["contraction_mrr"]) > Decimal::ZERO,
        );
    }
    // Each complete month's row is that month's current row at its last instant.
    for (i, r) in rows.iter().enumerate().take(23) {
        let m = cur.add(i as i32 - 23);
        let there = get(
            app,
            "/api/v1/analytics/revenue/mrr?months=1",
            &format_micros(m.last_instant()),
        )
        .await;
        assert_eq!(
            there["mrr_data"][0], *r,
            "{ctx}: row of {m} against as_of its month end"
        );
        c.same(
            &format!("{m} current_mrr"),
            &there["current_mrr"],
            &r["mrr"],
        );
    }

    // --- forecast: OLS over the complete months of the history, leading zeros dropped
    let hist_prev = get(
        app,
        "/api/v1/analytics/revenue/mrr?months=24",
        &prev_end(cur),
    )
    .await;
    let rows_prev = list(&hist_prev["mrr_data"]);
    assert_eq!(
        rows_prev[1..],
        rows[..23],
        "{ctx}: history as of the end of last month"
    );
    let y: Vec<Decimal> = rows_prev
        .iter()
        .map(|r| dec(&r["mrr"]))
        .skip_while(|v| v.is_zero())
        .collect();
    for path in [
        "/api/v1/analytics/revenue/forecast?months_ahead=6",
        "/api/v1/analytics/revenue/forecast?model=holt&confidence=80",
    ] {
        let fc = ep(s, path);
        assert_eq!(
            int(&fc["fitted_months"]),
            y.len() as i64,
            "{ctx}: {path} fitted months"
        );
        let points = list(&fc["forecast"]);
        if y.len() < 3 {
            assert!(
                points.is_empty() && fc["reason"].is_string(),
                "{ctx}: {path}: {fc}"
            );
            continue;
        }
        assert_eq!(
            fc["fitted_from"],
            rows_prev[24 - y.len()]["month"],
            "{ctx}: {path}"
        );
        assert_eq!(fc["fitted_to"], rows_prev[23]["month"], "{ctx}: {path}");
        assert_eq!(points.len(), 6, "{ctx}: {path}");
        for (j, p) in points.iter().enumerate() {
            assert_eq!(
                p["month"],
                json!(cur.add(j as i32 + 1).to_string()),
                "{ctx}: {path}"
            );
            let (lo, v, hi) = (
                dec(&p["lower_bound"]),
                dec(&p["forecasted_mrr"]),
                dec(&p["upper_bound"]),
            );
            assert!(
                Decimal::ZERO <= lo && lo <= v.max(Decimal::ZERO) && v <= hi,
                "{ctx}: {path}: bounds {p}"
            );
        }
        seen.mark("forecast", true);
        if !(ex && path.contains("months_ahead")) {
            continue;
        }
        let yf: Vec<f64> = y.iter().map(|v| v.to_f64().unwrap()).collect();
        let n = yf.len() as f64;
        let xbar = (n + 1.0) / 2.0;
        let ybar = yf.iter().sum::<f64>() / n;
        let (mut sxx, mut sxy) = (0.0, 0.0);
        for (i, v) in yf.iter().enumerate() {
            let dx = (i + 1) as f64 - xbar;
            sxx += dx * dx;
            sxy += dx * (v - ybar);
        }
        let slope = sxy / sxx;
        let icpt = ybar - slope * xbar;
        for (j, p) in points.iter().enumerate() {
            // The current month is x = n + 1; the forecast months follow it.
            let want = icpt + slope * (n + 2.0 + j as f64);
            let got = dec(&p["forecasted_mrr"]).to_f64().unwrap();
            assert!(
                (got - want).abs() <= 0.011,
                "{ctx}: forecast {}: {got} vs OLS {want}",
                p["month"]
            );
        }
        let last_y = *yf.last().unwrap();
        let gr = num(&fc["growth_rate"]).map(|g| g.to_f64().unwrap());
        match gr {
            None => assert_eq!(last_y, 0.0, "{ctx}: forecast growth rate null"),
            Some(g) => assert!(
                (g - slope / last_y * 100.0).abs() <= 0.011,
                "{ctx}: forecast growth rate {g} vs slope / last MRR"
            ),
        }
    }

    // --- growth
    let mom = &growth["mom_growth"];
    for (what, v) in [
        ("summary.revenue.change", &summary["revenue"]["change"]),
        (
            "billing.revenue.growth_rate",
            &billing["revenue"]["growth_rate"],
        ),
        ("mrr_data[-1].growth_rate", &last["growth_rate"]),
    ] {
        c.same(what, mom, v);
    }
    c.same(
        "previous_month_revenue",
        &growth["previous_month_revenue"],
        &rows[22]["mrr"],
    );
    c.same(
        "previous_quarter_revenue",
        &growth["previous_quarter_revenue"],
        &rows[20]["mrr"],
    );
    c.same(
        "same_month_last_year",
        &growth["same_month_last_year"],
        &rows[11]["mrr"],
    );
    c.same("arr.yoy_growth", &arr["yoy_growth"], &growth["yoy_growth"]);
    let mrr_at = |k: usize| dec(&rows[23 - k]["mrr"]);
    if ex {
        c.eq_opt(
            "qoq",
            &growth["qoq_growth"],
            pct_b(mrr_d - mrr_at(3), mrr_at(3)).map(r2),
        );
        c.eq_opt(
            "yoy",
            &growth["yoy_growth"],
            pct_b(mrr_d - mrr_at(12), mrr_at(12)).map(r2),
        );
        let moms: Vec<Option<Decimal>> = (0..6)
            .map(|k| pct_b(mrr_at(k) - mrr_at(k + 1), mrr_at(k + 1)))
            .collect();
        let mean = |v: &[Option<Decimal>]| {
            let x: Vec<Decimal> = v.iter().flatten().copied().collect();
            (!x.is_empty()).then(|| x.iter().sum::<Decimal>() / d(x.len() as i64))
        };
        let band = Decimal::new(5, 1);
        let trend = match (mean(&moms[0..3]), mean(&moms[3..6])) {
            (Some(g1), Some(g0)) if g1 - g0 > band => "accelerating",
            (Some(g1), Some(g0)) if g1 - g0 < -band => "decelerating",
            (Some(_), Some(_)) => "steady",
            _ => "insufficient_data",
        };
        assert_eq!(growth["growth_trend"], json!(trend), "{ctx}: growth trend");
    }

    // --- by tier and ARR by tier
    let tiers = list(&by_tier["tiers"]);
    let total_rev = dec(&by_tier["total_revenue"]);
    let rev_sum: Decimal = tiers.iter().map(|t| dec(&t["revenue"])).sum();
    c.sum(
        "by-tier revenue adds up",
        rev_sum,
        tiers.len(),
        total_rev,
        ex,
    );
    let cust_sum: i64 = tiers.iter().map(|t| int(&t["customers"])).sum();
    assert_eq!(
        cust_sum,
        int(&by_tier["total_customers"]),
        "{ctx}: by-tier customers add up"
    );
    let shares: Vec<Option<Decimal>> = tiers.iter().map(|t| num(&t["percentage"])).collect();
    c.shares("by-tier percentages", &shares, total_rev.is_zero(), ex);
    for w in tiers.windows(2) {
        let (x, y) = (dec(&w[0]["revenue"]), dec(&w[1]["revenue"]));
        assert!(
            x > y || (x == y && w[0]["tier"].as_str() < w[1]["tier"].as_str()),
            "{ctx}: by-tier order"
        );
    }
    let arr_by_tier = arr["arr_by_tier"].as_object().expect("arr_by_tier");
    let mut arr_tier_sum = Decimal::ZERO;
    for t in tiers {
        let name = t["tier"].as_str().unwrap();
        let (rev, n) = (dec(&t["revenue"]), int(&t["customers"]));
        if ex {
            c.eq_opt(
                &format!("{name} arpc"),
                &t["arpc"],
                (n > 0).then(|| r2(rev / d(n))),
            );
        } else {
            assert_eq!(t["arpc"].is_null(), n == 0, "{ctx}: {name} arpc null");
        }
        if name == "trial" {
            assert!(rev.is_zero(), "{ctx}: trial revenue");
            assert!(!arr_by_tier.contains_key("trial"), "{ctx}: no trial ARR");
            seen.mark("trial customers", n > 0);
            continue;
        }
        let tier_arr = dec(&arr_by_tier[name]);
        arr_tier_sum += tier_arr;
        if ex {
            assert_eq!(tier_arr, rev * d(12), "{ctx}: {name} ARR = 12 × its MRR");
        } else {
            c.near(
                &format!("{name} ARR"),
                tier_arr,
                rev * d(12),
                half_cent() * d(13),
            );
        }
    }
    assert_eq!(
        arr_by_tier.len(),
        tiers.len() - 1,
        "{ctx}: arr_by_tier tiers"
    );
    c.sum(
        "arr_by_tier adds up",
        arr_tier_sum,
        arr_by_tier.len(),
        arr_d,
        ex,
    );
    let subscribers = int(&by_tier["total_customers"]);
    for (what, v) in [
        ("summary.users.total", &summary["users"]["total"]),
        (
            "kpis.user_kpis.total_users",
            &kpis["user_kpis"]["total_users"],
        ),
        ("adoption.subscribers", &adoption["subscribers"]),
    ] {
        assert_eq!(
            int(v),
            subscribers,
            "{ctx}: {what} = by-tier total customers"
        );
    }
    let sub_by_tier = adoption["subscribers_by_tier"]
        .as_object()
        .expect("subscribers_by_tier");
    for t in tiers {
        let n = int(&t["customers"]);
        let name = t["tier"].as_str().unwrap();
        assert_eq!(
            sub_by_tier.get(name).map_or(0, int),
            n,
            "{ctx}: adoption subscribers of {name}"
        );
    }
    assert!(
        sub_by_tier.keys().all(|k| tier_of(tiers, k).is_some()),
        "{ctx}: adoption tiers are by-tier tiers"
    );

    // --- churn
    let churned = int(&churn["churned_this_month"]);
    let base = int(&churn["customers_at_start_of_month"]);
    assert_eq!(
        churned,
        int(&last["churned_customers"]),
        "{ctx}: churned this month"
    );
    assert_eq!(
        int(&churn["total_customers"]),
        int(&last["paying_customers"]),
        "{ctx}: paying"
    );
    assert_eq!(
        base,
        int(&rows[22]["paying_customers"]),
        "{ctx}: paying at start"
    );
    let rate = &churn["monthly_churn_rate"];
    c.eq_opt("churn rate", rate, pct_b(d(churned), d(base)).map(r2));
    c.same("kpis.churn_rate", rate, &kpis["user_kpis"]["churn_rate"]);
    c.same(
        "summary.churn_rate",
        rate,
        &summary["churn_rate"]["percentage"],
    );
    let retention = num(rate).map(|r| hundred() - r);
    c.eq_opt(
        "retention = 100 − churn",
        &churn["retention_rate"],
        retention,
    );
    c.eq_opt(
        "kpis retention = 100 − churn",
        &kpis["user_kpis"]["retention_rate"],
        retention,
    );
    let last_rate = pct_b(
        d(int(&rows[22]["churned_customers"])),
        d(int(&rows[21]["paying_customers"])),
    )
    .map(r2);
    c.eq_opt(
        "last month's churn rate",
        &churn["last_month_churn_rate"],
        last_rate,
    );
    c.eq_opt(
        "summary.churn_rate.change",
        &summary["churn_rate"]["change"],
        num(rate).zip(last_rate).map(|(x, y)| x - y),
    );
    seen.mark("churn this month", churned > 0);
    let start_mrr = dec(&rows[22]["mrr"]);
    if ex {
        c.eq_opt(
            "revenue churn",
            &churn["revenue_churn_rate"],
            pct_b(
                dec(&last["churned_mrr"]) + dec(&last["contraction_mrr"]),
                start_mrr,
            )
            .map(r2),
        );
        c.eq_opt(
            "net revenue retention",
            &churn["net_revenue_retention"],
            pct_b(
                start_mrr + dec(&last["expansion_mrr"])
                    - dec(&last["contraction_mrr"])
                    - dec(&last["churned_mrr"]),
                start_mrr,
            )
            .map(r2),
        );
    } else {
        assert_eq!(
            churn["revenue_churn_rate"].is_null(),
            start_mrr.is_zero(),
            "{ctx}"
        );
    }

    // Churn by tier: churned / base with the base from by-tier at the end of the previous
    // month; LTV by tier needs the same for the 6 complete months before.
    let mut by_tier_at: BTreeMap<Month, Value> = BTreeMap::new();
    for k in 1..=7 {
        let m = cur.add(-k);
        by_tier_at.insert(
            m,
            get(
                app,
                "/api/v1/analytics/revenue/by-tier",
                &format_micros(m.last_instant()),
            )
            .await,
        );
    }
    // (month → tier → (churned, base)), reconstructed from the churn endpoint's rates.
    let tier_counts = |churn_v: &Value, m: Month| -> BTreeMap<String, (i64, i64)> {
        let before = &by_tier_at[&m.prev()];
        let mut out = BTreeMap::new();
        for (tier, r) in churn_v["churn_by_tier"].as_object().expect("churn_by_tier") {
            if tier == "trial" {
                continue;
            }
            let base = list(&before["tiers"])
                .iter()
                .find(|t| t["tier"] == json!(tier))
                .map_or(0, |t| int(&t["customers"]));
            let churned = num(r).map_or(0, |r| {
                (r * d(base) / hundred()).round().try_into().expect("count")
            });
            c.eq_opt(
                &format!(
                    "{m} churn of tier {tier} (base {base} from by-tier at the previous month end)"
                ),
                r,
                pct_b(d(churned), d(base)).map(r2),
            );
            out.insert(tier.clone(), (churned, base));
        }
        out
    };
    let now_counts = tier_counts(churn, cur);
    assert_eq!(
        now_counts.values().map(|(n, _)| n).sum::<i64>(),
        churned,
        "{ctx}: churn by tier adds up to churned_this_month"
    );
    assert_eq!(
        now_counts.values().map(|(_, b)| b).sum::<i64>(),
        base,
        "{ctx}: tier bases add up to the paying customers at the start"
    );
    seen.mark("tier churn", now_counts.values().any(|(n, _)| *n > 0));

    // --- users in the summaries
    let users_prev = int(&by_tier_at[&cur.prev()]["total_customers"]);
    c.eq_opt(
        "summary.users.change",
        &summary["users"]["change"],
        pct_b(d(subscribers - users_prev), d(users_prev)).map(r2),
    );
    assert_eq!(
        summary["users"]["active"], kpis["user_kpis"]["active_users"],
        "{ctx}: active users in the summary and the KPIs"
    );
    let paying_tiers: i64 = tiers
        .iter()
        .filter(|t| t["tier"] != json!("trial"))
        .map(|t| int(&t["customers"]))
        .sum();
    assert_eq!(
        paying_tiers,
        int(&last["paying_customers"]),
        "{ctx}: paying customers by tier"
    );
    let tier_names: BTreeSet<&str> = tiers.iter().map(|t| t["tier"].as_str().unwrap()).collect();
    let plan_tiers: BTreeSet<&str> = PLANS.iter().map(|p| p.1).chain(["trial"]).collect();
    assert_eq!(
        tier_names, plan_tiers,
        "{ctx}: by-tier lists every plan tier and trial"
    );

    // --- LTV, CAC
    c.same(
        "kpis.ltv",
        &ltv["average_ltv"],
        &kpis["revenue_kpis"]["ltv"],
    );
    c.same(
        "kpis.ltv_cac_ratio",
        &ltv["ltv_cac_ratio"],
        &kpis["revenue_kpis"]["ltv_cac_ratio"],
    );
    let paying = int(&last["paying_customers"]);
    let arpa = (paying > 0).then(|| mrr_d / d(paying));
    // c from the history: the 6 complete months, skipping months without paying
    // customers at their start.
    let rates: Vec<Decimal> = (17..23)
        .filter_map(|i| {
            pct_b(
                d(int(&rows[i]["churned_customers"])),
                d(int(&rows[i - 1]["paying_customers"])),
            )
        })
        .collect();
    let c_frac = (!rates.is_empty())
        .then(|| rates.iter().sum::<Decimal>() / d(rates.len() as i64) / hundred());
    c.eq_opt(
        "mean monthly churn",
        &ltv["mean_monthly_churn_rate"],
        c_frac.map(|x| r2(x * hundred())),
    );
    let c_nz = c_frac.filter(|x| !x.is_zero());
    c.eq_opt(
        "lifespan",
        &ltv["average_customer_lifespan_months"],
        c_nz.map(|x| r2(Decimal::ONE / x)),
    );
    let new_3: i64 = (20..23).map(|i| int(&rows[i]["new_customers"])).sum();
    assert_eq!(
        int(&ltv["cac_new_customers"]),
        new_3,
        "{ctx}: CAC's new customers"
    );
    let mut spend_3 = Decimal::ZERO;
    for k in 1..=3 {
        let there = get(
            app,
            "/api/v1/analytics/users/acquisition",
            &format_micros(cur.add(-k).last_instant()),
        )
        .await;
        spend_3 += list(&there["acquisition_channels"])
            .iter()
            .map(|ch| dec(&ch["spend"]))
            .sum::<Decimal>();
    }
    assert_eq!(
        dec(&ltv["cac_marketing_spend"]),
        spend_3,
        "{ctx}: CAC spend = acquisition spend of those months"
    );
    let cac = (new_3 > 0).then(|| spend_3 / d(new_3));
    c.eq_opt("cac", &ltv["cac"], cac.map(r2));
    seen.mark("cac", cac.is_some());
    if ex {
        c.eq_opt("arpa", &ltv["arpa"], arpa.map(r2));
        let ltv_v = c_nz.and_then(|cf| Some(arpa? / cf));
        c.eq_opt("average_ltv", &ltv["average_ltv"], ltv_v.map(r2));
        let ratio = cac.filter(|x| !x.is_zero()).and_then(|k| Some(ltv_v? / k));
        c.eq_opt("ltv_cac_ratio", &ltv["ltv_cac_ratio"], ratio.map(r2));
    } else {
        assert_eq!(ltv["arpa"].is_null(), arpa.is_none(), "{ctx}: arpa null");
        assert_eq!(
            ltv["average_ltv"].is_null(),
            arpa.is_none() || c_nz.is_none(),
            "{ctx}: ltv null"
        );
    }
    seen.mark("ltv", !ltv["average_ltv"].is_null());
    // By tier: the tier's ARPA now over the mean of its rates in the 6 complete months.
    let mut per_tier_rates: BTreeMap<String, Vec<Decimal>> = BTreeMap::new();
    for k in 1..=6 {
        let m = cur.add(-k);
        let there = get(
            app,
            "/api/v1/analytics/users/churn",
            &format_micros(m.last_instant()),
        )
        .await;
        for (tier, (n, b)) in tier_counts(&there, m) {
            let e = per_tier_rates.entry(tier).or_default();
            if let Some(r) = pct_b(d(n), d(b)) {
                e.push(r);
            }
        }
    }
    let ltv_by_tier = ltv["ltv_by_tier"].as_object().expect("ltv_by_tier");
    c.eq_opt("trial LTV", &ltv_by_tier["trial"], Some(Decimal::ZERO));
    for (tier, got) in ltv_by_tier {
        if tier == "trial" {
            continue;
        }
        let row =
            tier_of(tiers, tier).unwrap_or_else(|| panic!("{ctx}: LTV tier {tier} not in by-tier"));
        let n = int(&row["customers"]);
        let arpa_t = (n > 0).then(|| dec(&row["revenue"]) / d(n));
        let rs = per_tier_rates.get(tier).cloned().unwrap_or_default();
        let c_t = (!rs.is_empty())
            .then(|| rs.iter().sum::<Decimal>() / d(rs.len() as i64) / hundred())
            .filter(|x| !x.is_zero());
        let want = c_t.and_then(|cf| Some(arpa_t? / cf));
        if ex {
            c.eq_opt(&format!("LTV of {tier}"), got, want.map(r2));
        } else {
            assert_eq!(got.is_null(), want.is_none(), "{ctx}: LTV of {tier} null");
        }
        seen.mark("tier ltv", want.is_some());
    }

    // --- acquisition
    let channels = list(&acq["acquisition_channels"]);
    let signups = int(&acq["new_users_this_month"]);
    assert_eq!(
        channels.iter().map(|ch| int(&ch["users"])).sum::<i64>(),
        signups,
        "{ctx}: channels add up"
    );
    let spend: Decimal = channels.iter().map(|ch| dec(&ch["spend"])).sum();
    for ch in channels {
        let users = int(&ch["users"]);
        c.eq_opt(
            "channel cpa",
            &ch["cpa"],
            (users > 0).then(|| r2(dec(&ch["spend"]) / d(users))),
        );
        c.eq_opt(
            "channel share",
            &ch["percentage"],
            pct_b(d(users), d(signups)).map(r2),
        );
    }
    let shares: Vec<Option<Decimal>> = channels.iter().map(|ch| num(&ch["percentage"])).collect();
    c.shares("channel shares", &shares, signups == 0, true);
    c.eq_opt(
        "average cpa",
        &acq["average_cpa"],
        (signups > 0).then(|| r2(spend / d(signups))),
    );
    c.eq_opt(
        "billing marketing spend",
        &billing["profitability"]["marketing_spend"],
        Some(spend),
    );
    let acq_prev = get(app, "/api/v1/analytics/users/acquisition", &prev_end(cur)).await;
    assert_eq!(
        int(&acq["new_users_last_month"]),
        int(&acq_prev["new_users_this_month"]),
        "{ctx}: last month's signups"
    );
    let to_date = int(&acq["new_users_last_month_to_date"]);
    assert!(to_date <= int(&acq["new_users_last_month"]), "{ctx}");
    c.eq_opt(
        "signup growth",
        &acq["growth_rate"],
        pct_b(d(signups - to_date), d(to_date)).map(r2),
    );
    seen.mark("signups", signups > 0);

    // --- billing, metering summary, cost per user
    let costs = &billing["costs"];
    let (infra, llm_money, other) = (
        dec(&costs["infrastructure"]),
        dec(&costs["llm_api_costs"]),
        dec(&costs["other_services"]),
    );
    let total_costs = dec(&costs["total"]);
    c.near(
        "costs add up",
        infra + llm_money + other,
        total_costs,
        half_cent(),
    );
    let revenue = dec(&billing["revenue"]["total_this_month"]);
    let prof = &billing["profitability"];
    c.near(
        "gross profit",
        dec(&prof["gross_profit"]),
        revenue - total_costs,
        Decimal::new(1, 2),
    );
    c.near(
        "net profit",
        dec(&prof["net_profit"]),
        dec(&prof["gross_profit"]) - dec(&prof["marketing_spend"]),
        Decimal::new(1, 2),
    );
    for f in ["gross_margin_percentage", "net_margin_percentage"] {
        assert_eq!(prof[f].is_null(), revenue.is_zero(), "{ctx}: {f} null");
    }
    assert_eq!(
        costs["percentage_of_revenue"].is_null(),
        revenue.is_zero(),
        "{ctx}"
    );
    let pay = &billing["payments"];
    let (paid, failed) = (int(&pay["paid_invoices"]), int(&pay["failed_invoices"]));
    assert!(
        paid + failed <= int(&pay["total_invoices"]),
        "{ctx}: invoice counts"
    );
    c.eq_opt(
        "payment success",
        &pay["success_rate"],
        pct_b(d(paid), d(paid + failed)).map(r2),
    );
    seen.mark("paid this month", revenue > Decimal::ZERO);
    seen.mark("failed payments", failed > 0);
    let ms = ep(s, "/api/v1/metering/summary?period=this_month");
    c.same(
        "metering revenue",
        &ms["total_revenue"],
        &billing["revenue"]["total_this_month"],
    );
    c.same(
        "metering llm cost",
        &ms["costs"]["llm_usage"],
        &costs["llm_api_costs"],
    );
    c.same(
        "metering infrastructure",
        &ms["costs"]["infrastructure"],
        &costs["infrastructure"],
    );
    c.same(
        "metering other",
        &ms["costs"]["other"],
        &costs["other_services"],
    );
    c.same(
        "metering cost total",
        &ms["costs"]["total"],
        &costs["total"],
    );
    c.same(
        "metering gross margin",
        &ms["gross_margin"],
        &prof["gross_profit"],
    );
    c.same(
        "metering margin %",
        &ms["gross_margin_percentage"],
        &prof["gross_margin_percentage"],
    );
    c.same(
        "cost-per-user total",
        &cpu["total_cost"],
        &costs["infrastructure"],
    );
    let breakdown = list(&cpu["cost_breakdown"]);
    assert_eq!(
        breakdown.iter().map(|b| dec(&b["cost"])).sum::<Decimal>(),
        infra,
        "{ctx}: cost breakdown adds up"
    );
    let shares: Vec<Option<Decimal>> = breakdown.iter().map(|b| num(&b["percentage"])).collect();
    c.shares("cost breakdown shares", &shares, infra.is_zero(), true);
    let active_mtd = int(&cpu["active_users"]);
    c.eq_opt(
        "cost per user",
        &cpu["cost_per_user"],
        (active_mtd > 0).then(|| r2(infra / d(active_mtd))),
    );
    seen.mark("infrastructure cost", infra > Decimal::ZERO);

    // --- alerts against the values of their endpoints and the stored rules
    let perf24 = ep(s, "/api/v1/analytics/services/performance?window=24h");
    let values: BTreeMap<&str, &Value> = [
        ("churn_rate", rate),
        ("mrr_growth", mom),
        ("error_rate", &kpis["service_kpis"]["error_rate"]),
        ("uptime", &kpis["service_kpis"]["uptime"]),
        ("payment_success_rate", &pay["success_rate"]),
        ("gross_margin", &prof["gross_margin_percentage"]),
    ]
    .into_iter()
    .collect();
    let mut want: BTreeMap<&str, Vec<(String, Decimal, Decimal)>> = BTreeMap::new();
    let mut no_data = Vec::new();
    for rule in list(&rules["rules"]) {
        if rule["enabled"] != json!(true) {
            continue;
        }
        let metric = rule["metric"].as_str().unwrap();
        let Some(v) = num(values[metric]) else {
            no_data.push(json!(metric));
            continue;
        };
        let above = rule["direction"] == json!("above");
        let crossed = |th: Decimal| if above { v > th } else { v < th };
        let hit = [
            ("critical", num(&rule["critical"])),
            ("warning", num(&rule["warning"])),
            ("info", num(&rule["info"])),
        ]
        .into_iter()
        .find_map(|(sev, th)| th.filter(|&th| crossed(th)).map(|th| (sev, th)));
        if let Some((sev, th)) = hit {
            want.entry(sev)
                .or_default()
                .push((metric.to_string(), v, th));
        }
    }
    for sev in ["critical", "warning", "info"] {
        let got: Vec<(String, Decimal, Decimal)> = list(&alerts[format!("{sev}_alerts")])
            .iter()
            .map(|al| {
                assert_eq!(al["status"], json!(sev), "{ctx}");
                (
                    al["metric"].as_str().unwrap().to_string(),
                    dec(&al["value"]),
                    dec(&al["threshold"]),
                )
            })
            .collect();
        assert_eq!(
            got,
            want.remove(sev).unwrap_or_default(),
            "{ctx}: {sev} alerts"
        );
        seen.mark(
            match sev {
                "critical" => "critical alerts",
                "warning" => "warning alerts",
                _ => "info alerts",
            },
            !got.is_empty(),
        );
    }
    assert_eq!(
        alerts["no_data"],
        Value::from(no_data),
        "{ctx}: alerts without data"
    );

    // --- LLM
    let end_of_day = a.t.rem_euclid(DAY) == DAY - 1;
    for (range, days) in [("day", 1), ("week", 7), ("month", 30), ("year", 365)] {
        let us = ep(s, &format!("/api/v1/llm/usage/summary?range={range}"));
        let cs = ep(s, &format!("/api/v1/llm/costs?period={days}d"));
        let ch = ep(s, &format!("/api/v1/llm/cache-stats?range={range}"));
        let what = |x: &str| format!("range {range}: {x}");
        let calls = int(&us["total_api_calls"]);
        assert_eq!(
            calls,
            int(&cs["total_api_calls"]),
            "{ctx}: {}",
            what("calls = costs' calls")
        );
        assert_eq!(
            calls,
            int(&ch["total_requests"]),
            "{ctx}: {}",
            what("calls = cache requests")
        );
        c.same(
            &what("cost = costs' cost"),
            &us["total_cost_credits"],
            &cs["total_cost_credits"],
        );
        for v in [&cs["unpriced_calls"], &ch["unpriced_calls"]] {
            assert_eq!(
                int(&us["unpriced_calls"]),
                int(v),
                "{ctx}: {}",
                what("unpriced")
            );
        }
        assert_eq!(us["span"], cs["span"], "{ctx}: {}", what("span"));
        assert_eq!(us["span"], ch["span"], "{ctx}: {}", what("span"));
        let total_cost = dec(&us["total_cost_credits"]);
        // usage summary: models
        let models = list(&us["top_models"]);
        let msum = |f: &str| models.iter().map(|m| int(&m[f])).sum::<i64>();
        assert_eq!(
            msum("api_calls"),
            calls,
            "{ctx}: {}",
            what("model calls add up")
        );
        assert_eq!(
            msum("input_tokens"),
            int(&us["tokens"]["input_tokens"]),
            "{ctx}: {}",
            what("input tokens")
        );
        assert_eq!(
            msum("output_tokens"),
            int(&us["tokens"]["output_tokens"]),
            "{ctx}: {}",
            what("output tokens")
        );
        assert_eq!(
            msum("unpriced_calls"),
            int(&us["unpriced_calls"]),
            "{ctx}: {}",
            what("unpriced add up")
        );
        let total_tokens = int(&us["tokens"]["total_tokens"]);
        assert_eq!(
            total_tokens,
            int(&us["tokens"]["input_tokens"]) + int(&us["tokens"]["output_tokens"]),
            "{ctx}"
        );
        for m in models {
            assert_eq!(
                int(&m["total_tokens"]),
                int(&m["input_tokens"]) + int(&m["output_tokens"]),
                "{ctx}"
            );
            c.eq_opt(
                &what("model share"),
                &m["percentage"],
                pct_u(d(int(&m["api_calls"])), d(calls)).map(r2),
            );
        }
        c.sum(
            &what("model costs add up"),
            models.iter().map(|m| dec(&m["cost_credits"])).sum(),
            models.len(),
            total_cost,
            ex,
        );
        c.shares(
            &what("model shares"),
            &models
                .iter()
                .map(|m| num(&m["percentage"]))
                .collect::<Vec<_>>(),
            calls == 0,
            true,
        );
        if ex {
            c.eq_opt(
                &what("average cost per call"),
                &us["average_cost_per_call"],
                (calls > 0).then(|| r2(total_cost / d(calls))),
            );
            c.eq_opt(
                &what("average daily cost"),
                &cs["average_daily_cost"],
                Some(r2(total_cost / d(days))),
            );
        }
        // costs: by model (model only) = usage summary's rows merged over providers.
        let mut merged: BTreeMap<String, (i64, Decimal, i64)> = BTreeMap::new();
        for m in models {
            let e = merged
                .entry(m["model"].as_str().unwrap().to_string())
                .or_default();
            e.0 += int(&m["api_calls"]);
            e.1 += dec(&m["cost_credits"]);
            e.2 += int(&m["unpriced_calls"]);
        }
        let by_model = list(&cs["cost_by_model"]);
        assert_eq!(
            by_model.len(),
            merged.len(),
            "{ctx}: {}",
            what("cost_by_model rows")
        );
        for row in by_model {
            let (n, cost, unpriced) = merged[row["model"].as_str().unwrap()];
            assert_eq!(int(&row["api_calls"]), n, "{ctx}: {}", what("model calls"));
            assert_eq!(
                int(&row["unpriced_calls"]),
                unpriced,
                "{ctx}: {}",
                what("model unpriced")
            );
            c.sum(
                &what("model cost over providers"),
                cost,
                2,
                dec(&row["cost_credits"]),
                ex,
            );
        }
        seen.mark("same model, two providers", models.len() > merged.len());
        c.shares(
            &what("cost_by_model shares"),
            &by_model
                .iter()
                .map(|r| num(&r["percentage"]))
                .collect::<Vec<_>>(),
            total_cost.is_zero(),
            ex,
        );
        let by_tier_cost = list(&cs["cost_by_tier"]);
        assert_eq!(
            by_tier_cost
                .iter()
                .map(|r| int(&r["api_calls"]))
                .sum::<i64>(),
            calls,
            "{ctx}: {}",
            what("tier calls add up")
        );
        c.sum(
            &what("tier costs add up"),
            by_tier_cost.iter().map(|r| dec(&r["cost_credits"])).sum(),
            by_tier_cost.len(),
            total_cost,
            ex,
        );
        c.shares(
            &what("cost_by_tier shares"),
            &by_tier_cost
                .iter()
                .map(|r| num(&r["percentage"]))
                .collect::<Vec<_>>(),
            total_cost.is_zero(),
            ex,
        );
        for r in by_tier_cost {
            let t = r["tier"].as_str().unwrap();
            assert!(
                t == "none" || t == "trial" || PLANS.iter().any(|p| p.1 == t),
                "{ctx}: tier {t}"
            );
            seen.mark("llm cost of a trial", t == "trial");
        }
        seen.mark(
            "llm calls without tier",
            by_tier_cost.iter().any(|r| r["tier"] == json!("none")),
        );
        let daily = list(&cs["daily_trend"]);
        assert_eq!(daily.len() as i64, days, "{ctx}: {}", what("daily rows"));
        assert_eq!(
            daily.iter().map(|r| int(&r["api_calls"])).sum::<i64>(),
            calls,
            "{ctx}: {}",
            what("daily calls")
        );
        assert_eq!(
            daily.iter().map(|r| int(&r["total_tokens"])).sum::<i64>(),
            total_tokens,
            "{ctx}: {}",
            what("daily tokens")
        );
        c.sum(
            &what("daily costs add up"),
            daily.iter().map(|r| dec(&r["cost_credits"])).sum(),
            daily.len(),
            total_cost,
            ex,
        );
        assert_eq!(
            daily.last().map(|r| r["date"].clone()),
            Some(json!(date_of(a.t).to_string())),
            "{ctx}: last day"
        );
        // cache stats
        let hits = int(&ch["cache_hits"]);
        assert_eq!(
            hits + int(&ch["cache_misses"]),
            calls,
            "{ctx}: {}",
            what("hits + misses")
        );
        c.eq_opt(
            &what("hit rate"),
            &ch["cache_hit_rate"],
            pct_u(d(hits), d(calls)).map(r2),
        );
        if range == "month" {
            seen.mark("llm calls in 30 days", calls > 0);
            seen.mark("cache hits", hits > 0);
            seen.mark("unpriced calls", int(&us["unpriced_calls"]) > 0);
        }
        // At the last microsecond of a day the rolling window is the calendar range.
        if end_of_day && range != "year" {
            let w = match range {
                "day" => "24h",
                "week" => "7d",
                _ => "30d",
            };
            let perf = ep(
                s,
                &format!("/api/v1/analytics/services/performance?window={w}"),
            );
            let llm_calls = list(&perf["services"])
                .iter()
                .find(|r| r["service"] == json!("llm_inference"))
                .map_or(0, |r| int(&r["api_calls"]));
            assert_eq!(
                llm_calls, calls,
                "{ctx}: window {w} = range {range} at the end of a day"
            );
            if w == "30d" {
                let all: i64 = list(&perf["services"])
                    .iter()
                    .map(|r| int(&r["api_calls"]))
                    .sum();
                c.eq_opt(
                    "api_calls_per_day",
                    &kpis["service_kpis"]["api_calls_per_day"],
                    Some(r2(d(all) / d(30))),
                );
            }
        }
    }
    // The month's days as an `Nd` period = month to date.
    let dom = date_of(a.t).day();
    let mtd_costs = ep(s, &format!("/api/v1/llm/costs?period={dom}d"));
    assert_eq!(
        mtd_costs["span"], ms["span"],
        "{ctx}: {dom}d is month to date"
    );
    c.near(
        "billing LLM cost = LLM cost this month / 1000",
        llm_money,
        dec(&mtd_costs["total_cost_credits"]) / d(1000),
        Decimal::new(1, 2),
    );
    let llm_meter = ep(
        s,
        "/api/v1/metering/service/llm_inference?period=this_month",
    );
    assert_eq!(
        int(&llm_meter["total_api_calls"]),
        int(&mtd_costs["total_api_calls"]),
        "{ctx}: llm metering calls"
    );
    c.same(
        "llm metering cost",
        &llm_meter["total_cost_credits"],
        &mtd_costs["total_cost_credits"],
    );
    assert_eq!(
        int(&llm_meter["unpriced_calls"]),
        int(&mtd_costs["unpriced_calls"]),
        "{ctx}"
    );
    let days_m = list(&llm_meter["usage_by_day"]);
    let days_c = list(&mtd_costs["daily_trend"]);
    assert_eq!(days_m.len(), days_c.len(), "{ctx}: llm metering days");
    for (x, y) in days_m.iter().zip(days_c) {
        for f in ["date", "api_calls", "total_tokens"] {
            assert_eq!(x[f], y[f], "{ctx}: llm metering day {} {f}", x["date"]);
        }
        c.same(
            "llm metering day cost",
            &x["cost_credits"],
            &y["cost_credits"],
        );
    }

    // --- services and metering
    let pop = list(&popularity["services"]);
    assert_eq!(
        int(&popularity["total_services"]),
        pop.len() as i64,
        "{ctx}"
    );
    let psum = |f: &str| pop.iter().map(|r| int(&r[f])).sum::<i64>();
    let calls_mtd = int(&summary["api_calls"]["this_month"]);
    assert_eq!(
        psum("api_calls_this_month"),
        calls_mtd,
        "{ctx}: popularity calls = summary.api_calls"
    );
    assert_eq!(
        psum("api_calls_last_month_to_date"),
        int(&summary["api_calls"]["last_month_to_date"]),
        "{ctx}: popularity last month to date = summary's"
    );
    let ltd = int(&summary["api_calls"]["last_month_to_date"]);
    c.eq_opt(
        "summary.api_calls.change",
        &summary["api_calls"]["change"],
        pct_b(d(calls_mtd - ltd), d(ltd)).map(r2),
    );
    seen.mark("api calls this month", calls_mtd > 0);
    for (i, r) in pop.iter().enumerate() {
        assert_eq!(int(&r["rank"]), i as i64 + 1, "{ctx}: ranks");
        let (now_c, before) = (
            int(&r["api_calls_this_month"]),
            int(&r["api_calls_last_month_to_date"]),
        );
        c.eq_opt(
            "popularity growth",
            &r["growth"],
            pct_u(d(now_c - before), d(before)).map(r2),
        );
        assert!(before <= int(&r["api_calls_last_month"]), "{ctx}");
        assert!(
            int(&r["active_users"]) <= active_mtd,
            "{ctx}: a service's users ≤ all users"
        );
    }
    for w in pop.windows(2) {
        let key = |r: &Value| {
            (
                -int(&r["api_calls_this_month"]),
                -int(&r["active_users"]),
                r["service"].as_str().unwrap().to_string(),
            )
        };
        assert!(key(&w[0]) < key(&w[1]), "{ctx}: popularity order");
    }
    let ms_rows = list(&ms["services"]);
    assert_eq!(
        ms_rows.iter().map(|r| int(&r["api_calls"])).sum::<i64>(),
        calls_mtd,
        "{ctx}: metering calls"
    );
    let ms_last = ep(s, "/api/v1/metering/summary?period=last_month");
    assert_eq!(
        list(&ms_last["services"])
            .iter()
            .map(|r| int(&r["api_calls"]))
            .sum::<i64>(),
        psum("api_calls_last_month"),
        "{ctx}: last month's calls"
    );
    // Adoption lists the services popularity lists.
    let adopt = list(&adoption["services"]);
    let names = |v: &[Value]| {
        v.iter()
            .map(|r| r["service"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        names(adopt),
        names(pop),
        "{ctx}: adoption and popularity services"
    );
    for r in adopt {
        let adopters = int(&r["adopters"]);
        let svc = pop.iter().find(|p| p["service"] == r["service"]).unwrap();
        assert!(
            adopters <= int(&svc["active_users"]),
            "{ctx}: adopters ≤ active users"
        );
        c.eq_opt(
            "adoption",
            &r["overall_adoption"],
            pct_u(d(adopters), d(subscribers)).map(r2),
        );
        let keys: BTreeSet<&String> = r["by_tier"].as_object().unwrap().keys().collect();
        assert_eq!(keys, sub_by_tier.keys().collect(), "{ctx}: adoption tiers");
        seen.mark("adoption", adopters > 0);
    }
    for period in PERIODS {
        let summ = ep(s, &format!("/api/v1/metering/summary?period={period}"));
        let rows_s = list(&summ["services"]);
        let total = dec(&summ["total_cost_credits"]);
        c.sum(
            &format!("{period} service costs"),
            rows_s.iter().map(|r| dec(&r["cost_credits"])).sum(),
            rows_s.len(),
            total,
            ex,
        );
        c.shares(
            &format!("{period} cost shares"),
            &rows_s
                .iter()
                .map(|r| num(&r["percentage_of_total"]))
                .collect::<Vec<_>>(),
            total.is_zero(),
            ex,
        );
        assert_eq!(
            rows_s
                .iter()
                .map(|r| int(&r["unpriced_calls"]))
                .sum::<i64>(),
            int(&summ["unpriced_calls"]),
            "{ctx}: {period} unpriced"
        );
        let mc = &summ["costs"];
        c.near(
            &format!("{period} cost total"),
            dec(&mc["llm_usage"]) + dec(&mc["infrastructure"]) + dec(&mc["other"]),
            dec(&mc["total"]),
            half_cent(),
        );
        for svc in SERVICES {
            let m = ep(
                s,
                &format!("/api/v1/metering/service/{svc}?period={period}"),
            );
            let what = format!("{period} {svc}");
            let row = rows_s.iter().find(|r| r["service"] == json!(svc));
            let calls = int(&m["total_api_calls"]);
            assert_eq!(
                row.map_or(0, |r| int(&r["api_calls"])),
                calls,
                "{ctx}: {what} calls"
            );
            if let Some(row) = row {
                c.same(
                    &format!("{what} cost"),
                    &row["cost_credits"],
                    &m["total_cost_credits"],
                );
                c.same(&format!("{what} units"), &row["units"], &m["total_units"]);
                assert_eq!(row["unit_type"], m["unit_type"], "{ctx}: {what} unit type");
                assert_eq!(row["unpriced_calls"], m["unpriced_calls"], "{ctx}: {what}");
            } else {
                assert!(dec(&m["total_units"]).is_zero(), "{ctx}: {what}");
            }
            let by_day = list(&m["usage_by_day"]);
            assert_eq!(
                by_day.iter().map(|r| int(&r["api_calls"])).sum::<i64>(),
                calls,
                "{ctx}: {what} by day"
            );
            assert_eq!(
                by_day.iter().map(|r| int(&r["total_tokens"])).sum::<i64>(),
                int(&m["total_tokens"]),
                "{ctx}: {what} tokens by day"
            );
            assert_eq!(
                by_day.iter().map(|r| dec(&r["units"])).sum::<Decimal>(),
                dec(&m["total_units"]),
                "{ctx}: {what} units by day"
            );
            c.sum(
                &format!("{what} cost by day"),
                by_day.iter().map(|r| dec(&r["cost_credits"])).sum(),
                by_day.len(),
                dec(&m["total_cost_credits"]),
                ex,
            );
            let top = list(&m["top_users"]);
            assert!(top.len() <= 10, "{ctx}");
            assert!(
                top.iter().map(|r| int(&r["api_calls"])).sum::<i64>() <= calls,
                "{ctx}: {what} top users"
            );
            if period == "this_month" {
                let p = pop.iter().find(|r| r["service"] == json!(svc));
                assert_eq!(
                    p.map_or(0, |r| int(&r["api_calls_this_month"])),
                    calls,
                    "{ctx}: {what} = popularity"
                );
                if let Some(p) = p {
                    if top.len() < 10 {
                        assert_eq!(
                            int(&p["active_users"]),
                            top.len() as i64,
                            "{ctx}: {what} users = popularity"
                        );
                    }
                }
                seen.mark(
                    "storage units",
                    svc == "storage" && !dec(&m["total_units"]).is_zero(),
                );
            }
        }
    }
    // A `last_*` period is the `this_*` period asked at its last instant.
    let q_start = |m: Month| m.add(-(((m.month - 1) % 3) as i32));
    let y_start = |m: Month| m.add(-((m.month - 1) as i32));
    for (last_p, this_p, at) in [
        ("last_month", "this_month", cur.prev().last_instant()),
        (
            "last_quarter",
            "this_quarter",
            q_start(cur).prev().last_instant(),
        ),
        ("last_year", "this_year", y_start(cur).prev().last_instant()),
    ] {
        let there = format_micros(at);
        let mut paths = vec![format!("/api/v1/metering/summary?period={{}}")];
        paths.extend(
            SERVICES
                .iter()
                .map(|s| format!("/api/v1/metering/service/{s}?period={{}}")),
        );
        for p in paths {
            let mut x = ep(s, &p.replace("{}", last_p)).clone();
            let mut y = get(app, &p.replace("{}", this_p), &there).await;
            x["period"] = Value::Null;
            y["period"] = Value::Null;
            if let Some(diff) = first_difference(&x, &y, "") {
                panic!("{ctx}: {p} {last_p} against {this_p} at {there}: {diff}");
            }
        }
    }

    // --- performance and the service KPIs
    c.same(
        "kpis uptime = 24 h overall uptime",
        &kpis["service_kpis"]["uptime"],
        &perf24["overall_uptime"],
    );
    for w in ["1h", "24h", "7d", "30d"] {
        let perf = ep(
            s,
            &format!("/api/v1/analytics/services/performance?window={w}"),
        );
        let minutes = match w {
            "1h" => 60,
            "24h" => 1440,
            "7d" => 10080,
            _ => 43200,
        };
        let (mut up, mut checks) = (0i64, 0i64);
        for r in list(&perf["services"]) {
            let n = int(&r["health_checks"]);
            c.eq_opt(
                "requests per minute",
                &r["requests_per_minute"],
                Some(r2(d(int(&r["api_calls"])) / d(minutes))),
            );
            assert_eq!(
                r["uptime"].is_null(),
                n == 0,
                "{ctx}: uptime null without checks"
            );
            if let Some(u) = num(&r["uptime"]) {
                let k: i64 = (u * d(n) / hundred()).round().try_into().unwrap();
                c.eq_opt(
                    "uptime from the up checks",
                    &r["uptime"],
                    pct_u(d(k), d(n)).map(r2),
                );
                up += k;
                checks += n;
            }
        }
        c.eq_opt(
            &format!("{w} overall uptime = pooled"),
            &perf["overall_uptime"],
            pct_u(d(up), d(checks)).map(r2),
        );
        if w == "24h" {
            seen.mark("health checks in 24 h", checks > 0);
        }
    }
    let svc24 = |name: &str| {
        list(&perf24["services"])
            .iter()
            .find(|r| r["service"] == json!(name))
            .cloned()
    };
    let search = svc24("search");
    c.same(
        "kpis error rate = search's (the only service with status codes)",
        &kpis["service_kpis"]["error_rate"],
        search.as_ref().map_or(&Value::Null, |r| &r["error_rate"]),
    );
    seen.mark(
        "errors in 24 h",
        num(&kpis["service_kpis"]["error_rate"]).is_some_and(|e| e > Decimal::ZERO),
    );
    let (mut weighted, mut n_lat) = (Decimal::ZERO, 0i64);
    for r in list(&perf24["services"]) {
        if let Some(m) = num(&r["avg_response_time_ms"]) {
            weighted += m * d(int(&r["api_calls"]));
            n_lat += int(&r["api_calls"]);
        }
    }
    match num(&kpis["service_kpis"]["avg_response_time_ms"]) {
        None => assert_eq!(n_lat, 0, "{ctx}: latency null"),
        Some(v) => c.near(
            "kpis latency = call-weighted mean",
            v,
            weighted / d(n_lat),
            Decimal::new(1, 2),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// One case

async fn open(backend: Backend) -> TestStore {
    match backend {
        Backend::Sqlite => TestStore::sqlite().await,
        Backend::Postgres => TestStore::postgres().await.expect("PostgreSQL"),
    }
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

async fn run_case(backend: Backend, spec: Spec) {
    let ds = build(&spec);
    let mut seen = Seen::default();

    // 1. Relations, on the canonical store (response cache off: every answer computed).
    let app = new_app(open(backend).await, false).await;
    ingest_canonical(&app, &ds.items).await;
    let mut full: Vec<Snapshot> = Vec::new();
    for a in &ds.as_ofs {
        let s = snapshot(&app, a).await;
        check_relations(&app, &ds, a, &s, &mut seen).await;
        full.push(s);
    }

    // 2. and 3. A second store (response cache on): the data up to as_of A first, then
    // the rest, each in a shuffled order.
    let a = &ds.as_ofs[ds.split];
    let (before, after): (Vec<Item>, Vec<Item>) =
        ds.items.iter().cloned().partition(|i| i.at <= a.t);
    seen.mark(
        "data after the split as_of",
        after.iter().any(|i| !matches!(i.req, Req::Event(_))),
    );
    seen.mark(
        "events after the split as_of",
        after.iter().any(|i| matches!(i.req, Req::Event(_))),
    );
    let mut rng = Lcg(ds.seed);
    let app2 = new_app(open(backend).await, true).await;
    ingest_shuffled(&app2, &before, &mut rng).await;
    let early = snapshot(&app2, a).await;
    same_snapshots(
        &format!("only the data up to as_of {} against all of it", a.label()),
        &early,
        &full[ds.split],
    );
    // Ask at the other as_ofs too before the rest arrives: an answer kept from now (the
    // response cache) would differ from the canonical store's below.
    let mut stale = 0;
    for (i, other) in ds.as_ofs.iter().enumerate() {
        if i != ds.split {
            let s = snapshot(&app2, other).await;
            stale += s.iter().filter(|(k, v)| full[i][*k] != **v).count();
        }
    }
    seen.mark("answers change after the split as_of", stale > 0);
    ingest_shuffled(&app2, &after, &mut rng).await;
    for (a, s) in ds.as_ofs.iter().zip(&full) {
        let again = snapshot(&app2, a).await;
        same_snapshots(
            &format!("shuffled ingestion at as_of {}", a.label()),
            &again,
            s,
        );
    }
    seen.commit(backend);
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(backend: Backend, n: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config {
        cases: n,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let result = runner.run(&spec(), |spec| {
        rt.block_on(run_case(backend, spec));
        Ok(())
    });
    eprintln!("{backend:?}: {n} cases in {:.1?}", started.elapsed());
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Each relation must have met non-zero values in at least `share` of the cases: a
/// property that never sees a churn or a cache hit cannot fail on one.
fn assert_coverage(backend: Backend) {
    let b = format!("{backend:?}");
    let c: BTreeMap<&str, u32> = COVERAGE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|((k, _), _)| *k == b)
        .map(|((_, what), n)| (*what, *n))
        .collect();
    let cases = c.get("cases").copied().unwrap_or(0);
    eprintln!("coverage over {cases} cases: {c:?}");
    let required: [(&str, u32); 28] = [
        ("mrr>0", 75),
        ("movement:new", 75),
        ("movement:churn", 60),
        ("movement:reactivation", 25),
        ("movement:expansion", 50),
        ("movement:contraction", 50),
        ("trial customers", 25),
        ("churn this month", 25),
        ("tier churn", 25),
        ("ltv", 50),
        ("tier ltv", 40),
        ("cac", 50),
        ("signups", 50),
        ("paid this month", 60),
        ("failed payments", 25),
        ("infrastructure cost", 50),
        ("critical alerts", 50),
        ("warning alerts", 25),
        ("llm calls in 30 days", 75),
        ("cache hits", 60),
        ("unpriced calls", 50),
        ("health checks in 24 h", 50),
        ("errors in 24 h", 25),
        ("api calls this month", 75),
        ("adoption", 60),
        ("data after the split as_of", 60),
        ("events after the split as_of", 60),
        ("answers change after the split as_of", 60),
    ];
    let short: Vec<String> = required
        .iter()
        .filter_map(|&(what, pct)| {
            let n = c.get(what).copied().unwrap_or(0);
            (n * 100 < pct * cases).then(|| format!("`{what}`: {n} of {cases} (want {pct} %)"))
        })
        .collect();
    assert!(
        short.is_empty(),
        "relations met too few non-zero values: {}",
        short.join("; ")
    );
}

#[test]
fn generated_datasets_sqlite() {
    run(Backend::Sqlite, cases(16));
    assert_coverage(Backend::Sqlite);
}

#[test]
fn generated_datasets_postgres() {
    if std::env::var(PG_ENV).map_or(true, |v| v.is_empty()) {
        eprintln!("skipped: {PG_ENV} is not set");
        return;
    }
    run(Backend::Postgres, cases(3));
}

// ---------------------------------------------------------------------------------------
// as_of leaks found while writing the properties above.

/// An invoice issued before `as_of` and paid after it was open at `as_of`. The store
/// keeps only an invoice's latest status, so the payment counts use `paid_at`: without
/// that, the payment success rate at `as_of` changed when the payment arrived later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_after_as_of_changes_nothing() {
    let app = new_app(TestStore::sqlite().await, false).await;
    let ok = |r: (axum::http::StatusCode, Value)| assert!(r.0.is_success(), "{r:?}");
    ok(app
        .put(
            "/api/v1/customers/c1",
            json!({"created_at": "2025-03-01T00:00:00Z"}),
        )
        .await);
    let invoice = |status: &str| {
        let mut b = json!({"customer_id": "c1", "amount": "10.00", "currency": "USD", "status": status, "issued_at": "2025-03-05T00:00:00Z"});
        if status == "paid" {
            b["paid_at"] = json!("2025-03-20T00:00:00Z");
        }
        b
    };
    ok(app.put("/api/v1/invoices/i1", invoice("open")).await);
    let path = "/api/v1/billing/analytics/summary";
    let before = get(&app, path, "2025-03-10").await;
    ok(app.put("/api/v1/invoices/i1", invoice("paid")).await);
    let after = get(&app, path, "2025-03-10").await;
    assert_eq!(before["payments"], after["payments"]);
    assert_eq!(after["payments"]["paid_invoices"], json!(0));
    // Once paid_at is inside the month to date, the invoice counts as paid.
    let paid = get(&app, path, "2025-03-25").await;
    assert_eq!(paid["payments"]["paid_invoices"], json!(1));
    assert_eq!(paid["payments"]["total_invoices"], json!(1));
}

// A known leak the generated datasets avoid: it is a documented choice (docs/metrics.md,
// endpoint 19). Run with `--ignored` to see it fail.

/// A service first seen after `as_of` is unknown at `as_of` (404), but the service
/// registry has no time, so once its first event arrives the same request answers 200
/// with zeros.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "known leak: the service registry has no time (a documented choice in docs/metrics.md, endpoint 19)"]
async fn service_first_seen_after_as_of_changes_nothing() {
    let app = new_app(TestStore::sqlite().await, false).await;
    let path = "/api/v1/metering/service/later?as_of=2025-03-10";
    let (before, _) = app.get(path).await;
    let (status, body) = app
        .post(
            "/api/v1/events",
            json!([{"id": "e1", "time": "2025-03-20T00:00:00Z", "service": "later"}]),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (after, _) = app.get(path).await;
    assert_eq!(before, after);
}
