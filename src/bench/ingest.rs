//! `bench ingest`: the bar write path (`store::upsert_prices`, in worker
//! batches, each in its own transaction as the worker commits them)
//! against a plain `COPY` of the same rows into the same empty table, in
//! the same run, as a ratio. Rounds alternate so that a noisy neighbour
//! hurts both sides alike. Each round also re-writes the stored year with
//! every adjusted close corrected (a re-fetch after a dividend): the path
//! that updates rows already there.

use std::time::Instant;

use chrono::{Datelike, NaiveDate, Weekday};
use rust_decimal::Decimal;
use sqlx::PgPool;

use super::{BenchError, Scratch, round3};
use crate::config::Settings;
use crate::db::assets::{Asset, AssetType};
use crate::providers::{Bar, Interval, ProviderKind};
use crate::queue::store::{DIRECT_COPY, copy_text, upsert_prices};
use crate::queue::{ClaimedJob, Completion, JobId};

#[derive(Debug, clap::Args)]
pub struct IngestBench {
    /// Assets, each with a year of daily bars (252 rows).
    #[arg(long, default_value_t = 400)]
    pub assets: usize,
    /// Jobs per write transaction (the worker's BACKFILL_BATCH_SIZE).
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Alternating rounds of each side.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Debug, serde::Serialize)]
pub struct IngestReport {
    pub rows: usize,
    pub rows_per_transaction: usize,
    /// Best round of each, rows per second.
    pub copy_rows_per_s: f64,
    pub write_path_rows_per_s: f64,
    /// write path / COPY; target at least 0.5.
    pub ratio: f64,
    /// Best round of the re-write over stored rows, rows per second.
    pub rewrite_rows_per_s: f64,
    /// re-write / COPY.
    pub rewrite_ratio: f64,
    pub rounds: Vec<Round>,
}

#[derive(Debug, serde::Serialize)]
pub struct Round {
    pub copy_rows_per_s: f64,
    pub write_path_rows_per_s: f64,
    pub rewrite_rows_per_s: f64,
}

pub async fn run(settings: &Settings, args: &IngestBench) -> Result<IngestReport, BenchError> {
    let scratch = Scratch::create(&settings.connect_options(), 4).await?;
    let report = measure(&scratch.pool, args).await;
    scratch.drop().await?;
    report
}

async fn measure(pool: &PgPool, args: &IngestBench) -> Result<IngestReport, BenchError> {
    let jobs = jobs(pool, args.assets).await?;
    let rows: usize = jobs.iter().map(|(_, c)| c.bars.len()).sum();
    let copy_text = {
        let refs: Vec<(&ClaimedJob, &Completion)> = jobs.iter().map(|(j, c)| (j, c)).collect();
        copy_text(&refs)
    };
    let corrected = corrected(&jobs);
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        empty(pool).await?;
        let started = Instant::now();
        let mut conn = pool.acquire().await?;
        let mut copy = conn.copy_in_raw(DIRECT_COPY).await?;
        copy.send(copy_text.as_bytes()).await?;
        copy.finish().await?;
        drop(conn);
        let copy_rate = rows as f64 / started.elapsed().as_secs_f64();

        empty(pool).await?;
        let write_rate = write(pool, &jobs, args.batch).await?;
        let rewrite_rate = write(pool, &corrected, args.batch).await?;
        let changed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM asset_prices WHERE adj_close IS DISTINCT FROM close",
        )
        .fetch_one(pool)
        .await?;
        if changed as usize != rows {
            return Err(BenchError::Stalled(format!(
                "the re-write corrected {changed} of {rows} rows"
            )));
        }
        rounds.push(Round {
            copy_rows_per_s: copy_rate.round(),
            write_path_rows_per_s: write_rate.round(),
            rewrite_rows_per_s: rewrite_rate.round(),
        });
    }
    let best = |f: fn(&Round) -> f64| rounds.iter().map(f).fold(0.0, f64::max);
    let copy = best(|r| r.copy_rows_per_s);
    let write = best(|r| r.write_path_rows_per_s);
    let rewrite = best(|r| r.rewrite_rows_per_s);
    Ok(IngestReport {
        rows,
        rows_per_transaction: rows / jobs.len().max(1) * args.batch,
        copy_rows_per_s: copy,
        write_path_rows_per_s: write,
        ratio: round3(write / copy),
        rewrite_rows_per_s: rewrite,
        rewrite_ratio: round3(rewrite / copy),
        rounds,
    })
}

/// Writes `jobs` through the write path in worker batches, checks that
/// every row is stored, and returns rows per second.
async fn write(
    pool: &PgPool,
    jobs: &[(ClaimedJob, Completion)],
    batch: usize,
) -> Result<f64, BenchError> {
    let rows: usize = jobs.iter().map(|(_, c)| c.bars.len()).sum();
    let started = Instant::now();
    for batch in jobs.chunks(batch.max(1)) {
        let refs: Vec<(&ClaimedJob, &Completion)> = batch.iter().map(|(j, c)| (j, c)).collect();
        let mut tx = pool.begin().await?;
        upsert_prices(&mut tx, &refs).await?;
        tx.commit().await?;
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM asset_prices")
        .fetch_one(pool)
        .await?;
    if stored as usize != rows {
        return Err(BenchError::Stalled(format!(
            "the write path stored {stored} of {rows} rows"
        )));
    }
    Ok(rate)
}

/// The same jobs with every adjusted close one percent lower, as a
/// re-fetch after a dividend answers.
fn corrected(jobs: &[(ClaimedJob, Completion)]) -> Vec<(ClaimedJob, Completion)> {
    jobs.iter()
        .map(|(job, completion)| {
            let mut completion = completion.clone();
            for bar in &mut completion.bars {
                bar.adj_close = bar.adj_close.map(|a| a * Decimal::new(99, 2));
            }
            (job.clone(), completion)
        })
        .collect()
}

/// An empty table, its dead rows gone, as each side starts.
async fn empty(pool: &PgPool) -> Result<(), BenchError> {
    sqlx::query("TRUNCATE asset_prices").execute(pool).await?;
    sqlx::query("SELECT ensure_asset_prices_partitions('2024-01-01', '2024-12-31')")
        .execute(pool)
        .await?;
    Ok(())
}

/// One completed job per asset with a year of 2024's weekdays.
async fn jobs(pool: &PgPool, n: usize) -> Result<Vec<(ClaimedJob, Completion)>, BenchError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO assets (symbol, asset_type, exchange, currency)
         SELECT 'I' || i, 'stock', 'XNAS', 'USD' FROM generate_series(1, $1) AS i
         RETURNING id",
    )
    .bind(n as i32)
    .fetch_all(pool)
    .await?;
    let days: Vec<NaiveDate> = NaiveDate::from_ymd_opt(2024, 1, 2)
        .expect("date")
        .iter_days()
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .take(252)
        .collect();
    Ok(ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let job = ClaimedJob {
                id: JobId(id),
                attempts: 1,
                max_attempts: 5,
                start_date: days[0],
                end_date: days[days.len() - 1],
                asset: Asset {
                    id,
                    symbol: format!("I{}", i + 1),
                    asset_type: AssetType::Stock,
                    exchange: "XNAS".to_owned(),
                    currency: Some("USD".to_owned()),
                    yahoo_symbol: None,
                    binance_symbol: None,
                    coingecko_id: None,
                    active: true,
                },
            };
            let bars = days
                .iter()
                .enumerate()
                .map(|(d, day)| {
                    let close = Decimal::new(15_000 + (d as i64 * 37 + i as i64) % 5_000, 2);
                    Bar {
                        ts: day.and_hms_opt(14, 30, 0).expect("time").and_utc(),
                        open: Some(close - Decimal::new(50, 2)),
                        high: Some(close + Decimal::new(125, 2)),
                        low: Some(close - Decimal::new(125, 2)),
                        close,
                        adj_close: Some(close),
                        volume: Some(Decimal::from(50_000_000 + d as i64 * 1_000)),
                        currency: Some("USD".to_owned()),
                        flags: Vec::new(),
                    }
                })
                .collect();
            let completion = Completion {
                provider: Some(ProviderKind::Yahoo),
                interval: Interval::D1,
                bars,
                ..Completion::empty()
            };
            (job, completion)
        })
        .collect())
}
