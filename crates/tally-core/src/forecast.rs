//! MRR forecasts (metrics.md "Forecast"): ordinary least squares on the month index with
//! its prediction interval, and Holt's linear trend as an alternative, each with the mean
//! absolute percentage error of its one-step-ahead forecasts over the fitted months.
//!
//! Statistics run in f64: these are estimates, not sums of money, and the interval needs
//! square roots and a Student-t quantile.

/// Fewest observations a forecast is fitted on.
pub const MIN_POINTS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    LinearTrend,
    Holt,
}

impl Model {
    pub const ACCEPTED: &'static str = "linear_trend, holt";

    pub fn parse(s: &str) -> Option<Model> {
        match s {
            "linear_trend" | "linear" => Some(Model::LinearTrend),
            "holt" => Some(Model::Holt),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Model::LinearTrend => "linear_trend",
            Model::Holt => "holt",
        }
    }
}

/// One forecast value `steps` months after the last observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub steps: usize,
    pub value: f64,
    /// Clamped at 0.
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub points: Vec<Point>,
    /// Trend per month: the OLS slope, or Holt's final trend.
    pub slope: f64,
    /// Mean absolute percentage error of one-step-ahead forecasts, in percent; `None`
    /// when no such forecast had a non-zero actual.
    pub mape: Option<f64>,
}

/// Forecasts `steps` months after the last of `y` (months 1..n) at `confidence` percent
/// (0 < confidence < 100). `None` with fewer than [`MIN_POINTS`] observations.
pub fn forecast(y: &[f64], model: Model, steps: &[usize], confidence: f64) -> Option<Forecast> {
    if y.len() < MIN_POINTS {
        return None;
    }
    let alpha = 1.0 - confidence / 100.0;
    let t = t_quantile(1.0 - alpha / 2.0, (y.len() - 2) as f64);
    Some(match model {
        Model::LinearTrend => linear(y, steps, t),
        Model::Holt => holt(y, steps, t),
    })
}

/// (intercept, slope, x̄, Sxx) of OLS of y on x = 1..n.
fn ols(y: &[f64]) -> (f64, f64, f64, f64) {
    let n = y.len() as f64;
    let xbar = (n + 1.0) / 2.0;
    let ybar = y.iter().sum::<f64>() / n;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        let dx = (i + 1) as f64 - xbar;
        sxx += dx * dx;
        sxy += dx * (v - ybar);
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (ybar - slope * xbar, slope, xbar, sxx)
}

fn linear(y: &[f64], steps: &[usize], t: f64) -> Forecast {
    let n = y.len();
    let (a, b, xbar, sxx) = ols(y);
    let sse: f64 = y
        .iter()
        .enumerate()
        .map(|(i, v)| (v - (a + b * (i + 1) as f64)).powi(2))
        .sum();
    let s = (sse / (n - 2) as f64).sqrt();
    let points = steps
        .iter()
        .map(|&h| {
            let x0 = (n + h) as f64;
            let value = a + b * x0;
            let half = t * s * (1.0 + 1.0 / n as f64 + (x0 - xbar).powi(2) / sxx).sqrt();
            Point {
                steps: h,
                value,
                lower: (value - half).max(0.0),
                upper: value + half,
            }
        })
        .collect();
    // One-step-ahead backtest: fit on the first k months, predict month k + 1.
    let pairs = (2..n).map(|k| {
        let (a, b, _, _) = ols(&y[..k]);
        (a + b * (k + 1) as f64, y[k])
    });
    Forecast {
        points,
        slope: b,
        mape: mape(pairs),
    }
}

fn mape(pairs: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let errs: Vec<f64> = pairs
        .filter(|(_, actual)| *actual != 0.0)
        .map(|(f, a)| ((a - f) / a).abs() * 100.0)
        .collect();
    (!errs.is_empty()).then(|| errs.iter().sum::<f64>() / errs.len() as f64)
}

/// Holt's smoothing run: (level, trend, one-step-ahead (forecast, actual) pairs). The
/// start (level y₀, trend y₁ − y₀) fits y₁ by construction, so pairs begin at y₂.
fn holt_run(y: &[f64], alpha: f64, beta: f64) -> (f64, f64, Vec<(f64, f64)>) {
    let (mut level, mut trend) = (y[0], y[1] - y[0]);
    let mut pairs = Vec::new();
    for (i, &v) in y.iter().enumerate().skip(1) {
        if i >= 2 {
            pairs.push((level + trend, v));
        }
        let new_level = alpha * v + (1.0 - alpha) * (level + trend);
        trend = beta * (new_level - level) + (1.0 - beta) * trend;
        level = new_level;
    }
    (level, trend, pairs)
}

/// Holt's linear trend with α, β picked on a 0.1 grid to minimise the squared
/// one-step-ahead errors. The interval is an approximation: t · RMSE · √h.
fn holt(y: &[f64], steps: &[usize], t: f64) -> Forecast {
    let grid: Vec<f64> = (1..=9).map(|k| k as f64 / 10.0).collect();
    let mut best = (f64::INFINITY, 0.5, 0.5);
    for &a in &grid {
        for &b in &grid {
            let (_, _, pairs) = holt_run(y, a, b);
            let sse: f64 = pairs.iter().map(|(f, v)| (v - f).powi(2)).sum();
            if sse < best.0 {
                best = (sse, a, b);
            }
        }
    }
    let (_, a, b) = best;
    let (level, trend, pairs) = holt_run(y, a, b);
    let rmse = if pairs.is_empty() {
        0.0
    } else {
        (pairs.iter().map(|(f, v)| (v - f).powi(2)).sum::<f64>() / pairs.len() as f64).sqrt()
    };
    let points = steps
        .iter()
        .map(|&h| {
            let value = level + trend * h as f64;
            let half = t * rmse * (h as f64).sqrt();
            Point {
                steps: h,
                value,
                lower: (value - half).max(0.0),
                upper: value + half,
            }
        })
        .collect();
    Forecast {
        points,
        slope: trend,
        mape: mape(pairs.into_iter()),
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// Regularised incomplete beta I_x(a, b).
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_cf(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * beta_cf(b, a, 1.0 - x) / b
    }
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The `p` quantile (0.5 ≤ p < 1) of Student's t with `df` degrees of freedom, by
/// bisection on the CDF.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.0);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
        if hi > 1e12 {
            return hi;
        }
    }
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn t_quantiles_match_tables() {
        // Textbook t tables, two-sided 95 % and 80 %.
        assert!(close(t_quantile(0.975, 1.0), 12.706, 0.001));
        assert!(close(t_quantile(0.975, 4.0), 2.776, 0.001));
        assert!(close(t_quantile(0.975, 30.0), 2.042, 0.001));
        assert!(close(t_quantile(0.9, 4.0), 1.533, 0.001));
        assert!(close(t_quantile(0.9, 10.0), 1.372, 0.001));
        // Large df tends to the normal 1.960.
        assert!(close(t_quantile(0.975, 1e6), 1.960, 0.001));
    }

    #[test]
    fn ols_check_of_metrics_md() {
        // x̄ = 3.5, Sxx = 17.5, ȳ = 127, Sxy = 189 → slope 10.8, intercept 89.2;
        // ŷ(7) = 164.8. Residuals 0, 1.2, −2.6, 2.6, −2.2, 1 → SSE 20.8, s² = 5.2;
        // √(1 + 1/6 + 3.5²/17.5) = √1.8667; t(0.975, 4) = 2.7764 → half width 8.65.
        let y = [100.0, 112.0, 119.0, 135.0, 141.0, 155.0];
        let f = forecast(&y, Model::LinearTrend, &[1], 95.0).unwrap();
        let p = f.points[0];
        assert!(close(p.value, 164.80, 0.005), "{p:?}");
        assert!(close(p.lower, 156.15, 0.005), "{p:?}");
        assert!(close(p.upper, 173.45, 0.005), "{p:?}");
        assert!(close(f.slope, 10.8, 1e-9));
        // 80 %: t(0.9, 4) = 1.5332 → half width 1.5332 × 2.2804 × 1.3663 = 4.777.
        let p80 = forecast(&y, Model::LinearTrend, &[1], 80.0).unwrap().points[0];
        assert!(close(p80.upper - p80.value, 4.777, 0.002), "{p80:?}");
    }

    #[test]
    fn too_few_points_and_clamped_lower_bound() {
        assert!(forecast(&[1.0, 2.0], Model::LinearTrend, &[1], 95.0).is_none());
        // Falling line 30, 20, 10 with noise-free fit: s = 0, value at step 3 is −20 →
        // lower and upper both the line, lower clamped at 0.
        let f = forecast(&[30.0, 20.0, 10.0], Model::LinearTrend, &[3], 95.0).unwrap();
        assert!(close(f.points[0].value, -20.0, 1e-9));
        assert_eq!(f.points[0].lower, 0.0);
    }

    #[test]
    fn perfect_line_has_zero_backtest_error() {
        // y = 10 + 5x: every one-step OLS forecast from ≥ 2 points is exact.
        let y: Vec<f64> = (1..=8).map(|x| 10.0 + 5.0 * x as f64).collect();
        let f = forecast(&y, Model::LinearTrend, &[1, 2], 95.0).unwrap();
        assert!(close(f.mape.unwrap(), 0.0, 1e-9));
        assert!(close(f.points[1].value, 10.0 + 5.0 * 10.0, 1e-9));
        let h = forecast(&y, Model::Holt, &[1], 95.0).unwrap();
        // Holt initialised with trend y₁ − y₀ = 5 tracks a straight line exactly.
        assert!(close(h.points[0].value, 55.0, 1e-9), "{h:?}");
        assert!(close(h.mape.unwrap(), 0.0, 1e-9));
    }
}
