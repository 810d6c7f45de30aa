//! Retention: the tables that grow with every write are trimmed in small
//! batches, each its own short transaction, so none holds locks for long
//! or bloats the WAL at once:
//!
//! - completed and cancelled backfill jobs older than
//!   PRICEKEEPER_JOB_RETENTION (their rejected rows go with them), and
//!   failed jobs a later job has since completed over their range; any
//!   other failed job stays until an operator retries or cancels it;
//! - outbox events processed longer ago than PRICEKEEPER_EVENT_RETENTION;
//! - rejected provider rows older than PRICEKEEPER_REJECT_RETENTION;
//! - holdings back at zero (a missing row means the same).
//!
//! One process does it: the active daemon (whoever holds its leader lease),
//! or, when no daemon is active, one worker under a short `retention`
//! lease. Tests call [`run_once`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::metrics;
use crate::config::{duration, ranged};
use crate::daemon::lease::{self, Leadership};

const COMPLETED: &str = include_str!("../../sql/retention_completed.sql");
const CANCELLED: &str = include_str!("../../sql/retention_cancelled.sql");
const SUPERSEDED: &str = include_str!("../../sql/retention_superseded.sql");
const EVENTS_FRONTIER: &str = include_str!("../../sql/retention_events_frontier.sql");
const EVENTS: &str = include_str!("../../sql/retention_events.sql");
const REJECTS: &str = include_str!("../../sql/retention_rejects.sql");
const HOLDINGS: &str = include_str!("../../sql/retention_holdings.sql");
const PROVIDER_MINUTES: &str = include_str!("../../sql/retention_provider_minutes.sql");
/// Per-minute provider counts are kept two days (the status page shows one hour).
const PROVIDER_MINUTES_KEPT: Duration = Duration::from_secs(2 * DAY);

/// The lease a worker takes to trim when no daemon is active. Shorter than
/// a round, so the next round may fall to any worker.
const ROLE: &str = "retention";
const DAY: u64 = 86_400;

#[derive(Debug, Clone, clap::Args)]
pub struct RetentionArgs {
    /// How long completed and cancelled backfill jobs are kept (`30d`).
    #[arg(long, env = "PRICEKEEPER_JOB_RETENTION", default_value = "30days",
          value_parser = duration("PRICEKEEPER_JOB_RETENTION", Duration::from_secs(3600), Duration::from_secs(3650 * DAY)),
          help_heading = "Retention")]
    pub job_retention: Duration,

    /// How long processed outbox events are kept (`7d`).
    #[arg(long, env = "PRICEKEEPER_EVENT_RETENTION", default_value = "7days",
          value_parser = duration("PRICEKEEPER_EVENT_RETENTION", Duration::from_secs(3600), Duration::from_secs(3650 * DAY)),
          help_heading = "Retention")]
    pub event_retention: Duration,

    /// How long rows a provider sent that failed validation are kept (`90d`).
    #[arg(long, env = "PRICEKEEPER_REJECT_RETENTION", default_value = "90days",
          value_parser = duration("PRICEKEEPER_REJECT_RETENTION", Duration::from_secs(3600), Duration::from_secs(3650 * DAY)),
          help_heading = "Retention")]
    pub reject_retention: Duration,

    /// Rows deleted per transaction; small batches keep locks and WAL bursts short.
    #[arg(long, env = "PRICEKEEPER_RETENTION_BATCH", default_value_t = 1000,
          value_parser = ranged::<u32>("PRICEKEEPER_RETENTION_BATCH", 1, 100_000),
          help_heading = "Retention")]
    pub retention_batch: u32,

    /// Time between retention passes.
    #[arg(long, env = "PRICEKEEPER_RETENTION_INTERVAL", default_value = "1h",
          value_parser = duration("PRICEKEEPER_RETENTION_INTERVAL", Duration::from_secs(1), Duration::from_secs(7 * DAY)),
          help_heading = "Retention")]
    pub retention_interval: Duration,
}

impl Default for RetentionArgs {
    fn default() -> Self {
        Self {
            job_retention: Duration::from_secs(30 * DAY),
            event_retention: Duration::from_secs(7 * DAY),
            reject_retention: Duration::from_secs(90 * DAY),
            retention_batch: 1000,
            retention_interval: Duration::from_secs(3600),
        }
    }
}

/// What one pass deleted from one table, and its slowest batch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trimmed {
    pub what: &'static str,
    pub deleted: u64,
    pub batches: u32,
    pub max_batch_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub trimmed: Vec<Trimmed>,
}

impl Report {
    pub fn deleted(&self) -> u64 {
        self.trimmed.iter().map(|t| t.deleted).sum()
    }
}

/// One full pass at `now` (the database's cut-offs are computed from it),
/// stopping between batches once `cancel` fires.
pub async fn run_once(
    pool: &PgPool,
    args: &RetentionArgs,
    now: DateTime<Utc>,
    cancel: &CancellationToken,
) -> Result<Report, sqlx::Error> {
    let before = |keep: Duration| now - chrono::Duration::from_std(keep).unwrap_or_default();
    let jobs = before(args.job_retention);
    let events = before(args.event_retention);
    let frontier: Option<i64> = sqlx::query_scalar(EVENTS_FRONTIER)
        .bind(events)
        .fetch_optional(pool)
        .await?;
    let batch = i64::from(args.retention_batch);
    let passes: [(&'static str, &str, DateTime<Utc>, Option<i64>); 7] = [
        // Superseded failures first: the completed job that superseded
        // one may be about to go.
        ("superseded failed jobs", SUPERSEDED, jobs, None),
        ("completed jobs", COMPLETED, jobs, None),
        ("cancelled jobs", CANCELLED, jobs, None),
        ("processed events", EVENTS, events, frontier),
        (
            "rejected rows",
            REJECTS,
            before(args.reject_retention),
            None,
        ),
        ("holdings at zero", HOLDINGS, jobs, None),
        (
            "provider minutes",
            PROVIDER_MINUTES,
            before(PROVIDER_MINUTES_KEPT),
            None,
        ),
    ];
    let mut report = Report::default();
    for (what, sql, cutoff, bound) in passes {
        let mut t = Trimmed {
            what,
            ..Trimmed::default()
        };
        let pass = Instant::now();
        while !cancel.is_cancelled() {
            let started = Instant::now();
            let mut query = sqlx::query(sql).bind(cutoff).bind(batch);
            if what == "processed events" {
                query = query.bind(bound);
            }
            let deleted = query.execute(pool).await?.rows_affected();
            let took = started.elapsed().as_secs_f64() * 1000.0;
            t.max_batch_ms = t.max_batch_ms.max(took);
            t.batches += 1;
            t.deleted += deleted;
            if deleted < batch as u64 {
                break;
            }
        }
        t.total_ms = pass.elapsed().as_secs_f64() * 1000.0;
        t.max_batch_ms = crate::bench::round3(t.max_batch_ms);
        t.total_ms = crate::bench::round3(t.total_ms);
        metrics::record_retention(label(what), t.deleted);
        report.trimmed.push(t);
    }
    Ok(report)
}

fn label(what: &str) -> &'static str {
    match what {
        "processed events" => "portfolio_events",
        "rejected rows" => "backfill_rejects",
        "holdings at zero" => "holdings",
        "provider minutes" => "provider_minutes",
        _ => "backfill_queue",
    }
}

/// Who may trim in this process.
pub enum Gate {
    /// A daemon process: only while it is the active daemon.
    Daemon(Arc<Leadership>),
    /// A worker: only while no daemon is active, under the retention lease.
    Worker { holder: Uuid },
}

impl Gate {
    pub async fn open(&self, pool: &PgPool, lease_for: Duration) -> Result<bool, sqlx::Error> {
        match self {
            Self::Daemon(leadership) => Ok(leadership.current().is_some()),
            Self::Worker { holder } => {
                let daemon_active: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT FROM leader_leases
                                    WHERE role = $1 AND expires_at > clock_timestamp())",
                )
                .bind(crate::daemon::ROLE)
                .fetch_one(pool)
                .await?;
                if daemon_active {
                    return Ok(false);
                }
                Ok(lease::try_acquire(pool, ROLE, *holder, lease_for)
                    .await?
                    .is_some())
            }
        }
    }
}

/// Runs a pass every `retention_interval` (the first one a minute after
/// start, so a starting fleet settles its leases first) until `cancel`.
pub async fn run(pool: PgPool, args: RetentionArgs, gate: Gate, cancel: CancellationToken) {
    let lease_for = (args.retention_interval / 2).max(Duration::from_secs(1));
    let mut wait = args.retention_interval.min(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = args.retention_interval;
        match gate.open(&pool, lease_for).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!("retention: another process trims this round");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot tell whose turn it is; skipping this round");
                continue;
            }
        }
        match run_once(&pool, &args, Utc::now(), &cancel).await {
            Ok(report) if report.deleted() > 0 => {
                for t in report.trimmed.iter().filter(|t| t.deleted > 0) {
                    tracing::info!(
                        what = t.what,
                        deleted = t.deleted,
                        batches = t.batches,
                        max_batch_ms = t.max_batch_ms,
                        "retention: old rows deleted"
                    );
                }
            }
            Ok(_) => tracing::debug!("retention: nothing to delete"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying next round"),
        }
    }
}
