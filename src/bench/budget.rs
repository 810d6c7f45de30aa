//! `bench budget`: several `pricekeeper worker` processes drain one queue
//! of Yahoo backfills against a local Yahoo that logs when each request
//! arrives. They share one budget through the database, so the peak count
//! in any window of the budget's period must stay within it, whatever the
//! number of processes.

use std::time::Duration;

use super::{BenchError, Scratch, peak_in_window, round3, workers};
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
    let drilled = workers::Drill {
        binary: &args.worker_binary,
        processes: args.processes,
        jobs: args.jobs,
        refuse_every: None,
        env: vec![
            ("PRICEKEEPER_YAHOO_RATE", args.rate.to_string()),
            ("PRICEKEEPER_CONCURRENCY", "16".to_owned()),
        ],
        duration: args.duration,
    }
    .run(scratch, settings)
    .await?;
    let arrivals = drilled.log.arrivals();
    let peak = peak_in_window(&arrivals, args.rate.per);
    Ok(BudgetReport {
        worker_binary: drilled.binary.display().to_string(),
        processes: args.processes,
        budget: args.rate.to_string(),
        seconds: round3(drilled.seconds),
        requests: arrivals.len(),
        peak_in_window: peak,
        peak_per_second: peak_in_window(&arrivals, Duration::from_secs(1)),
        within_budget: peak <= args.rate.count as usize,
    })
}
