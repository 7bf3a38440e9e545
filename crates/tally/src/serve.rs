//! `tally serve` and `tally demo`.

use crate::cli::DemoArgs;
use crate::config::{redact_url, Resolved};
use anyhow::{Context, Result};
use std::sync::Arc;
use tally_server::{AppState, Clock};
use tally_store::{Role, Store};

/// Opens the configured store and applies its migrations.
pub async fn open_store(cfg: &Resolved) -> Result<Arc<dyn Store>> {
    let store = tally_store::open(&cfg.database_url)
        .await
        .with_context(|| format!("opening the store at {}", redact_url(&cfg.database_url)))?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// Serves until Ctrl-C or SIGTERM. `banner` is printed once the port is bound.
pub async fn serve(cfg: Resolved, store: Arc<dyn Store>, banner: Option<String>) -> Result<()> {
    // Before listening: the first requests then find what they would otherwise read.
    let started = std::time::Instant::now();
    store
        .preload()
        .await
        .context("preloading customer numbers")?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "customer numbers preloaded"
    );
    let state = AppState::new(
        store.clone(),
        cfg.server.clone(),
        cfg.prices.clone(),
        cfg.money.clone(),
        Clock::System,
    );
    // The server answers without them, only slower at first: a failure is reported and
    // start-up goes on.
    match tally_server::cache::warm(&state).await {
        Ok(w) => tracing::info!(
            book_ms = w.book_ms as u64,
            llm_tier_days = w.llm_tier_days,
            llm_tiers_ms = w.llm_tiers_ms as u64,
            metered_services = w.metered_services,
            metered_ms = w.metered_ms as u64,
            "caches warmed"
        ),
        Err(e) => tracing::warn!(error = %e, "warming the caches failed; requests will fill them"),
    }
    release_freed_memory();
    let listener = tokio::net::TcpListener::bind(cfg.bind)
        .await
        .with_context(|| format!("binding {}", cfg.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = store.backend(), "tally is listening");
    // Scripts and tests that bind port 0 read the real address from this line.
    println!("listening on http://{addr}");
    if let Some(b) = banner {
        println!("{}", b.replace("{addr}", &addr.to_string()));
    }
    tally_server::run(listener, state, shutdown_signal()).await?;
    // A read waits until SQLite's ingest log is folded into the database: after a clean
    // stop the database file holds every acknowledged event (a crash leaves them in the
    // log, for the next start to fold).
    if let Err(e) = store.data_version().await {
        tracing::warn!(error = %e, "the ingest log was not folded before stopping; the next start folds it");
    }
    tracing::info!("tally stopped");
    Ok(())
}

/// Hands the memory freed by the warm-up back to the allocator's free lists and the OS.
///
/// Warming frees millions of small blocks (decoded rows), which glibc keeps in its fast
/// bins unmerged; the next large `free` on that thread's arena merges them all first
/// (`malloc_consolidate`). Left alone, the first request after the start paid for it:
/// 18-49 ms for a 3-6 ms `llm/usage/summary` at L, 65 % of its samples in
/// `malloc_consolidate` and `unlink_chunk`; 10-12 ms after this (docs/performance.md).
/// `malloc_trim` merges every arena now (~50 ms at L), before the port opens.
#[allow(unsafe_code)]
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim only reorganises glibc's own free lists; it is thread-safe
        // and takes no pointers.
        unsafe {
            libc::malloc_trim(0);
        }
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "freed memory trimmed"
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Generates the demo dataset (unless the store already holds data), creates a key for
/// it, and serves.
pub async fn demo(cfg: Resolved, args: DemoArgs, no_serve: bool) -> Result<()> {
    let store = open_store(&cfg).await?;
    let counts = store.counts().await?;
    if counts.customers > 0 || counts.events > 0 {
        eprintln!(
            "{} already holds data ({} customers, {} events); serving it as it is. Use another --database-url for a fresh demo.",
            redact_url(&cfg.database_url),
            counts.customers,
            counts.events
        );
    } else {
        let opts = crate::demo::DemoOptions {
            seed: args.seed,
            end: args.end.unwrap_or_else(|| chrono::Utc::now().date_naive()),
            customers: args.customers,
            events: args.events,
            // LLM calls are priced as this installation prices ingested ones.
            prices: cfg.prices.clone(),
            ..Default::default()
        };
        eprintln!(
            "generating the demo dataset (seed {}, ending {}) into {}",
            opts.seed,
            opts.end,
            redact_url(&cfg.database_url)
        );
        let summary =
            crate::demo::generate(store.as_ref(), &opts, &indicatif::MultiProgress::new()).await?;
        let c = &summary.counts;
        eprintln!(
            "generated {} customers, {} subscriptions, {} invoices and {} events in {:.1} s",
            c.customers,
            c.subscriptions,
            c.invoices,
            c.events,
            summary.elapsed.as_secs_f64()
        );
    }
    // The secret of an older demo key cannot be shown again (only its hash is kept), so
    // each run makes a fresh one and retires the previous.
    let now = tally_core::time::to_micros(chrono::Utc::now());
    for k in store.list_api_keys().await? {
        if k.name == "demo" && k.revoked_at.is_none() {
            store.revoke_api_key(&k.id, now).await?;
        }
    }
    let (_, secret) = crate::keys::create(store.as_ref(), Role::Admin, "demo").await?;
    if no_serve {
        println!(
            "demo data is in {}; API key (admin): {secret}",
            redact_url(&cfg.database_url)
        );
        return Ok(());
    }
    let banner = format!(
        "\ntally demo is running.\n\n  URL:       http://{{addr}}/\n  API docs:  http://{{addr}}/docs\n  API key:   {secret}   (admin; shown once)\n\n  try:  curl -H 'Authorization: Bearer {secret}' http://{{addr}}/api/v1/analytics/revenue/mrr\n\nPress Ctrl-C to stop.\n"
    );
    serve(cfg, store, Some(banner)).await
}
