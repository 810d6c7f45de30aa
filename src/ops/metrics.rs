//! Prometheus metrics. Counters and histograms of what this process did
//! (provider requests, finished jobs, applied events, daemon ticks) are
//! recorded where it happens through the `metrics` facade; the queue,
//! outbox, tracked-asset and daemon gauges are set from one
//! [`Snapshot`] read at scrape time, never kept in memory, so every
//! process reports the same cluster-wide numbers.
//!
//! The recorder is installed once per process by the ops server; without
//! it (one-shot commands, most tests) recording is a no-op.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::snapshot::Snapshot;
use super::sources::Source;
use crate::providers::ProviderKind;

/// How often the exporter's upkeep drains histogram samples into their
/// buckets; without it their memory grows with every observation.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

const REQUEST_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const BACKFILL_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot set up the Prometheus recorder: {0}")]
    Build(#[from] metrics_exporter_prometheus::BuildError),
}

/// Installs the recorder (once per process) and starts its upkeep thread.
pub fn install() -> Result<&'static PrometheusHandle, MetricsError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("pricekeeper_provider_request_duration_seconds".into()),
            REQUEST_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("pricekeeper_backfill_duration_seconds".into()),
            BACKFILL_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    // Another thread may have won the race; only the winner's recorder is
    // global, and only it gets the upkeep thread.
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle.clone());
        describe();
        register_at_zero();
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            })
            .expect("spawn the metrics upkeep thread");
    }
    Ok(HANDLE.get_or_init(|| handle))
}

fn describe() {
    describe_gauge!(
        "pricekeeper_backfill_jobs",
        "Backfill jobs by status (completed and cancelled may be planner estimates when large)."
    );
    describe_gauge!(
        "pricekeeper_backfill_jobs_due",
        "Backfill jobs due now, waiting for a worker."
    );
    describe_gauge!(
        "pricekeeper_backfill_oldest_due_age_seconds",
        Unit::Seconds,
        "How long the oldest due backfill job has waited."
    );
    describe_gauge!(
        "pricekeeper_backfill_expired_leases",
        "Jobs in progress whose lease ran out (a crashed or frozen worker)."
    );
    describe_gauge!(
        "pricekeeper_backfill_failed_last_hour",
        "Backfill jobs that failed in the last hour, cluster-wide."
    );
    describe_gauge!(
        "pricekeeper_tracked_assets",
        "Assets held by at least one portfolio."
    );
    describe_gauge!(
        "pricekeeper_outbox_unprocessed_events",
        "Portfolio events not applied yet."
    );
    describe_gauge!(
        "pricekeeper_outbox_lag_seconds",
        Unit::Seconds,
        "Age of the oldest unapplied portfolio event (0 when none)."
    );
    describe_gauge!(
        "pricekeeper_daemon_leader",
        "1 while some daemon holds a live leader lease."
    );
    describe_gauge!(
        "pricekeeper_daemon_last_tick_age_seconds",
        Unit::Seconds,
        "Time since the last daemon tick finished, cluster-wide."
    );
    describe_gauge!(
        "pricekeeper_provider_cooling",
        "1 while the provider is paused after a rate limit, for every worker."
    );
    describe_gauge!(
        "pricekeeper_provider_failing",
        "1 while the provider has refused every request for PRICEKEEPER_SOURCE_FAILING_AFTER."
    );
    describe_counter!(
        "pricekeeper_provider_requests_total",
        "Provider requests sent by this process, by outcome."
    );
    describe_counter!(
        "pricekeeper_provider_rate_limited_total",
        "Rate-limit answers (HTTP 429/418) received by this process."
    );
    describe_histogram!(
        "pricekeeper_provider_request_duration_seconds",
        Unit::Seconds,
        "Provider request latency, body included."
    );
    describe_histogram!(
        "pricekeeper_backfill_duration_seconds",
        Unit::Seconds,
        "Time a backfill job's body ran, by outcome."
    );
    describe_counter!(
        "pricekeeper_backfill_jobs_finished_total",
        "Backfill job outcomes written by this process."
    );
    describe_counter!(
        "pricekeeper_backfill_jobs_failed_total",
        "Backfill jobs this process marked failed."
    );
    describe_counter!(
        "pricekeeper_events_applied_total",
        "Portfolio events applied by this process."
    );
    describe_counter!(
        "pricekeeper_daemon_ticks_total",
        "Daemon ticks run by this process, by kind."
    );
    describe_counter!(
        "pricekeeper_retention_deleted_rows_total",
        "Rows deleted by retention, by table."
    );
    describe_gauge!(
        "pricekeeper_daemon_tick_interval_seconds",
        Unit::Seconds,
        "The longest wait between two refresh ticks of this daemon's schedule."
    );
    describe_gauge!(
        "pricekeeper_lease_held",
        "1 while this process holds the role's leader lease (the active daemon), 0 on a standby."
    );
}

/// Counters that alerts and dashboards take `increase()` or `rate()` of
/// exist from the start at 0: a counter born at its first failure has no
/// earlier sample, so Prometheus would never see that first increase.
fn register_at_zero() {
    counter!("pricekeeper_backfill_jobs_failed_total").increment(0);
    for outcome in ["completed", "failed"] {
        counter!("pricekeeper_backfill_jobs_finished_total", "outcome" => outcome).increment(0);
    }
    for provider in ProviderKind::ALL {
        counter!("pricekeeper_provider_rate_limited_total", "provider" => provider.as_str())
            .increment(0);
    }
}

/// How a provider request ended, for the request counter's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    Ok,
    RateLimited,
    /// Any other HTTP error status.
    HttpError,
    /// No answer: connection, TLS or timeout.
    Network,
}

impl RequestOutcome {
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Ok,
            // Binance answers 418 once its 429s were ignored.
            429 | 418 => Self::RateLimited,
            _ => Self::HttpError,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::RateLimited => "rate_limited",
            Self::HttpError => "http_error",
            Self::Network => "network",
        }
    }
}

/// Records one provider request: counter and latency.
pub fn record_request(provider: ProviderKind, outcome: RequestOutcome, took: Duration) {
    let name = provider.as_str();
    counter!("pricekeeper_provider_requests_total", "provider" => name, "outcome" => outcome.as_str())
        .increment(1);
    histogram!("pricekeeper_provider_request_duration_seconds", "provider" => name)
        .record(took.as_secs_f64());
    if outcome == RequestOutcome::RateLimited {
        counter!("pricekeeper_provider_rate_limited_total", "provider" => name).increment(1);
    }
}

/// Records a job outcome written by this process (`outcome` is the status
/// it ended in) and how long its body ran, when known.
pub fn record_job(outcome: &'static str, ran: Option<Duration>) {
    counter!("pricekeeper_backfill_jobs_finished_total", "outcome" => outcome).increment(1);
    if outcome == "failed" {
        counter!("pricekeeper_backfill_jobs_failed_total").increment(1);
    }
    if let Some(ran) = ran {
        histogram!("pricekeeper_backfill_duration_seconds", "outcome" => outcome)
            .record(ran.as_secs_f64());
    }
}

pub fn record_events_applied(events: usize) {
    counter!("pricekeeper_events_applied_total").increment(events as u64);
}

pub fn record_tick(kind: &str) {
    // Close ticks are labelled by kind only ("close"), never by calendar
    // or session, so the label set stays small.
    let kind = if kind.starts_with("close") {
        "close"
    } else {
        "refresh"
    };
    counter!("pricekeeper_daemon_ticks_total", "kind" => kind).increment(1);
}

/// Set once by a daemon at start: how long its schedule may leave between
/// two refresh ticks (the interval, or a cron expression's longest gap), so
/// an alert can say "no tick for two intervals" whatever the schedule.
/// Its tick counters start at 0 here too, for the same reason as above.
pub fn record_tick_interval(every: Duration) {
    gauge!("pricekeeper_daemon_tick_interval_seconds").set(every.as_secs_f64());
    for kind in ["refresh", "close"] {
        counter!("pricekeeper_daemon_ticks_total", "kind" => kind).increment(0);
    }
}

/// Whether this process holds `role`'s leader lease now; the cluster-wide
/// `pricekeeper_daemon_leader` says whether anyone does, this says who.
pub fn record_lease(role: &str, held: bool) {
    gauge!("pricekeeper_lease_held", "role" => role.to_owned()).set(f64::from(u8::from(held)));
}

pub fn record_retention(table: &'static str, rows: u64) {
    counter!("pricekeeper_retention_deleted_rows_total", "table" => table).increment(rows);
}

/// Sets the scrape-time gauges from `snapshot` and `sources`, and renders
/// every metric in the Prometheus text format.
pub fn render(handle: &PrometheusHandle, s: &Snapshot, sources: &[Source]) -> String {
    for (status, jobs) in s.jobs.iter() {
        gauge!("pricekeeper_backfill_jobs", "status" => status.clone()).set(*jobs as f64);
    }
    gauge!("pricekeeper_backfill_jobs_due").set(s.due_now as f64);
    gauge!("pricekeeper_backfill_oldest_due_age_seconds")
        .set(s.oldest_due_age().map_or(0.0, |d| d.as_secs_f64()));
    gauge!("pricekeeper_backfill_expired_leases").set(s.expired_leases as f64);
    gauge!("pricekeeper_backfill_failed_last_hour").set(s.failed_last_hour as f64);
    gauge!("pricekeeper_tracked_assets").set(s.tracked_assets as f64);
    gauge!("pricekeeper_outbox_unprocessed_events").set(s.outbox_unprocessed as f64);
    gauge!("pricekeeper_outbox_lag_seconds")
        .set(s.outbox_oldest_age().map_or(0.0, |d| d.as_secs_f64()));
    gauge!("pricekeeper_daemon_leader").set(if s.daemon_holder.is_some() { 1.0 } else { 0.0 });
    match s.daemon_last_tick_age() {
        Some(age) => gauge!("pricekeeper_daemon_last_tick_age_seconds").set(age.as_secs_f64()),
        // No tick ever: NaN says "unknown" without inventing an age.
        None => gauge!("pricekeeper_daemon_last_tick_age_seconds").set(f64::NAN),
    }
    for source in sources {
        let provider = source.provider.clone();
        gauge!("pricekeeper_provider_cooling", "provider" => provider.clone())
            .set(f64::from(u8::from(source.cooling_until.is_some())));
        gauge!("pricekeeper_provider_failing", "provider" => provider).set(f64::from(u8::from(
            source.status == super::sources::SourceStatus::Failing,
        )));
    }
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_alerts_count_on_and_the_daemon_gauges_are_in_a_scrape() {
        let handle = install().unwrap();
        record_tick_interval(Duration::from_secs(900));
        record_lease("daemon", true);
        let text = handle.render();
        // Other tests of this binary may count a failure meanwhile: the
        // series must be there, at whatever value.
        for series in [
            "pricekeeper_backfill_jobs_failed_total ",
            "pricekeeper_backfill_jobs_finished_total{outcome=\"completed\"} ",
            "pricekeeper_provider_rate_limited_total{provider=\"coingecko\"} ",
            "pricekeeper_daemon_ticks_total{kind=\"close\"} ",
            "pricekeeper_daemon_tick_interval_seconds 900\n",
            "pricekeeper_lease_held{role=\"daemon\"} 1\n",
        ] {
            assert!(text.contains(series), "{series:?} missing:\n{text}");
        }
        record_lease("daemon", false);
        assert!(
            handle
                .render()
                .contains("pricekeeper_lease_held{role=\"daemon\"} 0\n")
        );
    }

    #[test]
    fn request_outcomes_follow_the_status_code() {
        let cases = [
            (200, RequestOutcome::Ok),
            (204, RequestOutcome::Ok),
            (429, RequestOutcome::RateLimited),
            (418, RequestOutcome::RateLimited),
            (404, RequestOutcome::HttpError),
            (503, RequestOutcome::HttpError),
        ];
        for (status, want) in cases {
            assert_eq!(RequestOutcome::of_status(status), want, "{status}");
        }
    }
}
