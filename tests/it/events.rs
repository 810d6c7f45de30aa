//! The event pipeline against real PostgreSQL: portfolio writes become
//! holdings, reference counts and backfill jobs, exactly once.

use crate::common;
use crate::events_common;

use std::time::Duration;

use chrono::{DateTime, Months, NaiveDate, Utc};
use common::{TestDb, eventually, insert_stock, settings, test_db};
use events_common::{jobs, orchestrator, trade, unprocessed, users};
use pricekeeper::events::orchestrator::Orchestrator;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn year_before(day: &str) -> NaiveDate {
    day.parse::<NaiveDate>().unwrap() - Months::new(12)
}

#[tokio::test]
async fn first_buy_tracks_the_asset_and_queues_a_year_before_it() {
    let db = test_db().await;
    let aapl = insert_stock(&db.pool, "AAPL").await;
    let mut jobs_channel = PgListener::connect(db.url()).await.unwrap();
    jobs_channel.listen("pricekeeper_jobs").await.unwrap();

    trade(
        &db.pool,
        Uuid::new_v4(),
        aapl,
        "buy",
        10,
        "2026-03-10T15:00:00Z",
    )
    .await;
    let applied = orchestrator(&db).drain().await.unwrap();
    assert_eq!(
        (applied.events, applied.flagged, applied.jobs_queued),
        (1, 0, 1)
    );

    assert_eq!(users(&db.pool, aapl).await, 1);
    assert_eq!(
        jobs(&db.pool, aapl).await,
        [(year_before("2026-03-10"), today())]
    );
    let (first, last): (DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
        "SELECT first_tracked_at, last_tracked_at FROM tracked_assets WHERE asset_id = $1",
    )
    .bind(aapl)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(first <= last);

    let note = tokio::time::timeout(Duration::from_secs(5), jobs_channel.recv())
        .await
        .expect("idle workers are woken")
        .unwrap();
    assert_eq!(note.payload(), "due");

    let (status, max_attempts): (String, i32) =
        sqlx::query_as("SELECT status::text, max_attempts FROM backfill_queue")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), max_attempts), ("pending", 5));
}

/// A batch of events that queues many jobs wakes each worker once, not
/// once per job; a batch that queues none wakes nobody.
#[tokio::test]
async fn a_batch_queueing_many_jobs_wakes_the_workers_once() {
    let db = test_db().await;
    let mut jobs_channel = PgListener::connect(db.url()).await.unwrap();
    jobs_channel.listen("pricekeeper_jobs").await.unwrap();
    for symbol in ["A1", "A2", "A3", "A4", "A5"] {
        let asset = insert_stock(&db.pool, symbol).await;
        trade(
            &db.pool,
            Uuid::new_v4(),
            asset,
            "buy",
            1,
            "2026-03-10T15:00:00Z",
        )
        .await;
    }
    let applied = orchestrator(&db).drain().await.unwrap();
    assert_eq!(applied.jobs_queued, 5);

    let mut wakeups = 0;
    while let Ok(note) = tokio::time::timeout(Duration::from_millis(300), jobs_channel.recv()).await
    {
        note.unwrap();
        wakeups += 1;
    }
    assert_eq!(wakeups, 1, "one wake-up for the five jobs");

    // A second buy of a held asset, no earlier than the first, queues
    // nothing and wakes nobody.
    let held: i64 = sqlx::query_scalar("SELECT min(asset_id) FROM tracked_assets")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    trade(
        &db.pool,
        Uuid::new_v4(),
        held,
        "buy",
        1,
        "2026-03-11T15:00:00Z",
    )
    .await;
    let applied = orchestrator(&db).drain().await.unwrap();
    assert_eq!((applied.events, applied.jobs_queued), (1, 0));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), jobs_channel.recv())
            .await
            .is_err(),
        "no job, no wake-up"
    );
}

#[tokio::test]
async fn the_same_portfolio_buying_twice_counts_once_and_queues_nothing_more() {
    let db = test_db().await;
    let msft = insert_stock(&db.pool, "MSFT").await;
    let p = Uuid::new_v4();
    trade(&db.pool, p, msft, "buy", 5, "2026-01-05T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();
    let version = || async {
        sqlx::query_scalar::<_, String>("SELECT xmin::text FROM tracked_assets WHERE asset_id = $1")
            .bind(msft)
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    let before = version().await;
    trade(&db.pool, p, msft, "buy", 5, "2026-02-05T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();

    assert_eq!(users(&db.pool, msft).await, 1);
    assert_eq!(jobs(&db.pool, msft).await.len(), 1);
    assert_eq!(
        version().await,
        before,
        "a buy that changes no count leaves the tracked_assets row unwritten"
    );
}

#[tokio::test]
async fn two_portfolios_count_twice_with_one_job() {
    let db = test_db().await;
    let nvda = insert_stock(&db.pool, "NVDA").await;
    trade(
        &db.pool,
        Uuid::new_v4(),
        nvda,
        "buy",
        1,
        "2026-04-01T15:00:00Z",
    )
    .await;
    trade(
        &db.pool,
        Uuid::new_v4(),
        nvda,
        "buy",
        1,
        "2026-05-01T15:00:00Z",
    )
    .await;
    orchestrator(&db).drain().await.unwrap();

    assert_eq!(users(&db.pool, nvda).await, 2);
    assert_eq!(
        jobs(&db.pool, nvda).await,
        [(year_before("2026-04-01"), today())]
    );
}

#[tokio::test]
async fn selling_out_stops_tracking_and_a_partial_sell_does_not() {
    let db = test_db().await;
    let spy = insert_stock(&db.pool, "SPY").await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    trade(&db.pool, a, spy, "buy", 10, "2026-01-02T15:00:00Z").await;
    trade(&db.pool, b, spy, "buy", 10, "2026-01-02T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();
    assert_eq!(users(&db.pool, spy).await, 2);

    trade(&db.pool, a, spy, "sell", 4, "2026-02-02T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();
    assert_eq!(
        users(&db.pool, spy).await,
        2,
        "a partial sell keeps the position"
    );

    trade(&db.pool, a, spy, "sell", 6, "2026-03-02T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();
    assert_eq!(users(&db.pool, spy).await, 1, "a full sell-out");

    trade(&db.pool, b, spy, "sell", 10, "2026-03-02T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();
    assert_eq!(users(&db.pool, spy).await, 0);
    let active: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tracked_assets WHERE tracking_users > 0")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(active, 0);
    assert_eq!(
        jobs(&db.pool, spy).await.len(),
        1,
        "history stays, nothing new queued"
    );
}

#[tokio::test]
async fn a_later_buy_dated_earlier_queues_only_the_missing_range() {
    let db = test_db().await;
    let qqq = insert_stock(&db.pool, "QQQ").await;
    trade(
        &db.pool,
        Uuid::new_v4(),
        qqq,
        "buy",
        1,
        "2026-06-15T15:00:00Z",
    )
    .await;
    orchestrator(&db).drain().await.unwrap();
    // Entered late by the host: a purchase from before the held history.
    trade(
        &db.pool,
        Uuid::new_v4(),
        qqq,
        "buy",
        1,
        "2025-09-01T15:00:00Z",
    )
    .await;
    orchestrator(&db).drain().await.unwrap();
    // A year before this one is held now: nothing.
    trade(
        &db.pool,
        Uuid::new_v4(),
        qqq,
        "buy",
        1,
        "2025-10-01T15:00:00Z",
    )
    .await;
    orchestrator(&db).drain().await.unwrap();

    let first_from = year_before("2026-06-15");
    assert_eq!(
        jobs(&db.pool, qqq).await,
        [
            (first_from, today()),
            (year_before("2025-09-01"), first_from.pred_opt().unwrap()),
        ]
    );
    let coverage: (NaiveDate, NaiveDate) =
        sqlx::query_as("SELECT history_from, history_to FROM tracked_assets WHERE asset_id = $1")
            .bind(qqq)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(coverage, (year_before("2025-09-01"), today()));
}

#[tokio::test]
async fn deleted_and_updated_transactions_apply_their_correction() {
    let db = test_db().await;
    let (tsla, amd) = (
        insert_stock(&db.pool, "TSLA").await,
        insert_stock(&db.pool, "AMD").await,
    );
    let p = Uuid::new_v4();
    let buy = trade(&db.pool, p, tsla, "buy", 3, "2026-02-01T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();
    assert_eq!(users(&db.pool, tsla).await, 1);

    // Entered against the wrong asset: moved to AMD.
    sqlx::query("UPDATE portfolio_transactions SET asset_id = $1 WHERE id = $2")
        .bind(amd)
        .bind(buy)
        .execute(&db.pool)
        .await
        .unwrap();
    orchestrator(&db).drain().await.unwrap();
    assert_eq!(
        (users(&db.pool, tsla).await, users(&db.pool, amd).await),
        (0, 1)
    );
    assert_eq!(jobs(&db.pool, amd).await.len(), 1);

    sqlx::query("DELETE FROM portfolio_transactions WHERE id = $1")
        .bind(buy)
        .execute(&db.pool)
        .await
        .unwrap();
    orchestrator(&db).drain().await.unwrap();
    assert_eq!(users(&db.pool, amd).await, 0);
    let holdings: Vec<String> =
        sqlx::query_scalar("SELECT quantity::text FROM holdings ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(holdings, ["0", "0"]);
}

#[tokio::test]
async fn an_oversold_position_counts_as_not_held_and_an_inactive_asset_is_flagged() {
    let db = test_db().await;
    let gme = insert_stock(&db.pool, "GME").await;
    let old = insert_stock(&db.pool, "DELISTED").await;
    sqlx::query("UPDATE assets SET active = false WHERE id = $1")
        .bind(old)
        .execute(&db.pool)
        .await
        .unwrap();
    let p = Uuid::new_v4();
    trade(&db.pool, p, gme, "buy", 5, "2026-01-01T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();
    let oversell = trade(&db.pool, p, gme, "sell", 8, "2026-02-01T15:00:00Z").await;
    let inactive = trade(&db.pool, p, old, "buy", 1, "2026-02-01T15:00:00Z").await;
    let applied = orchestrator(&db).drain().await.unwrap();
    // The oversell is the host's state, not the event's fault (another
    // orchestrator may hold the buy that makes it whole): it is reported
    // from the holding, which is stored as the true sum.
    assert_eq!((applied.events, applied.flagged), (2, 1));
    assert_eq!(event_errors(&db.pool).await.len(), 1);
    let (flagged, error) = &event_errors(&db.pool).await[0];
    assert_eq!(*flagged, inactive);
    assert!(error.contains("inactive"), "{error}");
    assert_eq!(
        negative_holdings(&db.pool).await,
        vec![(gme, "-3".to_owned())]
    );
    assert_eq!(
        users(&db.pool, gme).await,
        0,
        "an oversold position is not held"
    );
    assert!(jobs(&db.pool, old).await.is_empty());
    assert_eq!(
        unprocessed(&db.pool).await,
        0,
        "marked, not retried forever"
    );

    // The host fixes its ledger; the position is whole again, and nothing
    // is reported any more.
    sqlx::query("UPDATE portfolio_transactions SET quantity = 5 WHERE id = $1")
        .bind(oversell)
        .execute(&db.pool)
        .await
        .unwrap();
    trade(&db.pool, p, gme, "buy", 2, "2026-03-01T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();
    assert_eq!(users(&db.pool, gme).await, 1);
    assert!(negative_holdings(&db.pool).await.is_empty());
}

/// (transaction id, reason) of every event marked with one.
async fn event_errors(pool: &PgPool) -> Vec<(i64, String)> {
    sqlx::query_as(
        "SELECT transaction_id, error FROM portfolio_events
         WHERE error IS NOT NULL AND processed_at IS NOT NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The negative positions `sql/ops_event_problems.sql` reports.
async fn negative_holdings(pool: &PgPool) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT asset_id, quantity::text FROM holdings WHERE quantity < 0 ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_event_that_cannot_be_applied_is_marked_and_the_rest_go_through() {
    let db = test_db().await;
    let good = insert_stock(&db.pool, "GOOD").await;
    trade(
        &db.pool,
        Uuid::new_v4(),
        good,
        "buy",
        1,
        "2026-01-01T15:00:00Z",
    )
    .await;
    // An outbox row naming an asset that does not exist (e.g. written by
    // hand): holdings' foreign key refuses it.
    sqlx::query(
        "INSERT INTO portfolio_events (op, transaction_id, new_portfolio_id, new_asset_id,
                                       new_side, new_quantity, new_executed_at)
         VALUES ('insert', 999999, gen_random_uuid(), 424242, 'buy', 1, now())",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    trade(
        &db.pool,
        Uuid::new_v4(),
        good,
        "buy",
        1,
        "2026-01-01T15:00:00Z",
    )
    .await;

    let applied = orchestrator(&db).drain().await.unwrap();
    assert_eq!((applied.events, applied.flagged), (3, 1));
    assert_eq!(users(&db.pool, good).await, 2);
    let error: String =
        sqlx::query_scalar("SELECT error FROM portfolio_events WHERE transaction_id = 999999")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(error.starts_with("could not be applied"), "{error}");
    assert_eq!(unprocessed(&db.pool).await, 0);
}

/// Runs an orchestrator in the background; returns its stop switch.
fn spawn(db: &TestDb, args: &[&str]) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let orchestrator = Orchestrator::new(db.pool.clone(), &settings(args));
    let handle = tokio::spawn(orchestrator.run(cancel.clone()));
    (cancel, handle)
}

#[tokio::test]
async fn transactions_written_while_stopped_are_applied_on_start() {
    let db = test_db().await;
    let ids = [
        insert_stock(&db.pool, "A").await,
        insert_stock(&db.pool, "B").await,
    ];
    for i in 0..200 {
        trade(
            &db.pool,
            Uuid::new_v4(),
            ids[i % 2],
            "buy",
            1,
            "2026-01-01T15:00:00Z",
        )
        .await;
    }
    assert_eq!(unprocessed(&db.pool).await, 200);

    // A poll interval of an hour: only the start-up catch-up can do this.
    let (cancel, handle) = spawn(&db, &["--poll-interval", "1h", "--event-batch-size", "64"]);
    eventually(Duration::from_secs(20), "catch-up", || async {
        unprocessed(&db.pool).await == 0
    })
    .await;
    assert_eq!(
        (users(&db.pool, ids[0]).await, users(&db.pool, ids[1]).await),
        (100, 100)
    );
    cancel.cancel();
    handle.await.unwrap();
}

#[tokio::test]
async fn a_killed_listener_reconnects_and_nothing_is_lost() {
    let db = test_db().await;
    let id = insert_stock(&db.pool, "KILL").await;
    let (cancel, handle) = spawn(&db, &["--poll-interval", "1h"]);

    let listener_pid = || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND query = 'LISTEN \"pricekeeper_events\"'",
        )
        .fetch_optional(&db.pool)
        .await
        .unwrap()
    };
    for round in 0..3 {
        let pid =
            common::eventually_some(Duration::from_secs(10), "listener connected", listener_pid)
                .await;
        for _ in 0..20 {
            trade(
                &db.pool,
                Uuid::new_v4(),
                id,
                "buy",
                1,
                "2026-01-01T15:00:00Z",
            )
            .await;
        }
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&db.pool)
            .await
            .unwrap();
        // Written while the listener is down or coming back.
        for _ in 0..20 {
            trade(
                &db.pool,
                Uuid::new_v4(),
                id,
                "buy",
                1,
                "2026-01-01T15:00:00Z",
            )
            .await;
        }
        let want = 40 * (round + 1);
        eventually(Duration::from_secs(20), "every event applied", || async {
            unprocessed(&db.pool).await == 0 && users(&db.pool, id).await == want
        })
        .await;
    }
    cancel.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_orchestrators_and_concurrent_writers_agree_with_a_single_pass() {
    let db = test_db().await;
    let mut assets = Vec::new();
    for i in 0..20 {
        assets.push(insert_stock(&db.pool, &format!("C{i}")).await);
    }
    let (c1, h1) = spawn(
        &db,
        &["--event-batch-size", "100", "--poll-interval", "50ms"],
    );
    let (c2, h2) = spawn(
        &db,
        &["--event-batch-size", "100", "--poll-interval", "50ms"],
    );

    // 8 writers x 625 = 5,000 transactions: 40 portfolios each, buys and
    // sells with random back-dated purchases, some sells closing positions.
    let writers = (0..8u64).map(|w| {
        let pool = db.pool.clone();
        let assets = assets.clone();
        tokio::spawn(async move {
            let portfolios: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
            let mut held = std::collections::HashMap::<(usize, usize), i64>::new();
            let mut seed = w + 1;
            let mut next = move |n: u64| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) % n
            };
            for _ in 0..625 {
                let (p, a) = (next(5) as usize, next(20) as usize);
                let qty = *held.get(&(p, a)).unwrap_or(&0);
                let (side, n) = if qty > 0 && next(3) == 0 {
                    ("sell", if next(2) == 0 { qty } else { 1 })
                } else {
                    ("buy", 1 + next(5) as i64)
                };
                *held.entry((p, a)).or_default() += if side == "buy" { n } else { -n };
                let day = format!("2025-{:02}-{:02}T15:00:00Z", 1 + next(12), 1 + next(28));
                trade(&pool, portfolios[p], assets[a], side, n, &day).await;
            }
        })
    });
    for w in futures::future::join_all(writers).await {
        w.unwrap();
    }
    eventually(
        Duration::from_secs(60),
        "all 5,000 events applied",
        || async { unprocessed(&db.pool).await == 0 },
    )
    .await;
    c1.cancel();
    c2.cancel();
    h1.await.unwrap();
    h2.await.unwrap();

    let single_pass: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT a.id, count(p.portfolio_id)
         FROM assets a
         LEFT JOIN (
             SELECT portfolio_id, asset_id
             FROM portfolio_transactions
             GROUP BY portfolio_id, asset_id
             HAVING sum(CASE side WHEN 'buy' THEN quantity ELSE -quantity END) > 0
         ) p ON p.asset_id = a.id
         GROUP BY a.id ORDER BY a.id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let counted: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT a.id, coalesce(t.tracking_users, 0)::bigint
         FROM assets a LEFT JOIN tracked_assets t ON t.asset_id = a.id ORDER BY a.id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(counted, single_pass);
    assert!(counted.iter().any(|(_, n)| *n > 0));

    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             SELECT 1 FROM backfill_queue GROUP BY asset_id, start_date, end_date HAVING count(*) > 1
         ) d",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(duplicates, 0);
    // The jobs of each asset tile exactly [earliest buy - 1 year, today]:
    // no overlap, no hole.
    let tiling: Vec<(i64, NaiveDate, NaiveDate, i64, i64)> = sqlx::query_as(
        "SELECT asset_id, min(start_date), max(end_date),
                sum(end_date - start_date + 1)::bigint,
                (max(end_date) - min(start_date) + 1)::bigint
         FROM backfill_queue GROUP BY asset_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(tiling.len(), 20);
    for (asset, from, to, days, span) in tiling {
        let earliest: NaiveDate = sqlx::query_scalar(
            "SELECT min(executed_at)::date FROM portfolio_transactions
             WHERE asset_id = $1 AND side = 'buy'",
        )
        .bind(asset)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(
            (from, to),
            (earliest - Months::new(12), today()),
            "asset {asset}"
        );
        assert_eq!(days, span, "asset {asset}: jobs overlap or leave a hole");
    }
}
