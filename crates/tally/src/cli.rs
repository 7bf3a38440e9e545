//! Command-line interface: flags are defined once here (clap derive) and resolved into a
//! [`crate::config::Resolved`] before any work starts.

use crate::config::{self, GlobalArgs, ServeArgs};
use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "tally",
    version,
    about = "Usage metering and SaaS revenue analytics in one binary."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (and create a first admin key if the store has none).
    Serve {
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Generate the demo dataset into the store (unless it already holds data), then serve it.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        #[command(flatten)]
        demo: DemoArgs,
        /// Generate only; do not start the server.
        #[arg(long)]
        no_serve: bool,
    },
    /// Import records from a CSV or NDJSON file.
    Import {
        /// What the file holds.
        #[arg(value_enum)]
        kind: crate::import::Kind,
        /// The file; `.csv` is read as CSV, anything else as NDJSON unless --format says.
        file: PathBuf,
        /// Override the format guessed from the file name.
        #[arg(long, value_enum)]
        format: Option<crate::import::Format>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Seed of the generator: the same seed and end date give the same data.
    #[arg(long, env = "TALLY_DEMO_SEED", default_value_t = 42)]
    pub seed: u64,
    /// The dataset's last day (YYYY-MM-DD). [default: today, UTC]
    #[arg(long, env = "TALLY_DEMO_END")]
    pub end: Option<chrono::NaiveDate>,
    /// Number of customers.
    #[arg(long, env = "TALLY_DEMO_CUSTOMERS", default_value_t = 2400)]
    pub customers: usize,
    /// Number of usage events over the last 90 days.
    #[arg(long, env = "TALLY_DEMO_EVENTS", default_value_t = 1_200_000)]
    pub events: usize,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once and never stored.
    Create {
        /// admin, analyst or ingest.
        #[arg(long)]
        role: String,
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TALLY_LOG")
                .unwrap_or_else(|_| "tally=info,tally_server=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let no_serve = ServeArgs::default();
    let serve_args = match &cli.command {
        Command::Serve { serve } | Command::Demo { serve, .. } => serve,
        _ => &no_serve,
    };
    let cfg = config::resolve(&cli.global, serve_args)?;
    match cli.command {
        Command::Serve { .. } => {
            let store = crate::serve::open_store(&cfg).await?;
            crate::keys::ensure_first_key(store.as_ref()).await?;
            crate::serve::serve(cfg, store, None).await?;
        }
        Command::Demo { demo, no_serve, .. } => crate::serve::demo(cfg, demo, no_serve).await?,
        Command::Import { kind, file, format } => {
            let store = crate::serve::open_store(&cfg).await?;
            return crate::import::run(store.as_ref(), &cfg, kind, &file, format).await;
        }
        Command::Migrate => {
            crate::serve::open_store(&cfg).await?;
            println!(
                "migrations applied to {}",
                config::redact_url(&cfg.database_url)
            );
        }
        Command::Keys { command } => {
            let store = crate::serve::open_store(&cfg).await?;
            crate::keys::run(store.as_ref(), command).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
