//! Writing what completed jobs fetched: bars into `asset_prices` with one
//! idempotent bulk upsert, rejected rows into `backfill_rejects`, and the
//! asset's `tracked_assets` bookkeeping. Called inside the transaction that
//! completes the jobs (see [`super::transitions::finish_jobs`]).

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{Acquire, Executor, PgConnection, PgExecutor};

use super::{ClaimedJob, Completion};
use crate::providers::{Bar, CorporateEvent};

const STAGE: &str = include_str!("../../sql/queue_stage_prices.sql");
const STAGE_COPY: &str = "COPY pricekeeper_bars_stage (asset_id, interval, ts, open, high, low, \
     close, adj_close, volume, currency, source, flags) FROM STDIN";
const DIRECT_COPY: &str = "COPY asset_prices (asset_id, interval, ts, open, high, low, \
     close, adj_close, volume, currency, source, flags) FROM STDIN";
const STORED_NEAR: &str = include_str!("../../sql/queue_prices_stored_near.sql");
const UPSERT_PRICES: &str = include_str!("../../sql/queue_upsert_prices.sql");
const STORE_ACTIONS: &str = include_str!("../../sql/queue_store_actions.sql");
const REPLACE_DAILY: &str = include_str!("../../sql/queue_replace_daily.sql");

/// Stores the bars of completed jobs. A bar already stored with the same
/// values is left untouched, so re-running a range rewrites nothing.
/// Returns the number of bars sent.
///
/// A first backfill, the common case, finds nothing stored near its bars
/// (one index probe per asset) and `COPY`s them straight into
/// `asset_prices`. Otherwise, or when a concurrent writer stored some of
/// the same keys in the meantime, they go through a per-transaction
/// staging table: `COPY` into it, the same-date cleanup, and one `INSERT …
/// SELECT … ON CONFLICT DO UPDATE` from it.
///
/// COPY instead of bound arrays: encoding twelve arrays and unnesting them
/// cost the write path three quarters of COPY's speed, and the staged
/// upsert still costs half of it (`bench ingest`).
pub async fn upsert_prices(
    tx: &mut PgConnection,
    completed: &[(&ClaimedJob, &Completion)],
) -> Result<usize, sqlx::Error> {
    // One statement may not touch a row twice (two jobs of one batch for
    // overlapping ranges of an asset): the later bar wins. The key order
    // also makes concurrent upserts lock rows in the same order.
    let rows = unique_rows(completed);
    if rows.is_empty() {
        return Ok(0);
    }
    if !stored_near(tx, &rows).await? && copy_direct(tx, &rows).await? {
        return Ok(rows.len());
    }
    // The staging table lives in this transaction only (emptied at commit)
    // and is created by it when missing, so a transaction-mode pooler that
    // hands over another session does no harm. Quietly: IF NOT EXISTS
    // would say "already exists" on every batch.
    tx.execute(STAGE).await?;
    copy_rows(tx, STAGE_COPY, &rows).await?;
    sqlx::query(REPLACE_DAILY).execute(&mut *tx).await?;
    sqlx::query(UPSERT_PRICES).execute(&mut *tx).await?;
    Ok(rows.len())
}

/// Whether any bar is stored near `rows` (see the SQL), so that copying
/// them straight in could meet a key or a trading date already there.
async fn stored_near(tx: &mut PgConnection, rows: &[Row<'_>]) -> Result<bool, sqlx::Error> {
    let mut asset_id = Vec::new();
    let mut interval = Vec::new();
    let mut first = Vec::new();
    let mut last: Vec<DateTime<Utc>> = Vec::new();
    // `rows` is in key order, so each asset and interval is one run.
    for ((id, iv, ts), _, _) in rows {
        if asset_id.last() == Some(id) && interval.last() == Some(iv) {
            *last.last_mut().expect("a run is open") = *ts;
        } else {
            asset_id.push(*id);
            interval.push(*iv);
            first.push(*ts);
            last.push(*ts);
        }
    }
    sqlx::query_scalar(STORED_NEAR)
        .bind(asset_id)
        .bind(interval)
        .bind(first)
        .bind(last)
        .fetch_one(&mut *tx)
        .await
}

/// COPYs `rows` straight into `asset_prices` under a savepoint. False,
/// with nothing written, when a key is already there: a writer that
/// committed them after [`stored_near`] looked.
async fn copy_direct(tx: &mut PgConnection, rows: &[Row<'_>]) -> Result<bool, sqlx::Error> {
    let mut savepoint = tx.begin().await?;
    match copy_rows(&mut savepoint, DIRECT_COPY, rows).await {
        Ok(()) => {
            savepoint.commit().await?;
            Ok(true)
        }
        Err(e) if is_unique_violation(&e) => {
            savepoint.rollback().await?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.code().as_deref() == Some("23505"))
}

/// Sends `rows` to `statement`, a `COPY … FROM STDIN` of the bar columns.
async fn copy_rows(
    conn: &mut PgConnection,
    statement: &str,
    rows: &[Row<'_>],
) -> Result<(), sqlx::Error> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut text = String::with_capacity(rows.len().min(4096) * 160);
    for ((asset_id, interval, ts), bar, source) in rows {
        copy_row(&mut text, *asset_id, interval, *ts, bar, source);
        if text.len() >= COPY_CHUNK {
            copy.send(text.as_bytes()).await?;
            text.clear();
        }
    }
    copy.send(text.as_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// Bytes sent to COPY at a time.
const COPY_CHUNK: usize = 256 * 1024;

/// One row of the staging table in COPY's text format.
fn copy_row(
    out: &mut String,
    asset_id: i64,
    interval: &str,
    ts: DateTime<Utc>,
    bar: &Bar,
    source: &str,
) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "{asset_id}\t{}\t{}\t",
        escaped(interval),
        ts.to_rfc3339()
    );
    for value in [bar.open, bar.high, bar.low] {
        push_decimal(out, value);
    }
    let _ = write!(out, "{}\t", bar.close);
    for value in [bar.adj_close, bar.volume] {
        push_decimal(out, value);
    }
    match &bar.currency {
        Some(c) => out.push_str(&escaped(c)),
        None => out.push_str("\\N"),
    }
    out.push('\t');
    out.push_str(&escaped(source));
    out.push_str("\t{");
    for (i, flag) in bar.flags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(flag.as_str());
    }
    out.push_str("}\n");
}

fn push_decimal(out: &mut String, value: Option<Decimal>) {
    use std::fmt::Write;
    match value {
        Some(v) => {
            let _ = write!(out, "{v}\t");
        }
        None => out.push_str("\\N\t"),
    }
}

/// `raw` as a COPY text field: backslash, tab and line ends escaped.
fn escaped(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.contains(['\\', '\t', '\n', '\r']) {
        return raw.into();
    }
    raw.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .into()
}

/// `asset_prices`' key: asset, interval, bar start.
type Key<'a> = (i64, &'a str, DateTime<Utc>);

/// A bar to store, with its key and source.
type Row<'a> = (Key<'a>, &'a Bar, &'static str);

/// Every bar of `completed` with its key and source, in key order, one per
/// key: where two jobs of a batch overlap, the later job's bar is kept.
fn unique_rows<'a>(completed: &[(&ClaimedJob, &'a Completion)]) -> Vec<Row<'a>> {
    let mut rows = Vec::new();
    for (job, completion) in completed {
        let source = completion.provider.map_or("unknown", |p| p.as_str());
        let interval = completion.interval.as_str();
        rows.extend(
            completion
                .bars
                .iter()
                .map(|bar| ((job.asset.id, interval, bar.ts), bar, source)),
        );
    }
    // A stable sort keeps the later job's bar after the earlier one's, and
    // dedup_by moves it into the slot it keeps.
    rows.sort_by_key(|(key, _, _)| *key);
    rows.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    rows
}

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

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::db::assets::{Asset, AssetType};
    use crate::providers::{BarFlag, Interval, ProviderKind};
    use crate::queue::JobId;

    fn job(id: i64, asset: i64) -> ClaimedJob {
        ClaimedJob {
            id: JobId(id),
            attempts: 1,
            max_attempts: 5,
            start_date: "2024-01-01".parse().unwrap(),
            end_date: "2024-01-31".parse().unwrap(),
            asset: Asset {
                id: asset,
                symbol: "X".into(),
                asset_type: AssetType::Stock,
                exchange: "XNAS".into(),
                currency: None,
                yahoo_symbol: None,
                binance_symbol: None,
                coingecko_id: None,
                active: true,
            },
        }
    }

    fn completion(provider: ProviderKind, days: &[u32], close: i64) -> Completion {
        Completion {
            provider: Some(provider),
            interval: Interval::D1,
            bars: days
                .iter()
                .map(|d| Bar {
                    ts: format!("2024-01-{d:02}T14:30:00Z").parse().unwrap(),
                    open: None,
                    high: None,
                    low: None,
                    close: Decimal::from(close),
                    adj_close: None,
                    volume: None,
                    currency: None,
                    flags: Vec::new(),
                })
                .collect(),
            ..Completion::empty()
        }
    }

    #[test]
    fn overlapping_jobs_keep_one_row_per_key_the_later_ones() {
        let (a, b, c) = (job(1, 7), job(2, 7), job(3, 8));
        let first = completion(ProviderKind::Yahoo, &[3, 1, 2], 1);
        let second = completion(ProviderKind::Binance, &[2, 4], 2);
        let other = completion(ProviderKind::Yahoo, &[2], 3);
        let completed = [(&a, &first), (&b, &second), (&c, &other)];
        let rows: Vec<(i64, u32, i64, &str)> = unique_rows(&completed)
            .into_iter()
            .map(|((asset, _, ts), bar, source)| {
                let close = bar.close.try_into().unwrap();
                (asset, chrono::Datelike::day(&ts), close, source)
            })
            .collect();
        assert_eq!(
            rows,
            [
                (7, 1, 1, "yahoo"),
                (7, 2, 2, "binance"),
                (7, 3, 1, "yahoo"),
                (7, 4, 2, "binance"),
                (8, 2, 3, "yahoo"),
            ]
        );
    }

    #[test]
    fn copy_text_fields_escape_what_copy_would_read_as_structure() {
        assert_eq!(escaped("USD"), "USD");
        assert_eq!(escaped("a\tb\\c\nd\re"), "a\\tb\\\\c\\nd\\re");
        let bar = Bar {
            ts: "2024-01-02T14:30:00Z".parse().unwrap(),
            open: None,
            high: Some(Decimal::new(10125, 2)),
            low: None,
            close: Decimal::new(1005, 1),
            adj_close: None,
            volume: Some(Decimal::from(7)),
            currency: Some("G\tBP".to_owned()),
            flags: vec![BarFlag::Spike],
        };
        let mut row = String::new();
        copy_row(&mut row, 3, "1d", bar.ts, &bar, "yahoo");
        assert_eq!(
            row,
            "3\t1d\t2024-01-02T14:30:00+00:00\t\\N\t101.25\t\\N\t100.5\t\\N\t7\tG\\tBP\tyahoo\t{spike}\n"
        );
    }
}
