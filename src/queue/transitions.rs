//! Every way out of `in_progress`, and lease renewal.
//!
//! A job body ends in an [`Outcome`]; [`finish_jobs`] writes a batch of them
//! in the caller's transaction with one guarded `UPDATE` (see
//! `sql/queue_finish.sql`), then stores the bars of the completions that
//! were still ours. A worker that lost a lease therefore writes nothing at
//! all for that job: not its status, not its prices.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgExecutor};

use super::{ClaimedJob, JobId, JobStatus, WorkerId, millis, store};
use crate::db::assets::Asset;
use crate::providers::{Bar, CorporateEvent, Interval, ProviderKind, Rejected};

const FINISH: &str = include_str!("../../sql/queue_finish.sql");
const ASSET_IDENTITY: &str = include_str!("../../sql/queue_asset_identity.sql");

/// How a job body ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done: store the bars, mark the job completed.
    Complete(Completion),
    /// A transient failure: `pending` again after `after`; the attempt
    /// counts, and the last allowed one ends as `failed`.
    Retry {
        after: Duration,
        reason: String,
        provider: Option<ProviderKind>,
    },
    /// Rate limited: `rate_limited` until `until`; the attempt is given back.
    Snooze {
        until: DateTime<Utc>,
        reason: String,
        provider: Option<ProviderKind>,
    },
    /// Permanent: `failed` now.
    Fail {
        reason: String,
        provider: Option<ProviderKind>,
    },
    /// Not run to the end (shutdown, or the asset changed identity while
    /// it ran): `pending` at once, attempt given back.
    Release { reason: String },
    /// Not to be run (the asset is inactive): `cancelled`, no provider
    /// called.
    Cancel { reason: String },
}

/// What a successful job stores.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The provider that served it; None for a body that calls none.
    pub provider: Option<ProviderKind>,
    pub interval: Interval,
    pub bars: Vec<Bar>,
    pub rejected: Vec<Rejected>,
    /// Splits and dividends the provider reported in the range.
    pub events: Vec<CorporateEvent>,
    /// Anything an operator should know about a success (kept in
    /// `error_message`, which is otherwise cleared).
    pub note: Option<String>,
    /// The head of the range that `provider` did not have (its history
    /// starts later), as served by providers further down the chain.
    pub head: Vec<Completion>,
    /// Where the stored history starts when no provider had the head of the
    /// range; `None` when it covers the job's whole range.
    pub covered_from: Option<NaiveDate>,
}

impl Completion {
    /// Whether writing it takes more than the status change: bars,
    /// rejected rows, or the tracked asset's bookkeeping.
    pub fn stores_anything(&self) -> bool {
        self.provider.is_some()
            || !self.bars.is_empty()
            || !self.rejected.is_empty()
            || !self.events.is_empty()
            || !self.head.is_empty()
    }

    /// This completion and its head parts, each with its own provider.
    pub fn parts(&self) -> impl Iterator<Item = &Completion> {
        std::iter::once(self).chain(self.head.iter())
    }

    /// Bars stored, over every part.
    pub fn bar_count(&self) -> usize {
        self.parts().map(|p| p.bars.len()).sum()
    }

    /// Rows rejected, over every part.
    pub fn rejected_count(&self) -> usize {
        self.parts().map(|p| p.rejected.len()).sum()
    }

    /// A success with nothing to store.
    pub fn empty() -> Self {
        Self {
            provider: None,
            interval: Interval::D1,
            bars: Vec::new(),
            rejected: Vec::new(),
            events: Vec::new(),
            note: None,
            head: Vec::new(),
            covered_from: None,
        }
    }
}

/// A job and how its body ended, ready to be written.
#[derive(Debug, Clone)]
pub struct Finished {
    pub job: ClaimedJob,
    pub outcome: Outcome,
}

impl Finished {
    /// Whether writing it takes more than the status change.
    pub fn stores_bars(&self) -> bool {
        matches!(&self.outcome, Outcome::Complete(c) if c.stores_anything())
    }
}

/// What [`finish_jobs`] wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    /// Jobs whose outcome was written (still held by this worker).
    pub applied: Vec<JobId>,
    /// Jobs whose lease was lost: nothing was written for them.
    pub refused: Vec<JobId>,
    pub bars: usize,
}

/// The row a job moves to, decided from its claim and outcome alone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transition {
    pub status: JobStatus,
    pub delay: Option<Duration>,
    pub until: Option<DateTime<Utc>>,
    pub give_back: bool,
    pub message: Option<String>,
    pub provider: Option<ProviderKind>,
    pub bars_stored: Option<i32>,
    pub bars_rejected: Option<i32>,
}

impl Transition {
    fn to(status: JobStatus, message: Option<String>) -> Self {
        Self {
            status,
            delay: None,
            until: None,
            give_back: false,
            message,
            provider: None,
            bars_stored: None,
            bars_rejected: None,
        }
    }
}

/// Where an outcome takes a job. The last allowed attempt of a transient
/// failure ends as `failed`; rate limits and releases give the attempt back.
pub(crate) fn transition(job: &ClaimedJob, outcome: &Outcome) -> Transition {
    match outcome {
        Outcome::Complete(c) => Transition {
            provider: c.provider,
            bars_stored: Some(count(c.bar_count())),
            bars_rejected: Some(count(c.rejected_count())),
            ..Transition::to(JobStatus::Completed, c.note.clone())
        },
        Outcome::Retry {
            after,
            reason,
            provider,
        } if job.attempts < job.max_attempts => Transition {
            delay: Some(*after),
            provider: *provider,
            ..Transition::to(
                JobStatus::Pending,
                Some(format!(
                    "attempt {} of {} failed: {reason}; retrying in {}",
                    job.attempts,
                    job.max_attempts,
                    humantime::format_duration(Duration::from_secs(after.as_secs()))
                )),
            )
        },
        Outcome::Retry {
            reason, provider, ..
        } => Transition {
            provider: *provider,
            ..Transition::to(
                JobStatus::Failed,
                Some(format!(
                    "gave up after {} attempts; the last failed: {reason}",
                    job.attempts
                )),
            )
        },
        Outcome::Snooze {
            until,
            reason,
            provider,
        } => Transition {
            until: Some(*until),
            give_back: true,
            provider: *provider,
            ..Transition::to(JobStatus::RateLimited, Some(reason.clone()))
        },
        Outcome::Fail { reason, provider } => Transition {
            provider: *provider,
            ..Transition::to(JobStatus::Failed, Some(reason.clone()))
        },
        Outcome::Release { reason } => Transition {
            give_back: true,
            ..Transition::to(JobStatus::Pending, Some(reason.clone()))
        },
        Outcome::Cancel { reason } => Transition::to(JobStatus::Cancelled, Some(reason.clone())),
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Writes a batch of outcomes: the guarded status change for all of them,
/// then, for completions still held, their bars, rejected rows and the
/// asset's `tracked_assets` bookkeeping. Run it in a transaction when any
/// completion [stores anything](Completion::stores_anything); otherwise it
/// is the one status statement. The year partitions the bars need must
/// exist already ([`store::Partitions`]).
pub async fn finish_jobs(
    tx: &mut PgConnection,
    worker: WorkerId,
    now: Option<DateTime<Utc>>,
    finished: &[Finished],
) -> Result<Written, sqlx::Error> {
    if finished.is_empty() {
        return Ok(Written::default());
    }
    let reidentified = reidentified_since_claim(&mut *tx, finished).await?;
    let refetch = Outcome::Release {
        reason: "the asset's identity changed while this job fetched it; fetching again under \
                 the new one (the attempt does not count)"
            .to_owned(),
    };
    // Decided from references: cloning the outcomes would copy every
    // completion's bars on the hot path.
    let rows: Vec<Transition> = finished
        .iter()
        .map(|f| {
            let outcome = if reidentified.contains(&f.job.id) {
                &refetch
            } else {
                &f.outcome
            };
            transition(&f.job, outcome)
        })
        .collect();
    let applied: Vec<JobId> = sqlx::query_scalar(FINISH)
        .bind(worker)
        .bind(now)
        .bind(finished.iter().map(|f| f.job.id).collect::<Vec<_>>())
        .bind(finished.iter().map(|f| f.job.attempts).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.status).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.delay.map(millis)).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.until).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.give_back).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.message.clone()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|t| t.provider.map(|p| p.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|t| t.bars_stored).collect::<Vec<_>>())
        .bind(rows.iter().map(|t| t.bars_rejected).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;

    let owned: HashSet<JobId> = applied.iter().copied().collect();
    let completed: Vec<(&ClaimedJob, &Completion)> = finished
        .iter()
        .filter(|f| owned.contains(&f.job.id) && !reidentified.contains(&f.job.id))
        .filter_map(|f| match &f.outcome {
            Outcome::Complete(c) => Some((&f.job, c)),
            _ => None,
        })
        .collect();
    // Head parts are stored like completions of their own, with their
    // provider as the source; coverage is the job's.
    let parts: Vec<(&ClaimedJob, &Completion)> = completed
        .iter()
        .flat_map(|&(job, c)| c.parts().map(move |part| (job, part)))
        .collect();
    let bars = store::upsert_prices(&mut *tx, &parts).await?;
    store::record_rejects(&mut *tx, &parts).await?;
    store::mark_tracked(&mut *tx, now, &completed).await?;
    let requeued = store::record_actions(&mut *tx, &parts).await?;
    if !requeued.is_empty() {
        tracing::info!(jobs = ?requeued, "a new split: bars stored on the old scale queued for a re-fetch");
    }

    let refused = finished
        .iter()
        .map(|f| f.job.id)
        .filter(|id| !owned.contains(id))
        .collect();
    Ok(Written {
        applied,
        refused,
        bars,
    })
}

/// Completions whose asset changed identity (symbol, type, exchange,
/// currency, a provider symbol) since their claim. The assets stay locked
/// FOR SHARE until the caller's transaction ends, so the answer holds
/// until the bars are stored.
async fn reidentified_since_claim(
    tx: &mut PgConnection,
    finished: &[Finished],
) -> Result<HashSet<JobId>, sqlx::Error> {
    let storing: Vec<&ClaimedJob> = finished
        .iter()
        .filter(|f| f.stores_bars())
        .map(|f| &f.job)
        .collect();
    if storing.is_empty() {
        return Ok(HashSet::new());
    }
    let mut ids: Vec<i64> = storing.iter().map(|j| j.asset.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let now: Vec<Asset> = sqlx::query_as(ASSET_IDENTITY)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    Ok(storing
        .iter()
        .filter(|job| {
            now.iter()
                .find(|a| a.id == job.asset.id)
                .is_none_or(|a| !a.same_identity(&job.asset))
        })
        .map(|job| job.id)
        .collect())
}

/// Extends the lease of jobs this worker still holds; returns those it
/// renewed. Rows another transaction has locked are skipped, not waited
/// for: that is this worker finishing them, or a reaper taking them.
pub async fn renew_leases(
    db: impl PgExecutor<'_>,
    worker: WorkerId,
    now: Option<DateTime<Utc>>,
    lease: Duration,
    held: &[(JobId, i32)],
) -> Result<Vec<JobId>, sqlx::Error> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, attempts): (Vec<JobId>, Vec<i32>) = held.iter().copied().unzip();
    sqlx::query_scalar(
        "WITH held AS (
             SELECT q.id
             FROM backfill_queue q
             JOIN unnest($4::bigint[], $5::int[]) AS h (id, attempts)
               ON q.id = h.id AND q.attempts = h.attempts
             -- held by this worker, hence in_progress (see queue_finish.sql)
             WHERE q.locked_by = $1
             FOR UPDATE OF q SKIP LOCKED
         )
         UPDATE backfill_queue q
         SET locked_until = coalesce($2::timestamptz, now()) + $3 * interval '1 millisecond'
         FROM held
         WHERE q.id = held.id
         RETURNING q.id",
    )
    .bind(worker)
    .bind(now)
    .bind(millis(lease))
    .bind(ids)
    .bind(attempts)
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::assets::{Asset, AssetType};

    fn job(attempts: i32, max_attempts: i32) -> ClaimedJob {
        ClaimedJob {
            id: JobId(7),
            attempts,
            max_attempts,
            start_date: "2024-01-01".parse().unwrap(),
            end_date: "2025-01-01".parse().unwrap(),
            asset: Asset {
                id: 1,
                symbol: "AAPL".into(),
                asset_type: AssetType::Stock,
                exchange: "XNAS".into(),
                currency: Some("USD".into()),
                yahoo_symbol: None,
                binance_symbol: None,
                coingecko_id: None,
                active: true,
            },
        }
    }

    #[test]
    fn each_outcome_lands_where_the_queue_semantics_say() {
        let retry = Outcome::Retry {
            after: Duration::from_secs(300),
            reason: "yahoo AAPL: temporary failure: HTTP 503".into(),
            provider: Some(ProviderKind::Yahoo),
        };
        let until: DateTime<Utc> = "2025-01-01T00:05:00Z".parse().unwrap();
        let cases = [
            (job(1, 5), retry.clone(), JobStatus::Pending, false),
            (job(4, 5), retry.clone(), JobStatus::Pending, false),
            (job(5, 5), retry, JobStatus::Failed, false),
            (
                job(5, 5),
                Outcome::Snooze {
                    until,
                    reason: "yahoo rate limited".into(),
                    provider: Some(ProviderKind::Yahoo),
                },
                JobStatus::RateLimited,
                true,
            ),
            (
                job(1, 5),
                Outcome::Fail {
                    reason: "no provider knows it".into(),
                    provider: None,
                },
                JobStatus::Failed,
                false,
            ),
            (
                job(2, 5),
                Outcome::Complete(Completion::empty()),
                JobStatus::Completed,
                false,
            ),
            (
                job(2, 5),
                Outcome::Release {
                    reason: "shutdown".into(),
                },
                JobStatus::Pending,
                true,
            ),
        ];
        for (job, outcome, status, give_back) in cases {
            let t = transition(&job, &outcome);
            assert_eq!((t.status, t.give_back), (status, give_back), "{outcome:?}");
        }
    }

    #[test]
    fn messages_say_what_happened() {
        let retry = Outcome::Retry {
            after: Duration::from_millis(300_400),
            reason: "yahoo AAPL: temporary failure: HTTP 503".into(),
            provider: Some(ProviderKind::Yahoo),
        };
        let t = transition(&job(1, 5), &retry);
        assert_eq!(
            t.message.as_deref(),
            Some("attempt 1 of 5 failed: yahoo AAPL: temporary failure: HTTP 503; retrying in 5m")
        );
        assert_eq!(t.delay, Some(Duration::from_millis(300_400)));
        let t = transition(&job(5, 5), &retry);
        assert_eq!(
            t.message.as_deref(),
            Some(
                "gave up after 5 attempts; the last failed: yahoo AAPL: temporary failure: HTTP 503"
            )
        );
        assert_eq!(t.delay, None);
    }
}
