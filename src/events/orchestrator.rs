//! The orchestrator: claims unprocessed outbox rows with SKIP LOCKED and
//! applies each batch in the same transaction that marks it processed, so
//! an event takes effect exactly once however many orchestrators run.
//!
//! Applying is commutative (holdings are sums; a reference count changes
//! only when a position's sign does), so concurrent orchestrators that take
//! different batches still end in the state a single pass computes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::plan::{Demand, plan};
use super::{EVENTS_CHANNEL, EventsError, listener};
use crate::config::Settings;
use crate::db::is_retryable;

const CLAIM: &str = include_str!("../../sql/events_claim.sql");
const APPLY_HOLDINGS: &str = include_str!("../../sql/events_apply_holdings.sql");
const TRACK_ASSETS: &str = include_str!("../../sql/events_track_assets.sql");
const QUEUE_BACKFILLS: &str = include_str!("../../sql/events_queue_backfills.sql");
const MARK_PROCESSED: &str = include_str!("../../sql/events_mark_processed.sql");
const RECORD_ERRORS: &str = include_str!("../../sql/events_record_errors.sql");

#[derive(Debug, Clone)]
pub struct Orchestrator {
    pool: PgPool,
    batch_size: i64,
    backfill_months: u32,
    max_attempts: i32,
    poll_interval: Duration,
}

/// What one step did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub events: usize,
    /// Events marked with a reason (applied with a warning, or not at all).
    pub flagged: usize,
    pub jobs_queued: usize,
}

impl std::ops::AddAssign for Applied {
    fn add_assign(&mut self, other: Self) {
        self.events += other.events;
        self.flagged += other.flagged;
        self.jobs_queued += other.jobs_queued;
    }
}

#[derive(Debug, sqlx::FromRow)]
struct ClaimedEvent {
    id: i64,
    old_portfolio_id: Option<Uuid>,
    old_asset_id: Option<i64>,
    new_portfolio_id: Option<Uuid>,
    new_asset_id: Option<i64>,
    new_side: Option<String>,
    new_executed_at: Option<DateTime<Utc>>,
}

impl ClaimedEvent {
    fn touches(&self, portfolio: Uuid, asset: i64) -> bool {
        (self.old_portfolio_id == Some(portfolio) && self.old_asset_id == Some(asset))
            || (self.new_portfolio_id == Some(portfolio) && self.new_asset_id == Some(asset))
    }

    /// The purchase date of a buy, as a UTC calendar day.
    fn bought_on(&self) -> Option<(i64, NaiveDate)> {
        match (
            self.new_side.as_deref(),
            self.new_asset_id,
            self.new_executed_at,
        ) {
            (Some("buy"), Some(asset), Some(at)) => Some((asset, at.date_naive())),
            _ => None,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct HoldingChange {
    portfolio_id: Uuid,
    asset_id: i64,
    was_open: bool,
    is_open: bool,
    quantity: String,
}

#[derive(Debug, sqlx::FromRow)]
struct TrackedAsset {
    asset_id: i64,
    users_before: i32,
    users_after: i32,
    history_from: Option<NaiveDate>,
    history_to: Option<NaiveDate>,
    active: bool,
    symbol: String,
}

impl Orchestrator {
    pub fn new(pool: PgPool, settings: &Settings) -> Self {
        Self {
            pool,
            batch_size: i64::from(settings.event_batch_size),
            backfill_months: settings.backfill_months,
            max_attempts: settings.max_backfill_attempts as i32,
            poll_interval: settings.poll_interval,
        }
    }

    /// Listens for events and applies them until cancelled. Database errors
    /// are logged and retried with backoff: the outbox keeps every event.
    pub async fn run(self, cancel: CancellationToken) {
        let wake = Arc::new(Notify::new());
        let listening = tokio::spawn(listener::listen(
            self.pool.clone(),
            EVENTS_CHANNEL,
            wake.clone(),
            cancel.clone(),
        ));
        let mut backoff = Duration::from_millis(100);
        tracing::info!("orchestrator started");
        while !cancel.is_cancelled() {
            let pause = match self.drain_until(&cancel).await {
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    self.poll_interval
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?backoff, "orchestrator step failed");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    backoff
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let _ = listening.await;
        tracing::info!("orchestrator stopped");
    }

    /// Applies batches until the outbox has nothing unclaimed left.
    pub async fn drain(&self) -> Result<Applied, EventsError> {
        self.drain_until(&CancellationToken::new()).await
    }

    /// Like [`Self::drain`], but stops between batches once `cancel` fires:
    /// a shutdown waits for one batch, never for the whole backlog (the
    /// outbox keeps the rest for the next start).
    pub async fn drain_until(&self, cancel: &CancellationToken) -> Result<Applied, EventsError> {
        let mut total = Applied::default();
        loop {
            if cancel.is_cancelled() {
                return Ok(total);
            }
            let step = self.step().await?;
            let short = step.events < self.batch_size as usize;
            total += step;
            if short {
                return Ok(total);
            }
        }
    }

    /// Claims and applies one batch. A batch that fails for a reason other
    /// than a serialization failure or deadlock is retried one event at a
    /// time, so a single bad event is marked with its error instead of
    /// blocking the outbox forever.
    pub async fn step(&self) -> Result<Applied, EventsError> {
        let mut conn = self.pool.acquire().await?;
        let mut retries = 0;
        loop {
            match self.apply_claimed(&mut conn, None).await {
                Ok(applied) => return Ok(applied),
                Err(ApplyFailure::Retryable(e)) if retries < 5 => {
                    retries += 1;
                    tracing::debug!(error = %e, retries, "event batch conflicted; retrying");
                }
                Err(ApplyFailure::Retryable(e)) | Err(ApplyFailure::Failed(e)) => {
                    return Err(e.into());
                }
                Err(ApplyFailure::Poisoned { ids, error }) => {
                    tracing::warn!(%error, events = ids.len(), "event batch failed; applying one by one");
                    return self.isolate(&mut conn, &ids).await;
                }
            }
        }
    }

    async fn isolate(&self, conn: &mut PgConnection, ids: &[i64]) -> Result<Applied, EventsError> {
        let mut total = Applied::default();
        for &id in ids {
            match self.apply_claimed(conn, Some(id)).await {
                Ok(applied) => total += applied,
                Err(ApplyFailure::Poisoned { error, .. }) => {
                    let reason = format!("could not be applied: {error}");
                    tracing::error!(event.id = id, %reason, "event marked failed");
                    let mut tx = conn.begin().await?;
                    mark_processed(&mut tx, &[id], HashMap::from([(id, reason)])).await?;
                    tx.commit().await?;
                    total += Applied {
                        events: 1,
                        flagged: 1,
                        jobs_queued: 0,
                    };
                }
                Err(ApplyFailure::Retryable(e)) | Err(ApplyFailure::Failed(e)) => {
                    return Err(e.into());
                }
            }
        }
        Ok(total)
    }

    /// One transaction: claim (a batch, or the one event `only`), apply, mark.
    async fn apply_claimed(
        &self,
        conn: &mut PgConnection,
        only: Option<i64>,
    ) -> Result<Applied, ApplyFailure> {
        let mut tx = conn.begin().await.map_err(ApplyFailure::from_sqlx)?;
        // Every statement below reaches events by primary key or walks the
        // unprocessed partial index in id order. The planner does not know
        // that: handed 1,000 ids it picks a sequential scan of the whole
        // outbox, and after a bulk load (stale statistics) a bitmap scan that
        // fetches and sorts the entire backlog for every batch. Measured at
        // 100,000 events behind: 3,100 events/s with those plans.
        sqlx::query(
            "SELECT set_config('enable_seqscan', 'off', true),
                    set_config('enable_bitmapscan', 'off', true)",
        )
        .execute(&mut *tx)
        .await
        .map_err(ApplyFailure::from_sqlx)?;
        let events: Vec<ClaimedEvent> = match only {
            None => sqlx::query_as(CLAIM).bind(self.batch_size),
            Some(id) => sqlx::query_as(
                "SELECT id, old_portfolio_id, old_asset_id, new_portfolio_id, new_asset_id,
                        new_side, new_executed_at
                 FROM portfolio_events
                 WHERE id = $1 AND processed_at IS NULL
                 FOR UPDATE SKIP LOCKED",
            )
            .bind(id),
        }
        .fetch_all(&mut *tx)
        .await
        .map_err(ApplyFailure::from_sqlx)?;
        if events.is_empty() {
            return Ok(Applied::default());
        }
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        match self.apply(&mut tx, &events, &ids).await {
            Ok(applied) => {
                tx.commit().await.map_err(ApplyFailure::from_sqlx)?;
                Ok(applied)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(ApplyFailure::applying(e, ids))
            }
        }
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[ClaimedEvent],
        ids: &[i64],
    ) -> Result<Applied, sqlx::Error> {
        let mut reasons: HashMap<i64, String> = HashMap::new();

        let holdings: Vec<HoldingChange> = sqlx::query_as(APPLY_HOLDINGS)
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
        let mut users_delta: BTreeMap<i64, i32> = BTreeMap::new();
        for h in &holdings {
            *users_delta.entry(h.asset_id).or_default() +=
                i32::from(h.is_open) - i32::from(h.was_open);
            if h.quantity.starts_with('-') {
                // Counted as not held; kept negative so that a later
                // correction by the host lands on the true sum.
                let reason = format!(
                    "portfolio {} now holds {} of asset {}: more sold than bought, so it counts as not held",
                    h.portfolio_id, h.quantity, h.asset_id
                );
                for e in events
                    .iter()
                    .filter(|e| e.touches(h.portfolio_id, h.asset_id))
                {
                    reasons.insert(e.id, reason.clone());
                }
            }
        }

        let mut earliest_buy: BTreeMap<i64, NaiveDate> = BTreeMap::new();
        for (asset, day) in events.iter().filter_map(ClaimedEvent::bought_on) {
            earliest_buy
                .entry(asset)
                .and_modify(|d| *d = (*d).min(day))
                .or_insert(day);
            users_delta.entry(asset).or_default();
        }
        users_delta.retain(|asset, delta| *delta != 0 || earliest_buy.contains_key(asset));

        let (assets, deltas): (Vec<i64>, Vec<i32>) = users_delta.into_iter().unzip();
        let tracked: Vec<TrackedAsset> = if assets.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(TRACK_ASSETS)
                .bind(&assets)
                .bind(&deltas)
                .fetch_all(&mut *tx)
                .await?
        };

        let today = Utc::now().date_naive();
        let mut coverage = (Vec::new(), Vec::new(), Vec::new());
        let mut jobs = (Vec::new(), Vec::new(), Vec::new());
        for t in &tracked {
            let demand = Demand {
                earliest_buy: earliest_buy.get(&t.asset_id).copied(),
                reopened: t.users_before == 0 && t.users_after > 0,
            };
            let held = t.history_from.zip(t.history_to);
            let Some(plan) = plan(held, demand, today, self.backfill_months) else {
                continue;
            };
            if !t.active {
                let reason = format!(
                    "asset {} ({}) is inactive: holdings updated, no history queued",
                    t.asset_id, t.symbol
                );
                for e in events.iter().filter(|e| e.new_asset_id == Some(t.asset_id)) {
                    reasons.entry(e.id).or_insert_with(|| reason.clone());
                }
                continue;
            }
            coverage.0.push(t.asset_id);
            coverage.1.push(plan.coverage.0);
            coverage.2.push(plan.coverage.1);
            for (start, end) in plan.jobs {
                tracing::info!(asset.id = t.asset_id, asset.symbol = %t.symbol, %start, %end, "backfill queued");
                jobs.0.push(t.asset_id);
                jobs.1.push(start);
                jobs.2.push(end);
            }
        }
        let queued: Vec<i64> = if coverage.0.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar(QUEUE_BACKFILLS)
                .bind(&coverage.0)
                .bind(&coverage.1)
                .bind(&coverage.2)
                .bind(&jobs.0)
                .bind(&jobs.1)
                .bind(&jobs.2)
                .bind(self.max_attempts)
                .fetch_all(&mut *tx)
                .await?
        };

        for (id, reason) in &reasons {
            tracing::warn!(event.id = id, %reason, "event applied with a warning");
        }
        let flagged = reasons.len();
        mark_processed(tx, ids, reasons).await?;
        tracing::debug!(
            events = ids.len(),
            flagged,
            jobs = queued.len(),
            "events applied"
        );
        Ok(Applied {
            events: ids.len(),
            flagged,
            jobs_queued: queued.len(),
        })
    }
}

/// Marks events processed, keeping the reason beside those that have one.
async fn mark_processed(
    tx: &mut PgConnection,
    ids: &[i64],
    reasons: HashMap<i64, String>,
) -> Result<(), sqlx::Error> {
    sqlx::query(MARK_PROCESSED)
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    if !reasons.is_empty() {
        let (flagged, reasons): (Vec<i64>, Vec<String>) = reasons.into_iter().unzip();
        sqlx::query(RECORD_ERRORS)
            .bind(flagged)
            .bind(reasons)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Why a batch did not commit, and what to do about it.
enum ApplyFailure {
    /// Serialization failure or deadlock: run the batch again.
    Retryable(sqlx::Error),
    /// The database is unreachable or refused the claim itself: give up
    /// this step; the caller backs off and tries again.
    Failed(sqlx::Error),
    /// The database rejected applying the batch: isolate the bad event.
    Poisoned { ids: Vec<i64>, error: sqlx::Error },
}

impl ApplyFailure {
    fn from_sqlx(e: sqlx::Error) -> Self {
        if is_retryable(&e) {
            Self::Retryable(e)
        } else {
            Self::Failed(e)
        }
    }

    /// An error while applying claimed events: a database error there is
    /// about the events themselves, anything else about the connection.
    fn applying(e: sqlx::Error, ids: Vec<i64>) -> Self {
        if is_retryable(&e) {
            Self::Retryable(e)
        } else if e.as_database_error().is_some() {
            Self::Poisoned { ids, error: e }
        } else {
            Self::Failed(e)
        }
    }
}
