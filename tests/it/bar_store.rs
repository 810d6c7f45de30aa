//! The bar write path (`queue::store::upsert_prices`) when another writer
//! stores the same bars at the same time: a first backfill copies its bars
//! straight into `asset_prices`, and a key that a concurrent writer
//! committed after the check turns that copy into the staged upsert
//! instead of failing the batch.

use crate::common;

use std::time::Duration;

use chrono::NaiveDate;
use common::{eventually, insert_stock, test_db};
use pricekeeper::db::assets::{Asset, AssetType};
use pricekeeper::providers::{Bar, Interval, ProviderKind};
use pricekeeper::queue::store::upsert_prices;
use pricekeeper::queue::{ClaimedJob, Completion, JobId};
use rust_decimal::Decimal;
use sqlx::{Connection, PgPool};

fn job(asset_id: i64, days: &[NaiveDate]) -> ClaimedJob {
    ClaimedJob {
        id: JobId(1),
        attempts: 1,
        max_attempts: 5,
        start_date: days[0],
        end_date: days[days.len() - 1],
        asset: Asset {
            id: asset_id,
            symbol: "RACE".to_owned(),
            asset_type: AssetType::Stock,
            exchange: "XNAS".to_owned(),
            currency: Some("USD".to_owned()),
            yahoo_symbol: None,
            binance_symbol: None,
            coingecko_id: None,
            active: true,
        },
    }
}

fn completion(days: &[NaiveDate], close: i64) -> Completion {
    let bars = days
        .iter()
        .map(|day| Bar {
            ts: day.and_hms_opt(14, 30, 0).unwrap().and_utc(),
            open: None,
            high: None,
            low: None,
            close: Decimal::from(close),
            adj_close: None,
            volume: None,
            currency: Some("USD".to_owned()),
            flags: Vec::new(),
        })
        .collect();
    Completion {
        provider: Some(ProviderKind::Yahoo),
        interval: Interval::D1,
        bars,
        ..Completion::empty()
    }
}

fn days() -> Vec<NaiveDate> {
    (4..=8)
        .map(|d| NaiveDate::from_ymd_opt(2024, 3, d).unwrap())
        .collect()
}

async fn closes(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as("SELECT ts::date::text, close::text FROM asset_prices ORDER BY ts")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// A database with one stock and 2024's partition.
async fn with_asset() -> (common::TestDb, i64) {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "RACE").await;
    sqlx::query("SELECT ensure_asset_prices_partitions('2024-01-01', '2024-12-31')")
        .execute(&db.pool)
        .await
        .unwrap();
    (db, asset)
}

#[tokio::test]
async fn a_first_backfill_stores_every_bar() {
    let (db, asset) = with_asset().await;
    let days = days();
    let (job, done) = (job(asset, &days), completion(&days, 100));
    let mut tx = db.pool.begin().await.unwrap();
    assert_eq!(upsert_prices(&mut tx, &[(&job, &done)]).await.unwrap(), 5);
    tx.commit().await.unwrap();
    let stored = closes(&db.pool).await;
    assert_eq!(stored.len(), 5);
    assert!(stored.iter().all(|(_, close)| close == "100"));
}

#[tokio::test]
async fn bars_a_concurrent_writer_stored_first_are_updated_not_a_failed_batch() {
    let (db, asset) = with_asset().await;
    let days = days();

    // The other writer has stored the middle day, not yet committed: the
    // check sees nothing, and the copy waits on that key.
    let mut other = db.connect().await;
    let mut other_tx = other.begin().await.unwrap();
    let (other_job, other_done) = (job(asset, &days[2..3]), completion(&days[2..3], 50));
    upsert_prices(&mut other_tx, &[(&other_job, &other_done)])
        .await
        .unwrap();

    let pool = db.pool.clone();
    let days_all = days.clone();
    let writer = tokio::spawn(async move {
        let (job, done) = (job(asset, &days_all), completion(&days_all, 100));
        let mut tx = pool.begin().await.unwrap();
        let sent = upsert_prices(&mut tx, &[(&job, &done)]).await;
        tx.commit().await.unwrap();
        sent
    });
    eventually(
        Duration::from_secs(10),
        "the copy to wait on the key",
        || {
            let pool = db.pool.clone();
            async move {
                sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                WHERE datname = current_database()
                                  AND wait_event_type = 'Lock'
                                  AND query LIKE 'COPY asset_prices%')",
                )
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        },
    )
    .await;
    other_tx.commit().await.unwrap();

    assert_eq!(writer.await.unwrap().unwrap(), 5);
    let stored = closes(&db.pool).await;
    assert_eq!(stored.len(), 5, "{stored:?}");
    assert!(
        stored.iter().all(|(_, close)| close == "100"),
        "the later write wins: {stored:?}"
    );
}
