//! Runs one job body, bounded in time; a panic or an overrun becomes a
//! transient failure instead of taking the worker down, and a body whose
//! lease the heartbeat found lost is dropped on the spot.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::super::{ClaimedJob, Outcome, backoff};
use super::{Inner, JobBody};

impl<B: JobBody> Inner<B> {
    pub(super) async fn run_body(&self, job: &ClaimedJob) -> Outcome {
        let deadline = self.config.job_deadline();
        let lost = {
            let held = self.held.lock().expect("held jobs");
            held.get(&job.id)
                .filter(|h| h.job.attempts == job.attempts)
                .map(|h| h.lost.clone())
                .unwrap_or_default()
        };
        let started = std::time::Instant::now();
        let outcome = self.run_bounded(job, deadline, lost).await;
        if let Some(h) = self.held.lock().expect("held jobs").get_mut(&job.id)
            && h.job.attempts == job.attempts
        {
            h.ran_for = Some(started.elapsed());
        }
        outcome
    }

    async fn run_bounded(
        &self,
        job: &ClaimedJob,
        deadline: std::time::Duration,
        lost: tokio_util::sync::CancellationToken,
    ) -> Outcome {
        let run = AssertUnwindSafe(self.body.run(job, &self.clock)).catch_unwind();
        let bounded = tokio::time::timeout(deadline, run);
        let ran = tokio::select! {
            ran = bounded => ran,
            // Another worker owns the job now; the write of this outcome
            // is refused by the lease guard, it only has to say why.
            _ = lost.cancelled() => return Outcome::Release {
                reason: "the lease was lost while the job ran; another worker owns it".to_owned(),
            },
        };
        let failure = match ran {
            Ok(Ok(outcome)) => return outcome,
            Ok(Err(panic)) => {
                format!(
                    "the job crashed the worker task ({})",
                    crate::panics::message(&*panic)
                )
            }
            Err(_) => format!(
                "the job ran longer than {}",
                humantime::format_duration(deadline)
            ),
        };
        tracing::error!(job.id = %job.id, asset.id = job.asset.id, reason = %failure, "job body failed");
        Outcome::Retry {
            after: backoff::transient_delay(
                self.config.retry_base,
                job.attempts.max(1) as u32,
                rand::random(),
            ),
            reason: failure,
            provider: None,
        }
    }
}
