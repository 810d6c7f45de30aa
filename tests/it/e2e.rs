//! The product end to end, through the binary: a portfolio write in the
//! host's table becomes a tracked asset, a queued backfill, and stored daily
//! bars fetched from a Yahoo-shaped local server; SIGTERM then stops the
//! worker cleanly.

use crate::common;
use crate::queue_common;

use std::process::Stdio;
use std::time::Duration;

use chrono::{Months, Utc};
use common::{eventually, test_db};
use queue_common::{series, weekdays, yahoo_chart};
use tokio::process::Command;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn a_purchase_becomes_stored_history_through_the_worker_binary() {
    let db = test_db().await;
    let yahoo = MockServer::start().await;

    let asset: i64 = sqlx::query_scalar(
        "INSERT INTO assets (symbol, asset_type, exchange, currency, yahoo_symbol)
         VALUES ('AAPL', 'stock', 'XNAS', 'USD', 'AAPL') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let bought = Utc::now().date_naive() - Months::new(2);
    let today = Utc::now().date_naive();
    // Up to two days ago: without Yahoo's session times, a daily bar counts
    // as finished one day after it opened.
    let days = weekdays(bought - Months::new(12), today - chrono::Days::new(2));
    Mock::given(method("GET"))
        .and(path("/v8/finance/chart/AAPL"))
        .respond_with(ResponseTemplate::new(200).set_body_json(yahoo_chart(
            "AAPL",
            &days,
            &series(days.len()),
        )))
        .mount(&yahoo)
        .await;

    let worker = Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
        // Any free port: tests run side by side.
        .env("PRICEKEEPER_HTTP_ADDR", "127.0.0.1:0")
        .arg("worker")
        .env("DATABASE_URL", db.url())
        .env("PRICEKEEPER_YAHOO_URL", yahoo.uri())
        // Only notifications can move things along this fast.
        .env("PRICEKEEPER_POLL_INTERVAL", "1h")
        .env("PRICEKEEPER_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // The host application's write, nothing more.
    sqlx::query(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         VALUES (gen_random_uuid(), $1, 'buy', 10, 187.5, $2::date + time '15:00')",
    )
    .bind(asset)
    .bind(bought)
    .execute(&db.pool)
    .await
    .unwrap();

    eventually(
        Duration::from_secs(30),
        "the backfill to complete",
        || async {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status::text FROM backfill_queue WHERE asset_id = $1")
                    .bind(asset)
                    .fetch_optional(&db.pool)
                    .await
                    .unwrap();
            status.as_deref() == Some("completed")
        },
    )
    .await;

    let (start, end, provider): (chrono::NaiveDate, chrono::NaiveDate, Option<String>) =
        sqlx::query_as(
            "SELECT start_date, end_date, provider FROM backfill_queue WHERE asset_id = $1",
        )
        .bind(asset)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!((start, end), (bought - Months::new(12), today));
    assert_eq!(provider.as_deref(), Some("yahoo"));

    let in_range = days.iter().filter(|d| **d >= start).count() as i64;
    let (bars, first_close, users, refreshed): (i64, String, i32, bool) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM asset_prices WHERE asset_id = $1 AND interval = '1d'),
                (SELECT close::text FROM asset_prices WHERE asset_id = $1 ORDER BY ts LIMIT 1),
                tracking_users,
                last_price_update IS NOT NULL
         FROM tracked_assets WHERE asset_id = $1",
    )
    .bind(asset)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(bars, in_range, "one bar per trading day in the job's range");
    assert_eq!(users, 1);
    assert!(refreshed);
    // Stored as the exact decimal Yahoo meant, not float noise.
    let offset = days.iter().position(|d| *d >= start).unwrap();
    assert_eq!(
        first_close,
        format!("{}", 100.0 + offset as f64 * 0.25).trim_end_matches(".0")
    );

    let pid = worker.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(30), worker.wait_with_output())
        .await
        .expect("worker exits after SIGTERM")
        .unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains("backfill queued"), "{logs}");
    assert!(logs.contains("shutdown requested"), "{logs}");
}

#[tokio::test]
async fn the_worker_binary_survives_unusable_outbox_rows_and_applies_the_events_behind_them() {
    let db = test_db().await;
    let asset = common::insert_stock(&db.pool, "ODD").await;
    // Rows the schema refuses today, as they may sit in an older outbox.
    sqlx::query(
        "INSERT INTO portfolio_events (op, transaction_id, new_portfolio_id, new_asset_id,
                                       new_side, new_quantity, new_executed_at)
         VALUES ('insert', 1, gen_random_uuid(), $1, 'buy', 1, 'infinity'),
                ('insert', 2, gen_random_uuid(), $1, 'buy', 'NaN', now())",
    )
    .bind(asset)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         VALUES (gen_random_uuid(), $1, 'buy', 10, 187.5, now())",
    )
    .bind(asset)
    .execute(&db.pool)
    .await
    .unwrap();

    let mut worker = Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
        // Any free port: tests run side by side.
        .env("PRICEKEEPER_HTTP_ADDR", "127.0.0.1:0")
        .arg("worker")
        .env("DATABASE_URL", db.url())
        .env("PRICEKEEPER_YAHOO_URL", "http://127.0.0.1:9")
        .env("PRICEKEEPER_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "every event to be processed",
        || async {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM portfolio_events WHERE processed_at IS NULL",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            left == 0
        },
    )
    .await;
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker is still up"
    );

    let flagged: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT transaction_id, error FROM portfolio_events ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(flagged.len(), 3);
    assert!(
        flagged[0].1.as_deref().unwrap().contains("infinity"),
        "{flagged:?}"
    );
    assert!(
        flagged[1].1.as_deref().unwrap().contains("NaN"),
        "{flagged:?}"
    );
    assert_eq!(
        flagged[2].1, None,
        "the host's real purchase applies cleanly"
    );
    let held: String = sqlx::query_scalar("SELECT sum(quantity)::text FROM holdings")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        held, "11",
        "the infinity-dated buy counts, the NaN one does not"
    );

    let pid = worker.id().unwrap().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), worker.wait_with_output())
        .await
        .expect("worker exits after SIGTERM")
        .unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
}
