//! The chain with the newer sources, end to end through the backfill
//! worker: Binance's 451 moves to its market-data host once, then makes
//! Binance unavailable for the deployment (recorded, kept across a restart,
//! shown in /health/sources) while Kraken serves; throttling and unknown
//! symbols fall through to the next provider; a provider answering empty
//! for every symbol turns `unhealthy`.

use crate::common;
use crate::provider_support;
use crate::queue_common;

use std::time::Duration;

use chrono::Utc;
use common::test_db;
use pricekeeper::ops::sources::{self, EMPTY_UNHEALTHY_AFTER, SourceStatus};
use pricekeeper::providers::{ProviderKind, Providers};
use pricekeeper::queue::Clock;
use pricekeeper::queue::ledger::Ledger;
use provider_support::{fixture, json};
use queue_common::*;
use sqlx::PgPool;
use wiremock::matchers::{path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn status451() -> ResponseTemplate {
    ResponseTemplate::new(451).set_body_raw(fixture("binance/error_451.json"), "application/json")
}

async fn sources_now(
    pool: &PgPool,
    settings: &pricekeeper::config::Settings,
) -> Vec<sources::Source> {
    let rates = pricekeeper::ops::server::rates(settings).unwrap();
    sources::fetch(pool, Utc::now(), &rates, Duration::from_secs(7200))
        .await
        .unwrap()
}

fn source<'a>(all: &'a [sources::Source], name: &str) -> &'a sources::Source {
    all.iter().find(|s| s.provider == name).unwrap()
}

async fn stored_sources(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT DISTINCT source FROM asset_prices ORDER BY source")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn binance_451_moves_host_once_then_binance_is_unavailable_across_a_restart() {
    let db = test_db().await;
    let server = MockServer::start().await;
    // One 451 from the main host, one from the market-data host; never more,
    // not even after a restart.
    Mock::given(path("/api/v3/klines"))
        .respond_with(status451())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/binance-data/api/v3/klines"))
        .respond_with(status451())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/0/public/OHLC"))
        .respond_with(json("kraken/ohlc_xbtusd_1d.json"))
        .mount(&server)
        .await;
    let settings = settings(&server.uri(), &["--crypto-chain=binance,kraken"]);
    let btc = insert_asset(&db.pool, crypto("BTC", None, None)).await;
    let first = insert_job(&db.pool, btc, date("2024-03-01"), date("2024-03-05")).await;

    backfill_worker(&db.pool, &settings, Clock::Database)
        .process_next()
        .await
        .unwrap();

    assert_eq!(job(&db.pool, first).await.status, "completed");
    assert_eq!(stored_sources(&db.pool).await, ["kraken"]);
    let all = sources_now(&db.pool, &settings).await;
    let binance = source(&all, "binance");
    assert_eq!(binance.status, SourceStatus::Unavailable);
    assert!(binance.unavailable_since.is_some());
    assert!(
        binance.problem.as_deref().unwrap().contains("451"),
        "{:?}",
        binance.problem
    );

    // A new process (a restart) reads the record and does not ask Binance.
    let eth = insert_asset(&db.pool, crypto("ETH", None, None)).await;
    let second = insert_job(&db.pool, eth, date("2024-03-01"), date("2024-03-05")).await;
    backfill_worker(&db.pool, &settings, Clock::Database)
        .process_next()
        .await
        .unwrap();
    assert_eq!(job(&db.pool, second).await.status, "completed");
    server.verify().await;
}

#[tokio::test]
async fn throttling_and_unknown_symbols_fall_through_the_chain() {
    let db = test_db().await;
    let server = MockServer::start().await;
    Mock::given(path("/api/v3/klines"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "60")
                .set_body_raw(fixture("binance/error_429.json"), "application/json"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/0/public/OHLC"))
        .and(query_param("pair", "XBTUSD"))
        .respond_with(json("kraken/error_unknown_pair.json"))
        .mount(&server)
        .await;
    Mock::given(path("/products/BTC-USD/candles"))
        .respond_with(json("coinbase/candles_btc_usd_1d.json"))
        .expect(1)
        .mount(&server)
        .await;
    let settings = settings(&server.uri(), &["--crypto-chain=binance,kraken,coinbase"]);
    let btc = insert_asset(&db.pool, crypto("BTC", None, None)).await;
    let id = insert_job(&db.pool, btc, date("2024-03-01"), date("2024-03-05")).await;

    backfill_worker(&db.pool, &settings, Clock::Database)
        .process_next()
        .await
        .unwrap();

    assert_eq!(job(&db.pool, id).await.status, "completed");
    assert_eq!(stored_sources(&db.pool).await, ["coinbase"]);
    let bars: i64 = sqlx::query_scalar("SELECT count(*) FROM asset_prices")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(bars, 5);
    assert!(
        provider_state(&db.pool, "binance")
            .await
            .cooldown_until
            .is_some()
    );
    let kraken = provider_state(&db.pool, "kraken").await;
    assert!(
        kraken
            .last_error
            .as_deref()
            .unwrap()
            .contains("Unknown asset pair"),
        "{:?}",
        kraken.last_error
    );
}

#[tokio::test]
async fn fx_falls_through_from_yahoo_to_frankfurter_reference_rates() {
    let db = test_db().await;
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/chart/EURUSD=X"))
        .respond_with(ResponseTemplate::new(429).set_body_string("Edge: Too Many Requests"))
        .mount(&server)
        .await;
    Mock::given(path("/v1/2024-01-02..2024-01-05"))
        .and(query_param("base", "EUR"))
        .respond_with(json("frankfurter/range_eur_usd.json"))
        .expect(1)
        .mount(&server)
        .await;
    let settings = settings(&server.uri(), &[]);
    let eurusd = insert_asset(
        &db.pool,
        NewAsset {
            asset_type: "forex",
            exchange: "FX",
            ..stock("EUR/USD")
        },
    )
    .await;
    let id = insert_job(&db.pool, eurusd, date("2024-01-02"), date("2024-01-05")).await;

    backfill_worker(&db.pool, &settings, Clock::Database)
        .process_next()
        .await
        .unwrap();

    assert_eq!(job(&db.pool, id).await.status, "completed");
    let flags: Vec<Vec<String>> = sqlx::query_scalar("SELECT flags FROM asset_prices ORDER BY ts")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(flags.len(), 4);
    assert!(flags.iter().all(|f| f == &["reference"]), "{flags:?}");
}

#[tokio::test]
async fn a_provider_answering_empty_for_every_symbol_turns_unhealthy() {
    let db = test_db().await;
    let settings = settings("http://127.0.0.1:9", &[]);
    let providers = Providers::from_settings(&settings).unwrap();
    let ledger = Ledger::default();
    let now = Utc::now();
    // Two flushes: the streak adds up across them (and processes).
    for _ in 0..EMPTY_UNHEALTHY_AFTER / 2 {
        ledger.answered(ProviderKind::Kraken, now, 0);
    }
    ledger.flush(&db.pool, &providers, None).await.unwrap();
    let kraken = source(&sources_now(&db.pool, &settings).await, "kraken").clone();
    assert_eq!(
        kraken.status,
        SourceStatus::Ok,
        "a few empty answers are normal"
    );
    for _ in 0..EMPTY_UNHEALTHY_AFTER / 2 {
        ledger.answered(ProviderKind::Kraken, now, 0);
    }
    ledger.flush(&db.pool, &providers, None).await.unwrap();
    let kraken = source(&sources_now(&db.pool, &settings).await, "kraken").clone();
    assert_eq!(kraken.status, SourceStatus::Unhealthy);
    assert_eq!(kraken.empty_answers_in_a_row, EMPTY_UNHEALTHY_AFTER);
    assert!(kraken.problem.unwrap().contains("no data for any symbol"));

    // One answer with data ends the streak.
    ledger.answered(ProviderKind::Kraken, now, 5);
    ledger.flush(&db.pool, &providers, None).await.unwrap();
    let kraken = source(&sources_now(&db.pool, &settings).await, "kraken").clone();
    assert_eq!(kraken.status, SourceStatus::Ok);
    assert_eq!(kraken.empty_answers_in_a_row, 0);
    assert!(kraken.last_data_at.is_some());
}
