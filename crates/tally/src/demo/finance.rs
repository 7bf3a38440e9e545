//! Monthly operating costs and marketing spend. Infrastructure grows with the customers it
//! serves; marketing spend is what bought each channel's signups, so CPA and CAC come out
//! in a plausible range.

use super::billing::Billing;
use super::catalog::{ServiceKind, CHANNELS, SERVICES};
use super::random::{rng_for, Domain};
use super::Window;
use rand::Rng;
use tally_core::model::{CostCategory, CostRecord, MarketingSpend};
use tally_core::time::Month;

pub fn costs(
    seed: u64,
    billing: &Billing,
    window: &Window,
) -> (Vec<CostRecord>, Vec<MarketingSpend>) {
    let mut rng = rng_for(seed, Domain::Finance, 0);
    let mut costs = Vec::new();
    let mut spend = Vec::new();
    for i in 0..window.months {
        let month = window.first_month.add(i as i32);
        let active = active_customers(billing, month) as f64;
        let mut noise = || 1.0 + 0.1 * (rng.gen::<f64>() - 0.5);
        for s in SERVICES {
            // (fixed, per active customer) USD per month
            let (fixed, per_customer) = match s.kind {
                ServiceKind::LlmInference => (3_000.0, 13.0),
                ServiceKind::OpenWebui => (700.0, 3.0),
                ServiceKind::Storage => (300.0, 4.5),
                ServiceKind::Bandwidth => (200.0, 3.5),
                ServiceKind::Search => (500.0, 3.5),
            };
            costs.push(CostRecord {
                month,
                category: CostCategory::Infrastructure,
                service: s.name.to_string(),
                amount: cents((fixed + per_customer * active) * noise()),
            });
        }
        // Support tooling, payment fees, monitoring: not tied to one service.
        costs.push(CostRecord {
            month,
            category: CostCategory::Other,
            service: String::new(),
            amount: cents((6_000.0 + 9.0 * active) * noise()),
        });
        for (c, ch) in CHANNELS.iter().enumerate() {
            if ch.base_spend == 0 && ch.spend_per_signup == 0 || i < ch.from_month {
                continue;
            }
            let signups = signups_in(billing, month, c) as f64;
            let amount = (ch.base_spend as f64 + ch.spend_per_signup as f64 * signups) * noise();
            spend.push(MarketingSpend {
                month,
                channel: ch.name.to_string(),
                amount: amount.round() as i64,
            });
        }
    }
    (costs, spend)
}

fn cents(usd: f64) -> i64 {
    (usd * 100.0).round() as i64
}

/// Customers with a subscription active in the middle of the month.
fn active_customers(billing: &Billing, month: Month) -> usize {
    let mid = month.start() + (month.end() - month.start()) / 2;
    let mut seen: Vec<usize> = billing
        .timelines
        .iter()
        .filter(|t| t.start <= mid && t.end.is_none_or(|e| mid < e))
        .map(|t| t.customer)
        .collect();
    seen.dedup();
    seen.len()
}

fn signups_in(billing: &Billing, month: Month, channel: usize) -> usize {
    let name = CHANNELS[channel].name;
    billing
        .customers
        .iter()
        .filter(|c| Month::of(c.created_at) == month && c.channel.as_deref() == Some(name))
        .count()
}
