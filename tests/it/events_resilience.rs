//! Issue 8, the event side: no host row, database hiccup or order of
//! application may crash the orchestrator, lose an event, or report a
//! problem that does not exist.

use crate::common;
use crate::events_common;

use common::{TestDb, insert_stock, test_db};
use events_common::{jobs, orchestrator, trade, unprocessed, users};
use pricekeeper::events::orchestrator::Orchestrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgPool};
use uuid::Uuid;

/// The SQLSTATE a host write fails with, or None when it succeeds.
async fn write_fails_with(pool: &PgPool, quantity: &str, price: &str, at: &str) -> Option<String> {
    let asset = insert_stock(pool, &format!("S{}", Uuid::new_v4().simple())[..10]).await;
    sqlx::query(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         VALUES (gen_random_uuid(), $1, 'buy', $2::numeric, $3::numeric, $4::timestamptz)",
    )
    .bind(asset)
    .bind(quantity)
    .bind(price)
    .bind(at)
    .execute(pool)
    .await
    .err()
    .map(|e| pricekeeper::db::db_code(&e).unwrap_or_else(|| e.to_string()))
}

#[tokio::test]
async fn the_schema_refuses_values_no_purchase_can_have() {
    let db = test_db().await;
    let refused = "23514".to_owned();
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, Option<String>)] = &[
        ("1", "100", "2026-01-02T15:00:00Z", None),
        ("1", "0", "1900-01-01T00:00:00Z", None),
        ("1", "100", "infinity", Some(refused.clone())),
        ("1", "100", "-infinity", Some(refused.clone())),
        ("1", "100", "4713-06-01 00:00:00+00 BC", Some(refused.clone())),
        ("1", "100", "1899-12-31T23:59:59Z", Some(refused.clone())),
        ("1", "100", "270000-01-01T00:00:00Z", Some(refused.clone())),
        ("NaN", "100", "2026-01-02T15:00:00Z", Some(refused.clone())),
        ("Infinity", "100", "2026-01-02T15:00:00Z", Some(refused.clone())),
        ("1", "NaN", "2026-01-02T15:00:00Z", Some(refused.clone())),
        ("1", "Infinity", "2026-01-02T15:00:00Z", Some(refused.clone())),
    ];
    for (quantity, price, at, want) in cases {
        let got = write_fails_with(&db.pool, quantity, price, at).await;
        assert_eq!(
            &got, want,
            "quantity {quantity}, price {price}, executed_at {at}"
        );
    }
    // Dated in the future: a day of slack for the host's clock, no more.
    let soon: Option<String> = sqlx::query_scalar("SELECT (now() + interval '12 hours')::text")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let later: Option<String> = sqlx::query_scalar("SELECT (now() + interval '2 days')::text")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        write_fails_with(&db.pool, "1", "1", &soon.unwrap()).await,
        None
    );
    assert_eq!(
        write_fails_with(&db.pool, "1", "1", &later.unwrap()).await,
        Some(refused)
    );
}

/// Appends an outbox row as the trigger would have before the schema
/// refused such values (or as a hand-written row would).
async fn force_event(pool: &PgPool, portfolio: Uuid, asset: i64, qty: &str, at: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO portfolio_events (op, transaction_id, new_portfolio_id, new_asset_id,
                                       new_side, new_quantity, new_executed_at)
         VALUES ('insert', 900000 + (random() * 99999)::int, $1, $2, 'buy', $3::numeric, $4::timestamptz)
         RETURNING id",
    )
    .bind(portfolio)
    .bind(asset)
    .bind(qty)
    .bind(at)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn event_error(pool: &PgPool, id: i64) -> Option<String> {
    sqlx::query_scalar("SELECT error FROM portfolio_events WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn holding(pool: &PgPool, portfolio: Uuid, asset: i64) -> Option<String> {
    sqlx::query_scalar(
        "SELECT quantity::text FROM holdings WHERE portfolio_id = $1 AND asset_id = $2",
    )
    .bind(portfolio)
    .bind(asset)
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn unusable_rows_already_in_the_outbox_are_flagged_and_the_events_behind_them_applied() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "ODD").await;
    let p = Uuid::new_v4();
    let infinite = force_event(&db.pool, p, asset, "1", "infinity").await;
    let ancient = force_event(&db.pool, p, asset, "1", "4713-06-01 00:00:00+00 BC").await;
    let beyond_chrono = force_event(&db.pool, p, asset, "1", "270000-01-01T00:00:00Z").await;
    let nan = force_event(&db.pool, p, asset, "NaN", "2026-01-02T15:00:00Z").await;
    let inf = force_event(&db.pool, p, asset, "Infinity", "2026-01-02T15:00:00Z").await;
    let good = Uuid::new_v4();
    trade(&db.pool, good, asset, "buy", 2, "2026-01-02T15:00:00Z").await;

    let applied = orchestrator(&db).drain().await.expect("no crash, no error");
    assert_eq!((applied.events, applied.flagged), (6, 5));
    assert_eq!(unprocessed(&db.pool).await, 0);
    for id in [infinite, ancient, beyond_chrono] {
        let error = event_error(&db.pool, id).await.expect("flagged");
        assert!(error.contains("not a usable date"), "{error}");
    }
    for id in [nan, inf] {
        let error = event_error(&db.pool, id).await.expect("flagged");
        assert!(error.contains("not a finite number"), "{error}");
    }
    // The three bad dates still bought 1 each; NaN and Infinity never count.
    assert_eq!(holding(&db.pool, p, asset).await.as_deref(), Some("3"));
    assert_eq!(holding(&db.pool, good, asset).await.as_deref(), Some("2"));
    assert_eq!(users(&db.pool, asset).await, 2);
    assert_eq!(
        jobs(&db.pool, asset).await.len(),
        1,
        "history queued from the usable buy"
    );
}

#[tokio::test]
async fn a_nan_position_never_applied_is_not_undone_by_its_delete() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "NAN").await;
    let p = Uuid::new_v4();
    force_event(&db.pool, p, asset, "NaN", "2026-01-02T15:00:00Z").await;
    trade(&db.pool, p, asset, "buy", 4, "2026-01-02T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();
    // The host deletes the NaN row (its delete carries the NaN as the old leg).
    let delete = sqlx::query_scalar::<_, i64>(
        "INSERT INTO portfolio_events (op, transaction_id, old_portfolio_id, old_asset_id,
                                       old_side, old_quantity, old_executed_at)
         VALUES ('delete', 1, $1, $2, 'buy', 'NaN', '2026-01-02T15:00:00Z') RETURNING id",
    )
    .bind(p)
    .bind(asset)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    trade(&db.pool, p, asset, "sell", 4, "2026-01-03T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();
    assert_eq!(holding(&db.pool, p, asset).await.as_deref(), Some("0"));
    assert_eq!(users(&db.pool, asset).await, 0, "the position closes");
    let error = event_error(&db.pool, delete).await.expect("flagged");
    assert!(error.contains("never applied"), "{error}");
}

/// A pool whose sessions give up on a lock after 200 ms, like a database
/// configured with `lock_timeout = '200ms'`.
async fn impatient_pool(db: &TestDb) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET lock_timeout = '200ms'").await?;
                Ok(())
            })
        })
        .connect(db.url())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_lock_timeout_leaves_events_unprocessed_until_they_can_be_applied_once() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "LOCKED").await;
    let first = Uuid::new_v4();
    trade(&db.pool, first, asset, "buy", 1, "2026-01-02T15:00:00Z").await;
    orchestrator(&db).drain().await.unwrap();

    // Another session holds the asset's tracked_assets row.
    let mut holder = db.connect().await;
    let mut lock = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM tracked_assets WHERE asset_id = $1 FOR UPDATE")
        .bind(asset)
        .execute(&mut *lock)
        .await
        .unwrap();
    let second = Uuid::new_v4();
    trade(&db.pool, second, asset, "buy", 1, "2026-01-02T15:00:00Z").await;
    let impatient = Orchestrator::new(impatient_pool(&db).await, &common::settings(&[]));
    let failed = impatient.drain().await;
    assert!(
        failed.is_err(),
        "a lock timeout is not the event's fault: {failed:?}"
    );
    assert_eq!(
        unprocessed(&db.pool).await,
        1,
        "left for a later step, not marked"
    );

    lock.rollback().await.unwrap();
    let applied = impatient.drain().await.unwrap();
    assert_eq!((applied.events, applied.flagged), (1, 0));
    assert_eq!(users(&db.pool, asset).await, 2, "applied exactly once");
    let errors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM portfolio_events WHERE error IS NOT NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(errors, 0);
}

#[tokio::test]
async fn a_sell_applied_before_its_buy_by_another_orchestrator_reports_nothing() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "RACE").await;
    let p = Uuid::new_v4();
    trade(&db.pool, p, asset, "buy", 10, "2026-01-02T15:00:00Z").await;
    let sell = trade(&db.pool, p, asset, "sell", 4, "2026-01-03T15:00:00Z").await;
    // Another orchestrator holds the buy's event (claimed, not committed).
    let mut other = db.connect().await;
    let mut claimed = other.begin().await.unwrap();
    sqlx::query(
        "SELECT id FROM portfolio_events WHERE transaction_id <> $1 AND processed_at IS NULL
         FOR UPDATE",
    )
    .bind(sell)
    .execute(&mut *claimed)
    .await
    .unwrap();
    let first = orchestrator(&db).drain().await.unwrap();
    assert_eq!(first.events, 1, "only the sell was free");
    assert_eq!(holding(&db.pool, p, asset).await.as_deref(), Some("-4"));
    claimed.rollback().await.unwrap();
    orchestrator(&db).drain().await.unwrap();

    assert_eq!(holding(&db.pool, p, asset).await.as_deref(), Some("6"));
    assert_eq!(users(&db.pool, asset).await, 1);
    let errors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM portfolio_events WHERE error IS NOT NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        errors, 0,
        "the final state is right, so nothing is reported"
    );
    let negative: i64 = sqlx::query_scalar("SELECT count(*) FROM holdings WHERE quantity < 0")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(negative, 0);
}

#[tokio::test]
async fn truncating_the_host_table_releases_every_holding() {
    let db = test_db().await;
    let (a, b) = (
        insert_stock(&db.pool, "TRA").await,
        insert_stock(&db.pool, "TRB").await,
    );
    for p in [Uuid::new_v4(), Uuid::new_v4()] {
        trade(&db.pool, p, a, "buy", 3, "2026-01-02T15:00:00Z").await;
        trade(&db.pool, p, b, "buy", 1, "2026-01-02T15:00:00Z").await;
    }
    orchestrator(&db).drain().await.unwrap();
    assert_eq!((users(&db.pool, a).await, users(&db.pool, b).await), (2, 2));

    sqlx::query("TRUNCATE portfolio_transactions")
        .execute(&db.pool)
        .await
        .unwrap();
    let applied = orchestrator(&db).drain().await.unwrap();
    assert_eq!((applied.events, applied.flagged), (4, 0));
    assert_eq!((users(&db.pool, a).await, users(&db.pool, b).await), (0, 0));
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM holdings WHERE quantity <> 0")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(open, 0);

    // A truncate rolled back leaves nothing behind.
    trade(
        &db.pool,
        Uuid::new_v4(),
        a,
        "buy",
        1,
        "2026-01-02T15:00:00Z",
    )
    .await;
    orchestrator(&db).drain().await.unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("TRUNCATE portfolio_transactions")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    orchestrator(&db).drain().await.unwrap();
    assert_eq!(users(&db.pool, a).await, 1);
}
