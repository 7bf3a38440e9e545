//! A `tally serve` child process: started on port 0, its address read from stdout,
//! measured through /proc, stopped with SIGTERM.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Server {
    child: Child,
    pub pid: u32,
    pub base: String,
}

impl Server {
    /// Starts `tally serve` on `database_url` with rate limits off (one key drives the
    /// whole benchmark) and waits for its "listening on" line.
    pub async fn start(bin: &Path, database_url: &str) -> Result<Server> {
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .env("TALLY_RATE_LIMIT_PER_SECOND", "0")
            .env("TALLY_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("server exited at once")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    return Ok::<_, anyhow::Error>(addr.trim().to_owned());
                }
            }
            bail!("the server ended before it listened")
        })
        .await
        .context("the server did not print its address within 120 s")??;
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { child, pid, base })
    }

    /// Peak resident set (VmHWM) so far, in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("VmHWM:") {
                let kib: u64 = v.trim().trim_end_matches("kB").trim().parse()?;
                return Ok(kib * 1024);
            }
        }
        bail!("no VmHWM in /proc/{}/status", self.pid)
    }

    /// SIGTERM, then wait (SIGKILL after 30 s).
    pub async fn stop(mut self) -> Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(r) => {
                r?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}
