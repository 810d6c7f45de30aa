//! Taking jobs: one statement picks due rows with `FOR UPDATE SKIP LOCKED`
//! and makes them `in_progress` under this worker's lease, counting the
//! attempt. Two workers can never hold the same job: a row locked by one
//! claim is skipped by the other, and once committed it is no longer due.
//!
//! Due means `pending` or `rate_limited` with `retry_after` null or past.
//! While a provider cools down, a job is left where it is when every
//! provider of its chain that knows the asset is cooling.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgExecutor, Row};

use super::{JobId, WorkerId, millis};
use crate::db::assets::{Asset, AssetType};

const CLAIM: &str = include_str!("../../sql/queue_claim.sql");
const SNOOZE_COOLING: &str = include_str!("../../sql/queue_snooze_cooling.sql");

/// A job this worker holds, with the asset it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: JobId,
    /// This attempt's number (1 for the first). Part of the lease guard.
    pub attempts: i32,
    pub max_attempts: i32,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub asset: Asset,
}

impl FromRow<'_, PgRow> for ClaimedJob {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("job_id")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            start_date: row.try_get("start_date")?,
            end_date: row.try_get("end_date")?,
            asset: Asset {
                id: row.try_get("asset_id")?,
                symbol: row.try_get("symbol")?,
                asset_type: row.try_get("asset_type")?,
                exchange: row.try_get("exchange")?,
                currency: row.try_get("currency")?,
                yahoo_symbol: row.try_get("yahoo_symbol")?,
                binance_symbol: row.try_get("binance_symbol")?,
                coingecko_id: row.try_get("coingecko_id")?,
                active: row.try_get("active")?,
            },
        })
    }
}

/// The provider chains, as the claim needs them: which provider serves
/// which asset type. Empty means the job body calls no provider, so
/// cooldowns never hold its jobs back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainFilter {
    providers: Vec<String>,
    asset_types: Vec<AssetType>,
}

impl ChainFilter {
    pub fn new(pairs: impl IntoIterator<Item = (String, AssetType)>) -> Self {
        let (providers, asset_types) = pairs.into_iter().unzip();
        Self {
            providers,
            asset_types,
        }
    }
}

/// Claims up to `limit` due jobs for `worker`, leased until now + `lease`.
pub async fn claim_jobs(
    db: impl PgExecutor<'_>,
    worker: WorkerId,
    now: Option<DateTime<Utc>>,
    limit: u32,
    lease: Duration,
    chains: &ChainFilter,
) -> Result<Vec<ClaimedJob>, sqlx::Error> {
    sqlx::query_as(CLAIM)
        .bind(worker)
        .bind(now)
        .bind(i64::from(limit))
        .bind(millis(lease))
        .bind(&chains.providers)
        .bind(&chains.asset_types)
        .fetch_all(db)
        .await
}

/// How long until something may become claimable without a notification:
/// the nearest future `retry_after` of a waiting job, or the end of a
/// provider's cooldown. None when nothing is waiting.
pub async fn next_due_in(
    db: impl PgExecutor<'_>,
    now: Option<DateTime<Utc>>,
) -> Result<Option<Duration>, sqlx::Error> {
    let seconds: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM least(
                    (SELECT coalesce(retry_after, '-infinity')
                     FROM backfill_queue
                     WHERE status IN ('pending', 'rate_limited')
                       AND coalesce(retry_after, '-infinity') > coalesce($1::timestamptz, now())
                     ORDER BY coalesce(retry_after, '-infinity')
                     LIMIT 1),
                    (SELECT min(cooldown_until)
                     FROM provider_state
                     WHERE cooldown_until > coalesce($1::timestamptz, now()))
                ) - coalesce($1::timestamptz, now()))::float8",
    )
    .bind(now)
    .fetch_one(db)
    .await?;
    Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// Snoozes the due jobs whose whole chain is cooling down to the end of the
/// first cooldown, so claims stop reading them (sql/queue_snooze_cooling.sql).
/// Returns how many were snoozed.
pub async fn snooze_unservable(
    db: impl PgExecutor<'_>,
    now: Option<DateTime<Utc>>,
    chains: &ChainFilter,
) -> Result<u64, sqlx::Error> {
    if chains.providers.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(SNOOZE_COOLING)
        .bind(now)
        .bind(&chains.providers)
        .bind(&chains.asset_types)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
