//! The bar write path: the bars of completed jobs into `asset_prices`,
//! straight by `COPY` when nothing is stored near them, else through a
//! staging table and one upsert. Runs inside the transaction that
//! completes the jobs.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{Acquire, Executor, PgConnection};

use crate::providers::Bar;
use crate::queue::{ClaimedJob, Completion};

const STAGE: &str = include_str!("../../../sql/queue_stage_prices.sql");
/// The columns every COPY of bars sends, in [`copy_row`]'s order.
macro_rules! copy_bars_into {
    ($table:literal) => {
        concat!(
            "COPY ",
            $table,
            " (asset_id, interval, ts, open, high, low, close, adj_close, volume, currency, \
             source, flags) FROM STDIN"
        )
    };
}
const STAGE_COPY: &str = copy_bars_into!("pricekeeper_bars_stage");
/// COPY of [`copy_text`]'s rows straight into `asset_prices`.
pub(crate) const DIRECT_COPY: &str = copy_bars_into!("asset_prices");
const STORED_NEAR: &str = include_str!("../../../sql/queue_prices_stored_near.sql");
const UPSERT_PRICES: &str = include_str!("../../../sql/queue_upsert_prices.sql");
const REPLACE_DAILY: &str = include_str!("../../../sql/queue_replace_daily.sql");

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

/// The bars of `completed` in COPY's text format, as the write path sends
/// them (for `bench ingest`'s plain COPY of the same rows).
pub(crate) fn copy_text(completed: &[(&ClaimedJob, &Completion)]) -> String {
    let mut text = String::new();
    for ((asset_id, interval, ts), bar, source) in unique_rows(completed) {
        copy_row(&mut text, asset_id, interval, ts, bar, source);
    }
    text
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
