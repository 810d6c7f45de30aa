//! Leases of held jobs: the heartbeat renews them while the jobs run, and
//! shutdown hands back whatever is still held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::super::transitions::{Finished, renew_leases};
use super::super::{ClaimedJob, JobId, Outcome};
use super::{Inner, JobBody};
use crate::events::JOBS_CHANNEL;

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
    pub(super) async fn renew(&self) -> Result<Vec<JobId>, sqlx::Error> {
        let held: Vec<(JobId, i32)> = {
            let held = self.held.lock().expect("held jobs");
            held.values().map(|j| (j.id, j.attempts)).collect()
        };
        renew_leases(
            &self.pool,
            self.id,
            self.clock.sql(),
            self.config.lease,
            &held,
        )
        .await
    }

    /// Hands every job still held back to the queue (shutdown).
    pub(super) async fn release_held(&self) {
        let held: Vec<ClaimedJob> = {
            let held = self.held.lock().expect("held jobs");
            held.values().cloned().collect()
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
pub(super) fn release_held(held: &Mutex<HashMap<JobId, ClaimedJob>>, finished: &[Finished]) {
    let mut held = held.lock().expect("held jobs");
    for f in finished {
        if held
            .get(&f.job.id)
            .is_some_and(|j| j.attempts == f.job.attempts)
        {
            held.remove(&f.job.id);
        }
    }
}
