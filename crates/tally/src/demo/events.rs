//! The event stream of the last days of the dataset: usage of every service by the
//! customers active at the time, health checks of every service, and cache-size gauges.
//!
//! Events are produced one day at a time, each day from its own random stream, so the
//! million-event stream never has to sit in memory and can be produced while the previous
//! batch is being stored.

use super::billing::{customer_id, Billing, Timeline};
use super::catalog::{ModelDef, ServiceKind, Tier, MODELS, PLANS, PROVIDERS, SERVICES};
use super::random::{cumulative, lognormal, pick_cumulative, pick_weighted, rng_for, Domain};
use super::{DemoOptions, Window};
use chrono::{Datelike, Weekday};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tally_core::event::{CostSource, Event, EventKind};
use tally_core::money::MICROS;
use tally_core::pricing::PriceTable;
use tally_core::time::{date_of, Micros, MICROS_PER_DAY, MICROS_PER_SEC};

const MINUTE: Micros = 60 * MICROS_PER_SEC;
const DAY: Micros = MICROS_PER_DAY;
/// Health checks run every five minutes.
pub const CHECK_INTERVAL: Micros = 5 * MINUTE;
pub const CHECKS_PER_DAY: usize = (DAY / CHECK_INTERVAL) as usize;
pub const GAUGES_PER_DAY: usize = 4;
pub const CACHE_GAUGE: &str = "llm_cache_size_bytes";

/// Activity by hour of day (UTC): European mornings and the long American afternoon.
const WEEKDAY_HOURS: [f64; 24] = [
    0.30, 0.24, 0.20, 0.19, 0.21, 0.30, 0.48, 0.78, 1.05, 1.25, 1.35, 1.38, 1.35, 1.50, 1.72, 1.82,
    1.78, 1.62, 1.34, 1.05, 0.85, 0.66, 0.50, 0.38,
];
const WEEKEND_HOURS: [f64; 24] = [
    0.40, 0.34, 0.30, 0.28, 0.28, 0.32, 0.40, 0.52, 0.66, 0.78, 0.86, 0.92, 0.95, 1.0, 1.02, 1.02,
    1.0, 0.96, 0.9, 0.84, 0.76, 0.66, 0.56, 0.46,
];

/// A customer's habits, fixed for the whole dataset.
struct Profile {
    id: String,
    intensity: f64,
    /// Running totals of service weights (0 for services the customer does not use).
    services: Vec<f64>,
    models: Vec<f64>,
    uses_prompt_cache: bool,
    response_cache_rate: f64,
}

/// A service outage: checks fail and most calls error.
#[derive(Debug, Clone, Copy)]
struct Incident {
    service: usize,
    start: Micros,
    end: Micros,
}

/// One customer's reachable time on a day, with their weight in that day's traffic.
struct Slot {
    customer: usize,
    from: Micros,
    to: Micros,
    whole_day: bool,
    tier: Option<Tier>,
}

pub struct EventStream {
    seed: u64,
    first_day: Micros,
    days: usize,
    end: Micros,
    usage_per_day: Vec<usize>,
    profiles: Vec<Profile>,
    /// The subscriptions active at some time in the event window.
    timelines: Vec<Timeline>,
    incidents: Vec<Incident>,
    prices: PriceTable,
    day: usize,
    usage_before: usize,
}

/// Counts of what the stream will produce, known before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventCounts {
    pub usage: usize,
    pub health_checks: usize,
    pub gauges: usize,
}

impl EventCounts {
    pub fn total(&self) -> usize {
        self.usage + self.health_checks + self.gauges
    }
}

impl EventStream {
    pub fn new(opts: &DemoOptions, billing: &Billing, window: &Window) -> EventStream {
        let seed = opts.seed;
        let profiles = (0..billing.customers.len())
            .map(|c| profile(seed, c))
            .collect();
        let days = window.event_days;
        let first_day = window.events_from;
        let timelines = billing
            .timelines
            .iter()
            .filter(|t| t.end.is_none_or(|e| e > first_day) && t.start <= window.end)
            .cloned()
            .collect();
        let mut stream = EventStream {
            seed,
            first_day,
            days,
            end: window.end,
            usage_per_day: Vec::new(),
            profiles,
            timelines,
            incidents: incidents(seed, first_day, days),
            prices: opts.prices.clone(),
            day: 0,
            usage_before: 0,
        };
        let weights: Vec<f64> = (0..days)
            .map(|d| {
                let slots = stream.slots(d);
                let (day_start, _) = stream.day_span(d);
                day_factor(seed, d, day_start) * slots.iter().map(|s| s.1).sum::<f64>()
            })
            .collect();
        stream.usage_per_day = super::random::apportion(opts.events, &weights);
        stream
    }

    pub fn counts(&self) -> EventCounts {
        EventCounts {
            usage: self.usage_per_day.iter().sum(),
            health_checks: self.days * CHECKS_PER_DAY * SERVICES.len(),
            gauges: self.days * GAUGES_PER_DAY,
        }
    }

    fn day_span(&self, d: usize) -> (Micros, Micros) {
        let start = self.first_day + d as i64 * DAY;
        (start, (start + DAY).min(self.end + 1))
    }

    /// Who can generate traffic on day `d`, and how much each weighs.
    fn slots(&self, d: usize) -> Vec<(Slot, f64)> {
        let (day_start, day_end) = self.day_span(d);
        let mut out = Vec::new();
        for w in &self.timelines {
            let from = w.start.max(day_start);
            let to = w.end.unwrap_or(Micros::MAX).min(day_end);
            if from >= to {
                continue;
            }
            let segment = w.segment_at(from);
            let in_trial = w.in_trial(from);
            let tier = PLANS[segment.plan].tier;
            let tier_weight = if in_trial {
                0.6
            } else {
                match tier {
                    Tier::Starter => 1.0,
                    Tier::Professional => 3.2,
                    Tier::Enterprise => 9.0,
                }
            };
            let share = (to - from) as f64 / DAY as f64;
            let weight = self.profiles[w.customer].intensity
                * tier_weight
                * (segment.quantity as f64).sqrt()
                * share;
            let whole_day = from == day_start && to == day_start + DAY;
            out.push((
                Slot {
                    customer: w.customer,
                    from,
                    to,
                    whole_day,
                    tier: (!in_trial).then_some(tier),
                },
                weight,
            ));
        }
        out
    }

    /// All events of the next day, in time order; `None` after the last day.
    pub fn next_day(&mut self) -> Option<Vec<Event>> {
        if self.day >= self.days {
            return None;
        }
        let d = self.day;
        self.day += 1;
        let (day_start, _) = self.day_span(d);
        let mut rng = rng_for(self.seed, Domain::EventDay, d as u64);
        let n = self.usage_per_day[d];
        let mut events = Vec::with_capacity(n + CHECKS_PER_DAY * SERVICES.len() + GAUGES_PER_DAY);
        let slots = self.slots(d);
        if n > 0 {
            let cum = cumulative(slots.iter().map(|s| s.1));
            let hours = if is_weekend(day_start) {
                &WEEKEND_HOURS
            } else {
                &WEEKDAY_HOURS
            };
            let hour_cum = cumulative(hours.iter().copied());
            let mut usage = Vec::with_capacity(n);
            for _ in 0..n {
                let slot = &slots[pick_cumulative(&mut rng, &cum)].0;
                let t = if slot.whole_day {
                    let h = pick_cumulative(&mut rng, &hour_cum) as i64;
                    day_start + h * 60 * MINUTE + rng.gen_range(0..60 * MINUTE)
                } else {
                    rng.gen_range(slot.from..slot.to)
                };
                usage.push((t, slot.customer, slot.tier));
            }
            usage.sort_by_key(|u| u.0);
            for (i, (t, c, tier)) in usage.into_iter().enumerate() {
                let id = format!("evt_{}_{:08}", self.seed, self.usage_before + i + 1);
                events.push(self.usage_event(&mut rng, id, t, c, tier));
            }
        }
        self.usage_before += n;
        self.health_checks(&mut rng, d, day_start, &mut events);
        for g in 0..GAUGES_PER_DAY {
            let t = day_start + g as i64 * (DAY / GAUGES_PER_DAY as i64) + 30 * MICROS_PER_SEC;
            events.push(Event {
                gauge_name: Some(CACHE_GAUGE.to_string()),
                gauge_value: Some(cache_size_bytes(t - self.first_day, &mut rng)),
                ..Event::blank(
                    format!("gauge_{}_{:05}", self.seed, d * GAUGES_PER_DAY + g + 1),
                    EventKind::Gauge,
                    t,
                )
            });
        }
        Some(events)
    }

    fn health_checks(
        &self,
        rng: &mut ChaCha8Rng,
        d: usize,
        day_start: Micros,
        events: &mut Vec<Event>,
    ) {
        for (s, service) in SERVICES.iter().enumerate() {
            for i in 0..CHECKS_PER_DAY {
                // Checks of different services are a few seconds apart, as a scheduler runs them.
                let t = day_start + i as i64 * CHECK_INTERVAL + s as i64 * 7 * MICROS_PER_SEC;
                let down = self.incident(s, t) || rng.gen_bool(0.0004);
                let (latency, status) = if down {
                    (10_000.0, 503)
                } else {
                    (lognormal(rng, 35.0, 0.35).round(), 200)
                };
                events.push(Event {
                    service: Some(service.name.to_string()),
                    latency_ms: Some(latency),
                    status_code: Some(status),
                    up: Some(!down),
                    ..Event::blank(
                        format!(
                            "hc_{}_{}_{:06}",
                            self.seed,
                            service.name,
                            d * CHECKS_PER_DAY + i + 1
                        ),
                        EventKind::HealthCheck,
                        t,
                    )
                });
            }
        }
    }

    fn incident(&self, service: usize, t: Micros) -> bool {
        self.incidents
            .iter()
            .any(|i| i.service == service && i.start <= t && t < i.end)
    }

    fn usage_event(
        &self,
        rng: &mut ChaCha8Rng,
        id: String,
        t: Micros,
        c: usize,
        tier: Option<Tier>,
    ) -> Event {
        let p = &self.profiles[c];
        let s = pick_cumulative(rng, &p.services);
        let service = &SERVICES[s];
        let outage = self.incident(s, t);
        let base = Event {
            customer_id: Some(p.id.clone()),
            service: Some(service.name.to_string()),
            unit: Some(service.unit_type.to_string()),
            ..Event::blank(id, EventKind::Usage, t)
        };
        let status = status_code(rng, outage, service.kind);
        match service.kind {
            ServiceKind::OpenWebui | ServiceKind::LlmInference => {
                self.llm_call(rng, base, p, service.kind, tier, status)
            }
            ServiceKind::Storage => {
                let gb = lognormal(rng, 0.6, 1.3).clamp(0.001, 500.0);
                resource(rng, base, gb, 90.0, status)
            }
            ServiceKind::Bandwidth => {
                let gb = lognormal(rng, 0.04, 1.4).clamp(0.000_1, 50.0);
                resource(rng, base, gb, 45.0, status)
            }
            ServiceKind::Search => {
                let queries = if rng.gen_bool(0.8) {
                    1.0
                } else {
                    rng.gen_range(2..=25) as f64
                };
                resource(rng, base, queries, 110.0, status)
            }
        }
    }

    fn llm_call(
        &self,
        rng: &mut ChaCha8Rng,
        mut e: Event,
        p: &Profile,
        kind: ServiceKind,
        tier: Option<Tier>,
        status: i32,
    ) -> Event {
        let m: &ModelDef = &MODELS[pick_cumulative(rng, &p.models)];
        let heavy = match tier {
            Some(Tier::Enterprise) => 1.5,
            Some(Tier::Professional) => 1.15,
            _ => 1.0,
        };
        // The gateway carries RAG and agent prompts; the chat UI sends conversation history.
        let (in_median, out_median) = if kind == ServiceKind::LlmInference {
            (1_900.0, 320.0)
        } else {
            (1_100.0, 380.0)
        };
        let mut input = (lognormal(rng, in_median * heavy, 0.9).round() as i64).clamp(12, 120_000);
        let mut output = (lognormal(rng, out_median, 0.75).round() as i64).clamp(1, 8_000);
        let ok = status < 400;
        if !ok {
            // Rejected and failed calls produce no completion; most are not billed for input.
            output = 0;
            if status == 429 || status >= 500 || rng.gen_bool(0.5) {
                input = 0;
            }
        }
        let cache_hit = ok && rng.gen_bool(p.response_cache_rate);
        let (mut cache_read, mut cache_write) = (0, 0);
        if ok && !cache_hit && m.prompt_cache && p.uses_prompt_cache && input > 1_024 {
            if rng.gen_bool(0.55) {
                cache_read = (input as f64 * rng.gen_range(0.4..0.92)) as i64;
            } else if m.provider == "anthropic" && rng.gen_bool(0.3) {
                cache_write = (input as f64 * rng.gen_range(0.2..0.6)) as i64;
            }
        }
        let latency = if cache_hit {
            lognormal(rng, 18.0, 0.5)
        } else if status == 429 {
            lognormal(rng, 12.0, 0.4)
        } else if status == 504 {
            30_000.0 + rng.gen_range(0.0..500.0)
        } else if !ok {
            lognormal(rng, 250.0, 0.8)
        } else {
            (m.base_latency + m.per_token_ms * output as f64) * lognormal(rng, 1.0, 0.25)
        };
        e.model = Some(m.model.to_string());
        e.provider = Some(m.provider.to_string());
        e.input_tokens = input;
        e.output_tokens = output;
        e.cache_read_tokens = cache_read;
        e.cache_write_tokens = cache_write;
        e.cache_hit = Some(cache_hit);
        e.latency_ms = Some((latency * 10.0).round() / 10.0);
        e.status_code = Some(status);
        e.quantity = if kind == ServiceKind::LlmInference {
            (input + output) * MICROS
        } else {
            MICROS
        };
        let priced = self.prices.price_micros(
            m.model,
            Some(m.provider),
            input,
            cache_read,
            cache_write,
            output,
        );
        (e.cost, e.cost_source) = if cache_hit {
            // Served from the response cache: no provider call, nothing to pay.
            (0, CostSource::Given)
        } else {
            match priced {
                // Some gateways report the provider's bill themselves.
                Some(c) if rng.gen_bool(0.03) => (c, CostSource::Given),
                Some(c) => (c, CostSource::Priced),
                None => (0, CostSource::Unpriced),
            }
        };
        e
    }
}

fn resource(
    rng: &mut ChaCha8Rng,
    mut e: Event,
    quantity: f64,
    latency_median: f64,
    status: i32,
) -> Event {
    // Quantities keep three decimals (MB precision for gigabytes), as a meter reports them.
    e.quantity = ((quantity * 1_000.0).round() as i64).max(1) * (MICROS / 1_000);
    e.latency_ms = Some((lognormal(rng, latency_median, 0.6) * 10.0).round() / 10.0);
    e.status_code = Some(status);
    e
}

fn status_code(rng: &mut ChaCha8Rng, outage: bool, kind: ServiceKind) -> i32 {
    let r: f64 = rng.gen();
    let server_error = if outage { 0.65 } else { 0.008 };
    let client_error = match kind {
        ServiceKind::OpenWebui | ServiceKind::LlmInference => 0.022,
        _ => 0.012,
    };
    if r < server_error {
        [500, 500, 502, 503, 503, 504][rng.gen_range(0..6)]
    } else if r < server_error + client_error {
        match kind {
            ServiceKind::OpenWebui | ServiceKind::LlmInference => {
                [400, 400, 401, 413, 429, 429, 429][rng.gen_range(0..7)]
            }
            _ => [400, 403, 404, 404, 413][rng.gen_range(0..5)],
        }
    } else {
        200
    }
}

fn profile(seed: u64, c: usize) -> Profile {
    let mut rng = rng_for(seed, Domain::Profile, c as u64);
    let intensity = lognormal(&mut rng, 1.0, 0.8);
    let mut used: Vec<bool> = SERVICES.iter().map(|s| rng.gen_bool(s.adoption)).collect();
    if !used.iter().any(|&u| u) {
        used[1] = true;
    }
    let services = cumulative(SERVICES.iter().zip(&used).map(|(s, &u)| {
        if u {
            s.weight * rng.gen_range(0.5..1.5)
        } else {
            0.0
        }
    }));
    let favourite = PROVIDERS[pick_weighted(&mut rng, &[5.0, 3.5, 2.0, 1.0, 0.5, 0.3])];
    let models = cumulative(MODELS.iter().map(|m| {
        let boost = if m.provider == favourite { 3.0 } else { 1.0 };
        m.weight * boost * rng.gen_range(0.6..1.4)
    }));
    Profile {
        id: customer_id(c),
        intensity,
        services,
        models,
        uses_prompt_cache: rng.gen_bool(0.45),
        response_cache_rate: rng.gen_range(0.12..0.38),
    }
}

/// One to three outages per service, of ten minutes to two hours.
fn incidents(seed: u64, first_day: Micros, days: usize) -> Vec<Incident> {
    let mut rng = rng_for(seed, Domain::Incidents, 0);
    let mut out = Vec::new();
    if days == 0 {
        return out;
    }
    for s in 0..SERVICES.len() {
        for _ in 0..rng.gen_range(1..=3) {
            let start = first_day
                + rng.gen_range(0..days as i64) * DAY
                + rng.gen_range(0..CHECKS_PER_DAY as i64) * CHECK_INTERVAL;
            let len = rng.gen_range(2..=24) * CHECK_INTERVAL;
            out.push(Incident {
                service: s,
                start,
                end: start + len,
            });
        }
    }
    out
}

/// Weekends are quiet, and no two days are quite alike.
fn day_factor(seed: u64, d: usize, day_start: Micros) -> f64 {
    let mut rng = rng_for(seed, Domain::DayFactor, d as u64);
    let weekday = match date_of(day_start).weekday() {
        Weekday::Sat => 0.48,
        Weekday::Sun => 0.42,
        Weekday::Mon => 0.96,
        Weekday::Fri => 0.9,
        _ => 1.0,
    };
    weekday * (1.0 + 0.12 * (rng.gen::<f64>() - 0.5))
}

fn is_weekend(t: Micros) -> bool {
    matches!(date_of(t).weekday(), Weekday::Sat | Weekday::Sun)
}

/// The response cache fills up over days and is trimmed when it passes its limit.
fn cache_size_bytes(since_start: Micros, rng: &mut ChaCha8Rng) -> f64 {
    const MIB: f64 = 1024.0 * 1024.0;
    let days = since_start as f64 / DAY as f64;
    let cycle = days % 23.0;
    let size = 280.0 * MIB + cycle * 52.0 * MIB + rng.gen_range(0.0..8.0) * MIB;
    size.round()
}
