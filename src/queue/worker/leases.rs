//! Leases of held jobs: the heartbeat renews them while the jobs run,
//! cancels the body of a job whose lease was lost (another worker owns it
//! now: carrying on would page its provider for nothing), and shutdown
//! hands back whatever is still held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::super::transitions::{Finished, renew_leases};
use super::super::{ClaimedJob, JobId, Outcome, WorkerId};
use super::{Inner, JobBody};
use crate::events::JOBS_CHANNEL;

const LOST_LEASES: &str = include_str!("../../../sql/queue_lost_leases.sql");

/// A job this worker holds, and the token that stops its body should the
/// lease be lost.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub job: ClaimedJob,
    pub lost: CancellationToken,
    /// How long the body ran, once it has (for the log line and the
    /// duration histogram).
    pub ran_for: Option<std::time::Duration>,
}

impl Held {
    pub fn new(job: ClaimedJob) -> Self {
        Self {
            job,
            lost: CancellationToken::new(),
            ran_for: None,
        }
    }
}

pub(super) type HeldJobs = Mutex<HashMap<JobId, Held>>;

/// Renews held leases every third of a lease until stopped.
pub(super) async fn heartbeat<B: JobBody>(inner: Arc<Inner<B>>, stop: CancellationToken) {
    let every = inner.config.lease / 3;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = inner.renew().await {
            tracing::warn!(error = %e, "could not renew job leases; retrying next beat");
        }
    }
}

impl<B: JobBody> Inner<B> {
    /// Renews every held lease; cancels the bodies of jobs that turn out
    /// not to be this worker's any more. Returns the jobs renewed.
    pub(super) async fn renew(&self) -> Result<Vec<JobId>, sqlx::Error> {
        let held: Vec<(JobId, i32)> = {
            let held = self.held.lock().expect("held jobs");
            held.values().map(|h| (h.job.id, h.job.attempts)).collect()
        };
        let renewed = renew_leases(
            &self.pool,
            self.id,
            self.clock.sql(),
            self.config.lease,
            &held,
        )
        .await?;
        if renewed.len() < held.len() {
            let missed: Vec<(JobId, i32)> = held
                .into_iter()
                .filter(|(id, _)| !renewed.contains(id))
                .collect();
            for (id, attempts) in lost_leases(&self.pool, self.id, &missed).await? {
                let held = self.held.lock().expect("held jobs");
                if let Some(h) = held.get(&id).filter(|h| h.job.attempts == attempts) {
                    tracing::warn!(job.id = %id, asset.id = h.job.asset.id,
                        "lease lost: another worker owns the job now; stopping its body here");
                    h.lost.cancel();
                }
            }
        }
        Ok(renewed)
    }

    /// Hands every job still held back to the queue (shutdown).
    pub(super) async fn release_held(&self) {
        let held: Vec<ClaimedJob> = {
            let held = self.held.lock().expect("held jobs");
            held.values().map(|h| h.job.clone()).collect()
        };
        if held.is_empty() {
            return;
        }
        let reason = format!(
            "handed back unfinished when worker {} shut down; the attempt does not count",
            self.id
        );
        let finished: Vec<Finished> = held
            .into_iter()
            .map(|job| Finished {
                job,
                outcome: Outcome::Release {
                    reason: reason.clone(),
                },
            })
            .collect();
        match self.finish(&finished).await {
            Ok(written) => {
                // Wake other workers: these jobs are due again.
                let _ = sqlx::query("SELECT pg_notify($1, 'released')")
                    .bind(JOBS_CHANNEL)
                    .execute(&self.pool)
                    .await;
                tracing::info!(
                    jobs = written.applied.len(),
                    "released unfinished jobs to the queue"
                );
            }
            Err(e) => tracing::error!(error = %e, jobs = finished.len(),
                "could not release unfinished jobs; the reaper returns them when their lease expires"),
        }
    }
}

/// Stops renewing these jobs' leases. Only the attempt that finished is let
/// go: if the reaper handed a job back and this worker claimed it again, the
/// newer claim keeps its entry (and its heartbeat).
pub(super) fn release_held(held: &HeldJobs, finished: &[Finished]) {
    let mut held = held.lock().expect("held jobs");
    for f in finished {
        if held
            .get(&f.job.id)
            .is_some_and(|h| h.job.attempts == f.job.attempts)
        {
            held.remove(&f.job.id);
        }
    }
}

/// Of `held` (id, attempts), those no longer this worker's.
async fn lost_leases(
    pool: &sqlx::PgPool,
    worker: WorkerId,
    held: &[(JobId, i32)],
) -> Result<Vec<(JobId, i32)>, sqlx::Error> {
    let (ids, attempts): (Vec<JobId>, Vec<i32>) = held.iter().copied().unzip();
    let lost: Vec<JobId> = sqlx::query_scalar(LOST_LEASES)
        .bind(worker)
        .bind(ids)
        .bind(attempts)
        .fetch_all(pool)
        .await?;
    Ok(held
        .iter()
        .copied()
        .filter(|(id, _)| lost.contains(id))
        .collect())
}

/// The held jobs as one line: how many, and the first ids.
pub(super) fn describe_held(held: &HeldJobs) -> String {
    let mut ids: Vec<JobId> = held.lock().expect("held jobs").keys().copied().collect();
    ids.sort();
    let shown: Vec<String> = ids.iter().take(20).map(JobId::to_string).collect();
    match ids.len() - shown.len() {
        _ if ids.is_empty() => "no backfill job held".to_owned(),
        0 => format!("{} backfill jobs held: {}", ids.len(), shown.join(", ")),
        more => format!(
            "{} backfill jobs held: {}, and {more} more",
            ids.len(),
            shown.join(", ")
        ),
    }
}
