//! Retention against a real database: what goes (old finished jobs, old
//! processed events, old rejected rows, zero holdings) and what stays
//! (failed jobs nobody superseded, unprocessed events, recent rows), in
//! batches that each stay short; and which process may run it.

use crate::common;

use std::time::Duration;

use chrono::Utc;
use common::{insert_stock, test_db};
use pricekeeper::ops::retention::{self, Gate, RetentionArgs};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

async fn exec(pool: &PgPool, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn old_finished_rows_go_in_short_batches_and_everything_else_stays() {
    let db = test_db().await;
    let a = insert_stock(&db.pool, "AAPL").await;
    let b = insert_stock(&db.pool, "MSFT").await;
    exec(
        &db.pool,
        format!(
            "-- 20,000 completed long ago, 100 recently; old and recent cancelled.
             INSERT INTO backfill_queue (asset_id, start_date, end_date, status, completed_at, updated_at)
             SELECT {a}, date '1990-01-01' + g, date '1990-01-01' + g, 'completed',
                    now() - interval '40 days', now() - interval '40 days'
             FROM generate_series(1, 20000) AS g;
             INSERT INTO backfill_queue (asset_id, start_date, end_date, status, completed_at)
             SELECT {a}, date '2060-01-01' + g, date '2060-01-01' + g, 'completed', now()
             FROM generate_series(1, 100) AS g;
             INSERT INTO backfill_queue (asset_id, start_date, end_date, status, updated_at)
             VALUES ({a}, '2070-01-01', '2070-01-31', 'cancelled', now() - interval '40 days'),
                    ({a}, '2070-02-01', '2070-02-28', 'cancelled', now());
             -- Failed long ago: one superseded by a later completed job
             -- (itself old), one nobody has fixed.
             INSERT INTO backfill_queue (asset_id, start_date, end_date, status, error_message, updated_at)
             VALUES ({b}, '2020-01-01', '2020-12-31', 'failed', 'superseded', now() - interval '50 days'),
                    ({b}, '2021-01-01', '2021-12-31', 'failed', 'still broken', now() - interval '50 days');
             INSERT INTO backfill_queue (asset_id, start_date, end_date, status, completed_at)
             VALUES ({b}, '2019-06-01', '2020-12-31', 'completed', now() - interval '45 days');
             -- Rejected rows: of an old job (go with it), old of a recent
             -- job (go by age), recent (stay).
             INSERT INTO backfill_rejects (job_id, asset_id, provider, ts, reason, recorded_at)
             SELECT (SELECT min(id) FROM backfill_queue), {a}, 'yahoo', now(), 'old job', now() - interval '40 days';
             INSERT INTO backfill_rejects (job_id, asset_id, provider, ts, reason, recorded_at)
             SELECT (SELECT max(id) FROM backfill_queue WHERE status = 'completed' AND completed_at > now() - interval '1 day'),
                    {a}, 'yahoo', now(), r, t
             FROM (VALUES ('old', now() - interval '100 days'), ('recent', now())) AS v (r, t);
             -- Events: 5,000 processed long ago, some recently, and old
             -- ones never applied.
             INSERT INTO portfolio_events (op, transaction_id, new_portfolio_id, new_asset_id, new_side,
                                           new_quantity, new_executed_at, created_at, processed_at)
             SELECT 'insert', g, gen_random_uuid(), {a}, 'buy', 1, now(),
                    now() - interval '10 days', now() - interval '10 days'
             FROM generate_series(1, 5000) AS g;
             INSERT INTO portfolio_events (op, transaction_id, new_portfolio_id, new_asset_id, new_side,
                                           new_quantity, new_executed_at, created_at, processed_at)
             SELECT 'insert', g, gen_random_uuid(), {a}, 'buy', 1, now(), now(), now()
             FROM generate_series(1, 10) AS g;
             INSERT INTO portfolio_events (op, transaction_id, new_portfolio_id, new_asset_id, new_side,
                                           new_quantity, new_executed_at, created_at)
             SELECT 'insert', g, gen_random_uuid(), {a}, 'buy', 1, now(), now() - interval '20 days'
             FROM generate_series(1, 3) AS g;
             -- Holdings: closed long ago, open, negative (kept: the true sum).
             INSERT INTO holdings (portfolio_id, asset_id, quantity, updated_at)
             VALUES (gen_random_uuid(), {a}, 0, now() - interval '40 days'),
                    (gen_random_uuid(), {a}, 5, now() - interval '40 days'),
                    (gen_random_uuid(), {b}, -1, now() - interval '40 days');"
        ),
    )
    .await;

    let args = RetentionArgs {
        retention_batch: 1000,
        ..RetentionArgs::default()
    };
    let report = retention::run_once(&db.pool, &args, Utc::now(), &CancellationToken::new())
        .await
        .unwrap();
    let by = |what: &str| {
        report
            .trimmed
            .iter()
            .find(|t| t.what == what)
            .unwrap_or_else(|| panic!("{what}: {report:?}"))
            .clone()
    };
    let completed = by("completed jobs");
    assert_eq!(completed.deleted, 20_001, "{report:?}");
    assert_eq!(
        completed.batches, 21,
        "batches of at most 1,000: {report:?}"
    );
    assert_eq!(by("superseded failed jobs").deleted, 1);
    assert_eq!(by("cancelled jobs").deleted, 1);
    assert_eq!(by("processed events").deleted, 5000);
    assert_eq!(
        by("rejected rows").deleted,
        1,
        "the other old one went with its job"
    );
    assert_eq!(by("holdings at zero").deleted, 1);
    for t in &report.trimmed {
        // Generous on a loaded machine; the bench reports the real figure.
        assert!(t.max_batch_ms < 5_000.0, "{t:?}");
    }

    let kept = [
        (
            "SELECT count(*) FROM backfill_queue WHERE status = 'completed'",
            100,
        ),
        (
            "SELECT count(*) FROM backfill_queue WHERE status = 'cancelled'",
            1,
        ),
        (
            "SELECT count(*) FROM backfill_queue WHERE status = 'failed' AND error_message = 'still broken'",
            1,
        ),
        (
            "SELECT count(*) FROM backfill_queue WHERE status = 'failed'",
            1,
        ),
        (
            "SELECT count(*) FROM portfolio_events WHERE processed_at IS NULL",
            3,
        ),
        ("SELECT count(*) FROM portfolio_events", 13),
        ("SELECT count(*) FROM backfill_rejects", 1),
        ("SELECT count(*) FROM holdings", 2),
    ];
    for (sql, want) in kept {
        assert_eq!(count(&db.pool, sql).await, want, "{sql}");
    }

    // A second pass finds nothing, reading one short batch per table.
    let again = retention::run_once(&db.pool, &args, Utc::now(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.deleted(), 0, "{again:?}");
    assert!(again.trimmed.iter().all(|t| t.batches == 1), "{again:?}");
}

#[tokio::test]
async fn a_worker_trims_only_when_no_daemon_is_active_and_only_one_worker_at_a_time() {
    let db = test_db().await;
    let lease = Duration::from_secs(60);
    let first = Gate::Worker {
        holder: uuid::Uuid::new_v4(),
    };
    let second = Gate::Worker {
        holder: uuid::Uuid::new_v4(),
    };
    assert!(first.open(&db.pool, lease).await.unwrap());
    assert!(
        !second.open(&db.pool, lease).await.unwrap(),
        "the first worker holds the retention lease"
    );

    // A live daemon: no worker trims.
    sqlx::query("DELETE FROM leader_leases")
        .execute(&db.pool)
        .await
        .unwrap();
    pricekeeper::daemon::lease::try_acquire(
        &db.pool,
        pricekeeper::daemon::ROLE,
        uuid::Uuid::new_v4(),
        lease,
    )
    .await
    .unwrap()
    .expect("the daemon's lease");
    assert!(!first.open(&db.pool, lease).await.unwrap());
    assert!(!second.open(&db.pool, lease).await.unwrap());
}
