//! Customers and their billing histories: signups, trials, subscriptions, plan and seat
//! changes, cancellations, win-backs, other teams' subscriptions and the invoices of every
//! billing period.
//!
//! Each customer's life is simulated on its own random stream, period by period: at each
//! renewal the customer may churn, change plan or seats, or switch to annual billing.
//! Changes take effect at period boundaries, so every invoice matches the MRR of its
//! period exactly.

use super::catalog::{plan_index, Tier, CHANNELS, CURRENCY, PLANS};
use super::names;
use super::random::{add_months, apportion, between, pick_weighted, rng_for, Domain};
use super::{Shape, Window};
use chrono::{Datelike, Weekday};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use std::collections::HashSet;
use tally_core::model::*;
use tally_core::time::{date_of, Micros, Month, MICROS_PER_DAY, MICROS_PER_SEC};

const MINUTE: Micros = 60 * MICROS_PER_SEC;
const HOUR: Micros = 60 * MINUTE;
const DAY: Micros = MICROS_PER_DAY;
pub const TRIAL_DAYS: i64 = 14;
/// Most subscriptions one customer goes through (the first and its win-backs).
const MAX_SUBSCRIPTIONS: usize = 3;
/// Most other teams of a customer with subscriptions of their own (see [`Shape::teams`]).
const MAX_TEAMS: usize = 3;

/// The plan, seats and discount of a subscription from `from` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub from: Micros,
    pub plan: usize,
    pub quantity: i64,
    pub discount: u32,
}

/// What the event generator needs to know of a subscription: when it is active and on
/// which plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub customer: usize,
    pub start: Micros,
    pub trial_end: Option<Micros>,
    pub end: Option<Micros>,
    pub segments: Vec<Segment>,
}

impl Timeline {
    pub fn segment_at(&self, t: Micros) -> &Segment {
        self.segments
            .iter()
            .rev()
            .find(|s| s.from <= t)
            .unwrap_or(&self.segments[0])
    }

    pub fn in_trial(&self, t: Micros) -> bool {
        self.trial_end.is_some_and(|te| t < te)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Billing {
    pub customers: Vec<Customer>,
    pub subscriptions: Vec<Subscription>,
    pub changes: Vec<SubscriptionChange>,
    pub invoices: Vec<Invoice>,
    /// Parallel to `subscriptions`.
    pub timelines: Vec<Timeline>,
}

impl Billing {
    pub fn cancellations(&self) -> impl Iterator<Item = (&str, Micros)> {
        self.subscriptions
            .iter()
            .filter_map(|s| s.canceled_at.map(|c| (s.id.as_str(), c)))
    }
}

pub fn generate(seed: u64, customers: usize, shape: &Shape, window: &Window) -> Billing {
    let signups = signups(seed, customers, shape.signup_growth, window);
    let mut billing = Billing::default();
    let mut used_names = HashSet::new();
    let mut name_rng = rng_for(seed, Domain::Signups, 1);
    for (i, &(created_at, channel)) in signups.iter().enumerate() {
        let identity = names::company(&mut name_rng, &mut used_names);
        billing.customers.push(Customer {
            id: customer_id(i),
            name: Some(identity.name),
            email: Some(identity.email),
            created_at,
            channel: Some(CHANNELS[channel].name.to_string()),
        });
        let first_sub = billing.subscriptions.len();
        let mut rng = rng_for(seed, Domain::Customer, i as u64);
        Life {
            rng: &mut rng,
            customer: i,
            channel,
            end: window.end,
            churn: shape.churn,
            out: &mut billing,
        }
        .simulate(created_at);
        if shape.teams > 0.0 && first_sub < billing.subscriptions.len() {
            // Its own stream, so the customer's first life is the same with or without teams.
            let mut rng = rng_for(seed, Domain::Teams, i as u64);
            Life {
                rng: &mut rng,
                customer: i,
                channel,
                end: window.end,
                churn: shape.churn,
                out: &mut billing,
            }
            .teams(first_sub, shape.teams);
        }
    }
    billing
}

pub fn customer_id(i: usize) -> String {
    format!("cus_{:05}", i + 1)
}

/// Signup instants and channels, oldest first: growing month over month by `growth`, with
/// a seasonal dip in summer and December and fewer signups at weekends.
fn signups(seed: u64, customers: usize, growth: f64, window: &Window) -> Vec<(Micros, usize)> {
    const SEASON: [f64; 12] = [
        1.12, 1.04, 1.06, 1.0, 0.97, 0.92, 0.84, 0.82, 1.07, 1.09, 1.0, 0.78,
    ];
    let mut rng = rng_for(seed, Domain::Signups, 0);
    let months: Vec<Month> = (0..window.months)
        .map(|i| window.first_month.add(i as i32))
        .collect();
    let weights: Vec<f64> = months
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let span_end = m.end().min(window.end + 1);
            let elapsed = (span_end - m.start()) as f64 / (m.days() * DAY) as f64;
            let noise = 1.0 + 0.08 * (rng.gen::<f64>() - 0.5);
            growth.powi(i as i32) * SEASON[m.month as usize - 1] * noise * elapsed
        })
        .collect();
    let counts = apportion(customers, &weights);
    let mut out = Vec::with_capacity(customers);
    for (i, (m, &n)) in months.iter().zip(&counts).enumerate() {
        let span_end = m.end().min(window.end + 1);
        let channel_weights: Vec<f64> = CHANNELS
            .iter()
            .map(|c| if i >= c.from_month { c.weight } else { 0.0 })
            .collect();
        for _ in 0..n {
            let t = loop {
                let t = between(&mut rng, m.start(), span_end);
                let weekend = matches!(date_of(t).weekday(), Weekday::Sat | Weekday::Sun);
                if !weekend || rng.gen_bool(0.55) {
                    break t;
                }
            };
            out.push((t, pick_weighted(&mut rng, &channel_weights)));
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone, Copy)]
struct State {
    plan: usize,
    quantity: i64,
    discount: u32,
}

impl State {
    fn tier(&self) -> Tier {
        PLANS[self.plan].tier
    }

    fn interval(&self) -> Interval {
        PLANS[self.plan].interval
    }

    /// The amount of one billing period, cents. Plan amounts are whole dollars, so this is
    /// exact for whole-percent discounts.
    fn period_amount(&self) -> i64 {
        let gross = PLANS[self.plan].amount * self.quantity;
        (gross * (100 - self.discount as i64) + 50) / 100
    }
}

/// How a subscription ended (if it did before the dataset's end).
enum Ending {
    Running,
    TrialNotConverted(Micros),
    Churned(Micros),
    PaymentFailed(Micros),
}

struct Life<'a> {
    rng: &'a mut ChaCha8Rng,
    customer: usize,
    channel: usize,
    end: Micros,
    /// Multiplies the odds of cancelling (see [`Shape::churn`]).
    churn: f64,
    out: &'a mut Billing,
}

impl Life<'_> {
    fn simulate(&mut self, created_at: Micros) {
        let roll: f64 = self.rng.gen();
        // Some signups never start a subscription; most start a trial; a few buy at once.
        if roll < 0.07 {
            return;
        }
        let trial = roll < 0.87;
        let mut start =
            created_at + between(self.rng, 2 * MINUTE, if trial { 3 * HOUR } else { 2 * DAY });
        let mut state = self.first_state();
        let mut trial = trial;
        for k in 1..=MAX_SUBSCRIPTIONS {
            if start > self.end {
                return;
            }
            let ending = self.subscription(&k.to_string(), start, trial, state);
            let (ended, comeback) = match ending {
                Ending::Running => return,
                Ending::TrialNotConverted(t) => (t, 0.06),
                Ending::Churned(t) => (t, 0.16),
                Ending::PaymentFailed(t) => (t, 0.3),
            };
            if !self.rng.gen_bool(comeback) {
                return;
            }
            // Win-back: back after a few months, paying at once, often on a smaller plan
            // or with a win-back discount.
            start = ended + between(self.rng, 30 * DAY, 270 * DAY) + between(self.rng, 0, DAY);
            trial = false;
            let last = self
                .out
                .timelines
                .last()
                .expect("just simulated")
                .segments
                .last()
                .copied()
                .expect("segment");
            let mut next = State {
                plan: last.plan,
                quantity: last.quantity,
                discount: 0,
            };
            let tier = PLANS[last.plan].tier;
            let r: f64 = self.rng.gen();
            let tier = if r < 0.2 {
                tier.down().unwrap_or(tier)
            } else if r < 0.3 {
                tier.up().unwrap_or(tier)
            } else {
                tier
            };
            let interval = if self.rng.gen_bool(0.8) {
                Interval::Month
            } else {
                PLANS[last.plan].interval
            };
            next.plan = plan_index(tier, interval);
            if self.rng.gen_bool(0.3) {
                next.discount = 20;
            }
            state = next;
        }
    }

    fn first_state(&mut self) -> State {
        let upmarket = CHANNELS[self.channel].upmarket;
        let tier_weights = if upmarket {
            [0.50, 0.36, 0.14]
        } else {
            [0.68, 0.27, 0.05]
        };
        let tier = Tier::ALL[pick_weighted(self.rng, &tier_weights)];
        let annual = match tier {
            Tier::Starter => 0.16,
            Tier::Professional => 0.22,
            Tier::Enterprise => 0.38,
        };
        let interval = if self.rng.gen_bool(annual) {
            Interval::Year
        } else if tier == Tier::Professional && self.rng.gen_bool(0.1) {
            Interval::Quarter
        } else {
            Interval::Month
        };
        let quantity = match tier {
            Tier::Starter => 1,
            Tier::Professional => [1, 1, 1, 1, 1, 2, 2, 3, 3, 5, 8][self.rng.gen_range(0..11)],
            // Enterprise is a per-workspace contract; a few buy several workspaces.
            Tier::Enterprise => [1, 1, 1, 1, 1, 1, 1, 2, 2, 3][self.rng.gen_range(0..10)],
        };
        let discount = match CHANNELS[self.channel].name {
            "partner" if self.rng.gen_bool(0.5) => 15,
            "referral" if self.rng.gen_bool(0.4) => 10,
            _ if self.rng.gen_bool(0.05) => 20,
            _ => 0,
        };
        State {
            plan: plan_index(tier, interval),
            quantity,
            discount,
        }
    }

    /// Other teams of the customer whose first subscription (at `first_sub` in the output)
    /// was paid for: while it is, each month brings another team at the odds `monthly`
    /// (up to [`MAX_TEAMS`]), on its own subscription (no trial: the company knows the
    /// product), mostly on the same tier; a team's subscription lives and churns on its
    /// own, without win-backs.
    fn teams(&mut self, first_sub: usize, monthly: f64) {
        let first = self.out.timelines[first_sub].clone();
        let paid_from = first.trial_end.unwrap_or(first.start);
        let paid_until = first.end.unwrap_or(self.end);
        let mut month_start = paid_from;
        let mut joined = 0;
        while joined < MAX_TEAMS {
            let month_end = add_months(month_start, 1);
            if month_end >= paid_until {
                return;
            }
            if !self.rng.gen_bool(monthly.min(1.0)) {
                month_start = month_end;
                continue;
            }
            joined += 1;
            let start = between(self.rng, month_start, month_end);
            month_start = month_end;
            let theirs = first.segment_at(start);
            let tier = PLANS[theirs.plan].tier;
            let tier = if self.rng.gen_bool(0.3) {
                tier.down().unwrap_or(tier)
            } else {
                tier
            };
            let interval = if self.rng.gen_bool(0.8) {
                Interval::Month
            } else {
                Interval::Year
            };
            let quantity = match tier {
                Tier::Professional => [1, 1, 1, 2, 3][self.rng.gen_range(0..5)],
                Tier::Starter | Tier::Enterprise => 1,
            };
            let state = State {
                plan: plan_index(tier, interval),
                quantity,
                // Teams of a customer on a discount get it too.
                discount: theirs.discount,
            };
            self.subscription(&format!("t{joined}"), start, false, state);
        }
    }

    /// Simulates subscription `tag` of the customer (`1` for the first, `2` and `3` for
    /// win-backs, `t1`… for other teams) from `start` to its end or the dataset's.
    fn subscription(&mut self, tag: &str, start: Micros, trial: bool, mut state: State) -> Ending {
        let c = self.customer;
        let sub_id = format!("sub_{:05}_{tag}", c + 1);
        let trial_end = trial.then_some(start + TRIAL_DAYS * DAY);
        let mut timeline = Timeline {
            customer: c,
            start,
            trial_end,
            end: None,
            segments: vec![Segment {
                from: start,
                plan: state.plan,
                quantity: state.quantity,
                discount: state.discount,
            }],
        };
        let ending = self.periods(tag, &sub_id, start, trial_end, &mut state, &mut timeline);
        let canceled_at = match ending {
            Ending::Running => None,
            Ending::TrialNotConverted(t) | Ending::Churned(t) | Ending::PaymentFailed(t) => Some(t),
        };
        timeline.end = canceled_at;
        let first = timeline.segments[0];
        self.out.subscriptions.push(Subscription {
            id: sub_id,
            customer_id: customer_id(c),
            plan_id: PLANS[first.plan].id.to_string(),
            quantity: first.quantity,
            discount_percent: Decimal::from(first.discount),
            started_at: start,
            trial_ends_at: trial_end,
            canceled_at,
        });
        self.out.timelines.push(timeline);
        ending
    }

    fn periods(
        &mut self,
        tag: &str,
        sub_id: &str,
        start: Micros,
        trial_end: Option<Micros>,
        state: &mut State,
        timeline: &mut Timeline,
    ) -> Ending {
        let c = self.customer;
        let mut period_start = match trial_end {
            None => start,
            Some(te) => {
                let tier_bonus = match state.tier() {
                    Tier::Starter => 0.0,
                    Tier::Professional => 0.04,
                    Tier::Enterprise => 0.08,
                };
                let p = (0.55 * CHANNELS[self.channel].conversion + tier_bonus).min(0.95);
                if !self.rng.gen_bool(p) {
                    // Most let the trial lapse; some cancel a few days in.
                    let at = if self.rng.gen_bool(0.2) {
                        start + between(self.rng, 2 * DAY, 12 * DAY)
                    } else {
                        te
                    };
                    return if at <= self.end {
                        Ending::TrialNotConverted(at)
                    } else {
                        Ending::Running
                    };
                }
                te
            }
        };
        let mut n = 1;
        let mut paid_months = 0u32;
        loop {
            if period_start > self.end {
                return Ending::Running;
            }
            let invoice_id = format!("inv_{:05}_{tag}_{n:03}", c + 1);
            if let Some(dunning_end) =
                self.invoice(&invoice_id, period_start, state.period_amount())
            {
                return if dunning_end <= self.end {
                    Ending::PaymentFailed(dunning_end)
                } else {
                    Ending::Running
                };
            }
            let months = state.interval().months();
            paid_months += months;
            let period_end = add_months(period_start, months);
            if period_end > self.end {
                return Ending::Running;
            }
            if self
                .rng
                .gen_bool((churn_probability(state, paid_months) * self.churn).min(1.0))
            {
                return Ending::Churned(period_end);
            }
            if let Some(change) = self.renewal_change(state, paid_months) {
                let (old, new) = (*state, change);
                *state = new;
                self.out.changes.push(SubscriptionChange {
                    subscription_id: sub_id.to_string(),
                    effective_at: period_end,
                    plan_id: (old.plan != new.plan).then(|| PLANS[new.plan].id.to_string()),
                    quantity: (old.quantity != new.quantity).then_some(new.quantity),
                    discount_percent: (old.discount != new.discount)
                        .then(|| Decimal::from(new.discount)),
                });
                timeline.segments.push(Segment {
                    from: period_end,
                    plan: new.plan,
                    quantity: new.quantity,
                    discount: new.discount,
                });
            }
            period_start = period_end;
            n += 1;
        }
    }

    /// Issues the invoice of a period. Returns when the subscription ends for non-payment
    /// (after dunning), if the payment failed for good.
    fn invoice(&mut self, id: &str, issued_at: Micros, amount: i64) -> Option<Micros> {
        let roll: f64 = self.rng.gen();
        if roll < 0.04 {
            self.push_invoice(
                id.to_string(),
                amount,
                InvoiceStatus::Failed,
                issued_at,
                None,
            );
            if self.rng.gen_bool(0.35) {
                return Some(issued_at + between(self.rng, 7 * DAY, 15 * DAY));
            }
            // The card is updated and the retry goes through.
            let retry_at = issued_at + between(self.rng, 2 * DAY, 5 * DAY);
            if retry_at <= self.end {
                self.settle(format!("{id}_retry"), amount, retry_at);
            }
        } else if roll < 0.045 {
            // Issued with a mistake, voided and issued again.
            self.push_invoice(id.to_string(), amount, InvoiceStatus::Void, issued_at, None);
            let again = issued_at + between(self.rng, 10 * MINUTE, 6 * HOUR);
            if again <= self.end {
                self.settle(format!("{id}_reissue"), amount, again);
            }
        } else {
            self.settle(id.to_string(), amount, issued_at);
        }
        None
    }

    /// A payable invoice: paid by card within minutes or by transfer within days, and still
    /// open when that lies after the dataset's end.
    fn settle(&mut self, id: String, amount: i64, issued_at: Micros) {
        let delay = if self.rng.gen_bool(0.75) {
            between(self.rng, 20 * MICROS_PER_SEC, 15 * MINUTE)
        } else {
            between(self.rng, HOUR, 4 * DAY)
        };
        let paid_at = issued_at + delay;
        if paid_at <= self.end {
            self.push_invoice(id, amount, InvoiceStatus::Paid, issued_at, Some(paid_at));
        } else {
            self.push_invoice(id, amount, InvoiceStatus::Open, issued_at, None);
        }
    }

    fn push_invoice(
        &mut self,
        id: String,
        amount: i64,
        status: InvoiceStatus,
        issued_at: Micros,
        paid_at: Option<Micros>,
    ) {
        self.out.invoices.push(Invoice {
            id,
            customer_id: customer_id(self.customer),
            amount,
            currency: CURRENCY.to_string(),
            status,
            issued_at,
            paid_at,
        });
    }

    /// At a renewal: upgrades, downgrades, seat changes, a switch to annual billing, the end
    /// of an introductory discount. `None` when nothing changes.
    fn renewal_change(&mut self, state: &State, paid_months: u32) -> Option<State> {
        let months = state.interval().months() as f64;
        // Per-month odds, scaled to the period so annual customers are not frozen.
        let per = |p: f64| (1.0 - (1.0 - p).powf(months)).min(0.9);
        let mut next = *state;
        let tier = state.tier();
        let interval = state.interval();
        let up = match tier {
            Tier::Starter => 0.03,
            Tier::Professional => 0.008,
            Tier::Enterprise => 0.0,
        };
        let down = match tier {
            Tier::Starter => 0.0,
            Tier::Professional => 0.008,
            Tier::Enterprise => 0.012,
        };
        let r: f64 = self.rng.gen();
        if r < per(up) {
            next.plan = plan_index(tier.up().expect("odds are 0 at the top"), interval);
        } else if r < per(up) + per(down) {
            next.plan = plan_index(tier.down().expect("odds are 0 at the bottom"), interval);
            next.quantity = next.quantity.min(3);
        }
        let (add, remove) = match next.tier() {
            Tier::Starter => (0.0, 0.0),
            Tier::Professional => (0.04, 0.018),
            Tier::Enterprise => (0.012, 0.008),
        };
        let r: f64 = self.rng.gen();
        if next.tier() == Tier::Starter {
            next.quantity = 1;
        } else if r < per(add) {
            next.quantity += [1, 1, 1, 2, 3][self.rng.gen_range(0..5)];
        } else if r < per(add) + per(remove) && next.quantity > 1 {
            next.quantity -= 1;
        }
        if interval == Interval::Month && next.plan == state.plan && self.rng.gen_bool(0.012) {
            next.plan = plan_index(tier, Interval::Year);
        }
        if state.discount > 0 && paid_months >= 12 && self.rng.gen_bool(0.25) {
            next.discount = 0;
        } else if state.discount == 0 && self.rng.gen_bool(per(0.004)) {
            // A retention offer to a customer who asked to cancel.
            next.discount = 25;
        }
        let changed = next.plan != state.plan
            || next.quantity != state.quantity
            || next.discount != state.discount;
        changed.then_some(next)
    }
}

/// Odds of cancelling at the end of a period: higher in the first months, lower for larger
/// tiers and for customers who committed to a year.
fn churn_probability(state: &State, paid_months: u32) -> f64 {
    let monthly: f64 = match state.tier() {
        Tier::Starter => 0.042,
        Tier::Professional => 0.028,
        Tier::Enterprise => 0.016,
    };
    let tenure = if paid_months <= 3 {
        1.4
    } else if paid_months >= 12 {
        0.75
    } else {
        1.0
    };
    match state.interval() {
        Interval::Month => monthly * tenure,
        Interval::Quarter => (1.0 - (1.0 - monthly * tenure).powi(3)) * 0.85,
        Interval::Year => match state.tier() {
            Tier::Starter => 0.24,
            Tier::Professional => 0.17,
            Tier::Enterprise => 0.11,
        },
    }
}
