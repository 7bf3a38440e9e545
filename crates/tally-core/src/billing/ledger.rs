//! Month-end MRR per customer over a run of months, and the MRR movements between
//! consecutive month ends (metrics.md "MRR movements of month M").

use super::Book;
use crate::time::{Micros, Month};
use rust_decimal::Decimal;

/// Where the month-end state of `m` is read: its last instant, or `as_of` for the month
/// that contains `as_of` (month-to-date).
pub fn month_end(m: Month, as_of: Micros) -> Micros {
    if m == Month::of(as_of) {
        as_of
    } else {
        m.last_instant()
    }
}

/// Months of history the ledger keeps before the current month at least: enough for 24
/// months of movements plus the month before them, and 24 complete months of forecast.
const MIN_HISTORY: i32 = 25;

/// The movements of one month, exact, with counts of customers per movement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Movements {
    pub new: Decimal,
    pub reactivation: Decimal,
    pub expansion: Decimal,
    pub contraction: Decimal,
    pub churn: Decimal,
    pub new_customers: u64,
    pub reactivated_customers: u64,
    pub expanded_customers: u64,
    pub contracted_customers: u64,
    pub churned_customers: u64,
}

impl Movements {
    /// new + reactivation + expansion − contraction − churn.
    pub fn net(&self) -> Decimal {
        self.new + self.reactivation + self.expansion - self.contraction - self.churn
    }
}

/// Month-end MRR of every subscriber for every month from the first subscription (or 25
/// months back, whichever is earlier) through the current month.
#[derive(Debug)]
pub struct Ledger<'a> {
    pub book: &'a Book,
    pub as_of: Micros,
    pub current: Month,
    first: Month,
    ids: Vec<&'a str>,
    /// `[customer][month − first]`.
    mrr: Vec<Vec<Decimal>>,
}

impl<'a> Ledger<'a> {
    pub fn new(book: &'a Book, as_of: Micros) -> Ledger<'a> {
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
        Ledger {
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

    /// Subscriber ids, in id order, matching the index of [`Ledger::customer_mrr`].
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

    /// Indexes of subscribers with a churn movement in `m`.
    pub fn churned_in(&self, m: Month) -> impl Iterator<Item = usize> + '_ {
        (0..self.ids.len()).filter(move |&i| {
            let (a, b) = self.customer_movement(i, m);
            a > Decimal::ZERO && b.is_zero()
        })
    }
}
