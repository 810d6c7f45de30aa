//! The backfill body end to end, real provider clients against a local
//! server: bars stored with the completion in one transaction, re-running
//! a range rewrites nothing, partly invalid answers store the valid rows and
//! record the rest, transient failures back off 5, 10, 20, 40 minutes and
//! then fail, permanent ones fail at once; and the claim's SQL symbol rule
//! agrees with the providers'.

use crate::common;
use crate::queue_common;

use std::time::Duration;

use common::test_db;
use pricekeeper::db::assets::Asset;
use pricekeeper::providers::{ProviderKind, symbol_for};
use pricekeeper::queue::Clock;
use queue_common::*;
use serde_json::json;
use sqlx::PgPool;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn yahoo_answers(server: &MockServer, symbol: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/v8/finance/chart/{symbol}")))
        .respond_with(response)
        .mount(server)
        .await;
}

fn chart(symbol: &str, from: &str, to: &str) -> (usize, ResponseTemplate) {
    let days = weekdays(date(from), date(to));
    let body = yahoo_chart(symbol, &days, &series(days.len()));
    (days.len(), ResponseTemplate::new(200).set_body_json(body))
}

type PriceRow = (
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    Vec<String>,
    String,
    String,
);

/// Every stored bar, with its row version (xmin) and fetched_at: equal
/// snapshots mean nothing was rewritten.
async fn prices(pool: &PgPool) -> Vec<PriceRow> {
    sqlx::query_as(
        "SELECT ts::text, open::text, close::text, adj_close::text, source, flags,
                fetched_at::text, xmin::text
         FROM asset_prices ORDER BY asset_id, ts",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn track(pool: &PgPool, asset: i64) {
    sqlx::query(
        "INSERT INTO tracked_assets (asset_id, tracking_users, history_from, history_to)
         VALUES ($1, 1, '2024-03-01', '2024-12-31')",
    )
    .bind(asset)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_backfill_stores_its_bars_and_completes_in_one_transaction() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let (n, answer) = chart("AAPL", "2024-01-02", "2024-12-31");
    yahoo_answers(&server, "AAPL", answer).await;
    let clock = Clock::manual(t0());
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    track(&db.pool, asset).await;
    let id = insert_job(&db.pool, asset, date("2024-01-02"), date("2024-12-31")).await;

    let worker = backfill_worker(&db.pool, &settings(&server.uri(), &[]), clock.clone());
    worker.process_next().await.unwrap();

    let row = job(&db.pool, id).await;
    assert_eq!(row.status, "completed");
    assert_eq!(row.completed_at, Some(t0()));
    assert_eq!(row.provider.as_deref(), Some("yahoo"));
    assert_eq!(
        (row.bars_stored, row.bars_rejected),
        (Some(n as i32), Some(0))
    );
    assert_eq!(
        (row.error_message, row.locked_by, row.locked_until),
        (None, None, None)
    );

    let stored = prices(&db.pool).await;
    assert_eq!(stored.len(), n);
    let first = &stored[0];
    assert_eq!(first.0, "2024-01-02 14:30:00+00");
    assert_eq!(
        (first.1.as_deref(), first.2.as_str()),
        (Some("99.5"), "100")
    );
    assert_eq!(stored[1].2, "100.25", "exact decimals, no float noise");
    assert!(stored.iter().all(|p| p.4 == "yahoo" && p.5.is_empty()));

    let (last_update, from, to): (Option<chrono::DateTime<chrono::Utc>>, String, String) =
        sqlx::query_as(
            "SELECT last_price_update, history_from::text, history_to::text
             FROM tracked_assets WHERE asset_id = $1",
        )
        .bind(asset)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(last_update, Some(t0()));
    assert_eq!((from.as_str(), to.as_str()), ("2024-01-02", "2024-12-31"));
    let yahoo = provider_state(&db.pool, "yahoo").await;
    assert_eq!(yahoo.consecutive_rate_limits, 0);
}

#[tokio::test]
async fn rerunning_a_completed_range_changes_no_stored_price() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let (n, answer) = chart("AAPL", "2024-01-02", "2024-12-31");
    yahoo_answers(&server, "AAPL", answer).await;
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let (from, to) = (date("2024-01-02"), date("2024-12-31"));
    let worker = backfill_worker(&db.pool, &settings(&server.uri(), &[]), Clock::Database);

    insert_job(&db.pool, asset, from, to).await;
    worker.process_next().await.unwrap();
    let before = prices(&db.pool).await;
    assert_eq!(before.len(), n);

    let again = insert_job(&db.pool, asset, from, to).await;
    worker.process_next().await.unwrap();
    let row = job(&db.pool, again).await;
    assert_eq!(
        (row.status.as_str(), row.bars_stored),
        ("completed", Some(n as i32))
    );
    assert_eq!(
        prices(&db.pool).await,
        before,
        "a re-run rewrote stored bars"
    );

    // A provider correction (one close changed) rewrites that bar only.
    let days = weekdays(from, to);
    let mut bars = series(days.len());
    bars[10] = bars[10].map(|(o, h, l, c, v)| (o, h, l, c + 0.5, v));
    server.reset().await;
    yahoo_answers(
        &server,
        "AAPL",
        ResponseTemplate::new(200).set_body_json(yahoo_chart("AAPL", &days, &bars)),
    )
    .await;
    insert_job(&db.pool, asset, from, to).await;
    worker.process_next().await.unwrap();
    let after = prices(&db.pool).await;
    let changed: Vec<usize> = (0..n).filter(|&i| after[i] != before[i]).collect();
    assert_eq!(changed, vec![10]);
    assert_eq!(after[10].2, "103");
}

#[tokio::test]
async fn partly_invalid_rows_store_the_valid_ones_and_record_the_rejected() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let body = std::fs::read_to_string("tests/fixtures/yahoo/chart_bad_rows.json").unwrap();
    yahoo_answers(
        &server,
        "PNNY",
        ResponseTemplate::new(200).set_body_raw(body, "application/json"),
    )
    .await;
    let asset = insert_asset(&db.pool, stock("PNNY")).await;
    let id = insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-11")).await;
    let worker = backfill_worker(&db.pool, &settings(&server.uri(), &[]), Clock::Database);
    worker.process_next().await.unwrap();

    let row = job(&db.pool, id).await;
    assert_eq!(row.status, "completed");
    assert_eq!((row.bars_stored, row.bars_rejected), (Some(3), Some(3)));
    assert_eq!(
        row.error_message.as_deref(),
        Some("3 of 6 rows from yahoo were invalid and not stored (see backfill_rejects)")
    );
    let stored = prices(&db.pool).await;
    let closes: Vec<&str> = stored.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(closes, ["10.2", "16", "15.8"]);
    let flagged: Vec<&str> = stored
        .iter()
        .filter(|p| p.5.contains(&"spike".to_owned()))
        .map(|p| p.2.as_str())
        .collect();
    assert_eq!(flagged, ["16"], "a spike is flagged and kept");

    let rejects: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT asset_id, provider, reason FROM backfill_rejects WHERE job_id = $1 ORDER BY ts",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rejects.len(), 3);
    assert!(rejects.iter().all(|(a, p, _)| *a == asset && p == "yahoo"));
    assert!(rejects[0].2.contains("close"), "{rejects:?}");
    assert!(rejects[1].2.contains("low"), "{rejects:?}");
    assert!(rejects[2].2.contains("volume"), "{rejects:?}");
}

#[tokio::test]
async fn transient_failures_back_off_5_10_20_40_minutes_then_fail() {
    let db = test_db().await;
    let server = MockServer::start().await;
    yahoo_answers(
        &server,
        "AAPL",
        ResponseTemplate::new(503).set_body_raw("upstream connect error", "text/plain"),
    )
    .await;
    let clock = Clock::manual(t0());
    let asset = insert_asset(&db.pool, stock("AAPL")).await;
    let id = insert_job(&db.pool, asset, date("2024-01-02"), date("2024-12-31")).await;
    let worker = backfill_worker(&db.pool, &settings(&server.uri(), &[]), clock.clone());

    for (attempt, minutes) in [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0)] {
        let tried_at = clock.local();
        worker.process_next().await.unwrap();
        let row = job(&db.pool, id).await;
        assert_eq!((row.status.as_str(), row.attempts), ("pending", attempt));
        let waited = (row.retry_after.unwrap() - tried_at).num_milliseconds() as f64 / 60_000.0;
        assert!(
            (minutes * 0.9..=minutes * 1.1).contains(&waited),
            "attempt {attempt}: retry in {waited} min, want {minutes} ± 10%"
        );
        let message = row.error_message.unwrap();
        assert!(
            message.starts_with(&format!(
                "attempt {attempt} of 5 failed: yahoo AAPL: temporary failure"
            )),
            "{message}"
        );
        // Not a moment before it is due.
        clock.set(row.retry_after.unwrap() - chrono::Duration::milliseconds(1));
        assert!(worker.process_next().await.unwrap().finished.is_empty());
        clock.set(row.retry_after.unwrap());
    }
    worker.process_next().await.unwrap();
    let row = job(&db.pool, id).await;
    assert_eq!(
        (row.status.as_str(), row.attempts, row.retry_after),
        ("failed", 5, None)
    );
    assert!(
        row.error_message.unwrap().starts_with(
            "gave up after 5 attempts; the last failed: yahoo AAPL: temporary failure"
        )
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 5);
    clock.advance(Duration::from_secs(86_400));
    assert!(worker.process_next().await.unwrap().finished.is_empty());
}

#[tokio::test]
async fn a_symbol_no_provider_knows_fails_at_once_naming_each_answer() {
    let db = test_db().await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v3/klines"))
        .and(query_param("symbol", "NOPEUSDT"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"code": -1121, "msg": "Invalid symbol."})),
        )
        .mount(&server)
        .await;
    let not_found = std::fs::read_to_string("tests/fixtures/yahoo/chart_not_found.json").unwrap();
    yahoo_answers(
        &server,
        "NOPE-USD",
        ResponseTemplate::new(404).set_body_raw(not_found, "application/json"),
    )
    .await;
    let asset = insert_asset(&db.pool, crypto("NOPE", None, None)).await;
    let id = insert_job(&db.pool, asset, date("2024-01-02"), date("2024-12-31")).await;
    let settings = settings(&server.uri(), &["--crypto-chain=binance,coingecko,yahoo"]);
    backfill_worker(&db.pool, &settings, Clock::Database)
        .process_next()
        .await
        .unwrap();

    let row = job(&db.pool, id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("failed", 1));
    let message = row.error_message.unwrap();
    assert!(message.starts_with("no provider can serve it"), "{message}");
    assert!(message.contains("binance NOPEUSDT: not found"), "{message}");
    assert!(message.contains("yahoo NOPE-USD: not found"), "{message}");
}

#[tokio::test]
async fn the_claims_symbol_rule_agrees_with_the_providers() {
    let db = test_db().await;
    let cases: Vec<NewAsset> = vec![
        stock("AAPL"),
        NewAsset {
            yahoo_symbol: Some("OCDO.L"),
            currency: Some("GBP"),
            ..stock("Ocado")
        },
        NewAsset {
            yahoo_symbol: Some("  "),
            ..stock("X1")
        },
        crypto("BTC", None, None),
        crypto("ETH", Some("ETHUSDT"), Some("ethereum")),
        NewAsset {
            currency: Some("EUR"),
            ..crypto("SOL", None, None)
        },
        NewAsset {
            currency: None,
            ..crypto("ADA", None, Some("  "))
        },
        NewAsset {
            currency: Some("GBP"),
            ..crypto("DOGE", None, None)
        },
        NewAsset {
            currency: Some("JPY"),
            ..crypto("XRP", None, None)
        },
        NewAsset {
            currency: Some("TRY"),
            ..crypto("AVAX", None, None)
        },
        NewAsset {
            currency: Some("usdc"),
            ..crypto("LINK", None, None)
        },
        NewAsset {
            asset_type: "forex",
            exchange: "FX",
            ..stock("EUR/USD")
        },
        NewAsset {
            asset_type: "forex",
            exchange: "FX",
            ..stock("EURO")
        },
        NewAsset {
            asset_type: "commodity",
            exchange: "XCME",
            ..stock("GC=F")
        },
        NewAsset {
            asset_type: "etf",
            ..stock("SPY")
        },
        NewAsset {
            asset_type: "bond",
            ..stock("TLT")
        },
        NewAsset {
            binance_symbol: Some("AAPLUSDT"),
            ..stock("AAPL2")
        },
    ];
    for case in cases {
        insert_asset(&db.pool, case).await;
    }
    let assets: Vec<Asset> = sqlx::query_as(
        "SELECT id, symbol, asset_type, exchange, currency, yahoo_symbol, binance_symbol,
                coingecko_id, active FROM assets ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for asset in assets {
        for kind in ProviderKind::ALL {
            let sql: bool = sqlx::query_scalar(
                "SELECT provider_has_symbol($1, asset_type, symbol, currency, yahoo_symbol,
                                            binance_symbol, coingecko_id)
                 FROM assets WHERE id = $2",
            )
            .bind(kind.as_str())
            .bind(asset.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            let rust = symbol_for(&asset, kind).is_some();
            assert_eq!(sql, rust, "{kind} for {asset:?}");
        }
    }
}
