//! Per-caller rate limits: one token bucket (GCRA, the `governor` crate) per API key, so
//! one key's burst never slows another key; and one per client address for requests
//! that fail authentication, so guessing keys is slow.
//!
//! The buckets live in this process: with several processes each allows the configured
//! rate (documented in docs/security.md).

use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests per second and burst of one key; `per_second == 0` turns limiting off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// The buckets of one server.
pub struct RateLimiters {
    keys: Option<DefaultKeyedRateLimiter<String>>,
    /// Failed authentications per client address (None when the address is unknown).
    failures: Option<DefaultKeyedRateLimiter<Option<IpAddr>>>,
    clock: DefaultClock,
    checks: AtomicU64,
}

/// Failed authentications allowed per client address: a burst of this many, then this
/// many per minute. A client that knows its key never gets here.
const FAILURES_BURST: u32 = 20;
const FAILURES_PER_MINUTE: u32 = 60;

/// Forget idle buckets every this many checks, so keys and addresses seen once do not
/// accumulate.
const SWEEP_EVERY: u64 = 4096;

impl RateLimiters {
    pub fn new(limit: RateLimit) -> RateLimiters {
        let keys = NonZeroU32::new(limit.per_second).map(|rate| {
            let burst = NonZeroU32::new(limit.burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let failures = keys.as_ref().map(|_| {
            RateLimiter::keyed(
                Quota::per_minute(NonZeroU32::new(FAILURES_PER_MINUTE).expect("nonzero"))
                    .allow_burst(NonZeroU32::new(FAILURES_BURST).expect("nonzero")),
            )
        });
        RateLimiters {
            keys,
            failures,
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one request from `key_id`'s bucket; `RateLimited` when it is empty.
    pub fn check_key(&self, key_id: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.keys else {
            return Ok(());
        };
        self.sweep();
        limiter
            .check_key(&key_id.to_string())
            .map_err(|not_until| self.limited(not_until))
    }

    /// Records a failed authentication from `client`; `RateLimited` once that address has
    /// failed too often.
    pub fn check_failure(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(limiter) = &self.failures else {
            return Ok(());
        };
        self.sweep();
        limiter
            .check_key(&client)
            .map_err(|not_until| self.limited(not_until))
    }

    fn limited(&self, not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
        let wait = not_until.wait_time_from(self.clock.now());
        // Round up: a client that waits the advertised seconds finds a token.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError::RateLimited {
            retry_after_secs: secs.max(1),
        }
    }

    fn sweep(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            if let Some(l) = &self.keys {
                l.retain_recent();
                l.shrink_to_fit();
            }
            if let Some(l) = &self.failures {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }
}

impl std::fmt::Debug for RateLimiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiters")
            .field("on", &self.keys.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_429_and_others_are_untouched() {
        let l = RateLimiters::new(RateLimit {
            per_second: 1,
            burst: 3,
        });
        for _ in 0..3 {
            l.check_key("a").unwrap();
        }
        match l.check_key("a") {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected 429, got {other:?}"),
        }
        // Another key has its own full bucket.
        for _ in 0..3 {
            l.check_key("b").unwrap();
        }
    }

    #[test]
    fn zero_turns_limits_off() {
        let l = RateLimiters::new(RateLimit {
            per_second: 0,
            burst: 0,
        });
        for _ in 0..10_000 {
            l.check_key("a").unwrap();
            l.check_failure(None).unwrap();
        }
    }

    #[test]
    fn failed_authentications_are_limited_per_address() {
        let l = RateLimiters::new(RateLimit {
            per_second: 100,
            burst: 200,
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..FAILURES_BURST {
            l.check_failure(Some(a)).unwrap();
        }
        match l.check_failure(Some(a)) {
            // 60 per minute: the next token comes within a second.
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected 429, got {other:?}"),
        }
        l.check_failure(Some(b)).unwrap();
    }
}
