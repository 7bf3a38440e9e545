//! One typed configuration, resolved in order: flags, then `TALLY_*` environment
//! variables (clap reads both), then the optional TOML config file, then defaults.

use anyhow::{bail, Context, Result};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tally_core::input::CurrencyPolicy;
use tally_core::money::Currency;
use tally_core::pricing::PriceTable;
use tally_server::ServerConfig;

pub const DEFAULT_BIND: &str = "127.0.0.1:8084";
pub const DEFAULT_DATABASE: &str = "sqlite://tally.db";

/// Settings shared by every command; each is a flag, a `TALLY_*` variable and a config
/// file key of the same name.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GlobalArgs {
    /// Where data lives: `sqlite://PATH` (or a plain file path) or `postgres://...`.
    /// [default: sqlite://tally.db]
    #[arg(long, global = true, env = "TALLY_DATABASE_URL")]
    pub database_url: Option<String>,

    /// A TOML file with any of these settings (see docs/configuration.md).
    #[arg(long, global = true, env = "TALLY_CONFIG")]
    pub config: Option<PathBuf>,

    /// Reporting currency (ISO 4217). [default: USD]
    #[arg(long, global = true, env = "TALLY_CURRENCY")]
    pub currency: Option<String>,

    /// Credits per unit of the reporting currency. [default: 1000]
    #[arg(long, global = true, env = "TALLY_CREDITS_PER_UNIT")]
    pub credits_per_unit: Option<Decimal>,

    /// A LiteLLM `model_prices_and_context_window.json` file extending the built-in prices.
    #[arg(long, global = true, env = "TALLY_PRICE_FILE")]
    pub price_file: Option<PathBuf>,

    /// Use only the price file's prices, not the built-in table.
    #[arg(long, global = true, env = "TALLY_REPLACE_PRICES")]
    pub replace_prices: bool,
}

/// Settings of the HTTP server.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. [default: 127.0.0.1:8084]
    #[arg(long, env = "TALLY_BIND")]
    pub bind: Option<SocketAddr>,

    /// Largest request body in bytes. [default: 16777216]
    #[arg(long, env = "TALLY_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Most events per ingestion request. [default: 10000]
    #[arg(long, env = "TALLY_MAX_BATCH")]
    pub max_batch: Option<usize>,

    /// Seconds before a request is abandoned. [default: 30]
    #[arg(long, env = "TALLY_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,

    /// Origins allowed by CORS, comma-separated. [default: none, CORS off]
    #[arg(long, env = "TALLY_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,

    /// Sustained requests per second per API key; 0 turns rate limits off. [default: 100]
    #[arg(long, env = "TALLY_RATE_LIMIT_PER_SECOND")]
    pub rate_limit_per_second: Option<u32>,

    /// Requests one key may make at once above the sustained rate. [default: 200]
    #[arg(long, env = "TALLY_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,

    /// Most connections served at once. [default: 1024]
    #[arg(long, env = "TALLY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Seconds a connection may take to send a request's headers (also the idle
    /// keep-alive limit). [default: 10]
    #[arg(long, env = "TALLY_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,

    /// Most bytes of analytics responses kept in memory; 0 turns the response cache off.
    /// [default: 67108864]
    #[arg(long, env = "TALLY_RESPONSE_CACHE_BYTES")]
    pub response_cache_bytes: Option<u64>,
}

/// The config file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    pub currency: Option<String>,
    pub credits_per_unit: Option<Decimal>,
    pub price_file: Option<PathBuf>,
    pub replace_prices: Option<bool>,
    /// Units of the reporting currency per unit of another currency.
    pub exchange_rates: Option<HashMap<String, Decimal>>,
    pub bind: Option<SocketAddr>,
    pub max_body_bytes: Option<usize>,
    pub max_batch: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    pub cors_origins: Option<Vec<String>>,
    pub rate_limit_per_second: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub max_connections: Option<usize>,
    pub header_read_timeout_secs: Option<u64>,
    pub response_cache_bytes: Option<u64>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("config file {} is not valid", path.display()))
    }
}

/// Everything a command needs, resolved and validated before any work starts.
#[derive(Clone)]
pub struct Resolved {
    pub database_url: String,
    pub money: CurrencyPolicy,
    pub prices: PriceTable,
    pub server: ServerConfig,
    pub bind: SocketAddr,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A database URL may carry a password.
        f.debug_struct("Resolved")
            .field("database_url", &redact_url(&self.database_url))
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

/// The URL with any password replaced, for logs and messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub fn resolve(g: &GlobalArgs, s: &ServeArgs) -> Result<Resolved> {
    let file = FileConfig::load(g.config.as_deref())?;
    let database_url = g
        .database_url
        .clone()
        .or(file.database_url)
        .unwrap_or_else(|| DEFAULT_DATABASE.to_string());

    let code = g
        .currency
        .clone()
        .or(file.currency)
        .unwrap_or_else(|| "USD".into());
    let Some(reporting) = Currency::lookup(&code) else {
        bail!("currency `{code}` is not an ISO 4217 code tally knows")
    };
    let mut rates = HashMap::new();
    for (c, rate) in file.exchange_rates.unwrap_or_default() {
        let Some(cur) = Currency::lookup(&c) else {
            bail!("exchange_rates: `{c}` is not an ISO 4217 code tally knows")
        };
        if rate <= Decimal::ZERO {
            bail!("exchange_rates: the rate for {c} must be positive");
        }
        rates.insert(cur.code.to_string(), rate);
    }
    let money = CurrencyPolicy { reporting, rates };

    let credits_per_unit = g
        .credits_per_unit
        .or(file.credits_per_unit)
        .unwrap_or(Decimal::from(1000));
    if credits_per_unit <= Decimal::ZERO {
        bail!("credits_per_unit must be positive");
    }
    let mut prices = PriceTable::builtin(credits_per_unit);
    if let Some(path) = g.price_file.clone().or(file.price_file) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading price file {}", path.display()))?;
        let replace = g.replace_prices || file.replace_prices.unwrap_or(false);
        let n = prices
            .load_litellm(&text, replace)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        tracing::info!(models = n, file = %path.display(), replace, "loaded model prices");
    }

    let defaults = ServerConfig::default();
    let server = ServerConfig {
        max_body_bytes: s
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(defaults.max_body_bytes),
        max_batch: s.max_batch.or(file.max_batch).unwrap_or(defaults.max_batch),
        request_timeout: s
            .request_timeout_secs
            .or(file.request_timeout_secs)
            .map(Duration::from_secs)
            .unwrap_or(defaults.request_timeout),
        cors_origins: s
            .cors_origins
            .clone()
            .or(file.cors_origins)
            .unwrap_or_default(),
        rate_limit_per_second: s
            .rate_limit_per_second
            .or(file.rate_limit_per_second)
            .unwrap_or(defaults.rate_limit_per_second),
        rate_limit_burst: s
            .rate_limit_burst
            .or(file.rate_limit_burst)
            .unwrap_or(defaults.rate_limit_burst),
        max_connections: s
            .max_connections
            .or(file.max_connections)
            .unwrap_or(defaults.max_connections),
        header_read_timeout: s
            .header_read_timeout_secs
            .or(file.header_read_timeout_secs)
            .map(Duration::from_secs)
            .unwrap_or(defaults.header_read_timeout),
        response_cache_bytes: s
            .response_cache_bytes
            .or(file.response_cache_bytes)
            .unwrap_or(defaults.response_cache_bytes),
    };
    if server.max_batch == 0 || server.max_body_bytes == 0 {
        bail!("max_batch and max_body_bytes must be positive");
    }
    if server.max_connections == 0 || server.header_read_timeout.is_zero() {
        bail!("max_connections and header_read_timeout_secs must be positive");
    }
    if server.rate_limit_per_second > 0 && server.rate_limit_burst == 0 {
        bail!("rate_limit_burst must be positive when rate limits are on");
    }
    let bind = s
        .bind
        .or(file.bind)
        .unwrap_or_else(|| DEFAULT_BIND.parse().expect("default bind parses"));
    Ok(Resolved {
        database_url,
        money,
        prices,
        server,
        bind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("tally-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tally.toml");
        std::fs::write(&path, "database_url = \"sqlite://from-file.db\"\nmax_batch = 50\nrate_limit_per_second = 5\nrate_limit_burst = 9\nresponse_cache_bytes = 0\n[exchange_rates]\nEUR = \"1.08\"\n").unwrap();
        let g = GlobalArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let r = resolve(
            &g,
            &ServeArgs {
                max_batch: Some(7),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.database_url, "sqlite://from-file.db");
        assert_eq!(r.server.max_batch, 7);
        assert_eq!(
            (r.server.rate_limit_per_second, r.server.rate_limit_burst),
            (5, 9)
        );
        assert_eq!(r.server.max_connections, 1024);
        assert_eq!(r.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(r.server.response_cache_bytes, 0);
        assert_eq!(r.bind.to_string(), DEFAULT_BIND);
        assert_eq!(r.money.rates["EUR"].to_string(), "1.08");
        std::fs::write(&path, "databse_url = 1\n").unwrap();
        assert!(
            resolve(&g, &ServeArgs::default()).is_err(),
            "unknown keys are rejected"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://tally.db"), "sqlite://tally.db");
    }
}
