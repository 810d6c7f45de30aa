//! Writing what completed jobs fetched: bars into `asset_prices` (see
//! [`bars`]), rejected rows into `backfill_rejects`, splits and dividends,
//! and the asset's `tracked_assets` bookkeeping. Called inside the transaction that
//! completes the jobs (see [`super::transitions::finish_jobs`]).

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgExecutor};

use super::{ClaimedJob, Completion};
use crate::providers::CorporateEvent;

mod bars;

pub use bars::upsert_prices;
pub(crate) use bars::{DIRECT_COPY, copy_text};

const STORE_ACTIONS: &str = include_str!("../../../sql/queue_store_actions.sql");

/// Keeps the rows a provider sent that failed validation, with the reason.
pub async fn record_rejects(
    tx: &mut PgConnection,
    completed: &[(&ClaimedJob, &Completion)],
) -> Result<(), sqlx::Error> {
    let mut job_id = Vec::new();
    let mut asset_id = Vec::new();
    let mut provider = Vec::new();
    let mut ts = Vec::new();
    let mut reason = Vec::new();
    for (job, completion) in completed {
        for rejected in &completion.rejected {
            job_id.push(job.id);
            asset_id.push(job.asset.id);
            provider.push(completion.provider.map_or("unknown", |p| p.as_str()));
            ts.push(rejected.ts);
            reason.push(rejected.reason.as_str());
        }
    }
    if job_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO backfill_rejects (job_id, asset_id, provider, ts, reason)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[])",
    )
    .bind(job_id)
    .bind(asset_id)
    .bind(provider)
    .bind(ts)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records the splits and dividends of completed jobs and queues a
/// re-fetch of bars a newly seen split left on the old scale (see
/// `sql/queue_store_actions.sql`). Returns the jobs queued.
pub async fn record_actions(
    tx: &mut PgConnection,
    completed: &[(&ClaimedJob, &Completion)],
) -> Result<Vec<i64>, sqlx::Error> {
    let mut cols = ActionColumns::default();
    for (job, completion) in completed {
        let source = completion.provider.map_or("unknown", |p| p.as_str());
        for event in &completion.events {
            cols.push(job.asset.id, source, event);
        }
    }
    if cols.asset_id.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, bool)> = sqlx::query_as(STORE_ACTIONS)
        .bind(cols.asset_id)
        .bind(cols.kind)
        .bind(cols.ts)
        .bind(cols.numerator)
        .bind(cols.denominator)
        .bind(cols.amount)
        .bind(cols.currency)
        .bind(cols.source)
        .fetch_all(&mut *tx)
        .await?;
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}

#[derive(Default)]
struct ActionColumns<'a> {
    asset_id: Vec<i64>,
    kind: Vec<&'static str>,
    ts: Vec<DateTime<Utc>>,
    numerator: Vec<Option<Decimal>>,
    denominator: Vec<Option<Decimal>>,
    amount: Vec<Option<Decimal>>,
    currency: Vec<Option<&'a str>>,
    source: Vec<&'static str>,
}

impl<'a> ActionColumns<'a> {
    fn push(&mut self, asset_id: i64, source: &'static str, event: &'a CorporateEvent) {
        self.asset_id.push(asset_id);
        self.ts.push(event.ts());
        self.source.push(source);
        match event {
            CorporateEvent::Split {
                numerator,
                denominator,
                ..
            } => {
                self.kind.push("split");
                self.numerator.push(Some(*numerator));
                self.denominator.push(Some(*denominator));
                self.amount.push(None);
                self.currency.push(None);
            }
            CorporateEvent::Dividend {
                amount, currency, ..
            } => {
                self.kind.push("dividend");
                self.numerator.push(None);
                self.denominator.push(None);
                self.amount.push(Some(*amount));
                self.currency.push(currency.as_deref());
            }
        }
    }
}

/// Widens the asset's recorded coverage to the completed ranges and, when
/// bars were stored, sets `last_price_update`. Assets nobody tracks (no
/// `tracked_assets` row) are left alone.
pub async fn mark_tracked(
    tx: &mut PgConnection,
    now: Option<DateTime<Utc>>,
    completed: &[(&ClaimedJob, &Completion)],
) -> Result<(), sqlx::Error> {
    // A body that called no provider fetched no history: nothing to record.
    let completed: Vec<_> = completed
        .iter()
        .filter(|(_, c)| c.provider.is_some())
        .collect();
    if completed.is_empty() {
        return Ok(());
    }
    let asset_id: Vec<i64> = completed.iter().map(|(j, _)| j.asset.id).collect();
    let start: Vec<NaiveDate> = completed.iter().map(|(j, _)| j.start_date).collect();
    let end: Vec<NaiveDate> = completed.iter().map(|(j, _)| j.end_date).collect();
    let covered: Vec<NaiveDate> = completed
        .iter()
        .map(|(j, c)| c.covered_from.unwrap_or(j.start_date))
        .collect();
    let stored: Vec<bool> = completed.iter().map(|(_, c)| c.bar_count() > 0).collect();
    // A job whose head no provider had covers less than its range: where
    // coverage starts at the job's start, it moves to what was stored.
    sqlx::query(
        "UPDATE tracked_assets t
         SET history_from = CASE WHEN t.history_from = c.start_date
                                 THEN greatest(c.start_date, c.covered_from)
                                 ELSE least(t.history_from, c.covered_from) END,
             history_to = greatest(t.history_to, c.end_date),
             last_price_update = CASE WHEN c.stored THEN coalesce($1::timestamptz, now())
                                      ELSE t.last_price_update END
         FROM (SELECT asset_id, min(start_date) AS start_date, max(end_date) AS end_date,
                      min(covered_from) AS covered_from, bool_or(stored) AS stored
               FROM unnest($2::bigint[], $3::date[], $4::date[], $5::date[], $6::bool[])
                    AS c (asset_id, start_date, end_date, covered_from, stored)
               GROUP BY asset_id) AS c
         WHERE t.asset_id = c.asset_id",
    )
    .bind(now)
    .bind(asset_id)
    .bind(start)
    .bind(end)
    .bind(covered)
    .bind(stored)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The `asset_prices` year partitions this process knows exist, so the
/// common case costs no statement. Creating one is done outside the
/// completing transaction: attaching a partition locks the parent table,
/// and that lock must not be held for a whole batch.
#[derive(Debug, Default)]
pub struct Partitions {
    known: Mutex<HashSet<i32>>,
}

impl Partitions {
    /// Makes sure every year the bars of `completed` fall in has a partition.
    pub async fn ensure(
        &self,
        db: impl PgExecutor<'_>,
        completed: &[&Completion],
    ) -> Result<(), sqlx::Error> {
        let (mut from, mut to) = (None::<DateTime<Utc>>, None::<DateTime<Utc>>);
        {
            let known = self.known.lock().expect("partition cache");
            for bar in completed
                .iter()
                .flat_map(|c| c.parts())
                .flat_map(|p| &p.bars)
            {
                if !known.contains(&bar.ts.year()) {
                    from = Some(from.map_or(bar.ts, |f| f.min(bar.ts)));
                    to = Some(to.map_or(bar.ts, |t| t.max(bar.ts)));
                }
            }
        }
        let (Some(from), Some(to)) = (from, to) else {
            return Ok(());
        };
        sqlx::query("SELECT ensure_asset_prices_partitions($1, $2)")
            .bind(from)
            .bind(to)
            .execute(db)
            .await?;
        self.known
            .lock()
            .expect("partition cache")
            .extend(from.year()..=to.year());
        Ok(())
    }
}
