//! Runs one job body, bounded in time; a panic or an overrun becomes a
//! transient failure instead of taking the worker down.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::super::{ClaimedJob, Outcome, backoff};
use super::{Inner, JobBody};

impl<B: JobBody> Inner<B> {
    pub(super) async fn run_body(&self, job: &ClaimedJob) -> Outcome {
        let deadline = self.config.job_deadline();
        let run = AssertUnwindSafe(self.body.run(job, &self.clock)).catch_unwind();
        let failure = match tokio::time::timeout(deadline, run).await {
            Ok(Ok(outcome)) => return outcome,
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                format!("the job crashed the worker task ({what})")
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
