//! A book's month-end history: every subscriber's state as a timeline, and the figures of
//! every complete month, computed once per book and shared by the ledgers of every
//! `as_of`.
//!
//! Why the complete months do not depend on `as_of`: the state of a customer at an
//! instant t (`Book::customer_mrr_at`, `tier_at`, `is_trial_at`) is a function of the book
//! and t alone, and only looks at facts effective at or before t (started, trial ended,
//! cancelled, changed at or before t). A month M before the month of `as_of` is read at
//! its last instant whatever `as_of` is, so its MRR, paying customers, tiers, movements
//! and churn are the same for every `as_of` after it; data dated after `as_of` is after
//! that instant and changes none of them. Only the current month, read at `as_of`, is
//! left to each request ([`History::month_to_date`]).
//!
//! A subscriber's state only changes at the instants of their subscriptions' facts
//! (start, trial end, cancellation, change), and holds from each such instant up to the
//! next (intervals are half-open), so a timeline of (instant, state) pairs answers the
//! state at any t with a binary search, exactly as the book would.

use super::churn::TierChurn;
use super::ledger::Movements;
use super::{Book, TRIAL_TIER};
use crate::time::{Micros, Month};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};

/// A subscriber's state between two instants of their timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    /// `Book::customer_mrr_at`, value and scale as computed there.
    mrr: Decimal,
    /// `Book::tier_at`, as an index into `History::tiers`.
    tier: Option<u32>,
    /// `Book::is_trial_at`.
    trial: bool,
}

/// The state before a subscriber's first instant: nothing has started, so
/// `customer_mrr_at` sums no amount but zeros (`Decimal::ZERO`, scale 0), there is no
/// tier and no trial.
const NOTHING: State = State {
    mrr: Decimal::ZERO,
    tier: None,
    trial: false,
};

/// What the ledger reads from one month end: sums and counts over every subscriber, from
/// their state at the end of the month before (a) and at this month's end (b).
#[derive(Debug, Clone, Default)]
pub(crate) struct MonthEnd {
    /// Σ b.mrr over every subscriber, in subscriber order (`Ledger::total_mrr`).
    pub total: Decimal,
    /// Subscribers with b.mrr > 0.
    pub paying: u64,
    /// Subscribers paying or in trial at the month end.
    pub subscribed: u64,
    pub movements: Movements,
    /// Per tier index: (MRR, customers) of customers paying or on the `trial` tier at the
    /// month end (`ltv::tier_totals`).
    by_tier: Vec<(Decimal, u64)>,
    /// Per tier index at the end of the month before: customers paying then (base) and
    /// those of them not paying at this month end (`churn::churn_by_tier`, without trials).
    churn: Vec<TierChurn>,
    /// Trials that ended in the month (up to the month end) and whose customer is not
    /// paying at the month end.
    pub trial_churn: TierChurn,
}

impl MonthEnd {
    fn new(tiers: usize) -> MonthEnd {
        MonthEnd {
            by_tier: vec![Default::default(); tiers],
            churn: vec![Default::default(); tiers],
            ..Default::default()
        }
    }

    /// Adds one subscriber: `a` is their state at the end of the month before, `b` at this
    /// month's end, `paid_before` whether they paid at some month end before a's.
    fn add(&mut self, a: &State, b: &State, paid_before: bool, trial_tier: Option<u32>) {
        let zero = Decimal::ZERO;
        self.total += b.mrr;
        if b.mrr > zero {
            self.paying += 1;
        }
        if b.mrr > zero || b.trial {
            self.subscribed += 1;
        }
        if let Some(t) = b.tier {
            if b.mrr > zero || Some(t) == trial_tier {
                let e = &mut self.by_tier[t as usize];
                e.0 += b.mrr;
                e.1 += 1;
            }
        }
        self.movements.add(a.mrr, b.mrr, paid_before);
        if !a.mrr.is_zero() {
            if let Some(t) = a.tier {
                let e = &mut self.churn[t as usize];
                e.base += 1;
                if b.mrr.is_zero() {
                    e.churned += 1;
                }
            }
        }
    }
}

/// The timelines and complete-month figures of one book (see the module documentation).
#[derive(Debug, Clone)]
pub struct History {
    /// Subscriber `i` (in id order, as `Book::subscriber_ids`) owns
    /// `points[offsets[i]..offsets[i + 1]]`: the sorted distinct instants where their
    /// state may change; `states[j]` holds from `points[j]` up to the next point.
    offsets: Vec<usize>,
    points: Vec<Micros>,
    states: Vec<State>,
    /// Tier names as `Book::tier_at` gives them, indexed by `State::tier`.
    tiers: Vec<String>,
    /// The index of the `trial` tier, if any state has it.
    trial_tier: Option<u32>,
    /// Per subscriber, the first month whose end finds them paying.
    first_paying: Vec<Option<Month>>,
    /// Every trial (`Book::trial_ends`) as (its end, subscriber), sorted.
    trial_ends: Vec<(Micros, usize)>,
    /// `months[k]` is the month `first + k`. Before `first` nothing has started; the last
    /// month comes after every point of the book, so every later month equals it.
    first: Month,
    months: Vec<MonthEnd>,
    /// The figures of a month before anything started.
    zero: MonthEnd,
}

impl History {
    pub(crate) fn new(book: &Book) -> History {
        let mut offsets = vec![0];
        let mut points = Vec::new();
        let mut states = Vec::new();
        let mut tiers: Vec<String> = Vec::new();
        let mut tier_index: HashMap<String, u32> = HashMap::new();
        let mut trial_ends = Vec::new();
        for (i, subs) in book.subs.values().enumerate() {
            let start = points.len();
            for s in subs {
                points.push(s.sub.started_at);
                points.extend(s.sub.trial_ends_at);
                points.extend(s.sub.canceled_at);
                points.extend(s.changes.iter().map(|c| c.effective_at));
                if let Some(end) = s.sub.trial_ends_at.filter(|&e| s.sub.started_at < e) {
                    trial_ends.push((end, i));
                }
            }
            points[start..].sort_unstable();
            let mut own = points.split_off(start);
            own.dedup();
            for &p in &own {
                let (mrr, tier, trial) = book.state_at(subs, p);
                let tier = tier.map(|name| match tier_index.get(name) {
                    Some(&k) => k,
                    None => {
                        let k = tiers.len() as u32;
                        tiers.push(name.to_string());
                        tier_index.insert(name.to_string(), k);
                        k
                    }
                });
                states.push(State { mrr, tier, trial });
            }
            points.extend(own);
            offsets.push(points.len());
        }
        trial_ends.sort_unstable();
        let trial_tier = tier_index.get(TRIAL_TIER).copied();
        let n = offsets.len() - 1;

        let mut h = History {
            offsets,
            points,
            states,
            tiers,
            trial_tier,
            first_paying: Vec::new(),
            trial_ends,
            first: Month::new(1970, 1).expect("valid month"),
            months: Vec::new(),
            zero: MonthEnd::default(),
        };
        let mut first_paying = vec![None; n];
        let (Some(&lo), Some(&hi)) = (h.points.iter().min(), h.points.iter().max()) else {
            h.first_paying = first_paying;
            return h;
        };
        // One month past the month of the last point: its start and end states are every
        // subscriber's final state, as are those of every later month.
        let (first, last) = (Month::of(lo), Month::of(hi).next());
        let mut months =
            vec![MonthEnd::new(h.tiers.len()); (last.index() - first.index() + 1) as usize];
        for (i, first_paying) in first_paying.iter_mut().enumerate() {
            let pts = h.points_of(i);
            let Some(&p0) = pts.first() else { continue };
            // Before the month of p0 the subscriber is NOTHING at every month end, which
            // adds nothing to any figure (a zero of scale 0 leaves a sum as it is).
            // k: points at or before the month end; a: the state at the end of the month
            // before; paid_before: paying at some month end before a's.
            let mut k = 0;
            let mut a = NOTHING;
            let mut paid_before = false;
            for idx in Month::of(p0).index()..=last.index() {
                let m = Month::from_index(idx);
                let t = m.last_instant();
                while k < pts.len() && pts[k] <= t {
                    k += 1;
                }
                let b = *h.state(i, k);
                months[(idx - first.index()) as usize].add(&a, &b, paid_before, h.trial_tier);
                if first_paying.is_none() && b.mrr > Decimal::ZERO {
                    *first_paying = Some(m);
                }
                paid_before |= a.mrr > Decimal::ZERO;
                a = b;
            }
        }
        for &(end, i) in &h.trial_ends {
            let m = Month::of(end);
            let e = &mut months[(m.index() - first.index()) as usize].trial_churn;
            e.base += 1;
            if h.state_at(i, m.last_instant()).mrr.is_zero() {
                e.churned += 1;
            }
        }
        h.first = first;
        h.months = months;
        h.first_paying = first_paying;
        h
    }

    fn points_of(&self, i: usize) -> &[Micros] {
        &self.points[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Subscriber `i`'s state after their first `k` points.
    fn state(&self, i: usize, k: usize) -> &State {
        match k {
            0 => &NOTHING,
            k => &self.states[self.offsets[i] + k - 1],
        }
    }

    /// Subscriber `i`'s tier name at t (`None` for no subscriber).
    fn tier_name_at(&self, i: Option<usize>, t: Micros) -> Option<&str> {
        let tier = i.and_then(|i| self.state_at(i, t).tier)?;
        Some(self.tiers[tier as usize].as_str())
    }

    /// The first instant at which subscriber `i` of `self` and subscriber `j` of `other`
    /// (`None`: not a subscriber there, so never a tier) have different tiers. Tiers only
    /// change at points, so comparing at every point of either is enough.
    pub(crate) fn first_tier_difference(
        &self,
        i: Option<usize>,
        other: &History,
        j: Option<usize>,
    ) -> Option<Micros> {
        let mut instants: Vec<Micros> = Vec::new();
        if let Some(i) = i {
            instants.extend_from_slice(self.points_of(i));
        }
        if let Some(j) = j {
            instants.extend_from_slice(other.points_of(j));
        }
        instants.sort_unstable();
        instants.dedup();
        instants
            .into_iter()
            .find(|&t| self.tier_name_at(i, t) != other.tier_name_at(j, t))
    }

    fn state_at(&self, i: usize, t: Micros) -> &State {
        self.state(i, self.points_of(i).partition_point(|&p| p <= t))
    }

    /// The figures of month `m` read at its last instant: those of a complete month, for
    /// any `as_of` after it.
    pub(crate) fn month(&self, m: Month) -> &MonthEnd {
        let Some(last) = self.months.len().checked_sub(1) else {
            return &self.zero;
        };
        match usize::try_from(m.index() - self.first.index()) {
            Ok(k) => &self.months[k.min(last)],
            Err(_) => &self.zero,
        }
    }

    /// The figures of the month of `as_of`, read at `as_of`: one pass over the
    /// subscribers, each state found in their timeline.
    pub(crate) fn month_to_date(&self, as_of: Micros) -> MonthEnd {
        let m = Month::of(as_of);
        let prev_end = m.prev().last_instant();
        let mut out = MonthEnd::new(self.tiers.len());
        for i in 0..self.offsets.len() - 1 {
            let pts = self.points_of(i);
            let ka = pts.partition_point(|&p| p <= prev_end);
            let kb = ka + pts[ka..].partition_point(|&p| p <= as_of);
            let paid_before = self.first_paying[i].is_some_and(|f| f < m.prev());
            out.add(
                self.state(i, ka),
                self.state(i, kb),
                paid_before,
                self.trial_tier,
            );
        }
        let from = self.trial_ends.partition_point(|&(e, _)| e < m.start());
        for &(end, i) in &self.trial_ends[from..] {
            if end > as_of {
                break;
            }
            out.trial_churn.base += 1;
            if self.state_at(i, as_of).mrr.is_zero() {
                out.trial_churn.churned += 1;
            }
        }
        out
    }

    /// `MonthEnd::by_tier` by tier name, tiers without customers left out.
    pub(crate) fn tier_totals(&self, e: &MonthEnd) -> BTreeMap<String, (Decimal, u64)> {
        e.by_tier
            .iter()
            .enumerate()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(k, v)| (self.tiers[k].clone(), *v))
            .collect()
    }

    /// `MonthEnd::churn` by tier name, tiers without a base left out.
    pub(crate) fn tier_churn<'s>(
        &'s self,
        e: &'s MonthEnd,
    ) -> impl Iterator<Item = (&'s str, TierChurn)> + 's {
        e.churn
            .iter()
            .enumerate()
            .filter(|(_, c)| c.base > 0)
            .map(|(k, c)| (self.tiers[k].as_str(), *c))
    }

    /// MRR, tier name and trial of subscriber `i` (in id order) at t.
    pub(crate) fn customer_state(&self, i: usize, t: Micros) -> (Decimal, Option<&str>, bool) {
        let s = self.state_at(i, t);
        (
            s.mrr,
            s.tier.map(|k| self.tiers[k as usize].as_str()),
            s.trial,
        )
    }
}
