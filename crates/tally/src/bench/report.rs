//! The report: one JSON file and a markdown table next to it.

use super::exact::Exactness;
use super::ingest::PhaseResult;
use super::latency::EndpointLatency;
use super::raw::RawInsert;
use super::Scale;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct Generation {
    /// Entities, health checks and gauges written through the store by the demo generator
    /// (or copied from `entities_from`).
    pub entities_seconds: f64,
    /// The saved entity store the run started from (`--entities`), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities_from: Option<String>,
    /// Generating and serializing the usage events (before the timed ingestion).
    pub spool_seconds: f64,
    pub usage_events: usize,
    /// Refreshing the planner statistics after ingestion, before the latency phase
    /// (`Store::analyze`).
    pub analyze_seconds: f64,
    /// From starting the server for the latency phase to its "listening on" line: opening
    /// the store and warming its caches (`tally_server::cache::warm`).
    pub server_start_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Ingestion {
    pub events: usize,
    /// The four quarters and `settle_seconds`.
    pub seconds: f64,
    /// Sustained: every event sent and readable.
    pub events_per_sec: f64,
    /// From the last acknowledgement until a read saw every event (SQLite's ingest log
    /// folding what it acknowledged ahead).
    pub settle_seconds: f64,
    pub accepted: u64,
    /// Per format, over its two quarters.
    pub formats: Vec<FormatResult>,
    /// The four quarters in the order they ran: JSON, NDJSON, JSON, NDJSON.
    pub phases: Vec<PhaseResult>,
}

#[derive(Debug, Serialize)]
pub struct FormatResult {
    pub format: &'static str,
    pub events: usize,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub request_p50_ms: f64,
    pub request_p99_ms: f64,
}

/// `git rev-parse --short HEAD`, with the number of changed files when the tree is dirty
/// (the binaries were built from that tree).
pub fn build_info() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).map_or(0, |s| s.lines().count());
    if dirty == 0 {
        head
    } else {
        format!("{head} + {dirty} files changed in the working tree")
    }
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_kib: u64,
    pub started_at: String,
    /// /proc/loadavg when the run started: the machine is shared, so figures vary.
    pub loadavg_start: String,
}

/// The first three fields of /proc/loadavg.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default(),
        mem_total_kib: meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0),
        started_at: chrono::Utc::now().to_rfc3339(),
        loadavg_start: loadavg(),
    }
}

/// Rows in the store at the end (tally_store::Counts, serializable).
#[derive(Debug, Serialize)]
pub struct Counts {
    pub plans: i64,
    pub customers: i64,
    pub subscriptions: i64,
    pub subscription_changes: i64,
    pub invoices: i64,
    pub costs: i64,
    pub marketing_spend: i64,
    pub services: i64,
    pub events: i64,
}

impl From<tally_store::Counts> for Counts {
    fn from(c: tally_store::Counts) -> Counts {
        Counts {
            plans: c.plans,
            customers: c.customers,
            subscriptions: c.subscriptions,
            subscription_changes: c.subscription_changes,
            invoices: c.invoices,
            costs: c.costs,
            marketing_spend: c.marketing_spend,
            services: c.services,
            events: c.events,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scale: Scale,
    pub backend: &'static str,
    pub clients: usize,
    pub as_of: String,
    pub seed: u64,
    pub machine: Machine,
    /// The commit the binaries were built from, and whether the tree had local changes.
    pub build: String,
    pub counts: Counts,
    pub generation: Generation,
    pub ingestion: Ingestion,
    pub endpoints: Vec<EndpointLatency>,
    pub peak_rss_bytes: u64,
    pub ingest_peak_rss_bytes: u64,
    pub query_peak_rss_bytes: u64,
    pub exactness: Exactness,
    pub raw: RawInsert,
    pub duckdb: Option<serde_json::Value>,
    pub total_seconds: f64,
    pub loadavg_end: String,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

impl Report {
    pub fn write(&self, out: &Path) -> Result<()> {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, serde_json::to_string_pretty(self)? + "\n")?;
        std::fs::write(out.with_extension("md"), self.markdown())?;
        Ok(())
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let c = &self.counts;
        let _ = writeln!(
            s,
            "### Scale {} on {} ({} clients, as_of {})\n",
            self.scale.name(),
            self.backend,
            self.clients,
            self.as_of
        );
        let _ = writeln!(
            s,
            "Data: {} customers, {} subscriptions, {} invoices, {} events ({} usage events sent over HTTP). \
Machine: {} CPUs ({}), run started {}, load average {} at the start and {} at the end. Build: {}.\n",
            c.customers,
            c.subscriptions,
            c.invoices,
            c.events,
            self.generation.usage_events,
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.started_at,
            self.machine.loadavg_start,
            self.loadavg_end,
            self.build
        );
        let _ = writeln!(s, "| measure | value |\n|---|---|");
        for p in &self.ingestion.formats {
            let _ = writeln!(
                s,
                "| ingestion over HTTP, {} (batches of 1,000) | {:.0} events/s (request p50 {:.1} ms, p99 {:.1} ms) |",
                p.format, p.events_per_sec, p.request_p50_ms, p.request_p99_ms
            );
        }
        let quarters: Vec<String> = self
            .ingestion
            .phases
            .iter()
            .map(|p| format!("{} {:.0}", p.format, p.events_per_sec))
            .collect();
        let _ = writeln!(
            s,
            "| ingestion by quarter, in order, events/s | {} |",
            quarters.join(", ")
        );
        let _ = writeln!(
            s,
            "| ingestion over HTTP, both, until readable | {:.0} events/s ({} events in {:.1} s, of which {:.2} s after the last acknowledgement) |",
            self.ingestion.events_per_sec,
            self.ingestion.events,
            self.ingestion.seconds,
            self.ingestion.settle_seconds
        );
        let _ = writeln!(
            s,
            "| raw store insert, same rows | {:.0} rows/s ({}) |",
            self.raw.rows_per_sec, self.raw.method
        );
        let _ = writeln!(
            s,
            "| server peak RSS (VmHWM) | {:.0} MiB (ingestion {:.0}, queries {:.0}) |",
            mib(self.peak_rss_bytes),
            mib(self.ingest_peak_rss_bytes),
            mib(self.query_peak_rss_bytes)
        );
        let worst =
            |f: fn(&EndpointLatency) -> f64| self.endpoints.iter().map(f).fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "| worst endpoint p99 | cold {:.1} ms, warm {:.1} ms |",
            worst(|e| e.cold_p99_ms),
            worst(|e| e.warm_p99_ms)
        );
        let _ = writeln!(
            s,
            "| exactness (LLM figures vs the generated events) | {} ({} checks) |",
            if self.exactness.ok {
                "exact"
            } else {
                "MISMATCH"
            },
            self.exactness.checks
        );
        let _ = writeln!(
            s,
            "| generation | entities {} {:.1} s, usage events spooled in {:.1} s, planner statistics after ingestion {:.1} s, server start with caches warmed {:.1} s; whole run {:.0} s |",
            match &self.generation.entities_from {
                Some(file) => format!("copied from {file} in"),
                None => "generated in".to_owned(),
            },
            self.generation.entities_seconds,
            self.generation.spool_seconds,
            self.generation.analyze_seconds,
            self.generation.server_start_seconds,
            self.total_seconds
        );
        let _ = writeln!(
            s,
            "\n| endpoint | first | cold p50 | cold p99 | warm p50 | warm p99 | bytes |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for e in &self.endpoints {
            let _ = writeln!(
                s,
                "| `{}` | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                e.endpoint,
                e.first_ms,
                e.cold_p50_ms,
                e.cold_p99_ms,
                e.warm_p50_ms,
                e.warm_p99_ms,
                e.response_bytes
            );
        }
        let range = |f: fn(&EndpointLatency) -> usize| {
            let lo = self.endpoints.iter().map(f).min().unwrap_or(0);
            let hi = self.endpoints.iter().map(f).max().unwrap_or(0);
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}–{hi} (time budget)")
            }
        };
        let warm: usize = self.endpoints.iter().map(|e| e.warm_n).sum();
        let hits: usize = self.endpoints.iter().map(|e| e.warm_hits).sum();
        let _ = writeln!(
            s,
            "\nTimes in ms, to the last byte; per endpoint, cold n = {}, warm n = {}. \
*first*: the first request after the server started. *Cold*: computed, the response cache \
bypassed (`Cache-Control: no-cache`), each round after the first following a write; the \
server loads the subscription book and the whole days it keeps before it listens \
(`server start with caches warmed`), and the write before each round is dated after \
`as_of`, so they stay right between rounds. *Warm*: the same \
request again, {hits} of {warm} answered from the response cache.",
            range(|e| e.cold_n),
            range(|e| e.warm_n)
        );
        if let Some(d) = &self.duckdb {
            let _ = writeln!(
                s,
                "\nDuckDB {} over a CSV export of the same usage events:\n",
                d["duckdb_version"].as_str().unwrap_or("?")
            );
            let _ = writeln!(
                s,
                "| DuckDB step | cold ms | warm ms (median of 5) | same figures as tally |\n|---|---:|---:|---|"
            );
            let _ = writeln!(
                s,
                "| export from the store to CSV (harness) | {:.0} | | |",
                d["export_seconds"].as_f64().unwrap_or(0.0) * 1e3
            );
            if let Some(steps) = d["steps"].as_array() {
                for st in steps {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {:.1} | {} |",
                        st["name"].as_str().unwrap_or("?"),
                        st["cold_ms"]
                            .as_f64()
                            .map_or(String::new(), |v| format!("{v:.1}")),
                        st["ms"].as_f64().unwrap_or(0.0),
                        match st.get("matches") {
                            Some(serde_json::Value::Bool(true)) => "yes".to_owned(),
                            Some(serde_json::Value::Bool(false)) => format!("NO: {}", st["diff"]),
                            _ => String::new(),
                        }
                    );
                }
            }
            if let Some(e) = d.get("error") {
                let _ = writeln!(s, "\nDuckDB error: {e}");
            }
        }
        s
    }
}
