//! MRR growth over one, three and twelve months, and the growth trend (metrics.md
//! "Growth").

use super::churn::percent;
use super::ledger::Ledger;
use crate::time::Month;
use rust_decimal::Decimal;

/// % change from `old` to `new`; `None` when `old` is 0.
pub fn pct_change(new: Decimal, old: Decimal) -> Option<Decimal> {
    percent(new - old, old)
}

/// MRR growth of `m` against the end of `m − back` months.
pub fn growth(l: &Ledger<'_>, m: Month, back: i32) -> Option<Decimal> {
    pct_change(l.total_mrr(m), l.total_mrr(m.add(-back)))
}

/// Trend threshold in percentage points.
const TREND_BAND: Decimal = Decimal::from_parts(5, 0, 0, false, 1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    Accelerating,
    Decelerating,
    Steady,
    InsufficientData,
}

impl Trend {
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::Accelerating => "accelerating",
            Trend::Decelerating => "decelerating",
            Trend::Steady => "steady",
            Trend::InsufficientData => "insufficient_data",
        }
    }
}

fn mean(v: &[Option<Decimal>]) -> Option<Decimal> {
    let d: Vec<Decimal> = v.iter().flatten().copied().collect();
    (!d.is_empty()).then(|| d.iter().sum::<Decimal>() / Decimal::from(d.len()))
}

/// g1 = mean MoM growth of the current month and the two before, g0 = of the three
/// before those; null growths skipped.
pub fn growth_trend(l: &Ledger<'_>) -> Trend {
    let mom: Vec<Option<Decimal>> = (0..6).map(|k| growth(l, l.current.add(-k), 1)).collect();
    match (mean(&mom[0..3]), mean(&mom[3..6])) {
        (Some(g1), Some(g0)) if g1 - g0 > TREND_BAND => Trend::Accelerating,
        (Some(g1), Some(g0)) if g1 - g0 < -TREND_BAND => Trend::Decelerating,
        (Some(_), Some(_)) => Trend::Steady,
        _ => Trend::InsufficientData,
    }
}
