//! Seeded randomness and the few distributions the generator draws from.
//!
//! Every part of the dataset draws from its own ChaCha stream, keyed by (seed, domain,
//! index): a customer's history depends only on the seed and the customer's number, so a
//! change in one phase cannot shift the numbers of another.

use chrono::Months;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tally_core::time::{from_micros, to_micros, Micros};

/// The independent streams of the generator.
#[derive(Debug, Clone, Copy)]
pub enum Domain {
    Signups = 1,
    Customer = 2,
    Profile = 3,
    Incidents = 4,
    EventDay = 5,
    Finance = 6,
    DayFactor = 7,
    Teams = 8,
}

pub fn rng_for(seed: u64, domain: Domain, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(domain as u64).to_le_bytes());
    key[16..24].copy_from_slice(&index.to_le_bytes());
    key[24..].copy_from_slice(b"tallydmo");
    ChaCha8Rng::from_seed(key)
}

/// A standard normal draw (Box–Muller), enough for latencies and sizes.
pub fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Log-normal with the given median: most values near it, a long right tail.
pub fn lognormal(rng: &mut impl Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// Index drawn with probability proportional to `weights[i]`, from running totals.
pub fn pick_cumulative(rng: &mut impl Rng, cumulative: &[f64]) -> usize {
    let total = *cumulative.last().expect("non-empty weights");
    let x = rng.gen::<f64>() * total;
    cumulative
        .partition_point(|&c| c <= x)
        .min(cumulative.len() - 1)
}

pub fn cumulative(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut sum = 0.0;
    weights
        .into_iter()
        .map(|w| {
            sum += w;
            sum
        })
        .collect()
}

pub fn pick_weighted(rng: &mut impl Rng, weights: &[f64]) -> usize {
    pick_cumulative(rng, &cumulative(weights.iter().copied()))
}

/// Splits `total` into whole parts proportional to `weights` that add up exactly to it
/// (largest remainder), so counts asked for are counts delivered.
pub fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 || weights.is_empty() {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| w / sum * total as f64).collect();
    let mut parts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let given: usize = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().take(total.saturating_sub(given)) {
        parts[i] += 1;
    }
    parts
}

/// The same time of day `n` calendar months later (clamped to the month's last day), as
/// billing periods run.
pub fn add_months(t: Micros, n: u32) -> Micros {
    let dt = from_micros(t)
        .checked_add_months(Months::new(n))
        .expect("demo dates are in range");
    to_micros(dt)
}

/// A uniform instant in `[from, to)`.
pub fn between(rng: &mut impl Rng, from: Micros, to: Micros) -> Micros {
    if to <= from {
        from
    } else {
        rng.gen_range(from..to)
    }
}
