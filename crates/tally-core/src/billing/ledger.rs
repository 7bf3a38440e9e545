//! Month-end MRR over a run of months, and the MRR movements between consecutive month
//! ends (metrics.md "MRR movements of month M").

use super::churn::TierChurn;
use super::history::{History, MonthEnd};
use super::Book;
use crate::time::{Micros, Month};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Where the month-end state of `m` is read: its last instant, or `as_of` for the month
/// that contains `as_of` (month-to-date).
pub fn month_end(m: Month, as_of: Micros) -> Micros {
    if m == Month::of(as_of) {
        as_of
    } else {
        m.last_instant()
    }
}

/// Months before the current one that [`Ledger::first`] reaches at least: enough for 24
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

    /// Adds one customer's movement between a = MRR at the end of the month before and
    /// b = at this month's end; `paid_before`: paying at some month end before a's.
    pub(crate) fn add(&mut self, a: Decimal, b: Decimal, paid_before: bool) {
        let zero = Decimal::ZERO;
        if a.is_zero() && b > zero {
            if paid_before {
                self.reactivation += b;
                self.reactivated_customers += 1;
            } else {
                self.new += b;
                self.new_customers += 1;
            }
        } else if a > zero && b.is_zero() {
            self.churn += a;
            self.churned_customers += 1;
        } else if a > zero && a < b {
            self.expansion += b - a;
            self.expanded_customers += 1;
        } else if b > zero && b < a {
            self.contraction += a - b;
            self.contracted_customers += 1;
        }
    }
}

/// The month-end figures of every month up to the month of `as_of`: the complete months
/// come from the book's [`History`] (built once per book, the same for every `as_of`),
/// the current month is read at `as_of` when the ledger is made (one pass over the
/// subscribers' timelines).
#[derive(Debug)]
pub struct Ledger<'a> {
    pub book: &'a Book,
    pub as_of: Micros,
    pub current: Month,
    history: &'a History,
    /// The current month, month-to-date.
    now: MonthEnd,
}

impl<'a> Ledger<'a> {
    pub fn new(book: &'a Book, as_of: Micros) -> Ledger<'a> {
        let history = book.history();
        Ledger {
            book,
            as_of,
            current: Month::of(as_of),
            history,
            now: history.month_to_date(as_of),
        }
    }

    /// The first month worth showing: the month of the first subscription (or 25 months
    /// back, whichever is earlier); every earlier month has no subscriptions.
    pub fn first(&self) -> Month {
        let mut first = self.current.add(-MIN_HISTORY);
        if let Some(s) = self.book.first_start().filter(|&s| s <= self.as_of) {
            first = first.min(Month::of(s));
        }
        first
    }

    fn month(&self, m: Month) -> &MonthEnd {
        assert!(
            m <= self.current,
            "month {m} is after the current month {}",
            self.current
        );
        if m == self.current {
            &self.now
        } else {
            self.history.month(m)
        }
    }

    pub fn month_end(&self, m: Month) -> Micros {
        month_end(m, self.as_of)
    }

    /// Total MRR at the end of `m`.
    pub fn total_mrr(&self, m: Month) -> Decimal {
        self.month(m).total
    }

    /// Customers with MRR > 0 at the end of `m`.
    pub fn paying(&self, m: Month) -> u64 {
        self.month(m).paying
    }

    /// Customers paying or in trial at the end of `m`.
    pub fn subscribed(&self, m: Month) -> u64 {
        self.month(m).subscribed
    }

    pub fn movements(&self, m: Month) -> Movements {
        self.month(m).movements.clone()
    }

    /// MRR and customers per tier at the end of `m` (by each customer's tier there), of
    /// customers paying or in trial (`trial`, with no MRR).
    pub fn tier_totals(&self, m: Month) -> BTreeMap<String, (Decimal, u64)> {
        self.history.tier_totals(self.month(m))
    }

    /// Churn of `m` per tier of the customers paying at the end of m−1 (by their tier
    /// there); only tiers with such customers.
    pub fn tier_churn(&self, m: Month) -> impl Iterator<Item = (&str, TierChurn)> {
        self.history.tier_churn(self.month(m))
    }

    /// Trials that ended in `m` up to its month end, and those whose customer was not
    /// paying at the month end.
    pub fn trial_churn(&self, m: Month) -> TierChurn {
        self.month(m).trial_churn
    }
}
