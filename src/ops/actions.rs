//! What an operator may do to the queue, shared by the admin API
//! ([`super::admin`]) and `pricekeeper jobs` (an operator with database
//! access): retry failed jobs, make waiting jobs due now, cancel a job,
//! queue a backfill, and look jobs and assets up. Each statement lives in
//! `sql/ops_*.sql`; each action wakes idle workers itself.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

const RETRY: &str = include_str!("../../sql/ops_retry_jobs.sql");
const MAKE_DUE: &str = include_str!("../../sql/ops_make_due.sql");
const CANCEL: &str = include_str!("../../sql/ops_cancel_job.sql");
const QUEUE: &str = include_str!("../../sql/ops_queue_backfill.sql");
const LIST: &str = include_str!("../../sql/ops_list_jobs.sql");
const FIND_ASSET: &str = include_str!("../../sql/ops_find_asset.sql");

/// Longest symbol or exchange accepted from an operator.
const MAX_NAME: usize = 64;
/// Longest range an operator may queue at once (a century of days).
const MAX_RANGE_DAYS: i64 = 36_525;

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{symbol} is listed on several exchanges ({exchanges}); name one")]
    Ambiguous { symbol: String, exchanges: String },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Which jobs an action touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    Job(i64),
    Asset(i64),
    All,
}

impl Selector {
    fn binds(self) -> (Option<i64>, Option<i64>) {
        match self {
            Self::Job(id) => (Some(id), None),
            Self::Asset(id) => (None, Some(id)),
            Self::All => (None, None),
        }
    }
}

/// A job an action changed, and the status it had before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Changed {
    pub id: i64,
    pub symbol: String,
    pub exchange: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub was: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AssetRef {
    pub id: i64,
    pub symbol: String,
    pub exchange: String,
    pub asset_type: String,
    pub currency: Option<String>,
    pub active: bool,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub symbol: String,
    pub exchange: String,
    pub status: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub attempts: i32,
    pub max_attempts: i32,
    pub provider: Option<String>,
    pub error_message: Option<String>,
    pub retry_after: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Failed jobs back to `pending` with a full set of attempts.
pub async fn retry_failed(
    db: impl PgExecutor<'_>,
    which: Selector,
) -> Result<Vec<Changed>, ActionError> {
    let (job, asset) = which.binds();
    Ok(sqlx::query_as(RETRY)
        .bind(job)
        .bind(asset)
        .fetch_all(db)
        .await?)
}

/// Waiting jobs (pending or rate limited, due later) made due now.
pub async fn make_due(
    db: impl PgExecutor<'_>,
    which: Selector,
) -> Result<Vec<Changed>, ActionError> {
    let (job, asset) = which.binds();
    Ok(sqlx::query_as(MAKE_DUE)
        .bind(job)
        .bind(asset)
        .fetch_all(db)
        .await?)
}

/// Cancels a job that has not ended; None when there is no such job or
/// it already ended.
pub async fn cancel(db: impl PgExecutor<'_>, job: i64) -> Result<Option<Changed>, ActionError> {
    Ok(sqlx::query_as(CANCEL).bind(job).fetch_optional(db).await?)
}

/// A queued backfill: the job's id, and whether it is new (false: a live
/// job for the same range already existed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Queued {
    pub id: i64,
    pub created: bool,
}

/// Queues a backfill of `asset` over `[from, to]`, checked first.
pub async fn queue_backfill(
    db: impl PgExecutor<'_>,
    asset: &AssetRef,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
    max_attempts: i32,
) -> Result<Queued, ActionError> {
    check_range(from, to, today)?;
    if !asset.active {
        return Err(ActionError::Invalid(format!(
            "{} on {} is inactive in the catalog; its jobs would be cancelled",
            asset.symbol, asset.exchange
        )));
    }
    Ok(sqlx::query_as(QUEUE)
        .bind(asset.id)
        .bind(from)
        .bind(to)
        .bind(max_attempts)
        .fetch_one(db)
        .await?)
}

pub fn check_range(from: NaiveDate, to: NaiveDate, today: NaiveDate) -> Result<(), ActionError> {
    let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a date");
    let invalid = |m: String| Err(ActionError::Invalid(m));
    if from > to {
        return invalid(format!("from ({from}) is after to ({to})"));
    }
    if to > today {
        return invalid(format!("to ({to}) is in the future (today is {today} UTC)"));
    }
    if from < earliest {
        return invalid(format!("from ({from}) is before {earliest}"));
    }
    if (to - from).num_days() > MAX_RANGE_DAYS {
        return invalid(format!(
            "the range is longer than {MAX_RANGE_DAYS} days; queue it in parts"
        ));
    }
    Ok(())
}

/// Jobs in `statuses`, of one asset or all, newest change first.
pub async fn list_jobs(
    db: impl PgExecutor<'_>,
    statuses: &[&str],
    asset: Option<i64>,
    limit: i64,
) -> Result<Vec<JobRow>, ActionError> {
    Ok(sqlx::query_as(LIST)
        .bind(statuses)
        .bind(asset)
        .bind(limit)
        .fetch_all(db)
        .await?)
}

/// The asset an operator named: a symbol (on `exchange` when several
/// exchanges list it), checked for what a symbol can be first.
pub async fn find_asset(
    db: impl PgExecutor<'_>,
    symbol: &str,
    exchange: Option<&str>,
) -> Result<AssetRef, ActionError> {
    check_name("symbol", symbol)?;
    if let Some(exchange) = exchange {
        check_name("exchange", exchange)?;
    }
    let found: Vec<AssetRef> = sqlx::query_as(FIND_ASSET)
        .bind(symbol)
        .bind(exchange)
        .fetch_all(db)
        .await?;
    match found.len() {
        0 => Err(ActionError::NotFound(match exchange {
            Some(x) => format!("no asset {:?} on {x:?} in the catalog", symbol.trim()),
            None => format!("no asset {:?} in the catalog", symbol.trim()),
        })),
        1 => Ok(found.into_iter().next().expect("one")),
        _ => Err(ActionError::Ambiguous {
            symbol: found[0].symbol.clone(),
            exchanges: found
                .iter()
                .map(|a| a.exchange.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// An asset by its id.
pub async fn asset_by_id(db: impl PgExecutor<'_>, id: i64) -> Result<AssetRef, ActionError> {
    sqlx::query_as(
        "SELECT id, symbol, exchange, asset_type::text AS asset_type, currency, active
         FROM assets WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ActionError::NotFound(format!("no asset with id {id}")))
}

/// Printable, short, not empty: what reaches SQL and the logs from an
/// operator's hand (a URL path may carry anything, NUL included).
pub fn check_name(what: &str, raw: &str) -> Result<(), ActionError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || raw.chars().any(char::is_control) {
        return Err(ActionError::Invalid(format!(
            "{what} must be 1 to {MAX_NAME} printable characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_must_be_ordered_past_and_bounded() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let today = d("2026-01-05");
        assert!(check_range(d("2025-01-01"), d("2025-12-31"), today).is_ok());
        assert!(check_range(d("2026-01-05"), d("2026-01-05"), today).is_ok());
        for (from, to, says) in [
            ("2025-02-01", "2025-01-01", "after"),
            ("2025-01-01", "2026-02-01", "future"),
            ("1850-01-01", "1890-01-01", "before 1900"),
            ("1900-01-01", "2026-01-01", "longer"),
        ] {
            let err = check_range(d(from), d(to), today).unwrap_err().to_string();
            assert!(err.contains(says), "{from}..{to}: {err}");
        }
    }

    #[test]
    fn names_with_control_characters_are_refused() {
        assert!(check_name("symbol", "AAPL").is_ok());
        assert!(check_name("symbol", "BRK.B").is_ok());
        for bad in ["", "  ", "AA\u{0}PL", "AAPL\n", &"X".repeat(65)] {
            assert!(check_name("symbol", bad).is_err(), "{bad:?}");
        }
    }
}
