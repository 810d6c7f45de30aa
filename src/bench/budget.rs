//! `bench budget`: several `pricekeeper worker` processes drain one queue
//! of Yahoo backfills against a local Yahoo that logs when each request
//! arrives. They share one budget through the database, so the peak count
//! in any window of the budget's period must stay within it, whatever the
//! number of processes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::yahoo_server::{RequestLog, serve_year};
use super::{BenchError, Scratch, peak_in_window, round3};
use crate::config::Settings;
use crate::providers::Rate;
use crate::providers::rate_limit::rate;

#[derive(Debug, clap::Args)]
pub struct BudgetBench {
    /// Worker processes sharing the database (and so the budget).
    #[arg(long, default_value_t = 4)]
    pub processes: usize,
    /// Yahoo's budget, as PRICEKEEPER_YAHOO_RATE is given to every worker.
    #[arg(long, default_value = "600/min", value_parser = rate("--rate"))]
    pub rate: Rate,
    /// How long the workers run; at least the budget's period, to see a
    /// whole window.
    #[arg(long, default_value = "150s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Backfill jobs queued: more than the budget lets through in that time.
    #[arg(long, default_value_t = 5_000)]
    pub jobs: usize,
    /// The worker binary to run (default: this one), e.g. an older build to
    /// compare in the same run.
    #[arg(long)]
    pub worker_binary: Option<std::path::PathBuf>,
}

#[derive(Debug, serde::Serialize)]
pub struct BudgetReport {
    pub worker_binary: String,
    pub processes: usize,
    pub budget: String,
    pub seconds: f64,
    pub requests: usize,
    /// The most requests inside any window of the budget's period.
    pub peak_in_window: usize,
    /// The most requests inside any one second.
    pub peak_per_second: usize,
    pub within_budget: bool,
}

pub async fn run(settings: &Settings, args: &BudgetBench) -> Result<BudgetReport, BenchError> {
    let scratch = Scratch::create_empty(&settings.connect_options(), 4).await?;
    let report = measure(&scratch, settings, args).await;
    scratch.drop().await?;
    report
}

async fn measure(
    scratch: &Scratch,
    settings: &Settings,
    args: &BudgetBench,
) -> Result<BudgetReport, BenchError> {
    let binary = match &args.worker_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| BenchError::Stalled(format!("cannot find this binary: {e}")))?,
    };
    let database_url = scratch.url(settings.db.url())?;
    // The measured binary's own schema.
    let migrated = tokio::process::Command::new(&binary)
        .arg("migrate")
        .env("DATABASE_URL", &database_url)
        // Where the bench's own pool finds the tables (older builds have
        // no schema setting and use it anyway).
        .env("PRICEKEEPER_SCHEMA", "public")
        .env("RUST_LOG", "warn")
        .status()
        .await
        .map_err(|e| BenchError::Stalled(format!("cannot start {}: {e}", binary.display())))?;
    if !migrated.success() {
        return Err(BenchError::Stalled(format!(
            "{} migrate failed ({migrated})",
            binary.display()
        )));
    }
    let log = Arc::new(RequestLog::default());
    let (server, days) = serve_year(Some(log.clone())).await?;
    super::queue::insert_real_jobs(&scratch.pool, args.jobs, &days).await?;
    let started = Instant::now();
    let mut children = Vec::new();
    for _ in 0..args.processes {
        let child = tokio::process::Command::new(&binary)
            .arg("worker")
            .env("DATABASE_URL", &database_url)
            // Side by side: each its own ops port.
            .env("PRICEKEEPER_HTTP_ADDR", "127.0.0.1:0")
            .env("PRICEKEEPER_SCHEMA", "public")
            .env("PRICEKEEPER_YAHOO_URL", server.as_str())
            .env("PRICEKEEPER_YAHOO_RATE", args.rate.to_string())
            .env("PRICEKEEPER_CONCURRENCY", "16")
            .env_remove("MAX_REQUESTS_PER_MINUTE")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::Stalled(format!("cannot start {}: {e}", binary.display())))?;
        children.push(child);
    }
    tokio::time::sleep(args.duration).await;
    for child in &mut children {
        if let Some(pid) = child.id() {
            let _ = tokio::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
    }
    for child in &mut children {
        let _ = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let arrivals = log.arrivals();
    let peak = peak_in_window(&arrivals, args.rate.per);
    Ok(BudgetReport {
        worker_binary: binary.display().to_string(),
        processes: args.processes,
        budget: args.rate.to_string(),
        seconds: round3(seconds),
        requests: arrivals.len(),
        peak_in_window: peak,
        peak_per_second: peak_in_window(&arrivals, Duration::from_secs(1)),
        within_budget: peak <= args.rate.count as usize,
    })
}
