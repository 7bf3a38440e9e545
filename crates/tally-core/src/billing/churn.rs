//! Customer churn, churn by tier, revenue churn and retention (metrics.md "Customers,
//! churn, LTV, acquisition").

use super::ledger::Ledger;
use super::TRIAL_TIER;
use crate::time::Month;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// `num / den × 100`, or `None` when `den` is 0.
pub fn percent(num: Decimal, den: Decimal) -> Option<Decimal> {
    (!den.is_zero()).then(|| num / den * Decimal::ONE_HUNDRED)
}

/// Customers with a churn movement in `m` / paying customers at the end of m−1 × 100
/// (month-to-date for the current month).
pub fn customer_churn_rate(l: &Ledger<'_>, m: Month) -> Option<Decimal> {
    let churned = l.movements(m).churned_customers;
    percent(churned.into(), l.paying(m.prev()).into())
}

/// Churn counts of one tier: (churned in m, paying at the end of m−1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierChurn {
    pub churned: u64,
    pub base: u64,
}

impl TierChurn {
    pub fn rate(&self) -> Option<Decimal> {
        percent(self.churned.into(), self.base.into())
    }
}

/// Churn of `m` per tier, customers grouped by their tier at the end of m−1. Every plan
/// tier appears (base 0 when nobody was on it); `trial` holds the trials that ended in m
/// up to `as_of` (churned: the customer was not paying at the end of m).
pub fn churn_by_tier(l: &Ledger<'_>, m: Month) -> BTreeMap<String, TierChurn> {
    let mut out: BTreeMap<String, TierChurn> = l
        .book
        .tiers()
        .map(|t| (t.to_string(), TierChurn::default()))
        .collect();
    for (tier, c) in l.tier_churn(m) {
        out.insert(tier.to_string(), c);
    }
    out.insert(TRIAL_TIER.to_string(), l.trial_churn(m));
    out
}

/// Gross revenue churn of `m`: (churned + contraction MRR) / MRR at the end of m−1 × 100.
pub fn revenue_churn_rate(l: &Ledger<'_>, m: Month) -> Option<Decimal> {
    let mv = l.movements(m);
    percent(mv.churn + mv.contraction, l.total_mrr(m.prev()))
}

/// Net revenue retention of `m`: (start + expansion − contraction − churn) / start × 100.
pub fn net_revenue_retention(l: &Ledger<'_>, m: Month) -> Option<Decimal> {
    let mv = l.movements(m);
    let start = l.total_mrr(m.prev());
    percent(start + mv.expansion - mv.contraction - mv.churn, start)
}
