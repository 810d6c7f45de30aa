//! Writes job outcomes in batches: one transaction per batch, retried on
//! what is worth retrying; a batch the database refuses is split down to
//! the job at fault. Then the bookkeeping: counters, logs, provider
//! successes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::super::transitions::{Finished, Written, finish_jobs};
use super::super::{Completion, JobId, Outcome};
use super::leases::release_held;
use super::{Inner, JobBody, WorkerConfig, WorkerError};
use crate::db::{Fault, fault};

/// Outcomes written per transaction, at most.
const MAX_FLUSH: usize = 512;

/// Jobs whose bars are written in one transaction, at most (about 16,000
/// rows of daily bars). Every job's bars stay in memory until they are
/// written, so this and [`FLUSH_LANES`] bound what the completer holds
/// however wide the worker runs; larger batches save little now that a
/// batch's commit does not wait for the disk (`sql/queue_finish.sql`).
pub(super) const BAR_BATCH: usize = 64;

/// Batches of outcomes written at once when they store bars: that write is
/// mostly the database inserting rows, and a second connection keeps
/// another core busy meanwhile (≈500 → ≈800 real jobs/s on two cores).
const FLUSH_LANES: usize = 2;

/// A job's outcome on its way to the completer. One that stores bars holds
/// a permit of [`Inner::bars_waiting`] until it is written: besides the
/// jobs running, the bars of at most a batch per lane are in memory. A
/// finished job waiting for a permit keeps its slot, so no more jobs are
/// claimed meanwhile.
pub(super) struct Done {
    finished: Finished,
    bars_held: Option<OwnedSemaphorePermit>,
}

/// Permits of [`Inner::bars_waiting`].
pub(super) fn bars_waiting(config: &WorkerConfig) -> Semaphore {
    Semaphore::new(config.flush_size(true) * FLUSH_LANES)
}

/// Writes outcomes as they arrive, batching whatever queued up meanwhile,
/// with up to [`FLUSH_LANES`] batches being written at once.
pub(super) async fn completer<B: JobBody>(inner: Arc<Inner<B>>, mut results: mpsc::Receiver<Done>) {
    let lanes = Arc::new(Semaphore::new(FLUSH_LANES));
    let mut writing = JoinSet::new();
    loop {
        let lane = lanes
            .clone()
            .acquire_owned()
            .await
            .expect("lanes stay open");
        let mut batch = Vec::with_capacity(MAX_FLUSH);
        if results.recv_many(&mut batch, MAX_FLUSH).await == 0 {
            break;
        }
        if !holds_bars(&batch) {
            // A status-only write is one cheap statement: one at a time, so
            // it never competes with the claims for the database.
            while writing.join_next().await.is_some() {}
        }
        // While another batch is being written, gather a full one before
        // starting the next: small writes side by side cost more than they
        // save.
        let full = inner.config.flush_size(holds_bars(&batch));
        while !writing.is_empty() && batch.len() < full {
            let room = full - batch.len();
            tokio::select! {
                got = results.recv_many(&mut batch, room) => if got == 0 { break },
                _ = writing.join_next() => break,
            }
        }
        let inner = inner.clone();
        writing.spawn(async move {
            // The permits go once the batch is written.
            let (finished, permits): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|d| (d.finished, d.bars_held)).unzip();
            inner.flush(finished).await;
            drop((lane, permits));
        });
        while writing.try_join_next().is_some() {}
    }
    while writing.join_next().await.is_some() {}
}

/// Whether some outcome in `batch` stores bars.
fn holds_bars(batch: &[Done]) -> bool {
    batch.iter().any(|d| d.bars_held.is_some())
}

/// Whether writing `batch` takes more than status changes.
fn stores_bars(batch: &[Finished]) -> bool {
    batch.iter().any(Finished::stores_bars)
}

impl<B: JobBody> Inner<B> {
    /// Wraps an outcome for the completer, waiting for a permit first if it
    /// stores bars.
    pub(super) async fn hand_over(&self, finished: Finished) -> Done {
        let held = match finished.stores_bars() {
            true => self.bars_waiting.clone().acquire_owned().await.ok(),
            false => None,
        };
        Done {
            finished,
            bars_held: held,
        }
    }

    /// One transaction for the whole batch. Anything but a refusal of the
    /// data (a deadlock, a lost connection, a restart, a lock timeout) is
    /// retried with backoff for up to half a lease: the jobs stay held and
    /// renewed meanwhile, so a database restart costs no fetched work.
    pub(super) async fn finish(&self, finished: &[Finished]) -> Result<Written, WorkerError> {
        let completions: Vec<&Completion> = finished
            .iter()
            .filter_map(|f| match &f.outcome {
                Outcome::Complete(c) => Some(c),
                _ => None,
            })
            .collect();
        let mut pause = Duration::from_millis(50);
        let give_up_at = tokio::time::Instant::now() + self.config.lease / 2;
        let written = loop {
            let attempt = async {
                if !completions.iter().any(|c| c.stores_anything()) {
                    // Status changes only: one statement, no transaction.
                    let mut conn = self.pool.acquire().await?;
                    return finish_jobs(&mut conn, self.id, self.clock.sql(), finished).await;
                }
                self.partitions.ensure(&self.pool, &completions).await?;
                let mut tx = self.pool.begin().await?;
                let written = finish_jobs(&mut tx, self.id, self.clock.sql(), finished).await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(written)
            };
            match attempt.await {
                Ok(written) => break written,
                Err(e)
                    if fault(&e) != Fault::Data
                        && tokio::time::Instant::now() + pause < give_up_at =>
                {
                    tracing::warn!(error = %e, jobs = finished.len(), retry_in = ?pause,
                        "writing job outcomes failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(source) => {
                    return Err(WorkerError::Finish {
                        jobs: finished.len(),
                        source,
                    });
                }
            }
        };
        self.after_write(finished, &written).await;
        Ok(written)
    }

    /// Writes a batch; a batch the database rejects is written job by job,
    /// and a job whose result cannot be stored fails with the reason.
    async fn flush(&self, mut finished: Vec<Finished>) {
        // Bars are written at most a batch of jobs per transaction, which
        // bounds the time a write holds locks.
        let most = self.config.flush_size(true);
        if finished.len() > most && stores_bars(&finished) {
            while !finished.is_empty() {
                let rest = finished.split_off(most.min(finished.len()));
                Box::pin(self.flush(finished)).await;
                finished = rest;
            }
            return;
        }
        match self.finish(&finished).await {
            Ok(_) => {}
            // Only a refusal about the data is the job's fault. A deadlock
            // that outlasted the retries or a server going away is not:
            // give up, and the reaper queues the job again.
            Err(WorkerError::Finish { source, .. }) if fault(&source) == Fault::Data => {
                if finished.len() > 1 {
                    for one in finished {
                        Box::pin(self.flush(vec![one])).await;
                    }
                    return;
                }
                let Some(mut one) = finished.into_iter().next() else {
                    return;
                };
                let provider = match &one.outcome {
                    Outcome::Complete(c) => c.provider,
                    _ => None,
                };
                one.outcome = Outcome::Fail {
                    reason: format!("the database refused to store this job's result: {source}"),
                    provider,
                };
                if let Err(e) = self.finish(std::slice::from_ref(&one)).await {
                    self.give_up(&[one], &e);
                }
            }
            Err(e) => self.give_up(&finished, &e),
        }
    }

    /// Stops renewing jobs whose outcome could not be written: their lease
    /// runs out and the reaper queues them again.
    fn give_up(&self, finished: &[Finished], e: &WorkerError) {
        tracing::error!(error = %e, jobs = finished.len(),
            "giving up on recording these outcomes; the jobs return to the queue when their lease expires");
        release_held(&self.held, finished);
    }

    /// Bookkeeping once a batch is committed: counters, logs, provider
    /// successes.
    async fn after_write(&self, finished: &[Finished], written: &Written) {
        let ran_for: HashMap<JobId, Duration> = {
            let held = self.held.lock().expect("held jobs");
            finished
                .iter()
                .filter_map(|f| {
                    let h = held.get(&f.job.id)?;
                    Some((
                        f.job.id,
                        h.ran_for.filter(|_| h.job.attempts == f.job.attempts)?,
                    ))
                })
                .collect()
        };
        release_held(&self.held, finished);
        for f in finished {
            if written.refused.contains(&f.job.id) {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(job.id = %f.job.id, asset.id = f.job.asset.id,
                    "lease lost before the job finished; another worker owns it now, result discarded");
                continue;
            }
            let ran = ran_for.get(&f.job.id).copied();
            crate::ops::metrics::record_job(ended_as(f), ran);
            let counter = match &f.outcome {
                Outcome::Complete(c) => {
                    // The line a new user looks for: what was stored, for
                    // which asset, from where, and how long it took.
                    tracing::info!(job.id = %f.job.id, asset.id = f.job.asset.id,
                        asset = %crate::commands::status::clean(&f.job.asset.symbol),
                        exchange = %crate::commands::status::clean(&f.job.asset.exchange),
                        provider = c.provider.map_or("none", |p| p.as_str()),
                        from = %f.job.start_date, to = %f.job.end_date,
                        bars = c.bars.len(), rejected = c.rejected.len(),
                        took = %ran.map_or_else(|| "?".to_owned(), |d| format!("{:.1}s", d.as_secs_f64())),
                        "backfill done");
                    self.snoozes_told
                        .lock()
                        .expect("snoozes told")
                        .remove(&f.job.id);
                    &self.stats.completed
                }
                Outcome::Retry { reason, .. } if f.job.attempts < f.job.max_attempts => {
                    tracing::warn!(job.id = %f.job.id, asset.id = f.job.asset.id, %reason,
                        attempt = f.job.attempts, "job will be retried");
                    &self.stats.retried
                }
                Outcome::Retry { reason, .. } | Outcome::Fail { reason, .. } => {
                    tracing::error!(job.id = %f.job.id, asset.id = f.job.asset.id, %reason, "job failed");
                    &self.stats.failed
                }
                Outcome::Snooze {
                    until, provider, ..
                } => {
                    // Once per job: a job snoozed again and again behind the
                    // same outage would otherwise repeat this every claim.
                    if self.tell_snooze(f.job.id) {
                        tracing::info!(job.id = %f.job.id, asset.id = f.job.asset.id,
                            asset = %crate::commands::status::clean(&f.job.asset.symbol),
                            provider = provider.map_or("a provider", |p| p.as_str()), %until,
                            "job waits for a provider cooldown: queued behind {} cooldown until {until}",
                            provider.map_or("a provider", |p| p.as_str()));
                    }
                    &self.stats.snoozed
                }
                Outcome::Release { reason } => {
                    tracing::info!(job.id = %f.job.id, asset.id = f.job.asset.id, %reason,
                        "job handed back to the queue");
                    &self.stats.released
                }
                Outcome::Cancel { reason } => {
                    tracing::info!(job.id = %f.job.id, asset.id = f.job.asset.id, %reason,
                        "job cancelled");
                    &self.stats.cancelled
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.body.after_write(&self.clock).await;
    }
}

/// The status a written outcome left its job in, for the metrics.
fn ended_as(f: &Finished) -> &'static str {
    match &f.outcome {
        Outcome::Complete(_) => "completed",
        Outcome::Retry { .. } if f.job.attempts < f.job.max_attempts => "retried",
        Outcome::Retry { .. } | Outcome::Fail { .. } => "failed",
        Outcome::Snooze { .. } => "rate_limited",
        Outcome::Release { .. } => "released",
        Outcome::Cancel { .. } => "cancelled",
    }
}

impl<B: JobBody> Inner<B> {
    /// Whether this snooze of `job` is the first this worker logs. The set
    /// is bounded: past its size it starts afresh (a repeated line, never
    /// unbounded memory).
    fn tell_snooze(&self, job: JobId) -> bool {
        let mut told = self.snoozes_told.lock().expect("snoozes told");
        if told.len() >= 10_000 {
            told.clear();
        }
        told.insert(job)
    }
}
