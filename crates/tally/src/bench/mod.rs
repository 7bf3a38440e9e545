//! `tally-bench`: the performance benchmark of docs/benchmark.md.
//!
//! One run, on one fresh store: the demo generator writes the entities (and the health
//! checks and gauges) at the chosen scale; the usage events go over HTTP to a `tally
//! serve` child process in batches of 1,000 from N clients (JSON, then NDJSON); then each
//! of the 21 analytics endpoints is timed cold and warm at a fixed `as_of`; the LLM
//! figures are checked against totals taken from the generated events; the server's peak
//! RSS is read from /proc; and, side by side, the database's own insert rate for the same
//! rows and DuckDB over an export of the same events.

mod entities;
pub mod exact;
pub mod ingest;
pub mod latency;
pub mod raw;
pub mod report;
pub mod server;
pub mod wire;

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use indicatif::{MultiProgress, ProgressDrawTarget};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tally_core::pricing::PriceTable;
use tally_core::time::{day_start, MICROS_PER_DAY};
use tally_store::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Scale {
    S,
    M,
    L,
}

impl Scale {
    /// (customers, usage events over 90 days)
    pub fn size(self) -> (usize, usize) {
        match self {
            Scale::S => (1_000, 100_000),
            Scale::M => (10_000, 2_000_000),
            Scale::L => (100_000, 20_000_000),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scale::S => "S",
            Scale::M => "M",
            Scale::L => "L",
        }
    }
}

/// The dataset's last day and the `as_of` of every query: fixed, so runs compare.
pub const END: &str = "2025-11-27";

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tally-bench",
    about = "Benchmark tally on a fresh store: HTTP ingestion, the 21 endpoints cold and warm, peak memory, the raw store and DuckDB side by side."
)]
pub struct Args {
    /// S (1k customers, 100k events), M (10k, 2M) or L (100k, 20M).
    #[arg(long, value_enum, default_value = "s", ignore_case = true)]
    pub scale: Scale,
    /// A fresh store: a new SQLite file or an empty PostgreSQL database. A store that
    /// holds data is refused.
    #[arg(long)]
    pub database_url: String,
    /// Concurrent ingestion clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// The JSON report; the markdown table goes next to it (same name, .md).
    /// [default: bench/results/<scale>-<backend>.json]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The tally binary to serve with. [default: `tally` next to this binary]
    #[arg(long)]
    pub tally_bin: Option<PathBuf>,
    /// Cold rounds: the first right after the server starts, each later one after a write.
    #[arg(long, default_value_t = 10)]
    pub cold_rounds: usize,
    /// Warm requests per endpoint.
    #[arg(long, default_value_t = 50)]
    pub warm: usize,
    /// Seconds after which no new cold round starts (at least three run).
    #[arg(long, default_value_t = 120)]
    pub cold_budget_secs: u64,
    /// Seconds of warm requests per endpoint after which sampling stops (at least five).
    #[arg(long, default_value_t = 20)]
    pub warm_budget_secs: u64,
    /// At most this many rows for the raw-store insert comparison.
    #[arg(long, default_value_t = 20_000_000)]
    pub raw_limit: usize,
    /// The DuckDB comparison script (run with python3); `none` skips it.
    #[arg(long, default_value = "bench/duckdb_compare.py")]
    pub duckdb_script: String,
    /// Scratch space for the request spool and the CSV export. [default: a temp dir]
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// A saved entity store (SQLite only), to repeat runs without generating the entities
    /// each time (L: about three minutes of a run). When FILE does not exist, the run
    /// generates the entities and saves a compacted copy of the store there
    /// (`VACUUM INTO`) before it goes on; when it exists, the run starts from a copy of
    /// it. A compacted store is laid out unlike a freshly generated one, so runs from
    /// the same FILE compare with each other, not with runs without it.
    #[arg(long, value_name = "FILE")]
    pub entities: Option<PathBuf>,
}

/// The URL the dataset is written through. Writing it is setup, not a measurement: on
/// PostgreSQL each of L's 1.6 M entity writes is a transaction of its own, and waiting for
/// every commit's WAL flush made that phase take 50–65 minutes. This connection commits
/// without waiting (`synchronous_commit = off`: a crash could lose the last moments of
/// setup, never corrupt it); the server under test connects with `url` unchanged.
fn setup_url(url: &str) -> String {
    if !url.starts_with("postgres") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20synchronous_commit%3Doff")
}

/// Nearest-rank percentile (sorts `v`); 0 for no samples.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn say(msg: impl AsRef<str>) {
    eprintln!(
        "[{}] {}",
        chrono::Utc::now().format("%H:%M:%S"),
        msg.as_ref()
    );
}

pub async fn run(args: Args) -> Result<report::Report> {
    let started = Instant::now();
    let build = report::build_info();
    let machine = report::machine();
    let (customers, events) = args.scale.size();
    let end = NaiveDate::parse_from_str(END, "%Y-%m-%d")?;
    let opts = crate::demo::DemoOptions {
        seed: 42,
        end,
        customers,
        events,
        prices: PriceTable::builtin(1000.into()),
        ..Default::default()
    }
    // 1.5 subscriptions and 12 invoices per customer, the proportions of the scales.
    .established();
    let tally_bin = match &args.tally_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of the current binary")?
            .join("tally"),
    };
    anyhow::ensure!(
        tally_bin.exists(),
        "{} does not exist; build it with `cargo build --release`",
        tally_bin.display()
    );
    let work = match &args.work_dir {
        Some(p) => p.clone(),
        None => std::env::temp_dir().join(format!("tally-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work)?;
    // A private copy: a rebuild of target/release during the run must not change the
    // server between its two starts.
    let built: chrono::DateTime<chrono::Utc> = std::fs::metadata(&tally_bin)?.modified()?.into();
    let build = format!(
        "{build}; server binary built {}",
        built.format("%Y-%m-%d %H:%M UTC")
    );
    let server_bin = work.join("tally");
    std::fs::copy(&tally_bin, &server_bin)
        .with_context(|| format!("copying {}", tally_bin.display()))?;
    let tally_bin = server_bin;
    let url = args.database_url.clone();

    // 1. A fresh store, the entities, health checks and gauges, and a key.
    let t = Instant::now();
    let saved = match &args.entities {
        Some(file) => Some(entities::Saved::new(file, &url)?),
        None => None,
    };
    let restored = match &saved {
        Some(saved) if saved.exists() => {
            say(format!("copying the saved entities of {}", saved.display()));
            saved.restore()?;
            true
        }
        _ => false,
    };
    let store = tally_store::open(&setup_url(&url))
        .await
        .context("opening the store")?;
    store.migrate().await?;
    let backend = store.backend();
    let before = store.counts().await?;
    let counts = if restored {
        // A store saved at another scale would be measured as if it were this one.
        if before.customers != customers as i64 {
            bail!(
                "{} holds {} customers; scale {} has {customers}: save a store of this scale",
                saved.as_ref().map_or_else(String::new, |s| s.display()),
                before.customers,
                args.scale.name()
            );
        }
        before
    } else {
        if before.plans + before.customers + before.invoices + before.events > 0 {
            bail!(
                "{} is not empty ({} customers, {} events): the benchmark needs a fresh store",
                crate::config::redact_url(&url),
                before.customers,
                before.events
            );
        }
        say(format!(
            "scale {}: generating entities for {customers} customers into {backend}",
            args.scale.name()
        ));
        let entity_opts = crate::demo::DemoOptions {
            events: 0,
            ..opts.clone()
        };
        let hidden = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
        let summary = crate::demo::generate(store.as_ref(), &entity_opts, &hidden).await?;
        if let Some(saved) = &saved {
            // Counting waits until every event written is folded into the tables, so
            // the copy holds them all.
            store.counts().await?;
            saved.save()?;
            say(format!("entities saved to {}", saved.display()));
        }
        summary.counts
    };
    let entities_seconds = t.elapsed().as_secs_f64();
    let (_, key) = crate::keys::create(store.as_ref(), Role::Admin, "bench").await?;
    drop(store);
    say(format!(
        "entities: {} customers, {} subscriptions, {} invoices, {} health checks and gauges in {entities_seconds:.1} s",
        counts.customers, counts.subscriptions, counts.invoices, counts.events
    ));

    // 2. The usage events, as request bodies.
    let t = Instant::now();
    let plan = crate::demo::plan(&opts);
    let spool_path = work.join("events.spool");
    let (plan, spool, tally) = tokio::task::spawn_blocking({
        let opts = opts.clone();
        move || -> Result<_> {
            let mut tally = exact::LlmTally::default();
            let spool = ingest::spool(&plan, &opts, &spool_path, &mut tally)?;
            Ok((plan, spool, tally))
        }
    })
    .await??;
    let spool_seconds = t.elapsed().as_secs_f64();
    say(format!(
        "spooled {} usage events in {} batches ({:.0} MB) in {spool_seconds:.1} s",
        spool.events,
        spool.batches.len(),
        spool.bytes as f64 / 1e6
    ));

    // 3. Ingestion over HTTP.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients.max(1) * 2)
        .build()?;
    let srv = server::Server::start(&tally_bin, &url).await?;
    say(format!(
        "server {} at {}; ingesting with {} clients",
        srv.pid, srv.base, args.clients
    ));
    let mut phases = Vec::new();
    let mut latencies: [Vec<f64>; 2] = Default::default();
    for quarter in spool.batches.chunk_by(|a, b| a.ndjson == b.ndjson) {
        let ndjson = quarter[0].ndjson;
        let format = if ndjson { "ndjson" } else { "json" };
        let (p, lat) = ingest::send(
            &http,
            &srv.base,
            &key,
            &spool,
            quarter,
            args.clients,
            format,
        )
        .await?;
        say(format!(
            "{format}: {} events in {:.1} s = {:.0} events/s (request p50 {:.1} ms, p99 {:.1} ms)",
            p.events, p.seconds, p.events_per_sec, p.request_p50_ms, p.request_p99_ms
        ));
        latencies[ndjson as usize].extend(lat);
        phases.push(p);
    }
    // SQLite acknowledges a batch once it is in the ingest log and folds the log into the
    // tables behind (up to ~131 k events behind): a read waits until everything
    // acknowledged is readable. That wait counts into the sustained rate.
    let t = Instant::now();
    http.get(format!("{}/api/v1/services", srv.base))
        .bearer_auth(&key)
        .send()
        .await?
        .error_for_status()
        .context("reading after the ingestion")?;
    let settle_seconds = t.elapsed().as_secs_f64();
    say(format!(
        "every acknowledged event readable {settle_seconds:.2} s after the last acknowledgement"
    ));
    let formats: Vec<report::FormatResult> = [("json", false), ("ndjson", true)]
        .into_iter()
        .map(|(format, ndjson)| {
            let of: Vec<_> = phases.iter().filter(|p| p.format == format).collect();
            let events: usize = of.iter().map(|p| p.events).sum();
            let seconds: f64 = of.iter().map(|p| p.seconds).sum();
            let lat = &mut latencies[ndjson as usize];
            report::FormatResult {
                format,
                events,
                seconds,
                events_per_sec: events as f64 / seconds,
                request_p50_ms: percentile(lat, 50.0),
                request_p99_ms: percentile(lat, 99.0),
            }
        })
        .collect();
    let ingest_rss = srv.peak_rss()?;
    srv.stop().await?;
    let _ = std::fs::remove_file(&spool.path);

    // The planner statistics, as `tally demo` and `tally import` refresh them after a
    // bulk load (PostgreSQL's autovacuum may be off or not have run yet).
    let t = Instant::now();
    let store = tally_store::open(&url).await?;
    store
        .analyze()
        .await
        .context("refreshing the planner statistics")?;
    drop(store);
    let analyze_seconds = t.elapsed().as_secs_f64();
    say(format!(
        "planner statistics refreshed in {analyze_seconds:.1} s"
    ));

    // 4. Latency: a fresh server, cold rounds (computed), then warm (cached).
    let as_of = END.to_owned();
    let after = format!("{}T12:00:00Z", end + chrono::Days::new(2));
    let t = Instant::now();
    let srv = server::Server::start(&tally_bin, &url).await?;
    let server_start_seconds = t.elapsed().as_secs_f64();
    say(format!(
        "server restarted in {server_start_seconds:.1} s (caches warmed); {} cold rounds, {} warm requests per endpoint",
        args.cold_rounds, args.warm
    ));
    let cold = latency::cold(
        &http,
        &srv.base,
        &key,
        &as_of,
        &after,
        args.cold_rounds.max(1),
        Duration::from_secs(args.cold_budget_secs),
    )
    .await?;
    let warm = latency::warm(
        &http,
        &srv.base,
        &key,
        &as_of,
        args.warm.max(1),
        Duration::from_secs(args.warm_budget_secs),
    )
    .await?;
    let endpoints: Vec<latency::EndpointLatency> = latency::ENDPOINTS
        .iter()
        .zip(cold)
        .zip(warm)
        .map(
            |((path, mut c), (mut w, hits, bytes))| latency::EndpointLatency {
                endpoint: path.to_string(),
                first_ms: c[0],
                cold_n: c.len(),
                cold_p50_ms: percentile(&mut c, 50.0),
                cold_p99_ms: percentile(&mut c, 99.0),
                warm_n: w.len(),
                warm_p50_ms: percentile(&mut w, 50.0),
                warm_p99_ms: percentile(&mut w, 99.0),
                warm_hits: hits,
                response_bytes: bytes,
            },
        )
        .collect();

    // 5. Exactness, and the responses DuckDB is compared with.
    let fetch = |p: &str| latency::with_as_of(p, &as_of);
    let mut responses = serde_json::Map::new();
    for p in [
        latency::ENDPOINTS[0],
        latency::ENDPOINTS[1],
        latency::ENDPOINTS[19],
    ] {
        let (_, body, _) = latency::get(&http, &srv.base, &key, &fetch(p), true).await?;
        responses.insert(p.to_owned(), serde_json::from_slice(&body)?);
    }
    let last_day = day_start(end) / MICROS_PER_DAY;
    let exactness = exact::check(
        &tally,
        last_day,
        &responses[latency::ENDPOINTS[0]],
        &responses[latency::ENDPOINTS[1]],
    )?;
    let query_rss = srv.peak_rss()?;
    srv.stop().await?;
    let accepted: u64 = phases.iter().map(|p| p.accepted).sum();
    let store = tally_store::open(&url).await?;
    let counts = store.counts().await?;
    drop(store);
    say(format!(
        "exactness: {} checks, {} mismatches; {accepted} of {} events accepted; peak RSS {:.0} MiB",
        exactness.checks,
        exactness.mismatches.len(),
        spool.events,
        ingest_rss.max(query_rss) as f64 / (1 << 20) as f64
    ));

    // 6. The database alone.
    say("raw store insert of the same rows");
    let raw = match raw::sqlite_path(&url) {
        Some(path) => raw::sqlite_insert(&path, &plan, &opts, args.raw_limit).await?,
        None => raw::pg_copy(&url, &plan, &opts, args.raw_limit).await?,
    };
    say(format!(
        "raw: {} rows in {:.1} s = {:.0} rows/s",
        raw.rows, raw.seconds, raw.rows_per_sec
    ));
    drop(plan);

    // 7. DuckDB over an export of the same events.
    let duckdb = if args.duckdb_script == "none" {
        None
    } else {
        say("exporting usage events to CSV for DuckDB");
        let csv = work.join("usage_events.csv");
        let t = Instant::now();
        let rows = raw::export_usage_csv(&url, &csv).await?;
        let export_seconds = t.elapsed().as_secs_f64();
        let resp_path = work.join("tally_responses.json");
        std::fs::write(
            &resp_path,
            serde_json::to_vec(&serde_json::json!({
                "as_of": as_of, "last_day": last_day, "responses": responses
            }))?,
        )?;
        let out = tokio::process::Command::new("python3")
            .arg(&args.duckdb_script)
            .arg("--csv")
            .arg(&csv)
            .arg("--tally")
            .arg(&resp_path)
            .stderr(std::process::Stdio::inherit())
            .output()
            .await
            .context("running the DuckDB script")?;
        let failed = !out.status.success();
        if failed {
            say(format!(
                "the DuckDB script failed; its inputs are kept: {} {}",
                csv.display(),
                resp_path.display()
            ));
        } else {
            let _ = std::fs::remove_file(&csv);
        }
        let mut v = if !failed {
            serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| serde_json::json!({"error": format!("unreadable output: {e}")}))
        } else {
            serde_json::json!({"error": format!("the script failed: {}", out.status)})
        };
        v["export_rows"] = rows.into();
        v["export_seconds"] = export_seconds.into();
        Some(v)
    };
    if duckdb.as_ref().is_none_or(|d| d.get("error").is_none()) {
        let _ = std::fs::remove_dir_all(&work);
    }

    let total_events = phases.iter().map(|p| p.events).sum::<usize>();
    let ingest_seconds = phases.iter().map(|p| p.seconds).sum::<f64>() + settle_seconds;
    let report = report::Report {
        scale: args.scale,
        backend,
        clients: args.clients,
        as_of,
        seed: opts.seed,
        machine,
        build,
        counts: counts.into(),
        generation: report::Generation {
            entities_seconds,
            entities_from: restored
                .then(|| saved.as_ref().map(|s| s.display()))
                .flatten(),
            spool_seconds,
            usage_events: spool.events,
            analyze_seconds,
            server_start_seconds,
        },
        ingestion: report::Ingestion {
            events: total_events,
            seconds: ingest_seconds,
            events_per_sec: total_events as f64 / ingest_seconds,
            settle_seconds,
            accepted,
            formats,
            phases,
        },
        endpoints,
        peak_rss_bytes: ingest_rss.max(query_rss),
        ingest_peak_rss_bytes: ingest_rss,
        query_peak_rss_bytes: query_rss,
        exactness,
        raw,
        duckdb,
        total_seconds: started.elapsed().as_secs_f64(),
        loadavg_end: report::loadavg(),
    };
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "bench/results/{}-{backend}.json",
            args.scale.name()
        ))
    });
    report.write(&out)?;
    say(format!("wrote {} and its .md", out.display()));
    if !report.exactness.ok || report.ingestion.accepted as usize != report.generation.usage_events
    {
        bail!("the figures are not exact; see {}", out.display());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::setup_url;

    #[test]
    fn only_postgres_setup_skips_the_commit_flush() {
        assert_eq!(setup_url("sqlite:///tmp/b.db"), "sqlite:///tmp/b.db");
        assert_eq!(
            setup_url("postgres://u@h:5432/db"),
            "postgres://u@h:5432/db?options=-c%20synchronous_commit%3Doff"
        );
        assert_eq!(
            setup_url("postgres://u@h/db?sslmode=disable"),
            "postgres://u@h/db?sslmode=disable&options=-c%20synchronous_commit%3Doff"
        );
    }
}
