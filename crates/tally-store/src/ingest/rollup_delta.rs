//! What a group of new events adds to the daily rollups (`usage_daily`,
//! `usage_daily_customer`; migration 0002), added up in Rust from the events in hand, so
//! that the database only upserts one row per key instead of selecting the new rows back,
//! sorting and aggregating them (`common::rollup::rollup_upserts`, which stays the
//! definition: the keys and sums here are the same expressions, and the tests in
//! `sqlite::events` and `postgres::events` check that the tables they produce equal that
//! statement run over all stored events).

use crate::{StoreError, StoreResult};
use std::collections::BTreeMap;
use tally_core::event::{CostSource, Event};
use tally_core::time::MICROS_PER_DAY;

/// The aggregate columns of both rollups, in the order of [`Agg`]'s fields.
pub(crate) const AGG_COLS: [&str; 13] = [
    "events",
    "quantity",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost",
    "unpriced",
    "latency_sum",
    "latency_count",
    "status_count",
    "error_count",
    "up_count",
];

/// Where `latency_sum`, the one float, stands in [`AGG_COLS`].
pub(crate) const LATENCY_SUM_AT: usize = 8;

/// The key columns of `usage_daily`, in the order of [`DailyKey`]'s fields.
pub(crate) const DAILY_KEYS: [&str; 6] =
    ["kind", "day", "service", "model", "provider", "cache_hit"];
/// The key columns of `usage_daily_customer`, in the order of [`CustomerKey`]'s fields.
pub(crate) const CUSTOMER_KEYS: [&str; 5] = ["kind", "day", "customer_id", "service", "llm"];

/// The sums of a rollup row: `AGGREGATES` of `common::analytics` over its events.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Agg {
    pub events: i64,
    pub quantity: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost: i64,
    /// LLM calls (a model) without a known price.
    pub unpriced: i64,
    pub latency_sum: f64,
    pub latency_count: i64,
    pub status_count: i64,
    /// Status codes ≥ 500.
    pub error_count: i64,
    pub up_count: i64,
}

impl Agg {
    /// Adds `e`; `None` when an integer sum overflows (the database would refuse it too).
    fn add(&mut self, e: &Event) -> Option<()> {
        fn plus(a: &mut i64, b: i64) -> Option<()> {
            *a = a.checked_add(b)?;
            Some(())
        }
        plus(&mut self.events, 1)?;
        plus(&mut self.quantity, e.quantity)?;
        plus(&mut self.input_tokens, e.input_tokens)?;
        plus(&mut self.output_tokens, e.output_tokens)?;
        plus(&mut self.cache_read_tokens, e.cache_read_tokens)?;
        plus(&mut self.cache_write_tokens, e.cache_write_tokens)?;
        plus(&mut self.cost, e.cost)?;
        self.unpriced += i64::from(e.model.is_some() && e.cost_source == CostSource::Unpriced);
        if let Some(l) = e.latency_ms {
            self.latency_sum += l;
            self.latency_count += 1;
        }
        self.status_count += i64::from(e.status_code.is_some());
        self.error_count += i64::from(e.status_code.is_some_and(|c| c >= 500));
        self.up_count += i64::from(e.up == Some(true));
        Some(())
    }

    /// The integer sums in [`AGG_COLS`] order, with `latency_sum` (at
    /// [`LATENCY_SUM_AT`]) left out.
    pub(crate) fn ints(&self) -> [i64; 12] {
        [
            self.events,
            self.quantity,
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.cost,
            self.unpriced,
            self.latency_count,
            self.status_count,
            self.error_count,
            self.up_count,
        ]
    }
}

/// A `usage_daily` key: '' for a missing service, model or provider; `cache_hit` is 1, 0,
/// or -1 when not reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DailyKey<'a> {
    pub kind: &'static str,
    pub day: i64,
    pub service: &'a str,
    pub model: &'a str,
    pub provider: &'a str,
    pub cache_hit: i64,
}

/// A `usage_daily_customer` key: '' for a missing customer or service; `llm` is 1 for an
/// event with a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CustomerKey<'a> {
    pub kind: &'static str,
    pub day: i64,
    pub customer_id: &'a str,
    pub service: &'a str,
    pub llm: i64,
}

/// The rows to add to each rollup, in key order (the order the upserts take their row
/// locks on PostgreSQL, the same in every writer, so that they cannot deadlock).
#[derive(Debug, Default)]
pub(crate) struct Deltas<'a> {
    pub daily: BTreeMap<DailyKey<'a>, Agg>,
    pub customer: BTreeMap<CustomerKey<'a>, Agg>,
}

impl<'a> Deltas<'a> {
    /// The deltas of `events`, which must be exactly the rows just stored.
    pub(crate) fn of(events: &[&'a Event]) -> StoreResult<Deltas<'a>> {
        let mut d = Deltas::default();
        for e in events {
            let kind = e.kind.as_str();
            // Integer division, as `time / 86400000000` in SQL (times are not negative).
            let day = e.time / MICROS_PER_DAY;
            let service = e.service.as_deref().unwrap_or("");
            let daily = DailyKey {
                kind,
                day,
                service,
                model: e.model.as_deref().unwrap_or(""),
                provider: e.provider.as_deref().unwrap_or(""),
                cache_hit: e.cache_hit.map_or(-1, i64::from),
            };
            let customer = CustomerKey {
                kind,
                day,
                customer_id: e.customer_id.as_deref().unwrap_or(""),
                service,
                llm: i64::from(e.model.is_some()),
            };
            let ok = d.daily.entry(daily).or_default().add(e).is_some()
                && d.customer.entry(customer).or_default().add(e).is_some();
            if !ok {
                return Err(StoreError::Database(sqlx::Error::Protocol(format!(
                    "a daily rollup total of event `{}` is out of range",
                    e.id
                ))));
            }
        }
        Ok(d)
    }
}

/// `INSERT INTO table (keys..., aggregates...)`.
pub(crate) fn insert_head(table: &str, keys: &[&str]) -> String {
    let cols: Vec<&str> = keys.iter().copied().chain(AGG_COLS).collect();
    format!("INSERT INTO {table} ({})", cols.join(", "))
}

/// `ON CONFLICT (keys...) DO UPDATE SET` every aggregate to the stored plus the new value.
pub(crate) fn on_conflict_add(table: &str, keys: &[&str]) -> String {
    let set: Vec<String> = AGG_COLS
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    format!(
        "ON CONFLICT ({}) DO UPDATE SET {}",
        keys.join(", "),
        set.join(", ")
    )
}

/// 3,000 random events for the stores' rollup tests: several days, both kinds, every
/// kind of missing value, every tenth id sent again with another payload (the first
/// payload counts), latencies in quarters (their sums are exact in any order).
#[cfg(test)]
pub(crate) fn random_events() -> Vec<Event> {
    use tally_core::event::EventKind;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let opt = |i: u64, v: &[&str]| (i > 0).then(|| v[i as usize - 1].to_owned());
    (0..3000)
        .map(|i| {
            let kind = [EventKind::Usage, EventKind::HealthCheck][(rnd(4) == 0) as usize];
            let model = opt(rnd(3), &["m1", "m2"]);
            Event {
                // Every tenth id again, with another payload.
                id: format!("d{}", if i % 10 == 9 { rnd(i) } else { i }),
                kind,
                time: 20_000 * MICROS_PER_DAY + rnd(4 * MICROS_PER_DAY as u64) as i64,
                customer_id: opt(rnd(4), &["c1", "c2", "c3"]),
                service: opt(rnd(3), &["a", "b"]),
                quantity: rnd(5_000_000) as i64,
                provider: model.as_ref().and_then(|_| opt(rnd(3), &["p1", "p2"])),
                model,
                input_tokens: rnd(1000) as i64,
                cache_read_tokens: rnd(100) as i64,
                cache_write_tokens: rnd(50) as i64,
                output_tokens: rnd(500) as i64,
                cache_hit: [None, Some(true), Some(false)][rnd(3) as usize],
                // Quarters: sums are exact in any order.
                latency_ms: [None, Some(rnd(4000) as f64 / 4.0)][rnd(2) as usize],
                status_code: [None, Some(200), Some(503)][rnd(3) as usize],
                cost: rnd(3_000_000) as i64,
                cost_source: [CostSource::Given, CostSource::Priced, CostSource::Unpriced]
                    [rnd(3) as usize],
                up: (kind == EventKind::HealthCheck).then(|| rnd(3) != 0),
                ..Event::blank("", kind, 0)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::event::EventKind;

    #[test]
    fn events_add_up_by_key() {
        let a = Event {
            service: Some("llm".into()),
            customer_id: Some("c1".into()),
            model: Some("m".into()),
            latency_ms: Some(1.5),
            status_code: Some(503),
            ..Event::blank("a", EventKind::Usage, 3 * MICROS_PER_DAY + 5)
        };
        let b = Event {
            cache_hit: Some(true),
            status_code: Some(200),
            quantity: 7,
            ..a.clone()
        };
        let c = Event {
            model: None,
            ..Event::blank("c", EventKind::Usage, 3 * MICROS_PER_DAY - 1)
        };
        let d = Deltas::of(&[&a, &b, &c]).unwrap();
        assert_eq!(d.daily.len(), 3);
        assert_eq!(d.customer.len(), 2);
        let key = CustomerKey {
            kind: "usage",
            day: 3,
            customer_id: "c1",
            service: "llm",
            llm: 1,
        };
        let agg = d.customer[&key];
        assert_eq!(
            agg,
            Agg {
                events: 2,
                quantity: 1_000_007,
                // Both are LLM calls without a price.
                unpriced: 2,
                latency_sum: 3.0,
                latency_count: 2,
                status_count: 2,
                error_count: 1,
                ..Agg::default()
            }
        );
        let none = CustomerKey {
            kind: "usage",
            day: 2,
            customer_id: "",
            service: "",
            llm: 0,
        };
        assert_eq!(d.customer[&none].events, 1);
        assert_eq!(
            d.daily.keys().map(|k| k.cache_hit).collect::<Vec<_>>(),
            [-1, -1, 1]
        );
    }

    #[test]
    fn an_overflowing_total_is_an_error() {
        let a = Event {
            cost: i64::MAX,
            ..Event::blank("a", EventKind::Usage, 0)
        };
        let b = Event {
            cost: 1,
            ..Event::blank("b", EventKind::Usage, 0)
        };
        assert!(Deltas::of(&[&a, &b]).is_err());
    }
}
