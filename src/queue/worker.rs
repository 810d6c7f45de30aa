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

mod body;
mod completer;
mod dispatch;
mod leases;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::store::Partitions;
use super::transitions::{Finished, Written};
use super::{ChainFilter, ClaimedJob, Clock, Completion, JobId, Outcome, WorkerId, reaper};
use crate::config::Settings;
use crate::events::{JOBS_CHANNEL, listener};
use completer::completer;
use dispatch::dispatch;
use leases::{HeldJobs, describe_held, heartbeat};

/// On shutdown, after the grace period, how long the last outcomes and the
/// hand-back of unfinished jobs may take. Bounded, so that a database that
/// went away cannot hold the process (each write would otherwise wait out
/// the pool's acquire timeout, five times over); what is not written comes
/// back through the reaper when its lease runs out.
pub const FINAL_WRITES: Duration = Duration::from_secs(5);

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

    /// Outcomes written in one transaction: a claim's batch, and of jobs
    /// that store bars at most [`completer::BAR_BATCH`].
    fn flush_size(&self, bars: bool) -> usize {
        let batch = self.batch_size.max(1) as usize;
        if bars {
            batch.min(completer::BAR_BATCH)
        } else {
            batch
        }
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

    /// Runs beside the worker loop until `cancel` (e.g. to watch the
    /// providers' cooldowns).
    async fn background(&self, cancel: CancellationToken) {
        let _ = cancel;
    }

    /// Runs after every batch of outcomes is written (e.g. to record what
    /// the providers did meanwhile).
    async fn after_write(&self, _clock: &Clock) {}

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
    held: HeldJobs,
    partitions: Partitions,
    stats: Stats,
    /// Jobs whose wait behind a cooldown was logged already.
    snoozes_told: Mutex<std::collections::HashSet<JobId>>,
    /// Bounds the finished jobs whose bars wait in memory to be written.
    bars_waiting: Arc<Semaphore>,
}

impl<B: JobBody> Worker<B> {
    /// A worker with a fresh id, on the database clock.
    pub fn new(pool: PgPool, config: WorkerConfig, body: B) -> Self {
        Self::with_clock(pool, config, body, Clock::Database)
    }

    pub fn with_clock(pool: PgPool, config: WorkerConfig, body: B, clock: Clock) -> Self {
        let chains = body.chains();
        let bars_waiting = Arc::new(completer::bars_waiting(&config));
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
                snoozes_told: Mutex::default(),
                bars_waiting,
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

    /// The jobs this worker holds right now, for a log line.
    pub fn in_progress(&self) -> String {
        describe_held(&self.inner.held)
    }

    /// Renews the leases of every job held and cancels the bodies of those
    /// whose lease was lost; returns those renewed.
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
        {
            let (inner, stop) = (inner.clone(), helpers.clone());
            aux.spawn(async move { inner.body.background(stop).await });
        }
        aux.spawn(reaper::run(
            inner.pool.clone(),
            inner.clock.clone(),
            (config.lease / 2).clamp(Duration::from_secs(1), Duration::from_secs(30)),
            config.revival,
            helpers.clone(),
        ));
        // A batch of results in hand; those that store bars are bounded
        // by `bars_waiting` too.
        let (done, results) = mpsc::channel(config.batch_size.max(1) as usize);
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
        let stop_writing = completer.abort_handle();
        let last_writes = async {
            let _ = completer.await;
            inner.release_held().await;
        };
        if tokio::time::timeout(FINAL_WRITES, last_writes)
            .await
            .is_err()
        {
            tracing::error!(worker.id = %inner.id, in_progress = %describe_held(&inner.held),
                "could not write the last outcomes in time; the reaper returns these jobs when their lease runs out");
            stop_writing.abort();
        }
        helpers.cancel();
        // The helpers stop at once unless a database call holds them (a
        // renewal waiting for a connection): then they are aborted, which
        // only rolls back what they were doing.
        let helpers_done = async { while aux.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(1), helpers_done)
            .await
            .is_err()
        {
            aux.shutdown().await;
        }
        tracing::info!(worker.id = %inner.id, "backfill worker stopped");
    }
}
