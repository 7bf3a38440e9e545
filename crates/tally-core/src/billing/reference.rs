//! The straightforward ledger the fast one replaced, kept for the tests as the reference:
//! `Book::customer_mrr_at` and `Book::tier_at` asked for every (subscriber, month), every
//! figure summed over subscribers when asked. The property tests require the
//! [`super::ledger::Ledger`] to give the same values, to the last digit and scale, at any
//! `as_of`.

use super::churn::TierChurn;
use super::ledger::{month_end, Movements};
use super::{Book, TRIAL_TIER};
use crate::time::{Micros, Month};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

const MIN_HISTORY: i32 = 25;

/// The ledger as it was before the history: month-end MRR of every subscriber for every month from the first subscription (or 25
/// months back, whichever is earlier) through the current month.
#[derive(Debug)]
pub struct NaiveLedger<'a> {
    pub book: &'a Book,
    pub as_of: Micros,
    pub current: Month,
    first: Month,
    ids: Vec<&'a str>,
    /// `[customer][month − first]`.
    mrr: Vec<Vec<Decimal>>,
}

impl<'a> NaiveLedger<'a> {
    pub fn new(book: &'a Book, as_of: Micros) -> NaiveLedger<'a> {
        let current = Month::of(as_of);
        let mut first = current.add(-MIN_HISTORY);
        if let Some(s) = book.first_start().filter(|&s| s <= as_of) {
            first = first.min(Month::of(s));
        }
        let months: Vec<Micros> = (first.index()..=current.index())
            .map(|i| month_end(Month::from_index(i), as_of))
            .collect();
        let ids: Vec<&str> = book.subscriber_ids().collect();
        let mrr = ids
            .iter()
            .map(|id| {
                months
                    .iter()
                    .map(|&t| book.customer_mrr_at(id, t))
                    .collect()
            })
            .collect();
        NaiveLedger {
            book,
            as_of,
            current,
            first,
            ids,
            mrr,
        }
    }

    /// The first month the ledger holds; every earlier month has no subscriptions.
    pub fn first(&self) -> Month {
        self.first
    }

    fn idx(&self, m: Month) -> Option<usize> {
        assert!(
            m <= self.current,
            "month {m} is after the current month {}",
            self.current
        );
        usize::try_from(m.index() - self.first.index()).ok()
    }

    pub fn month_end(&self, m: Month) -> Micros {
        month_end(m, self.as_of)
    }

    /// Subscriber ids, in id order, matching the index of [`NaiveLedger::customer_mrr`].
    pub fn ids(&self) -> &[&'a str] {
        &self.ids
    }

    /// MRR of the `i`-th subscriber at the end of `m`.
    pub fn customer_mrr(&self, i: usize, m: Month) -> Decimal {
        self.idx(m).map_or(Decimal::ZERO, |k| self.mrr[i][k])
    }

    pub fn total_mrr(&self, m: Month) -> Decimal {
        (0..self.ids.len()).map(|i| self.customer_mrr(i, m)).sum()
    }

    /// Customers with MRR > 0 at the end of `m`.
    pub fn paying(&self, m: Month) -> u64 {
        (0..self.ids.len())
            .filter(|&i| self.customer_mrr(i, m) > Decimal::ZERO)
            .count() as u64
    }

    /// Whether subscriber `i` was paying at the end of any month before `m`.
    fn paid_before(&self, i: usize, m: Month) -> bool {
        let Some(k) = self.idx(m) else { return false };
        self.mrr[i][..k].iter().any(|v| *v > Decimal::ZERO)
    }

    /// The movement of subscriber `i` in `m`: (a, b) = MRR at the end of m−1 and of m.
    pub fn customer_movement(&self, i: usize, m: Month) -> (Decimal, Decimal) {
        (self.customer_mrr(i, m.prev()), self.customer_mrr(i, m))
    }

    pub fn movements(&self, m: Month) -> Movements {
        let mut mv = Movements::default();
        for i in 0..self.ids.len() {
            let (a, b) = self.customer_movement(i, m);
            let zero = Decimal::ZERO;
            if a.is_zero() && b > zero {
                if self.paid_before(i, m.prev()) {
                    mv.reactivation += b;
                    mv.reactivated_customers += 1;
                } else {
                    mv.new += b;
                    mv.new_customers += 1;
                }
            } else if a > zero && b.is_zero() {
                mv.churn += a;
                mv.churned_customers += 1;
            } else if a > zero && a < b {
                mv.expansion += b - a;
                mv.expanded_customers += 1;
            } else if b > zero && b < a {
                mv.contraction += a - b;
                mv.contracted_customers += 1;
            }
        }
        mv
    }
}

/// `churn::churn_by_tier` as it was.
pub fn churn_by_tier(l: &NaiveLedger<'_>, m: Month) -> BTreeMap<String, TierChurn> {
    let mut out: BTreeMap<String, TierChurn> = l
        .book
        .tiers()
        .map(|t| (t.to_string(), TierChurn::default()))
        .collect();
    let start_t = l.month_end(m.prev());
    for (i, id) in l.ids().iter().enumerate() {
        let (a, b) = l.customer_movement(i, m);
        if a.is_zero() {
            continue;
        }
        let Some(tier) = l.book.tier_at(id, start_t) else {
            continue;
        };
        let e = out.entry(tier).or_default();
        e.base += 1;
        if b.is_zero() {
            e.churned += 1;
        }
    }
    let (from, to) = (m.start(), l.month_end(m));
    let mut trial = TierChurn::default();
    for (cid, ended) in l.book.trial_ends() {
        if from <= ended && ended <= to {
            trial.base += 1;
            if l.book.customer_mrr_at(cid, to).is_zero() {
                trial.churned += 1;
            }
        }
    }
    out.insert(TRIAL_TIER.to_string(), trial);
    out
}

/// `ltv::tier_totals` as it was.
pub fn tier_totals(l: &NaiveLedger<'_>, m: Month) -> BTreeMap<String, (Decimal, u64)> {
    let t = l.month_end(m);
    let mut out: BTreeMap<String, (Decimal, u64)> = BTreeMap::new();
    for (i, id) in l.ids().iter().enumerate() {
        let mrr = l.customer_mrr(i, m);
        let Some(tier) = l.book.tier_at(id, t) else {
            continue;
        };
        if mrr > Decimal::ZERO || tier == TRIAL_TIER {
            let e = out.entry(tier).or_default();
            e.0 += mrr;
            e.1 += 1;
        }
    }
    out
}

/// The composite endpoints' count of customers paying or in trial at t, as it was.
pub fn subscribed_customers(book: &Book, t: Micros) -> u64 {
    book.subscriber_ids()
        .filter(|id| book.customer_mrr_at(id, t) > Decimal::ZERO || book.is_trial_at(id, t))
        .count() as u64
}
