//! Applying one claimed batch of outbox events inside the transaction that
//! marks them processed: holdings, reference counts, identity changes, and
//! the backfills the planner asks for.
//!
//! Everything here is a function of the events and the committed state, so
//! applying is commutative: concurrent orchestrators that take different
//! batches still end where a single pass would. For the same reason
//! nothing here judges an event by the order it happened to be applied in
//! (a sell applied before the buy another orchestrator holds is not an
//! error): problems are reported from the resulting state
//! (`sql/ops_event_problems.sql` lists negative holdings).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::plan::{Demand, plan, wanted_from};

const APPLY_HOLDINGS: &str = include_str!("../../sql/events_apply_holdings.sql");
const TRACK_ASSETS: &str = include_str!("../../sql/events_track_assets.sql");
const TRACKED_UNCHANGED: &str = include_str!("../../sql/events_tracked_unchanged.sql");
const QUEUE_BACKFILLS: &str = include_str!("../../sql/events_queue_backfills.sql");
const REVIVE_JOBS: &str = include_str!("../../sql/events_revive_jobs.sql");
const REIDENTIFY: &str = include_str!("../../sql/events_reidentify.sql");
const MARK_PROCESSED: &str = include_str!("../../sql/events_mark_processed.sql");
const RECORD_ERRORS: &str = include_str!("../../sql/events_record_errors.sql");

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

/// An outbox row as `sql/events_claim.sql` hands it over: only values
/// that always decode, whatever the host wrote.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ClaimedEvent {
    pub id: i64,
    op: String,
    new_asset_id: Option<i64>,
    /// The purchase date of a buy whose `executed_at` is usable.
    bought_on: Option<NaiveDate>,
    /// Why the event cannot be applied as written (pricekeeper_event_problem).
    problem: Option<String>,
}

impl ClaimedEvent {
    fn reidentified_asset(&self) -> Option<i64> {
        (self.op == "reidentify")
            .then_some(self.new_asset_id)
            .flatten()
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

#[derive(Debug, sqlx::FromRow)]
struct Reidentified {
    asset_id: i64,
    bars_dropped: i64,
    jobs_queued: i64,
}

/// How batches are applied; from the settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    pub backfill_months: u32,
    pub max_attempts: i32,
}

/// Applies `events` (claimed and locked in `tx`) and marks them processed.
pub(super) async fn apply_batch(
    tx: &mut PgConnection,
    events: &[ClaimedEvent],
    rules: Rules,
) -> Result<Applied, sqlx::Error> {
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    let mut reasons: HashMap<i64, String> = events
        .iter()
        .filter_map(|e| Some((e.id, e.problem.clone()?)))
        .collect();

    let holdings: Vec<HoldingChange> = sqlx::query_as(APPLY_HOLDINGS)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    let mut users_delta: BTreeMap<i64, i32> = BTreeMap::new();
    for h in &holdings {
        *users_delta.entry(h.asset_id).or_default() += i32::from(h.is_open) - i32::from(h.was_open);
        if h.quantity.starts_with('-') {
            // Counted as not held, kept negative so that a later correction
            // lands on the true sum. Not an error of these events: another
            // orchestrator may hold the buy that makes it positive.
            tracing::debug!(portfolio.id = %h.portfolio_id, asset.id = h.asset_id,
                quantity = %h.quantity, "holding is negative for now; counts as not held");
        }
    }

    let mut earliest_buy: BTreeMap<i64, NaiveDate> = BTreeMap::new();
    for e in events {
        if let (Some(asset), Some(day)) = (e.new_asset_id, e.bought_on) {
            earliest_buy
                .entry(asset)
                .and_modify(|d| *d = (*d).min(day))
                .or_insert(day);
            users_delta.entry(asset).or_default();
        }
    }
    users_delta.retain(|asset, delta| *delta != 0 || earliest_buy.contains_key(asset));

    let mut jobs_queued = reidentify(tx, events, rules).await?;

    let (assets, deltas): (Vec<i64>, Vec<i32>) = users_delta.into_iter().unzip();
    let mut tracked: Vec<TrackedAsset> = if assets.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(TRACK_ASSETS)
            .bind(&assets)
            .bind(&deltas)
            .fetch_all(&mut *tx)
            .await?
    };
    // Buys into assets their portfolio already held: rows not rewritten,
    // read now.
    let returned: HashSet<i64> = tracked.iter().map(|t| t.asset_id).collect();
    let unchanged: Vec<i64> = assets
        .iter()
        .zip(&deltas)
        .filter(|(asset, delta)| **delta == 0 && !returned.contains(asset))
        .map(|(asset, _)| *asset)
        .collect();
    if !unchanged.is_empty() {
        tracked.extend(
            sqlx::query_as::<_, TrackedAsset>(TRACKED_UNCHANGED)
                .bind(&unchanged)
                .fetch_all(&mut *tx)
                .await?,
        );
    }

    let today = Utc::now().date_naive();
    let mut coverage = (Vec::new(), Vec::new(), Vec::new());
    let mut jobs = (Vec::new(), Vec::new(), Vec::new());
    let mut wanted = (Vec::new(), Vec::new());
    for t in &tracked {
        let demand = Demand {
            earliest_buy: earliest_buy.get(&t.asset_id).copied(),
            reopened: t.users_before == 0 && t.users_after > 0,
        };
        if t.active && (demand.earliest_buy.is_some() || demand.reopened) {
            wanted.0.push(t.asset_id);
            wanted
                .1
                .push(wanted_from(demand, today, rules.backfill_months));
        }
        let held = t.history_from.zip(t.history_to);
        let Some(plan) = plan(held, demand, today, rules.backfill_months) else {
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
    if !coverage.0.is_empty() {
        let queued: Vec<i64> = sqlx::query_scalar(QUEUE_BACKFILLS)
            .bind(&coverage.0)
            .bind(&coverage.1)
            .bind(&coverage.2)
            .bind(&jobs.0)
            .bind(&jobs.1)
            .bind(&jobs.2)
            .bind(rules.max_attempts)
            .fetch_all(&mut *tx)
            .await?;
        jobs_queued += queued.len();
    }
    if !wanted.0.is_empty() {
        let revived: Vec<i64> = sqlx::query_scalar(REVIVE_JOBS)
            .bind(&wanted.0)
            .bind(&wanted.1)
            .fetch_all(&mut *tx)
            .await?;
        for id in &revived {
            tracing::info!(
                job.id = id,
                "failed backfill queued again: a new purchase needs its range"
            );
        }
        jobs_queued += revived.len();
    }

    for (id, reason) in &reasons {
        tracing::warn!(event.id = id, %reason, "event applied with a warning");
    }
    let flagged = reasons.len();
    mark_processed(tx, &ids, reasons).await?;
    tracing::debug!(
        events = ids.len(),
        flagged,
        jobs = jobs_queued,
        "events applied"
    );
    Ok(Applied {
        events: ids.len(),
        flagged,
        jobs_queued,
    })
}

/// Applies the identity changes among `events`; returns the jobs queued.
async fn reidentify(
    tx: &mut PgConnection,
    events: &[ClaimedEvent],
    rules: Rules,
) -> Result<usize, sqlx::Error> {
    let assets: Vec<i64> = events
        .iter()
        .filter_map(ClaimedEvent::reidentified_asset)
        .collect();
    if assets.is_empty() {
        return Ok(0);
    }
    let done: Vec<Reidentified> = sqlx::query_as(REIDENTIFY)
        .bind(&assets)
        .bind(rules.max_attempts)
        .fetch_all(&mut *tx)
        .await?;
    for r in &done {
        tracing::info!(
            asset.id = r.asset_id,
            bars_dropped = r.bars_dropped,
            jobs = r.jobs_queued,
            "asset identity changed: stored bars dropped, held range queued again"
        );
    }
    Ok(done.iter().map(|r| r.jobs_queued as usize).sum())
}

/// Marks events processed, keeping the reason beside those that have one.
pub(super) async fn mark_processed(
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
