//! `pricekeeper worker` processes for the benches that need several of
//! them against one scratch database (`bench budget`, `bench cooldown`):
//! migrate with the measured binary, start them side by side against a
//! local provider, stop them with SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::yahoo_server::{RequestLog, serve_year_refusing};
use super::{BenchError, Scratch};
use crate::config::Settings;

/// A run of worker processes against the local Yahoo.
pub struct Drill<'a> {
    /// The worker binary (None: this one).
    pub binary: &'a Option<PathBuf>,
    pub processes: usize,
    /// Backfills queued before they start.
    pub jobs: usize,
    /// Answer every n-th request with a 429.
    pub refuse_every: Option<u64>,
    /// Settings of every worker, on top of [`start`]'s.
    pub env: Vec<(&'static str, String)>,
    pub duration: Duration,
}

/// What a [`Drill`] saw.
pub struct Drilled {
    pub binary: PathBuf,
    pub seconds: f64,
    pub log: Arc<RequestLog>,
}

impl Drill<'_> {
    /// Migrates the scratch database with the binary, queues the jobs,
    /// runs the workers for the duration against a local Yahoo that logs
    /// every request, and stops them.
    pub async fn run(self, scratch: &Scratch, settings: &Settings) -> Result<Drilled, BenchError> {
        let binary = binary(self.binary)?;
        let database_url = scratch.url(settings.db.url())?;
        migrate(&binary, &database_url).await?;
        let log = Arc::new(RequestLog::default());
        let (server, days) = serve_year_refusing(Some(log.clone()), self.refuse_every).await?;
        super::queue::insert_real_jobs(&scratch.pool, self.jobs, &days).await?;
        let started = Instant::now();
        let mut env = vec![("PRICEKEEPER_YAHOO_URL", server.to_string())];
        env.extend(self.env);
        let mut children = start(&binary, &database_url, self.processes, &env)?;
        tokio::time::sleep(self.duration).await;
        stop(&mut children).await;
        Ok(Drilled {
            binary,
            seconds: started.elapsed().as_secs_f64(),
            log,
        })
    }
}

/// The binary to measure: `chosen`, or this one.
fn binary(chosen: &Option<PathBuf>) -> Result<PathBuf, BenchError> {
    match chosen {
        Some(path) => Ok(path.clone()),
        None => std::env::current_exe()
            .map_err(|e| BenchError::Stalled(format!("cannot find this binary: {e}"))),
    }
}

/// Applies `binary`'s own migrations to the scratch database.
async fn migrate(binary: &Path, database_url: &str) -> Result<(), BenchError> {
    let migrated = Command::new(binary)
        .arg("migrate")
        .env("DATABASE_URL", database_url)
        // Where the bench's own pool finds the tables (older builds have
        // no schema setting and use it anyway).
        .env("PRICEKEEPER_SCHEMA", "public")
        .env("RUST_LOG", "warn")
        .status()
        .await
        .map_err(|e| cannot_start(binary, &e))?;
    if !migrated.success() {
        return Err(BenchError::Stalled(format!(
            "{} migrate failed ({migrated})",
            binary.display()
        )));
    }
    Ok(())
}

/// Starts `n` workers with `env` on top of what every bench worker gets.
fn start(
    binary: &Path,
    database_url: &str,
    n: usize,
    env: &[(&str, String)],
) -> Result<Vec<Child>, BenchError> {
    (0..n)
        .map(|_| {
            Command::new(binary)
                .arg("worker")
                .env("DATABASE_URL", database_url)
                // Side by side: each its own ops port.
                .env("PRICEKEEPER_HTTP_ADDR", "127.0.0.1:0")
                .env("PRICEKEEPER_SCHEMA", "public")
                .env_remove("MAX_REQUESTS_PER_MINUTE")
                .env("RUST_LOG", "warn")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| cannot_start(binary, &e))
        })
        .collect()
}

/// SIGTERM to every worker, then waits up to a minute for each.
async fn stop(children: &mut [Child]) {
    for child in children.iter() {
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
    }
    for child in children.iter_mut() {
        let _ = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    }
}

fn cannot_start(binary: &Path, e: &std::io::Error) -> BenchError {
    BenchError::Stalled(format!("cannot start {}: {e}", binary.display()))
}
