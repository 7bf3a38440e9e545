//! What every handler shares: the store, the resolved configuration, prices, clock and
//! caches.

use crate::cache::Caches;
use crate::limits::{RateLimit, RateLimiters};
use std::sync::Arc;
use std::time::Duration;
use tally_core::input::CurrencyPolicy;
use tally_core::pricing::PriceTable;
use tally_core::time::Micros;
use tally_store::Store;

/// Server settings, resolved from flags, environment and config file by the CLI.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most events in one batch (413 beyond).
    pub max_batch: usize,
    /// A request taking longer is answered 503.
    pub request_timeout: Duration,
    /// Origins allowed by CORS; empty means CORS is off.
    pub cors_origins: Vec<String>,
    /// Sustained requests per second allowed to one API key; 0 turns rate limits off.
    pub rate_limit_per_second: u32,
    /// Requests one key may make at once above the sustained rate.
    pub rate_limit_burst: u32,
    /// Most connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// A connection that has not sent a whole request head within this time is closed
    /// (this also closes idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// Most bytes the analytics response cache holds (keys, headers and bodies); 0 turns
    /// it off.
    pub response_cache_bytes: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 16 * 1024 * 1024,
            max_batch: tally_core::event::MAX_BATCH,
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            response_cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Where "now" comes from: the system clock, or a fixed instant in tests.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(Micros),
}

impl Clock {
    pub fn now(&self) -> Micros {
        match self {
            Clock::System => tally_core::time::to_micros(chrono::Utc::now()),
            Clock::Fixed(t) => *t,
        }
    }
}

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    pub config: ServerConfig,
    pub prices: PriceTable,
    pub money: CurrencyPolicy,
    pub clock: Clock,
    /// Per-key and per-address request buckets, built from `config`.
    pub limits: RateLimiters,
    /// Analytics responses and the subscription book, keyed by the store's data version
    /// (so they hold nothing another process could have made stale).
    pub cache: Caches,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        config: ServerConfig,
        prices: PriceTable,
        money: CurrencyPolicy,
        clock: Clock,
    ) -> AppState {
        let limits = RateLimiters::new(RateLimit {
            per_second: config.rate_limit_per_second,
            burst: config.rate_limit_burst,
        });
        let cache = Caches::new(config.response_cache_bytes);
        AppState(Arc::new(Inner {
            limits,
            cache,
            store,
            config,
            prices,
            money,
            clock,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
