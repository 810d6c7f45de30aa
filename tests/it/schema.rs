//! The schema and the host-application contract: migrations, the outbox
//! trigger with its notification, and the constraints on transactions.

use crate::common;

use std::time::Duration;

use common::{TestDb, insert_stock, test_db};
use pricekeeper::db::MIGRATOR;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

async fn insert_buy(pool: &PgPool, asset_id: i64) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         VALUES ($1, $2, 'buy', 10, 150.25, now()) RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(asset_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn outbox(pool: &PgPool) -> Vec<(i64, String, i64)> {
    sqlx::query_as("SELECT id, op, transaction_id FROM portfolio_events ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn listen(db: &TestDb) -> PgListener {
    let mut listener = PgListener::connect(db.url()).await.unwrap();
    listener.listen("pricekeeper_events").await.unwrap();
    listener
}

/// The next notification's payload, or None when none comes within a
/// short window (used only to prove that nothing else is pending).
async fn next_payload(listener: &mut PgListener, within: Duration) -> Option<String> {
    tokio::time::timeout(within, listener.recv())
        .await
        .ok()
        .map(|n| n.unwrap().payload().to_owned())
}

/// Tables, columns, indexes, constraints and functions, as text to compare.
async fn schema_fingerprint(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT string_agg(item, E'\n' ORDER BY item) FROM (
             SELECT format('col %s.%s %s %s %s', table_name, column_name, data_type,
                           is_nullable, column_default) AS item
             FROM information_schema.columns WHERE table_schema = current_schema()
             UNION ALL
             SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = current_schema()
             UNION ALL
             SELECT 'con ' || conname || ' ' || pg_get_constraintdef(oid)
             FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
             UNION ALL
             SELECT 'fn ' || proname || ' ' || coalesce(array_to_string(proconfig, ','), '')
             FROM pg_proc WHERE pronamespace = current_schema()::regnamespace
             UNION ALL
             SELECT 'trg ' || tgname FROM pg_trigger WHERE NOT tgisinternal
         ) AS s",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_rerun_changes_nothing() {
    let (url, name) = common::unused_database_url().await;
    let (pool, _) =
        pricekeeper::db::connect_in_schema(&url.parse().unwrap(), None, 2, Duration::from_secs(5))
            .await
            .unwrap();

    pricekeeper::db::migrate(&pool).await.unwrap();
    let first = schema_fingerprint(&pool).await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, MIGRATOR.iter().count() as i64);
    for table in [
        "assets",
        "portfolio_transactions",
        "portfolio_events",
        "holdings",
        "tracked_assets",
        "backfill_queue",
        "asset_prices",
        "provider_state",
        "asset_quotes",
        "portfolio_valuations",
        "price_gaps",
    ] {
        assert!(
            first.contains(&format!("col {table}.")),
            "missing table {table}"
        );
    }

    pricekeeper::db::migrate(&pool).await.unwrap();
    assert_eq!(schema_fingerprint(&pool).await, first);
    let reapplied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(reapplied, applied);

    pool.close().await;
    common::drop_database(&name).await;
}

#[tokio::test]
async fn insert_update_delete_each_leave_one_event_and_one_notification() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "AAPL").await;
    let mut listener = listen(&db).await;

    let tx = insert_buy(&db.pool, asset).await;
    sqlx::query("UPDATE portfolio_transactions SET quantity = 4 WHERE id = $1")
        .bind(tx)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM portfolio_transactions WHERE id = $1")
        .bind(tx)
        .execute(&db.pool)
        .await
        .unwrap();

    let events = outbox(&db.pool).await;
    let ops: Vec<_> = events.iter().map(|(_, op, t)| (op.as_str(), *t)).collect();
    assert_eq!(ops, [("insert", tx), ("update", tx), ("delete", tx)]);

    // One wake-up per committed transaction; the payload is only a hint.
    for _ in &events {
        let payload = next_payload(&mut listener, Duration::from_secs(5)).await;
        assert_eq!(payload.as_deref(), Some("changed"));
    }
    assert_eq!(
        next_payload(&mut listener, Duration::from_millis(200)).await,
        None
    );

    // The event carries the transaction before and after.
    let (old_qty, new_qty): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT old_quantity::text, new_quantity::text FROM portfolio_events WHERE op = 'update'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (old_qty.as_deref(), new_qty.as_deref()),
        (Some("10"), Some("4"))
    );
}

#[tokio::test]
async fn a_rolled_back_write_leaves_no_event_and_no_notification() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "MSFT").await;
    let mut listener = listen(&db).await;

    let mut conn = db.connect().await;
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         VALUES (gen_random_uuid(), $1, 'buy', 1, 1, now())",
    )
    .bind(asset)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert!(outbox(&db.pool).await.is_empty());

    // A committed write afterwards is the only thing the listener hears,
    // so nothing was sent for the rolled-back one.
    insert_buy(&db.pool, asset).await;
    let events = outbox(&db.pool).await;
    assert_eq!(events.len(), 1);
    let payload = next_payload(&mut listener, Duration::from_secs(5)).await;
    assert_eq!(payload.as_deref(), Some("changed"));
    assert_eq!(
        next_payload(&mut listener, Duration::from_millis(200)).await,
        None
    );
}

#[tokio::test]
async fn a_transaction_writing_many_rows_notifies_once() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "MSFT").await;
    let mut listener = listen(&db).await;

    let mut conn = db.connect().await;
    let mut tx = conn.begin().await.unwrap();
    for _ in 0..3 {
        sqlx::query(
            "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
             SELECT gen_random_uuid(), $1, 'buy', 1, 1, now() FROM generate_series(1, 100)",
        )
        .bind(asset)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(outbox(&db.pool).await.len(), 300);
    assert_eq!(
        next_payload(&mut listener, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("changed")
    );
    assert_eq!(
        next_payload(&mut listener, Duration::from_millis(200)).await,
        None,
        "one wake-up for 300 rows in one transaction"
    );
}

#[tokio::test]
async fn bad_transactions_are_rejected_by_constraints() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "NVDA").await;
    let cases = [
        ("zero quantity", asset, "buy", "0", "10", "23514"),
        ("negative quantity", asset, "buy", "-1", "10", "23514"),
        ("negative price", asset, "buy", "1", "-0.01", "23514"),
        ("unknown side", asset, "hold", "1", "10", "23514"),
        ("unknown asset", asset + 1000, "buy", "1", "10", "23503"),
    ];
    for (what, asset_id, side, quantity, price, code) in cases {
        let err = sqlx::query(
            "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
             VALUES (gen_random_uuid(), $1, $2, $3::numeric, $4::numeric, now())",
        )
        .bind(asset_id)
        .bind(side)
        .bind(quantity)
        .bind(price)
        .execute(&db.pool)
        .await
        .expect_err(what);
        assert_eq!(
            pricekeeper::db::db_code(&err).as_deref(),
            Some(code),
            "{what}: {err}"
        );
    }
    // A free transaction (price 0, e.g. a gift) is allowed.
    sqlx::query(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         VALUES (gen_random_uuid(), $1, 'buy', 1, 0, now())",
    )
    .bind(asset)
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        outbox(&db.pool).await.len(),
        1,
        "only the valid write made an event"
    );
}

#[tokio::test]
async fn price_partitions_are_created_on_demand_and_idempotently() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "SPY").await;
    sqlx::query("SELECT ensure_asset_prices_partitions('2024-06-01Z', '2026-02-01Z')")
        .execute(&db.pool)
        .await
        .unwrap();
    // Concurrent callers for the same year all succeed.
    let calls =
        (0..8).map(|_| sqlx::query("SELECT ensure_asset_prices_partition(2027)").execute(&db.pool));
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    let parts: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'asset_prices'::regclass ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        parts,
        [
            "asset_prices_y2024",
            "asset_prices_y2025",
            "asset_prices_y2026",
            "asset_prices_y2027"
        ]
    );
    // The year boundary is midnight UTC: 2024-12-31T23:00-05:00 is 2025.
    sqlx::query(
        "INSERT INTO asset_prices (asset_id, ts, close, source)
         VALUES ($1, '2024-12-31T23:00:00-05:00', 1, 'test')",
    )
    .bind(asset)
    .execute(&db.pool)
    .await
    .unwrap();
    let stored_in: String = sqlx::query_scalar("SELECT tableoid::regclass::text FROM asset_prices")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored_in, "asset_prices_y2025");
}

#[tokio::test]
async fn the_ops_queries_in_sql_run() {
    let db = test_db().await;
    let asset = insert_stock(&db.pool, "OPS").await;
    insert_buy(&db.pool, asset).await;
    sqlx::query("INSERT INTO backfill_queue (asset_id, start_date, end_date) VALUES ($1, '2025-01-01', '2025-12-31')")
        .bind(asset)
        .execute(&db.pool)
        .await
        .unwrap();
    use sqlx::Row;
    let status: Vec<(String, i64)> = sqlx::query(include_str!("../../sql/ops_queue_status.sql"))
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get("status"), row.get("jobs")))
        .collect();
    assert_eq!(status, [("pending".to_owned(), 1)]);
    // Several statements: run as a script the way psql would.
    use sqlx::Executor;
    let mut conn = db.connect().await;
    let results = conn
        .fetch_all(include_str!("../../sql/ops_event_problems.sql"))
        .await
        .unwrap();
    assert_eq!(
        results.len(),
        1,
        "one unprocessed-summary row, no problem events"
    );
}

/// `ALTER TABLE … ADD CONSTRAINT` validates every row under an exclusive
/// lock, on a deployed queue at the next start of every worker. From 0009 on
/// a constraint is added `NOT VALID` and validated by a later statement
/// (`VALIDATE CONSTRAINT` takes a lock that lets writes through).
#[test]
fn constraints_on_existing_tables_are_added_not_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut offending = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let version: u32 = name.split('_').next().unwrap().parse().unwrap();
        if version < 9 {
            continue; // applied before the rule; never edited
        }
        let sql: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| line.split("--").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
            .to_lowercase();
        for statement in sql.split(';') {
            let words = statement.split_whitespace().collect::<Vec<_>>().join(" ");
            let adds = words.contains("add constraint")
                && (words.contains(" check") || words.contains("foreign key"));
            if adds && !words.contains("not valid") {
                offending.push(format!("{name}: {words}"));
            }
        }
    }
    assert!(offending.is_empty(), "{offending:#?}");
}
