//! `bench cooldown`: how fast a rate-limit answer reaches every worker
//! process. Several `pricekeeper worker` processes drain Yahoo backfills
//! against a local Yahoo that refuses every other request with its usual
//! 429 (no Retry-After). Any refusal pauses Yahoo for at least the base
//! backoff, so a request that arrives later than `--tolerance` after a
//! refusal was sent, and within the base backoff of it, was sent by a
//! process that had not yet heard of that cooldown.

use std::time::{Duration, Instant};

use super::{BenchError, Scratch, round3, workers};
use crate::config::Settings;
use crate::providers::Rate;
use crate::providers::rate_limit::rate;

#[derive(Debug, clap::Args)]
pub struct CooldownBench {
    /// Worker processes sharing the database.
    #[arg(long, default_value_t = 2)]
    pub processes: usize,
    /// Jobs each worker runs at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Yahoo's budget, as PRICEKEEPER_YAHOO_RATE is given to every worker.
    #[arg(long, default_value = "5/s", value_parser = rate("--rate"))]
    pub rate: Rate,
    /// The shortest cooldown (RETRY_EXPONENTIAL_BASE of every worker).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub base: Duration,
    /// Time a request already on its way may take to arrive.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub tolerance: Duration,
    /// How long the workers run.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Backfill jobs queued.
    #[arg(long, default_value_t = 5_000)]
    pub jobs: usize,
    /// The worker binary to run (default: this one), e.g. an older build to
    /// compare in the same run.
    #[arg(long)]
    pub worker_binary: Option<std::path::PathBuf>,
}

#[derive(Debug, serde::Serialize)]
pub struct CooldownReport {
    pub worker_binary: String,
    pub processes: usize,
    pub seconds: f64,
    pub requests: usize,
    pub refusals: usize,
    /// Requests that arrived within the tolerance of a refusal (already
    /// on their way when it was sent).
    pub in_flight: usize,
    /// Requests that arrived after the tolerance and within the base
    /// backoff of a refusal: sent during an announced cooldown.
    pub inside_cooldown: usize,
    /// The latest such arrival after its refusal, in milliseconds.
    pub worst_ms: Option<f64>,
}

pub async fn run(settings: &Settings, args: &CooldownBench) -> Result<CooldownReport, BenchError> {
    let scratch = Scratch::create_empty(&settings.connect_options(), 4).await?;
    let report = measure(&scratch, settings, args).await;
    scratch.drop().await?;
    report
}

async fn measure(
    scratch: &Scratch,
    settings: &Settings,
    args: &CooldownBench,
) -> Result<CooldownReport, BenchError> {
    let drilled = workers::Drill {
        binary: &args.worker_binary,
        processes: args.processes,
        jobs: args.jobs,
        refuse_every: Some(2),
        env: vec![
            ("PRICEKEEPER_YAHOO_RATE", args.rate.to_string()),
            ("PRICEKEEPER_CONCURRENCY", args.concurrency.to_string()),
            (
                "RETRY_EXPONENTIAL_BASE",
                humantime::format_duration(args.base).to_string(),
            ),
        ],
        duration: args.duration,
    }
    .run(scratch, settings)
    .await?;
    let arrivals = drilled.log.arrivals();
    let refusals = drilled.log.refusals();
    let late = lateness(&arrivals, &refusals, args.base);
    Ok(CooldownReport {
        worker_binary: drilled.binary.display().to_string(),
        processes: args.processes,
        seconds: round3(drilled.seconds),
        requests: arrivals.len(),
        refusals: refusals.len(),
        in_flight: late.iter().filter(|l| **l <= args.tolerance).count(),
        inside_cooldown: late.iter().filter(|l| **l > args.tolerance).count(),
        worst_ms: late
            .iter()
            .filter(|l| **l > args.tolerance)
            .max()
            .map(|l| round3(l.as_secs_f64() * 1000.0)),
    })
}

/// For each arrival less than `base` after some refusal sent before it,
/// how long after the earliest such refusal it arrived. Both lists are in
/// time order.
fn lateness(arrivals: &[Instant], refusals: &[Instant], base: Duration) -> Vec<Duration> {
    let mut late = Vec::new();
    let mut first = 0;
    for at in arrivals {
        // The earliest refusal that still covers this arrival.
        while first < refusals.len() && *at >= refusals[first] + base {
            first += 1;
        }
        if let Some(refusal) = refusals.get(first).filter(|r| *r < at) {
            late.push(*at - *refusal);
        }
    }
    late
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_counts_arrivals_inside_a_cooldown_from_its_start() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let refusals = [ms(100), ms(1_500)];
        let arrivals = [
            ms(0),
            ms(100),
            ms(120),
            ms(900),
            ms(1_200),
            ms(1_550),
            ms(2_600),
        ];
        let late = lateness(&arrivals, &refusals, Duration::from_secs(1));
        let late_ms: Vec<u128> = late.iter().map(Duration::as_millis).collect();
        // 0 is before any refusal, 100 is the refused request itself
        // (not after it), 1,200 and 2,600 are after the cooldowns.
        assert_eq!(late_ms, [20, 800, 50]);
    }
}
