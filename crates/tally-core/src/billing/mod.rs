//! The subscription book: every plan, customer, subscription and change, queried at an
//! instant. All MRR rules of metrics.md ("Subscriptions and MRR") live here; the modules
//! below build month-end series, movements, churn, LTV, acquisition and growth on top.
//!
//! Nothing here filters by `as_of`: each query names its instant, and a state at t only
//! looks at facts effective at or before t, so data dated after `as_of` never leaks in.

pub mod acquisition;
pub mod churn;
pub mod growth;
pub mod history;
pub mod ledger;
pub mod ltv;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

use crate::model::{Customer, Plan, Subscription, SubscriptionChange};
use crate::money::Currency;
use crate::time::Micros;
use history::History;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// Decimal places of a subscription's monthly amount.
pub const MRR_SCALE: u32 = 12;

/// The tier name of a customer whose only active subscriptions are in trial.
pub const TRIAL_TIER: &str = "trial";

/// A subscription with its changes in effect order.
#[derive(Debug, Clone)]
struct SubHistory {
    sub: Subscription,
    /// Sorted by `effective_at` (unique per subscription).
    changes: Vec<SubscriptionChange>,
}

/// Plan, quantity and discount of a subscription at one instant.
#[derive(Debug, Clone, Copy)]
struct Terms<'a> {
    plan_id: &'a str,
    quantity: i64,
    discount: Decimal,
}

impl SubHistory {
    fn active_at(&self, t: Micros) -> bool {
        self.sub.started_at <= t && self.sub.canceled_at.is_none_or(|c| t < c)
    }

    fn in_trial_at(&self, t: Micros) -> bool {
        self.sub.trial_ends_at.is_some_and(|e| t < e)
    }

    fn terms_at(&self, t: Micros) -> Terms<'_> {
        let mut terms = Terms {
            plan_id: &self.sub.plan_id,
            quantity: self.sub.quantity,
            discount: self.sub.discount_percent,
        };
        for c in self.changes.iter().take_while(|c| c.effective_at <= t) {
            if let Some(p) = &c.plan_id {
                terms.plan_id = p;
            }
            if let Some(q) = c.quantity {
                terms.quantity = q;
            }
            if let Some(d) = c.discount_percent {
                terms.discount = d;
            }
        }
        terms
    }
}

/// Everything needed to answer "what did this customer pay, on which tier, at t".
#[derive(Debug, Clone)]
pub struct Book {
    currency: Currency,
    plans: HashMap<String, Plan>,
    customers: BTreeMap<String, Customer>,
    /// Per customer id, subscriptions sorted by id (input order never matters).
    subs: BTreeMap<String, Vec<SubHistory>>,
    /// Month-end figures of every month, a function of the book alone, built on first use
    /// (see [`Book::history`]).
    history: OnceLock<History>,
}

/// A subscriber's state at one instant (see [`Book::subscriber_states_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberState<'a> {
    pub customer_id: &'a str,
    /// [`Book::customer_mrr_at`].
    pub mrr: Decimal,
    /// [`Book::tier_at`].
    pub tier: Option<&'a str>,
    /// [`Book::is_trial_at`].
    pub trial: bool,
}

impl Book {
    /// Amounts are read in US dollars (2 decimals); see [`Book::with_currency`].
    pub fn new(
        plans: &[Plan],
        customers: &[Customer],
        subscriptions: &[Subscription],
        changes: &[SubscriptionChange],
    ) -> Book {
        let plans: HashMap<String, Plan> =
            plans.iter().map(|p| (p.id.clone(), p.clone())).collect();
        let customers: BTreeMap<String, Customer> = customers
            .iter()
            .map(|c| (c.id.clone(), c.clone()))
            .collect();
        let mut by_sub: HashMap<&str, Vec<SubscriptionChange>> = HashMap::new();
        for c in changes {
            by_sub
                .entry(c.subscription_id.as_str())
                .or_default()
                .push(c.clone());
        }
        let mut subs: BTreeMap<String, Vec<SubHistory>> = BTreeMap::new();
        for s in subscriptions {
            let mut changes = by_sub.remove(s.id.as_str()).unwrap_or_default();
            changes.sort_by_key(|c| c.effective_at);
            subs.entry(s.customer_id.clone())
                .or_default()
                .push(SubHistory {
                    sub: s.clone(),
                    changes,
                });
        }
        for list in subs.values_mut() {
            list.sort_by(|a, b| a.sub.id.cmp(&b.sub.id));
        }
        Book {
            currency: Currency::usd(),
            plans,
            customers,
            subs,
            history: OnceLock::new(),
        }
    }

    /// Reads plan amounts as minor units of `currency`.
    pub fn with_currency(mut self, currency: Currency) -> Book {
        self.currency = currency;
        // Amounts change with the currency: a history built before is not this book's.
        self.history = OnceLock::new();
        self
    }

    /// Every subscriber's MRR and tier as a timeline, and the month-end figures of every
    /// month, built once per book: the [`ledger::Ledger`] of any `as_of` reads its
    /// complete months from here and computes only the current month. Building it walks
    /// every subscriber once per month of the book's span, so a caller that keeps books
    /// (the server's book cache) builds it right after loading one.
    pub fn history(&self) -> &History {
        self.history.get_or_init(|| History::new(self))
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Monthly amount of a subscription under its terms at t, ignoring activity and trial.
    /// An unknown plan (never stored by the stores) counts as 0.
    fn monthly_amount(&self, terms: Terms<'_>) -> Decimal {
        let Some(plan) = self.plans.get(terms.plan_id) else {
            return Decimal::ZERO;
        };
        let per_interval = self.currency.from_minor(plan.amount)
            * Decimal::from(terms.quantity)
            * (Decimal::ONE - terms.discount / Decimal::ONE_HUNDRED);
        // A quarterly price need not divide by 3: 12 decimals keep every later sum and
        // difference exact (fixed scale), so the movement identity holds to the last digit,
        // while the error against the true third is below 10⁻¹² per subscription.
        crate::decimal::round(
            per_interval / Decimal::from(plan.interval.months()),
            MRR_SCALE,
        )
    }

    fn sub_mrr_at(&self, s: &SubHistory, t: Micros) -> Decimal {
        if !s.active_at(t) || s.in_trial_at(t) {
            return Decimal::ZERO;
        }
        self.monthly_amount(s.terms_at(t))
    }

    fn subs_of(&self, customer_id: &str) -> &[SubHistory] {
        self.subs.get(customer_id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Customer MRR at t, exact, in currency units.
    pub fn customer_mrr_at(&self, customer_id: &str, t: Micros) -> Decimal {
        self.subs_of(customer_id)
            .iter()
            .map(|s| self.sub_mrr_at(s, t))
            .sum()
    }

    /// Total MRR at t.
    pub fn mrr_at(&self, t: Micros) -> Decimal {
        self.subs.keys().map(|c| self.customer_mrr_at(c, t)).sum()
    }

    /// Whether the customer has an active subscription in trial and MRR 0 at t.
    pub fn is_trial_at(&self, customer_id: &str, t: Micros) -> bool {
        let subs = self.subs_of(customer_id);
        subs.iter().any(|s| s.active_at(t) && s.in_trial_at(t))
            && self.customer_mrr_at(customer_id, t).is_zero()
    }

    /// Whether the customer has any active subscription (paying, trial or free) at t.
    pub fn has_active_at(&self, customer_id: &str, t: Micros) -> bool {
        self.subs_of(customer_id).iter().any(|s| s.active_at(t))
    }

    /// The tier at t: `trial` for a trial customer, else the tier of the plan of the
    /// largest-MRR active subscription (ties: smallest plan id); `None` without an active
    /// subscription.
    pub fn tier_at(&self, customer_id: &str, t: Micros) -> Option<String> {
        if self.is_trial_at(customer_id, t) {
            return Some(TRIAL_TIER.to_string());
        }
        let mut best: Option<(Decimal, &str)> = None;
        for s in self.subs_of(customer_id).iter().filter(|s| s.active_at(t)) {
            let mrr = self.sub_mrr_at(s, t);
            let plan_id = s.terms_at(t).plan_id;
            best = match best {
                Some((m, p)) if m > mrr || (m == mrr && p <= plan_id) => Some((m, p)),
                _ => Some((mrr, plan_id)),
            };
        }
        let (_, plan_id) = best?;
        Some(
            self.plans
                .get(plan_id)
                .map_or_else(|| plan_id.to_string(), |p| p.tier.clone()),
        )
    }

    /// MRR, tier and whether in trial, of a customer with subscriptions `subs` at t: the
    /// answers of [`Book::customer_mrr_at`], [`Book::tier_at`] and [`Book::is_trial_at`]
    /// in one pass, with the same arithmetic in the same order (the property tests compare
    /// them), so each monthly amount is computed once.
    fn state_at<'b>(
        &'b self,
        subs: &'b [SubHistory],
        t: Micros,
    ) -> (Decimal, Option<&'b str>, bool) {
        let mut mrr = Decimal::ZERO;
        let mut any_trial = false;
        let mut best: Option<(Decimal, &str)> = None;
        for s in subs {
            if !s.active_at(t) {
                // sub_mrr_at's 0, added as customer_mrr_at's sum adds it.
                mrr += Decimal::ZERO;
                continue;
            }
            let in_trial = s.in_trial_at(t);
            any_trial |= in_trial;
            let terms = s.terms_at(t);
            let sub_mrr = if in_trial {
                Decimal::ZERO
            } else {
                self.monthly_amount(terms)
            };
            mrr += sub_mrr;
            best = match best {
                Some((m, p)) if m > sub_mrr || (m == sub_mrr && p <= terms.plan_id) => Some((m, p)),
                _ => Some((sub_mrr, terms.plan_id)),
            };
        }
        let trial = any_trial && mrr.is_zero();
        let tier = if trial {
            Some(TRIAL_TIER)
        } else {
            best.map(|(_, plan_id)| self.plans.get(plan_id).map_or(plan_id, |p| p.tier.as_str()))
        };
        (mrr, tier, trial)
    }

    /// Instants in (start, end) where the customer's tier or MRR may change.
    pub fn change_points(&self, customer_id: &str, start: Micros, end: Micros) -> Vec<Micros> {
        let mut points: Vec<Micros> = Vec::new();
        for s in self.subs_of(customer_id) {
            points.push(s.sub.started_at);
            points.extend(s.sub.trial_ends_at);
            points.extend(s.sub.canceled_at);
            points.extend(s.changes.iter().map(|c| c.effective_at));
        }
        points.retain(|&p| start < p && p < end);
        points.sort_unstable();
        points.dedup();
        points
    }

    /// Customer ids in id order (every stored customer, whatever its `created_at`).
    pub fn customer_ids(&self) -> impl Iterator<Item = &str> {
        self.customers.keys().map(String::as_str)
    }

    pub fn customer(&self, id: &str) -> Option<&Customer> {
        self.customers.get(id)
    }

    pub fn customers(&self) -> impl Iterator<Item = &Customer> {
        self.customers.values()
    }

    /// Every subscriber (in id order) with their state at t: the answers of
    /// [`Book::customer_mrr_at`], [`Book::tier_at`] and [`Book::is_trial_at`], read from
    /// the book's timelines (one binary search each) instead of recomputed from the
    /// subscriptions.
    pub fn subscriber_states_at(&self, t: Micros) -> impl Iterator<Item = SubscriberState<'_>> {
        let history = self.history();
        self.subscriber_ids()
            .enumerate()
            .map(move |(i, customer_id)| {
                let (mrr, tier, trial) = history.customer_state(i, t);
                SubscriberState {
                    customer_id,
                    mrr,
                    tier,
                    trial,
                }
            })
    }

    /// The first instant at which some customer's tier (`tier_at`) in this book differs
    /// from their tier in `other`; `None` when every customer has the same tier at every
    /// instant in both (writes that change no subscription, or change one without moving
    /// its tier). Figures attributed to tiers before that instant hold for both books.
    pub fn first_tier_difference(&self, other: &Book) -> Option<Micros> {
        let (mine, theirs) = (self.history(), other.history());
        let a: Vec<&str> = self.subscriber_ids().collect();
        let b: Vec<&str> = other.subscriber_ids().collect();
        let (mut i, mut j) = (0, 0);
        let mut first: Option<Micros> = None;
        // Both lists are in id order: walk them together.
        while i < a.len() || j < b.len() {
            let (x, y) = match (a.get(i), b.get(j)) {
                (Some(p), Some(q)) if p == q => (Some(i), Some(j)),
                (Some(p), Some(q)) if p < q => (Some(i), None),
                (Some(_), None) => (Some(i), None),
                _ => (None, Some(j)),
            };
            if let Some(t) = mine.first_tier_difference(x, theirs, y) {
                first = Some(first.map_or(t, |f| f.min(t)));
            }
            i += usize::from(x.is_some());
            j += usize::from(y.is_some());
        }
        first
    }

    /// Ids of customers that have at least one subscription, in id order.
    pub fn subscriber_ids(&self) -> impl Iterator<Item = &str> {
        self.subs.keys().map(String::as_str)
    }

    /// Distinct tiers of the stored plans, sorted.
    pub fn tiers(&self) -> impl Iterator<Item = &str> {
        let set: std::collections::BTreeSet<&str> =
            self.plans.values().map(|p| p.tier.as_str()).collect();
        set.into_iter()
    }

    /// Earliest subscription start, if any.
    pub fn first_start(&self) -> Option<Micros> {
        self.subs.values().flatten().map(|s| s.sub.started_at).min()
    }

    /// `(customer_id, trial_ends_at)` of every subscription with a trial that began
    /// before it ended, in subscription order. A trial cancelled early still ends at its
    /// `trial_ends_at`: it is a trial that did not convert.
    pub fn trial_ends(&self) -> impl Iterator<Item = (&str, Micros)> {
        self.subs.iter().flat_map(|(cid, list)| {
            list.iter().filter_map(move |s| {
                let end = s.sub.trial_ends_at?;
                (s.sub.started_at < end).then_some((cid.as_str(), end))
            })
        })
    }
}
