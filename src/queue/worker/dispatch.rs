//! The claiming loop: claims as many due jobs as there are free slots and
//! spawns their bodies; sleeps until a notification, the next due job or
//! the poll interval when nothing is due.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::super::claim::{claim_jobs, next_due_in};
use super::super::transitions::Finished;
use super::super::{ClaimedJob, Clock};
use super::completer::Done;
use super::leases::Held;
use super::{Inner, JobBody, WorkerError};

/// How long a claim waits for more free slots once one is free.
const BATCH_WAIT: Duration = Duration::from_millis(2);

/// Added to the time until the next due job before sleeping on it.
const DUE_SLACK: Duration = Duration::from_millis(10);

/// How long the time until the next due job is trusted once read. Work
/// that becomes due sooner arrives with a notification (new, released or
/// reaped jobs); snoozes and retries are minutes away.
const NEXT_DUE_TTL: Duration = Duration::from_secs(1);

/// [`next_due_in`], read at most once per [`NEXT_DUE_TTL`]: under a
/// trickle of jobs every claim comes up short, and each paid a second
/// round trip for it.
#[derive(Default)]
struct NextDue {
    read: Option<(tokio::time::Instant, Option<Duration>)>,
}

impl NextDue {
    async fn pause(&mut self, pool: &sqlx::PgPool, clock: &Clock) -> Option<Duration> {
        let now = tokio::time::Instant::now();
        if let Some((at, due)) = self.read
            && now.duration_since(at) < NEXT_DUE_TTL
            && matches!(clock, Clock::Database)
        {
            return due.map(|d| d.saturating_sub(now.duration_since(at)));
        }
        let due = next_due_in(pool, clock.sql()).await.ok().flatten();
        self.read = Some((now, due));
        due
    }
}

/// The claiming loop. Returns the job tasks still running at cancellation.
pub(super) async fn dispatch<B: JobBody>(
    inner: &Arc<Inner<B>>,
    wake: &Notify,
    done: mpsc::Sender<Done>,
    cancel: &CancellationToken,
) -> JoinSet<()> {
    let config = &inner.config;
    let slots = Arc::new(Semaphore::new(config.concurrency));
    // Claim once a whole batch of slots is free, or BATCH_WAIT after the first.
    let low_water = (config.batch_size as usize).min(config.concurrency) as u32;
    let mut running = JoinSet::new();
    let mut backoff = Duration::from_millis(100);
    let mut next_due = NextDue::default();
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
        // A claim waiting on a database that went away must not hold the
        // shutdown; should it have committed unseen, the reaper returns
        // its jobs when their lease runs out.
        let claimed = tokio::select! {
            _ = cancel.cancelled() => break,
            claimed = inner.claim(want) => claimed,
        };
        let jobs = match claimed {
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
                let finished = Finished { job, outcome };
                // The slot is free once the completer has the result, so a
                // lagging completer slows claims instead of piling up jobs.
                let _ = done.send(inner.hand_over(finished).await).await;
                drop(slot);
            });
        }
        if claimed == want {
            continue; // more may be due
        }
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            next = next_due.pause(&inner.pool, &inner.clock) => next,
        };
        // A little past the due time: woken a hair early, the claim would
        // find nothing and the next read no job still to come, and the
        // worker would sleep for the whole poll interval.
        let pause = next.map_or(config.poll_interval, |due| {
            (due + DUE_SLACK).min(config.poll_interval)
        });
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
    running
}

impl<B: JobBody> Inner<B> {
    pub(super) async fn claim(&self, limit: u32) -> Result<Vec<ClaimedJob>, WorkerError> {
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
            held.extend(jobs.iter().map(|j| (j.id, Held::new(j.clone()))));
            self.stats
                .claimed
                .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        }
        Ok(jobs)
    }
}
