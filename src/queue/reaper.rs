//! Rescues jobs whose worker stopped renewing its lease (crashed, frozen,
//! cut off from the database). Only an expired lease counts, never time
//! since the claim: a long job that keeps renewing is left alone.
//!
//! An interrupted attempt counts (a job that kills every worker it runs on
//! must end), so a job on its last attempt becomes `failed`; the others are
//! due again at once, and idle workers are woken.
//!
//! The same loop brings failed jobs back after their cool-off
//! ([`revive_failed`]), so a provider outage or an unknown symbol that
//! later becomes known never leaves a permanent hole in history.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use tokio_util::sync::CancellationToken;

use super::{Clock, JobId, JobStatus};

/// Returns expired leases to `pending` (or `failed` when attempts are used
/// up); at most `limit` per call. Rows being finished by their worker right
/// now are skipped: the worker's own guarded update decides them.
pub async fn reap_expired(
    db: impl PgExecutor<'_>,
    now: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<(JobId, JobStatus)>, sqlx::Error> {
    sqlx::query_as(
        "WITH expired AS (
             SELECT id
             FROM backfill_queue
             WHERE status = 'in_progress'
               AND locked_until < coalesce($1::timestamptz, now())
             ORDER BY locked_until
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         ),
         reaped AS (
             UPDATE backfill_queue q
             SET status = CASE WHEN q.attempts >= q.max_attempts THEN 'failed'
                               ELSE 'pending' END::backfill_status,
                 error_message = CASE
                     WHEN q.attempts >= q.max_attempts THEN format(
                         'gave up after %s attempts; the last was interrupted: worker %s '
                         'stopped renewing its lease (crashed or frozen)',
                         q.attempts, q.locked_by)
                     ELSE format(
                         'attempt %s of %s was interrupted: worker %s stopped renewing its '
                         'lease (crashed or frozen); queued again',
                         q.attempts, q.max_attempts, q.locked_by)
                 END,
                 retry_after = NULL,
                 locked_by = NULL,
                 locked_until = NULL,
                 updated_at = coalesce($1::timestamptz, now())
             FROM expired
             WHERE q.id = expired.id
             RETURNING q.id, q.status
         )
         SELECT reaped.id, reaped.status
         FROM reaped
         CROSS JOIN LATERAL pricekeeper_wake_workers(reaped.id) AS woken",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await
}

const REVIVE_FAILED: &str = include_str!("../../sql/queue_revive_failed.sql");

/// When failed jobs are queued again by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revival {
    /// Wait after the first failure; doubled for each later round.
    pub cooloff: Duration,
    /// Rounds before a job stays failed.
    pub rounds: u32,
}

/// Schedules newly failed jobs and queues those whose cool-off is over
/// (see `sql/queue_revive_failed.sql`); returns the jobs queued again.
pub async fn revive_failed(
    db: impl PgExecutor<'_>,
    now: Option<DateTime<Utc>>,
    revival: Revival,
    limit: i64,
) -> Result<Vec<JobId>, sqlx::Error> {
    sqlx::query_scalar(REVIVE_FAILED)
        .bind(now)
        .bind(super::millis(revival.cooloff))
        .bind(i32::try_from(revival.rounds).unwrap_or(i32::MAX))
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Reaps (and revives) every `every` until cancelled. Errors are logged;
/// the next round tries again.
pub async fn run(
    pool: PgPool,
    clock: Clock,
    every: Duration,
    revival: Revival,
    cancel: CancellationToken,
) {
    loop {
        match revive_failed(&pool, clock.sql(), revival, 1000).await {
            Ok(revived) if !revived.is_empty() => {
                tracing::info!(
                    jobs = revived.len(),
                    "failed jobs queued again after their cool-off"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not queue failed jobs again"),
        }
        match reap_expired(&pool, clock.sql(), 1000).await {
            Ok(reaped) if !reaped.is_empty() => {
                let failed = reaped
                    .iter()
                    .filter(|(_, s)| *s == JobStatus::Failed)
                    .count();
                tracing::warn!(
                    jobs = reaped.len(),
                    failed,
                    "reclaimed jobs whose worker stopped renewing its lease"
                );
                // More may be waiting: go again without sleeping.
                if reaped.len() == 1000 && !cancel.is_cancelled() {
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reaper could not reclaim expired leases"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
