//! Leases: an expired one is reclaimed by another worker and the first
//! worker's late result is refused and changes nothing; a renewed one is
//! never reaped, however long the job runs; a job on its last attempt
//! whose worker vanished ends as failed.

use crate::common;
use crate::queue_common;

use std::str::FromStr;
use std::time::Duration;

use common::test_db;
use pricekeeper::providers::{Bar, Interval, ProviderKind};
use pricekeeper::queue::reaper::reap_expired;
use pricekeeper::queue::transitions::Finished;
use pricekeeper::queue::{Clock, Completion, JobId, JobStatus, Outcome};
use queue_common::*;
use rust_decimal::Decimal;
use sqlx::PgPool;

const LEASE: Duration = Duration::from_secs(60);

fn completion(close: &str) -> Outcome {
    let bars = days_between("2024-03-04", "2024-03-08")
        .into_iter()
        .map(|d| Bar {
            ts: d.and_hms_opt(14, 30, 0).unwrap().and_utc(),
            open: None,
            high: None,
            low: None,
            close: Decimal::from_str(close).unwrap(),
            adj_close: None,
            volume: None,
            currency: Some("USD".into()),
            flags: Vec::new(),
        })
        .collect();
    Outcome::Complete(Completion {
        provider: Some(ProviderKind::Yahoo),
        interval: Interval::D1,
        bars,
        ..Completion::empty()
    })
}

async fn prices(pool: &PgPool) -> Vec<(i64, String, String, String)> {
    sqlx::query_as(
        "SELECT asset_id, ts::text, close::text, xmin::text FROM asset_prices ORDER BY asset_id, ts",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_expired_lease_is_reclaimed_and_the_late_result_changes_nothing() {
    let db = test_db().await;
    let clock = Clock::manual(t0());
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let id = insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-08")).await;
    let first = bare_worker(&db.pool, 10, clock.clone());
    let second = bare_worker(&db.pool, 10, clock.clone());

    let held_by_first = first.claim(10).await.unwrap();
    assert_eq!(held_by_first.len(), 1);

    // Not before the lease runs out...
    clock.advance(LEASE - Duration::from_secs(1));
    assert!(
        reap_expired(&db.pool, clock.sql(), 100)
            .await
            .unwrap()
            .is_empty()
    );
    // ...but after it, the job is queued again, the attempt counted.
    clock.advance(Duration::from_secs(2));
    let reaped = reap_expired(&db.pool, clock.sql(), 100).await.unwrap();
    assert_eq!(reaped, vec![(JobId(id), JobStatus::Pending)]);
    let row = job(&db.pool, id).await;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.locked_by),
        ("pending", 1, None)
    );
    let message = row.error_message.unwrap();
    assert!(message.contains(&first.id().to_string()), "{message}");
    assert!(message.contains("stopped renewing its lease"), "{message}");

    // Another worker takes it and finishes it, storing its bars.
    let taken = second.claim(10).await.unwrap();
    let written = second
        .finish(vec![Finished {
            job: taken[0].clone(),
            outcome: completion("100.25"),
        }])
        .await
        .unwrap();
    assert_eq!(written.applied, vec![JobId(id)]);
    let done = job(&db.pool, id).await;
    assert_eq!((done.status.as_str(), done.attempts), ("completed", 2));
    assert_eq!(done.locked_by, None);

    // The first worker wakes up and reports a result: refused, nothing written.
    let stored = prices(&db.pool).await;
    assert_eq!(stored.len(), 5);
    assert!(stored.iter().all(|p| p.2 == "100.25"));
    let late = held_by_first.into_iter().next().unwrap();
    for outcome in [
        completion("999.99"),
        Outcome::Fail {
            reason: "late".into(),
            provider: None,
        },
    ] {
        let written = first
            .finish(vec![Finished {
                job: late.clone(),
                outcome,
            }])
            .await
            .unwrap();
        assert_eq!(written.refused, vec![JobId(id)]);
        assert!(written.applied.is_empty());
        assert_eq!(job(&db.pool, id).await, done);
        assert_eq!(prices(&db.pool).await, stored);
    }
    assert_eq!(
        first
            .stats()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn a_result_from_an_earlier_claim_of_the_same_worker_is_refused() {
    let db = test_db().await;
    let clock = Clock::manual(t0());
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let id = insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-08")).await;
    let worker = bare_worker(&db.pool, 10, clock.clone());

    let stale = worker.claim(10).await.unwrap().remove(0);
    clock.advance(LEASE * 2);
    reap_expired(&db.pool, clock.sql(), 100).await.unwrap();
    let fresh = worker.claim(10).await.unwrap().remove(0);
    assert_eq!((stale.attempts, fresh.attempts), (1, 2));

    let written = worker
        .finish(vec![Finished {
            job: stale,
            outcome: completion("1.00"),
        }])
        .await
        .unwrap();
    assert_eq!(written.refused, vec![JobId(id)]);
    assert_eq!(job(&db.pool, id).await.status, "in_progress");
    assert!(prices(&db.pool).await.is_empty());

    let written = worker
        .finish(vec![Finished {
            job: fresh,
            outcome: completion("1.00"),
        }])
        .await
        .unwrap();
    assert_eq!(written.applied, vec![JobId(id)]);
    assert_eq!(prices(&db.pool).await.len(), 5);
}

#[tokio::test]
async fn a_renewed_lease_is_never_reaped_however_long_the_job_runs() {
    let db = test_db().await;
    let clock = Clock::manual(t0());
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let id = insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-08")).await;
    let worker = bare_worker(&db.pool, 10, clock.clone());
    worker.claim(10).await.unwrap();

    // Ten minutes of work, renewing every 20 s as the heartbeat does.
    for _ in 0..30 {
        clock.advance(LEASE / 3);
        assert_eq!(worker.heartbeat().await.unwrap(), vec![JobId(id)]);
        assert!(
            reap_expired(&db.pool, clock.sql(), 100)
                .await
                .unwrap()
                .is_empty()
        );
    }
    let row = job(&db.pool, id).await;
    assert_eq!(row.status, "in_progress");
    assert_eq!(
        row.locked_until,
        Some(clock.local() + chrono::Duration::seconds(60))
    );
}

#[tokio::test]
async fn a_vanished_worker_on_the_last_attempt_fails_the_job() {
    let db = test_db().await;
    let clock = Clock::manual(t0());
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let id = insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-08")).await;
    sqlx::query("UPDATE backfill_queue SET attempts = 4, max_attempts = 5 WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    let worker = bare_worker(&db.pool, 10, clock.clone());
    assert_eq!(worker.claim(10).await.unwrap()[0].attempts, 5);

    clock.advance(LEASE + Duration::from_secs(1));
    let reaped = reap_expired(&db.pool, clock.sql(), 100).await.unwrap();
    assert_eq!(reaped, vec![(JobId(id), JobStatus::Failed)]);
    let row = job(&db.pool, id).await;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.locked_by),
        ("failed", 5, None)
    );
    assert!(
        row.error_message
            .unwrap()
            .starts_with("gave up after 5 attempts; the last was interrupted")
    );
    // A failed job is never claimed again.
    assert!(worker.claim(10).await.unwrap().is_empty());
}

/// A body that panics on every job.
struct Panics;

#[async_trait::async_trait]
impl pricekeeper::queue::worker::JobBody for Panics {
    async fn run(&self, _job: &pricekeeper::queue::ClaimedJob, _clock: &Clock) -> Outcome {
        panic!("boom")
    }
}

#[tokio::test]
async fn a_body_that_panics_is_retried_not_lost() {
    let db = test_db().await;
    let clock = Clock::manual(t0());
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let id = insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-08")).await;
    let settings = settings("http://127.0.0.1:9", &[]);
    let worker = pricekeeper::queue::Worker::with_clock(
        db.pool.clone(),
        config(&settings),
        Panics,
        clock.clone(),
    );
    worker.process_next().await.unwrap();
    let row = job(&db.pool, id).await;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.locked_by),
        ("pending", 1, None)
    );
    let wait = (row.retry_after.unwrap() - t0()).num_seconds();
    assert!((270..=330).contains(&wait), "retry in {wait}s");
    let message = row.error_message.unwrap();
    assert!(
        message.contains("the job crashed the worker task (boom)"),
        "{message}"
    );
}
