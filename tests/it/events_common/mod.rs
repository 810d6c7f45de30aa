//! Helpers for the event tests: host writes and what the orchestrator made
//! of them.
#![allow(dead_code)] // each test binary uses a different part of this module

use chrono::NaiveDate;
use pricekeeper::events::orchestrator::Orchestrator;
use sqlx::PgPool;
use uuid::Uuid;

use super::common::{TestDb, settings};

/// A host transaction, as the host application writes it; returns its id.
pub async fn trade(
    pool: &PgPool,
    portfolio: Uuid,
    asset: i64,
    side: &str,
    qty: i64,
    at: &str,
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         VALUES ($1, $2, $3, $4, 100, $5::timestamptz) RETURNING id",
    )
    .bind(portfolio)
    .bind(asset)
    .bind(side)
    .bind(qty)
    .bind(at)
    .fetch_one(pool)
    .await
    .unwrap()
}

pub fn orchestrator(db: &TestDb) -> Orchestrator {
    Orchestrator::new(db.pool.clone(), &settings(&[]))
}

pub async fn users(pool: &PgPool, asset: i64) -> i32 {
    sqlx::query_scalar("SELECT tracking_users FROM tracked_assets WHERE asset_id = $1")
        .bind(asset)
        .fetch_optional(pool)
        .await
        .unwrap()
        .unwrap_or(0)
}

pub async fn jobs(pool: &PgPool, asset: i64) -> Vec<(NaiveDate, NaiveDate)> {
    sqlx::query_as(
        "SELECT start_date, end_date FROM backfill_queue WHERE asset_id = $1 ORDER BY id",
    )
    .bind(asset)
    .fetch_all(pool)
    .await
    .unwrap()
}

pub async fn unprocessed(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM portfolio_events WHERE processed_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}
