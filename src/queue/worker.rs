//! One worker process: claims jobs in batches, runs up to `concurrency` job
//! bodies at once, and writes their outcomes in batches.
//!
//! ```text
//!  dispatcher ── claim (≤ free slots) ──▶ job tasks ──▶ completer ── a transaction per batch
//!      ▲  LISTEN pricekeeper_jobs / poll / next retry_after        (two at once when storing bars)
//!                                                                  heartbeat: renews held leases
//! ```
//!
//! A job's slot is freed once the completer has its result, and the result
//! queue holds one batch: memory and in-flight jobs stay bounded however
//! slow the database is.
//!
//! Invariants: a job is in `held` from its claim until its outcome is
//! written (or given up), and only held jobs get their lease renewed; so a
//! job whose outcome cannot be written stops being renewed and the reaper
//! returns it. On shutdown the dispatcher stops claiming, running jobs get
//! the grace period, and whatever is still held is released to `pending`
//! with its attempt given back.
//!
//! Tests drive [`Worker::process_next`] (claim, run, write one batch)
//! instead of the loop, so they never sleep.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::claim::{claim_jobs, next_due_in};
use super::store::Partitions;
use super::transitions::{Finished, Written, finish_jobs, renew_leases};
use super::{
    ChainFilter, ClaimedJob, Clock, Completion, JobId, Outcome, WorkerId, backoff, cooldown, reaper,
};
use crate::config::Settings;
use crate::db::{Fault, fault};
use crate::events::{JOBS_CHANNEL, listener};
use crate::providers::ProviderKind;

/// Outcomes written per transaction, at most.
const MAX_FLUSH: usize = 512;

/// Batches of outcomes written at once when they store bars: that write is
/// mostly the database inserting rows, and a second connection keeps
/// another core busy meanwhile (≈500 → ≈800 real jobs/s on two cores).
const FLUSH_LANES: usize = 2;

/// How long a claim waits for more free slots once one is free.
const BATCH_WAIT: Duration = Duration::from_millis(2);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("could not claim backfill jobs: {0}")]
    Claim(#[source] sqlx::Error),
    #[error("could not record the outcome of {jobs} backfill jobs: {source}")]
    Finish { jobs: usize, source: sqlx::Error },
}

/// How a worker process runs; from [`Settings`] in production.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs run at once.
    pub concurrency: usize,
    /// Jobs taken per claim, at most.
    pub batch_size: u32,
    pub lease: Duration,
    pub poll_interval: Duration,
    /// On shutdown, how long running jobs may take before they are released.
    pub grace: Duration,
    /// `RETRY_EXPONENTIAL_BASE`.
    pub retry_base: Duration,
    /// When failed jobs are queued again by themselves.
    pub revival: reaper::Revival,
}

impl WorkerConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            concurrency: settings.concurrency as usize,
            batch_size: settings.backfill_batch_size,
            lease: settings.job_lease,
            poll_interval: settings.poll_interval,
            grace: settings.shutdown_grace,
            retry_base: settings.retry_exponential_base,
            revival: reaper::Revival {
                cooloff: settings.failed_cooloff,
                rounds: settings.failed_rounds,
            },
        }
    }

    /// A job body running longer than this is abandoned as a transient
    /// failure (every provider call has its own timeout; this catches a
    /// body stuck anywhere else, which would otherwise renew its lease
    /// forever).
    fn job_deadline(&self) -> Duration {
        (self.lease * 10).max(Duration::from_secs(300))
    }
}

/// What a job does once claimed.
#[async_trait]
pub trait JobBody: Send + Sync + 'static {
    /// The provider chains, so the claim can leave jobs whose every
    /// provider is cooling down. Empty: cooldowns do not concern this body.
    fn chains(&self) -> ChainFilter {
        ChainFilter::default()
    }

    /// Runs before every claim (e.g. to refresh the cooldowns).
    async fn before_claim(&self, _clock: &Clock) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Runs one job. Never fails: every ending is an [`Outcome`].
    async fn run(&self, job: &ClaimedJob, clock: &Clock) -> Outcome;
}

/// A body that succeeds at once and stores nothing: the bare queue, for
/// measuring it.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoOp;

#[async_trait]
impl JobBody for NoOp {
    async fn run(&self, _job: &ClaimedJob, _clock: &Clock) -> Outcome {
        Outcome::Complete(Completion::empty())
    }
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Stats {
    pub claimed: AtomicU64,
    pub completed: AtomicU64,
    pub retried: AtomicU64,
    pub snoozed: AtomicU64,
    pub failed: AtomicU64,
    pub released: AtomicU64,
    pub cancelled: AtomicU64,
    /// Outcomes not written because the lease had been lost.
    pub refused: AtomicU64,
}

/// One claimed batch, run and written ([`Worker::process_next`]).
#[derive(Debug, Default)]
pub struct Step {
    pub finished: Vec<Finished>,
    pub written: Written,
}

pub struct Worker<B> {
    inner: Arc<Inner<B>>,
}

impl<B> Clone for Worker<B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<B> {
    pool: PgPool,
    id: WorkerId,
    config: WorkerConfig,
    body: B,
    chains: ChainFilter,
    clock: Clock,
    held: Mutex<HashMap<JobId, ClaimedJob>>,
    partitions: Partitions,
    stats: Stats,
}

impl<B: JobBody> Worker<B> {
    /// A worker with a fresh id, on the database clock.
    pub fn new(pool: PgPool, config: WorkerConfig, body: B) -> Self {
        Self::with_clock(pool, config, body, Clock::Database)
    }

    pub fn with_clock(pool: PgPool, config: WorkerConfig, body: B, clock: Clock) -> Self {
        let chains = body.chains();
        Self {
            inner: Arc::new(Inner {
                pool,
                id: WorkerId::new(),
                config,
                body,
                chains,
                clock,
                held: Mutex::new(HashMap::new()),
                partitions: Partitions::default(),
                stats: Stats::default(),
            }),
        }
    }

    pub fn id(&self) -> WorkerId {
        self.inner.id
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Claims up to `limit` jobs (they are held, and renewed, until finished).
    pub async fn claim(&self, limit: u32) -> Result<Vec<ClaimedJob>, WorkerError> {
        self.inner.claim(limit).await
    }

    /// Runs a job's body (bounded in time; a panic becomes a retry).
    pub async fn run_body(&self, job: &ClaimedJob) -> Outcome {
        self.inner.run_body(job).await
    }

    /// Writes outcomes of held jobs in one transaction.
    pub async fn finish(&self, finished: Vec<Finished>) -> Result<Written, WorkerError> {
        self.inner.finish(&finished).await
    }

    /// Renews the leases of every job held; returns those renewed.
    pub async fn heartbeat(&self) -> Result<Vec<JobId>, sqlx::Error> {
        self.inner.renew().await
    }

    /// One step: claims a batch, runs its bodies concurrently, writes the
    /// outcomes. An empty step means nothing was due.
    pub async fn process_next(&self) -> Result<Step, WorkerError> {
        let jobs = self.claim(self.inner.config.batch_size).await?;
        if jobs.is_empty() {
            return Ok(Step::default());
        }
        let outcomes = futures::future::join_all(jobs.iter().map(|j| self.run_body(j))).await;
        let finished: Vec<Finished> = jobs
            .into_iter()
            .zip(outcomes)
            .map(|(job, outcome)| Finished { job, outcome })
            .collect();
        let written = self.inner.finish(&finished).await?;
        Ok(Step { finished, written })
    }

    /// Runs until `cancel`: claims while there are free slots and due jobs,
    /// sleeps until a notification, the next `retry_after` or the poll
    /// interval otherwise; reaps expired leases; shuts down as described in
    /// the module documentation. Database errors are logged and retried.
    pub async fn run(self, cancel: CancellationToken) {
        let inner = self.inner;
        let config = inner.config.clone();
        tracing::info!(worker.id = %inner.id, concurrency = config.concurrency,
            batch_size = config.batch_size, lease = ?config.lease, "backfill worker started");

        let helpers = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let mut aux = JoinSet::new();
        aux.spawn(listener::listen(
            inner.pool.clone(),
            JOBS_CHANNEL,
            wake.clone(),
            helpers.clone(),
        ));
        aux.spawn(heartbeat(inner.clone(), helpers.clone()));
        aux.spawn(reaper::run(
            inner.pool.clone(),
            inner.clock.clone(),
            (config.lease / 2).clamp(Duration::from_secs(1), Duration::from_secs(30)),
            config.revival,
            helpers.clone(),
        ));
        // Results waiting to be written hold their bars: one batch at most.
        let (done, results) = mpsc::channel(config.batch_size as usize);
        let completer = tokio::spawn(completer(inner.clone(), results));

        let mut running = dispatch(&inner, &wake, done, &cancel).await;

        tracing::info!(worker.id = %inner.id, running = running.len(),
            grace = ?config.grace, "worker stopping: no new claims; finishing running jobs");
        let finished_in_time = tokio::time::timeout(config.grace, async {
            while running.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !finished_in_time {
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        // The job tasks held the last senders: the completer writes what
        // they sent and ends.
        let _ = completer.await;
        inner.release_held().await;
        helpers.cancel();
        while aux.join_next().await.is_some() {}
        tracing::info!(worker.id = %inner.id, "backfill worker stopped");
    }
}

/// The claiming loop. Returns the job tasks still running at cancellation.
async fn dispatch<B: JobBody>(
    inner: &Arc<Inner<B>>,
    wake: &Notify,
    done: mpsc::Sender<Finished>,
    cancel: &CancellationToken,
) -> JoinSet<()> {
    let config = &inner.config;
    let slots = Arc::new(Semaphore::new(config.concurrency));
    // Claim once a whole batch of slots is free, or BATCH_WAIT after the first.
    let low_water = (config.batch_size as usize).min(config.concurrency) as u32;
    let mut running = JoinSet::new();
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        while let Some(ended) = running.try_join_next() {
            if let Err(e) = ended {
                tracing::error!(error = %e, "job task ended abnormally");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            slot = slots.acquire() => drop(slot),
        }
        if (slots.available_permits() as u32) < low_water {
            // Under load, give a few more slots a moment to free up, so
            // claims stay batched; never wait on them for long, or a few
            // long jobs would idle the free slots.
            let _ = tokio::time::timeout(BATCH_WAIT, slots.acquire_many(low_water)).await;
        }
        let want = (slots.available_permits() as u32).min(config.batch_size);
        let jobs = match inner.claim(want).await {
            Ok(jobs) => {
                backoff = Duration::from_millis(100);
                jobs
            }
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?backoff, "claim failed");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let claimed = jobs.len() as u32;
        for job in jobs {
            // Only this loop takes slots, and it claimed no more than were free.
            let slot = slots
                .clone()
                .try_acquire_owned()
                .expect("a free slot per claimed job");
            let (inner, done) = (inner.clone(), done.clone());
            running.spawn(async move {
                let outcome = inner.run_body(&job).await;
                // The slot is free once the completer has the result, so a
                // lagging completer slows claims instead of piling up jobs.
                let _ = done.send(Finished { job, outcome }).await;
                drop(slot);
            });
        }
        if claimed == want {
            continue; // more may be due
        }
        let pause = match next_due_in(&inner.pool, inner.clock.sql()).await {
            Ok(Some(due)) => due.min(config.poll_interval),
            _ => config.poll_interval,
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
    running
}

/// Writes outcomes as they arrive, batching whatever queued up meanwhile,
/// with up to [`FLUSH_LANES`] batches being written at once.
async fn completer<B: JobBody>(inner: Arc<Inner<B>>, mut results: mpsc::Receiver<Finished>) {
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
        if !stores_bars(&batch) {
            // A status-only write is one cheap statement: one at a time, so
            // it never competes with the claims for the database.
            while writing.join_next().await.is_some() {}
        }
        // While another batch is being written, gather a full one before
        // starting the next: small writes side by side cost more than they
        // save.
        let full = inner.config.batch_size as usize;
        while !writing.is_empty() && batch.len() < full {
            let room = MAX_FLUSH - batch.len();
            tokio::select! {
                got = results.recv_many(&mut batch, room) => if got == 0 { break },
                _ = writing.join_next() => break,
            }
        }
        let inner = inner.clone();
        writing.spawn(async move {
            inner.flush(batch).await;
            drop(lane);
        });
        while writing.try_join_next().is_some() {}
    }
    while writing.join_next().await.is_some() {}
}

/// Whether writing `batch` takes more than status changes.
fn stores_bars(batch: &[Finished]) -> bool {
    batch
        .iter()
        .any(|f| matches!(&f.outcome, Outcome::Complete(c) if c.stores_anything()))
}

/// Renews held leases every third of a lease until stopped.
async fn heartbeat<B: JobBody>(inner: Arc<Inner<B>>, stop: CancellationToken) {
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
    async fn claim(&self, limit: u32) -> Result<Vec<ClaimedJob>, WorkerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.body
            .before_claim(&self.clock)
            .await
            .map_err(WorkerError::Claim)?;
        let jobs = claim_jobs(
            &self.pool,
            self.id,
            self.clock.sql(),
            limit,
            self.config.lease,
            &self.chains,
        )
        .await
        .map_err(WorkerError::Claim)?;
        if !jobs.is_empty() {
            let mut held = self.held.lock().expect("held jobs");
            held.extend(jobs.iter().map(|j| (j.id, j.clone())));
            self.stats
                .claimed
                .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        }
        Ok(jobs)
    }

    async fn run_body(&self, job: &ClaimedJob) -> Outcome {
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

    async fn renew(&self) -> Result<Vec<JobId>, sqlx::Error> {
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

    /// One transaction for the whole batch. Anything but a refusal of the
    /// data (a deadlock, a lost connection, a restart, a lock timeout) is
    /// retried with backoff for up to half a lease: the jobs stay held and
    /// renewed meanwhile, so a database restart costs no fetched work.
    async fn finish(&self, finished: &[Finished]) -> Result<Written, WorkerError> {
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
        // bounds the memory a write takes (and the time it holds locks).
        let most = self.config.batch_size as usize;
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
        {
            release_held(&self.held, finished);
        }
        let mut served: HashMap<ProviderKind, i64> = HashMap::new();
        for f in finished {
            if written.refused.contains(&f.job.id) {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(job.id = %f.job.id, asset.id = f.job.asset.id,
                    "lease lost before the job finished; another worker owns it now, result discarded");
                continue;
            }
            let counter = match &f.outcome {
                Outcome::Complete(c) => {
                    if let Some(p) = c.provider {
                        *served.entry(p).or_default() += 1;
                    }
                    tracing::debug!(job.id = %f.job.id, asset.id = f.job.asset.id,
                        bars = c.bar_count(), rejected = c.rejected_count(), "job completed");
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
                Outcome::Snooze { until, .. } => {
                    tracing::info!(job.id = %f.job.id, asset.id = f.job.asset.id, %until,
                        "job waits for a provider cooldown");
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
        for (provider, n) in served {
            if let Err(e) =
                cooldown::record_success(&self.pool, provider, self.clock.sql(), n).await
            {
                tracing::warn!(%provider, error = %e, "could not record provider successes");
            }
        }
    }

    /// Hands every job still held back to the queue (shutdown).
    async fn release_held(&self) {
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
fn release_held(held: &Mutex<HashMap<JobId, ClaimedJob>>, finished: &[Finished]) {
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
