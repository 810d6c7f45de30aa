//! Wake-ups: an idle worker polls only once an hour here, so each test
//! proves its own mechanism: a notification, the sleep until the next
//! `retry_after`, and a LISTEN connection that comes back after being
//! killed and catches up on what it missed.

use crate::common;
use crate::queue_common;

use common::test_db;
use pricekeeper::queue::Worker;
use pricekeeper::queue::worker::NoOp;
use queue_common::*;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

fn idle_worker(pool: &PgPool) -> Worker<NoOp> {
    let settings = settings("http://127.0.0.1:9", &["--poll-interval=1h"]);
    Worker::new(pool.clone(), config(&settings), NoOp)
}

async fn completed(pool: &PgPool, id: i64) -> bool {
    job(pool, id).await.status == "completed"
}

/// Inserts a job and announces it, as the orchestrator does.
async fn announce_job(pool: &PgPool, asset: i64, day: &str) -> i64 {
    sqlx::query_scalar(
        "WITH job AS (INSERT INTO backfill_queue (asset_id, start_date, end_date)
                      VALUES ($1, $2, $2) RETURNING id)
         SELECT id FROM job CROSS JOIN LATERAL pg_notify('pricekeeper_jobs', job.id::text) AS n",
    )
    .bind(asset)
    .bind(date(day))
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn listening(pool: &PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%pricekeeper_jobs%'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_idle_worker_wakes_on_a_notification() {
    let db = test_db().await;
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let worker = idle_worker(&db.pool);
    let cancel = CancellationToken::new();
    let running = tokio::spawn(worker.clone().run(cancel.clone()));
    let pool = db.pool.clone();
    until("the worker listening", || {
        let pool = pool.clone();
        async move { !listening(&pool).await.is_empty() }
    })
    .await;

    for day in ["2024-01-02", "2024-01-03", "2024-01-04"] {
        let id = announce_job(&db.pool, asset, day).await;
        until("the announced job completed", || completed(&pool, id)).await;
    }
    cancel.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn a_worker_with_nothing_due_sleeps_until_the_next_retry() {
    let db = test_db().await;
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO backfill_queue (asset_id, start_date, end_date, retry_after)
         VALUES ($1, '2024-01-02', '2024-01-02', now() + interval '1500 milliseconds')
         RETURNING id",
    )
    .bind(asset)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let due = job(&db.pool, id).await.retry_after.unwrap();
    let worker = idle_worker(&db.pool);
    let cancel = CancellationToken::new();
    let running = tokio::spawn(worker.clone().run(cancel.clone()));

    let pool = db.pool.clone();
    until("the job completed once due", || completed(&pool, id)).await;
    let done = job(&db.pool, id).await.completed_at.unwrap();
    assert!(done >= due, "completed at {done}, due at {due}");
    assert!(
        done - due < chrono::Duration::seconds(1),
        "completed at {done}, due at {due}"
    );
    cancel.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn the_listener_comes_back_after_its_connection_is_killed_and_catches_up() {
    let db = test_db().await;
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let worker = idle_worker(&db.pool);
    let cancel = CancellationToken::new();
    let running = tokio::spawn(worker.clone().run(cancel.clone()));
    let pool = db.pool.clone();
    until("the worker listening", || {
        let pool = pool.clone();
        async move { listening(&pool).await.len() == 1 }
    })
    .await;
    let old = listening(&db.pool).await;

    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(old[0])
        .execute(&db.pool)
        .await
        .unwrap();
    // Announced while nobody listens: the notification is lost, the job is not.
    let id = announce_job(&db.pool, asset, "2024-01-02").await;
    until("the job completed after the reconnect", || {
        completed(&pool, id)
    })
    .await;
    until("a new LISTEN connection", || {
        let (pool, old) = (pool.clone(), old.clone());
        async move {
            let now = listening(&pool).await;
            now.len() == 1 && now != old
        }
    })
    .await;

    // And notifications work again on the new connection.
    let id = announce_job(&db.pool, asset, "2024-01-03").await;
    until("the next announced job completed", || completed(&pool, id)).await;
    cancel.cancel();
    running.await.unwrap();
}
