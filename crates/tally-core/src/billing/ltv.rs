//! ARPA, LTV, customer lifespan and CAC (metrics.md "Customers, churn, LTV, acquisition").

use super::churn::{churn_by_tier, customer_churn_rate};
use super::ledger::Ledger;
use super::TRIAL_TIER;
use crate::time::Month;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Complete months whose churn rates feed LTV.
pub const LTV_MONTHS: i32 = 6;
/// Complete months of spend and new customers behind CAC.
pub const CAC_MONTHS: i32 = 3;

/// MRR and paying customers per tier at the end of `m` (by each customer's tier there).
/// Trial customers are counted under `trial` with no MRR.
pub fn tier_totals(l: &Ledger<'_>, m: Month) -> BTreeMap<String, (Decimal, u64)> {
    l.tier_totals(m)
}

/// ARPA at the end of `m`: MRR / paying customers.
pub fn arpa(l: &Ledger<'_>, m: Month) -> Option<Decimal> {
    let paying = l.paying(m);
    (paying > 0).then(|| l.total_mrr(m) / Decimal::from(paying))
}

/// The complete months before the current one that LTV averages over, oldest first.
fn ltv_window(l: &Ledger<'_>) -> impl Iterator<Item = Month> {
    let current = l.current;
    (1..=LTV_MONTHS).rev().map(move |k| current.add(-k))
}

/// Mean of the defined rates, as a fraction; `None` when no rate is defined.
fn mean_fraction(rates: impl Iterator<Item = Option<Decimal>>) -> Option<Decimal> {
    let defined: Vec<Decimal> = rates.flatten().collect();
    (!defined.is_empty()).then(|| {
        defined.iter().sum::<Decimal>() / Decimal::from(defined.len()) / Decimal::ONE_HUNDRED
    })
}

/// c: mean monthly customer churn (fraction) of the last 6 complete months; months with
/// no paying customers at their start have no rate and are skipped.
pub fn mean_churn(l: &Ledger<'_>) -> Option<Decimal> {
    mean_fraction(ltv_window(l).map(|m| customer_churn_rate(l, m)))
}

/// `arpa / c`; `None` when either is undefined or c is 0.
pub fn ltv_of(arpa: Option<Decimal>, c: Option<Decimal>) -> Option<Decimal> {
    let c = c.filter(|c| !c.is_zero())?;
    Some(arpa? / c)
}

/// 1 / c months.
pub fn lifespan_months(c: Option<Decimal>) -> Option<Decimal> {
    c.filter(|c| !c.is_zero()).map(|c| Decimal::ONE / c)
}

/// Average LTV at `as_of`: ARPA now / c.
pub fn average_ltv(l: &Ledger<'_>) -> Option<Decimal> {
    ltv_of(arpa(l, l.current), mean_churn(l))
}

/// LTV per tier: the tier's ARPA at `as_of` / the tier's mean churn of the last 6
/// complete months. `trial` is 0 (trials pay nothing).
pub fn ltv_by_tier(l: &Ledger<'_>) -> BTreeMap<String, Option<Decimal>> {
    let now = tier_totals(l, l.current);
    let rates: Vec<BTreeMap<String, super::churn::TierChurn>> =
        ltv_window(l).map(|m| churn_by_tier(l, m)).collect();
    let mut out = BTreeMap::new();
    for tier in l.book.tiers() {
        let arpa = now
            .get(tier)
            .filter(|(_, n)| *n > 0)
            .map(|(mrr, n)| mrr / Decimal::from(*n));
        let c = mean_fraction(rates.iter().map(|r| r.get(tier).and_then(|tc| tc.rate())));
        out.insert(tier.to_string(), ltv_of(arpa, c));
    }
    out.insert(TRIAL_TIER.to_string(), Some(Decimal::ZERO));
    out
}

/// New customers (new movements) in the last 3 complete months.
pub fn cac_new_customers(l: &Ledger<'_>) -> u64 {
    (1..=CAC_MONTHS)
        .map(|k| l.movements(l.current.add(-k)).new_customers)
        .sum()
}

/// The months whose spend CAC divides, oldest first.
pub fn cac_months(current: Month) -> Vec<Month> {
    (1..=CAC_MONTHS).rev().map(|k| current.add(-k)).collect()
}

/// CAC = spend / new customers; `None` without new customers.
pub fn cac(spend: Decimal, new_customers: u64) -> Option<Decimal> {
    (new_customers > 0).then(|| spend / Decimal::from(new_customers))
}

/// LTV / CAC; `None` when either is undefined or CAC is 0.
pub fn ltv_cac_ratio(ltv: Option<Decimal>, cac: Option<Decimal>) -> Option<Decimal> {
    let cac = cac.filter(|c| !c.is_zero())?;
    Some(ltv? / cac)
}
