//! Daemon ticks with injected time against real PostgreSQL and a local
//! market answering in the providers' shapes.

use crate::common;
use crate::daemon_common;
use crate::queue_common;

use chrono::{DateTime, Utc};
use common::test_db;
use daemon_common::{Market, asset, hold, requests_to};
use pricekeeper::calendar::{CalendarId, Calendars};
use pricekeeper::daemon::tick::Trigger;
use pricekeeper::daemon::{Daemon, DaemonError};
use rust_decimal::Decimal;
use uuid::Uuid;
use wiremock::MockServer;

fn t(raw: &str) -> DateTime<Utc> {
    raw.parse().unwrap()
}

fn dec(raw: &str) -> Decimal {
    raw.parse().unwrap()
}

struct World {
    db: common::TestDb,
    server: MockServer,
    market: Market,
    daemon: Daemon,
    aapl: i64,
    vod: i64,
    btc: i64,
    portfolio: Uuid,
}

/// AAPL (Nasdaq), VOD.L (London) and BTC (Binance) held by one portfolio.
async fn world(args: &[&str]) -> World {
    let db = test_db().await;
    let server = MockServer::start().await;
    let market = Market::default();
    market.mount(&server).await;
    let aapl = asset(
        &db.pool,
        "AAPL",
        "stock",
        "XNAS",
        "USD",
        (Some("AAPL"), None, None),
    )
    .await;
    let vod = asset(
        &db.pool,
        "VOD",
        "stock",
        "XLON",
        "GBP",
        (Some("VOD.L"), None, None),
    )
    .await;
    let btc = asset(
        &db.pool,
        "BTC",
        "crypto",
        "CRYPTO",
        "USD",
        (None, Some("BTCUSDT"), None),
    )
    .await;
    let portfolio = Uuid::new_v4();
    hold(&db.pool, portfolio, aapl, "10", "150").await;
    hold(&db.pool, portfolio, vod, "100", "0.70").await;
    hold(&db.pool, portfolio, btc, "0.5", "40000").await;
    let settings = queue_common::settings(&server.uri(), args);
    let daemon = Daemon::from_settings(db.pool.clone(), &settings).unwrap();
    World {
        db,
        server,
        market,
        daemon,
        aapl,
        vod,
        btc,
        portfolio,
    }
}

async fn quote(w: &World, asset: i64) -> Option<(Decimal, String)> {
    sqlx::query_as("SELECT price, source FROM asset_quotes WHERE asset_id = $1")
        .bind(asset)
        .fetch_optional(&w.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_open_market_is_refreshed_a_closed_one_skipped_and_crypto_always() {
    let w = world(&[]).await;
    // Monday 2025-03-10 18:00Z: New York open (13:30–20:00Z), London closed (16:30Z).
    let now = t("2025-03-10T18:00:00Z");
    w.market.set("AAPL", 227.48, t("2025-03-10T17:59:00Z"));
    w.market.set("VOD.L", 71.2, t("2025-03-10T16:30:00Z"));
    w.market.set("BTCUSDT", 80000.0, now);
    let term = w.daemon.leadership().step().await.unwrap().unwrap();

    let report = w
        .daemon
        .ticker()
        .tick(&term, Trigger::Refresh { slot: now }, now)
        .await
        .unwrap();
    assert!(report.ran);
    assert_eq!(report.quotes_written, 2);
    assert_eq!(report.plan.market_closed, 1);
    assert_eq!(
        quote(&w, w.aapl).await,
        Some((dec("227.48"), "yahoo".into()))
    );
    assert_eq!(
        quote(&w, w.btc).await,
        Some((dec("80000"), "binance".into()))
    );
    assert_eq!(quote(&w, w.vod).await, None, "London was closed");
    let updated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tracked_assets WHERE last_price_update IS NOT NULL",
    )
    .fetch_one(&w.db.pool)
    .await
    .unwrap();
    assert_eq!(updated, 2);

    // The valuation: 10 AAPL and 0.5 BTC in USD at the latest prices, the
    // cost at the buy prices, as of the older of the two quotes.
    let (value, cost, at): (Decimal, Decimal, DateTime<Utc>) = sqlx::query_as(
        "SELECT market_value, cost_basis, valued_at FROM portfolio_valuations
         WHERE portfolio_id = $1 AND currency = 'USD'",
    )
    .bind(w.portfolio)
    .fetch_one(&w.db.pool)
    .await
    .unwrap();
    assert_eq!(value, dec("42274.8"));
    assert_eq!(cost, dec("21500"));
    assert_eq!(at, t("2025-03-10T17:59:00Z"));

    // Saturday: only crypto.
    let saturday = t("2025-03-15T12:00:00Z");
    w.market.set("BTCUSDT", 81000.0, saturday);
    let report = w
        .daemon
        .ticker()
        .tick(&term, Trigger::Refresh { slot: saturday }, saturday)
        .await
        .unwrap();
    assert_eq!(report.quotes_written, 1);
    assert_eq!(report.plan.market_closed, 2);
    assert_eq!(quote(&w, w.btc).await.unwrap().0, dec("81000"));
}

#[tokio::test]
async fn trading_hours_off_refreshes_every_held_asset() {
    let w = world(&["--trading-hours-only=false"]).await;
    let now = t("2025-03-15T12:00:00Z");
    for s in ["AAPL", "VOD.L", "BTCUSDT"] {
        w.market.set(s, 10.0, now);
    }
    let term = w.daemon.leadership().step().await.unwrap().unwrap();
    let report = w
        .daemon
        .ticker()
        .tick(&term, Trigger::Refresh { slot: now }, now)
        .await
        .unwrap();
    assert_eq!(report.quotes_written, 3);
    // Yahoo's GBp is converted: 10 pence is 0.1 GBP.
    assert_eq!(quote(&w, w.vod).await.unwrap().0, dec("0.1"));
}

#[tokio::test]
async fn a_provider_in_cooldown_is_skipped_without_error() {
    let w = world(&[]).await;
    let now = t("2025-03-10T18:00:00Z");
    w.market.set("AAPL", 227.48, now);
    w.market.set("BTCUSDT", 80000.0, now);
    sqlx::query("INSERT INTO provider_state (provider, cooldown_until) VALUES ('yahoo', $1)")
        .bind(t("2025-03-10T18:30:00Z"))
        .execute(&w.db.pool)
        .await
        .unwrap();
    let term = w.daemon.leadership().step().await.unwrap().unwrap();
    let report = w
        .daemon
        .ticker()
        .tick(&term, Trigger::Refresh { slot: now }, now)
        .await
        .unwrap();
    assert_eq!(report.plan.cooling, 1);
    assert_eq!(report.quotes_written, 1);
    assert!(report.failed.is_empty());
    assert_eq!(requests_to(&w.server, "/v8/finance/spark").await, 0);
    assert_eq!(quote(&w, w.aapl).await, None);
}

#[tokio::test]
async fn the_post_close_tick_stores_the_final_bar_and_queues_a_longer_stretch() {
    let w = world(&[]).await;
    // AAPL's history ends on Wednesday 2025-03-05; VOD's is current.
    sqlx::query("SELECT ensure_asset_prices_partition(2025)")
        .execute(&w.db.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO asset_prices (asset_id, ts, close, source) VALUES ($1, '2025-03-05T14:30:00Z', 235, 'yahoo')")
        .bind(w.aapl)
        .execute(&w.db.pool)
        .await
        .unwrap();
    let session = Calendars::default()
        .session(CalendarId::Xnys, "2025-03-10".parse().unwrap())
        .unwrap();
    let now = t("2025-03-10T20:01:00Z");
    w.market.set("AAPL", 227.48, t("2025-03-10T20:00:00Z"));
    let term = w.daemon.leadership().step().await.unwrap().unwrap();
    let report = w
        .daemon
        .ticker()
        .tick(
            &term,
            Trigger::Close {
                calendar: CalendarId::Xnys,
                session,
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(report.quotes_written, 1, "only the XNYS asset");
    let close = report.close.unwrap();
    assert_eq!(close.bars_written, 1);
    assert_eq!(close.stretches_queued, 1);

    let bar: (DateTime<Utc>, Decimal, Vec<String>) = sqlx::query_as(
        "SELECT ts, close, flags FROM asset_prices WHERE asset_id = $1 ORDER BY ts DESC LIMIT 1",
    )
    .bind(w.aapl)
    .fetch_one(&w.db.pool)
    .await
    .unwrap();
    assert_eq!(
        bar,
        (
            t("2025-03-10T13:30:00Z"),
            dec("227.48"),
            vec!["closing_quote".to_owned()]
        )
    );
    let job: (String, String) = sqlx::query_as(
        "SELECT start_date::text, end_date::text FROM backfill_queue WHERE asset_id = $1",
    )
    .bind(w.aapl)
    .fetch_one(&w.db.pool)
    .await
    .unwrap();
    assert_eq!(job, ("2025-03-06".into(), "2025-03-10".into()));
    let history_to: Option<chrono::NaiveDate> =
        sqlx::query_scalar("SELECT history_to FROM tracked_assets WHERE asset_id = $1")
            .bind(w.aapl)
            .fetch_one(&w.db.pool)
            .await
            .unwrap();
    assert_eq!(history_to, Some("2025-03-10".parse().unwrap()));
}

#[tokio::test]
async fn a_slot_runs_once_even_across_terms_and_a_stale_term_writes_nothing() {
    let w = world(&[]).await;
    let now = t("2025-03-10T18:00:00Z");
    w.market.set("BTCUSDT", 80000.0, now);
    let first = w.daemon.leadership().step().await.unwrap().unwrap();
    let report = w
        .daemon
        .ticker()
        .tick(&first, Trigger::Refresh { slot: now }, now)
        .await
        .unwrap();
    assert!(report.ran);

    // The lease runs out (the holder was frozen); another daemon takes over.
    sqlx::query("UPDATE leader_leases SET expires_at = now() - interval '1 second'")
        .execute(&w.db.pool)
        .await
        .unwrap();
    let settings = queue_common::settings(&w.server.uri(), &[]);
    let other = Daemon::from_settings(w.db.pool.clone(), &settings).unwrap();
    let second = other.leadership().step().await.unwrap().unwrap();
    assert!(second.number > first.number);

    let again = other
        .ticker()
        .tick(&second, Trigger::Refresh { slot: now }, now)
        .await
        .unwrap();
    assert!(!again.ran, "the slot already ran under the first term");

    // The old holder still believes in its term locally: the fence stops it.
    let later = t("2025-03-10T18:15:00Z");
    w.market.set("BTCUSDT", 1.0, later);
    let stale = w
        .daemon
        .ticker()
        .tick(&first, Trigger::Refresh { slot: later }, later)
        .await;
    assert!(
        matches!(stale, Err(DaemonError::NotLeader { .. })),
        "{stale:?}"
    );
    assert_eq!(quote(&w, w.btc).await.unwrap().0, dec("80000"));
    // Nor can it renew the newer term or resign it.
    assert!(
        !pricekeeper::daemon::lease::renew(
            &w.db.pool,
            "daemon",
            first.holder,
            second.number,
            std::time::Duration::from_secs(10)
        )
        .await
        .unwrap()
    );
    assert!(
        !pricekeeper::daemon::lease::resign(&w.db.pool, "daemon", first.holder, second.number)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_coin_binance_does_not_list_is_asked_from_coingecko_in_the_same_tick() {
    let w = world(&[]).await;
    let eth = asset(
        &w.db.pool,
        "ETH",
        "crypto",
        "CRYPTO",
        "USD",
        (None, None, Some("ethereum")),
    )
    .await;
    hold(&w.db.pool, w.portfolio, eth, "2", "3000").await;
    let now = t("2025-03-15T12:00:00Z");
    w.market.set("BTCUSDT", 80000.0, now);
    w.market.set("ethereum", 1900.5, now);
    let term = w.daemon.leadership().step().await.unwrap().unwrap();
    let report = w
        .daemon
        .ticker()
        .tick(&term, Trigger::Refresh { slot: now }, now)
        .await
        .unwrap();
    assert_eq!(report.quotes_written, 2);
    assert_eq!(report.missing, 0);
    assert_eq!(
        quote(&w, eth).await,
        Some((dec("1900.5"), "coingecko".into()))
    );
    assert_eq!(quote(&w, w.btc).await.unwrap().1, "binance");
}

#[tokio::test]
async fn many_coins_cost_one_binance_request() {
    let w = world(&[]).await;
    let now = t("2025-03-15T12:00:00Z");
    w.market.set("BTCUSDT", 80000.0, now);
    for i in 0..60 {
        let symbol = format!("C{i}USDT");
        let id = asset(
            &w.db.pool,
            &format!("C{i}"),
            "crypto",
            "CRYPTO",
            "USD",
            (None, Some(&symbol), None),
        )
        .await;
        hold(&w.db.pool, w.portfolio, id, "1", "1").await;
        w.market.set(&symbol, 1.0 + f64::from(i), now);
    }
    let term = w.daemon.leadership().step().await.unwrap().unwrap();
    let report = w
        .daemon
        .ticker()
        .tick(&term, Trigger::Refresh { slot: now }, now)
        .await
        .unwrap();
    assert_eq!(report.quotes_written, 61);
    assert_eq!(requests_to(&w.server, "/api/v3/ticker/price").await, 1);
}

#[tokio::test]
async fn gaps_are_queued_once_and_recorded_when_a_finished_backfill_left_them_empty() {
    let w = world(&[]).await;
    sqlx::query("SELECT ensure_asset_prices_partition(2025)")
        .execute(&w.db.pool)
        .await
        .unwrap();
    // History held 03-03..03-07; bars for Mon, Tue and Thu: Wed 03-05 and Fri 03-07 missing.
    sqlx::query(
        "UPDATE tracked_assets SET history_from = '2025-03-03', history_to = '2025-03-07' WHERE asset_id = $1",
    )
    .bind(w.aapl)
    .execute(&w.db.pool)
    .await
    .unwrap();
    for day in ["2025-03-03", "2025-03-04", "2025-03-06"] {
        sqlx::query("INSERT INTO asset_prices (asset_id, ts, close, source) VALUES ($1, ($2::date + time '14:30') AT TIME ZONE 'UTC', 230, 'yahoo')")
            .bind(w.aapl)
            .bind(day)
            .execute(&w.db.pool)
            .await
            .unwrap();
    }
    let calendars = Calendars::default();
    let close_of = |day: &str| {
        calendars
            .session(CalendarId::Xnys, day.parse().unwrap())
            .unwrap()
    };
    let term = w.daemon.leadership().step().await.unwrap().unwrap();

    let monday = close_of("2025-03-10");
    w.market.set("AAPL", 227.48, monday.close);
    let report = w
        .daemon
        .ticker()
        .tick(
            &term,
            Trigger::Close {
                calendar: CalendarId::Xnys,
                session: monday,
            },
            monday.close,
        )
        .await
        .unwrap();
    // The stretch after the last bar (Fri..Mon) is queued by the close pass;
    // the hole on Wednesday by the gap scan.
    assert_eq!(report.close.unwrap().stretches_queued, 1);
    let gaps = report.gaps.unwrap();
    assert_eq!((gaps.found, gaps.queued, gaps.recorded), (2, 1, 0));
    let jobs: Vec<(String, String)> = sqlx::query_as(
        "SELECT start_date::text, end_date::text FROM backfill_queue WHERE asset_id = $1 ORDER BY start_date",
    )
    .bind(w.aapl)
    .fetch_all(&w.db.pool)
    .await
    .unwrap();
    assert_eq!(
        jobs,
        [
            ("2025-03-05".into(), "2025-03-05".into()),
            ("2025-03-07".into(), "2025-03-10".into())
        ]
    );

    // The Wednesday backfill finished without that bar (the provider has none).
    sqlx::query(
        "UPDATE backfill_queue SET status = 'completed', provider = 'yahoo', completed_at = now()
         WHERE asset_id = $1 AND start_date = '2025-03-05'",
    )
    .bind(w.aapl)
    .execute(&w.db.pool)
    .await
    .unwrap();
    let tuesday = close_of("2025-03-11");
    w.market.set("AAPL", 228.0, tuesday.close);
    let report = w
        .daemon
        .ticker()
        .tick(
            &term,
            Trigger::Close {
                calendar: CalendarId::Xnys,
                session: tuesday,
            },
            tuesday.close,
        )
        .await
        .unwrap();
    let gaps = report.gaps.unwrap();
    assert_eq!(
        (gaps.queued, gaps.recorded),
        (0, 1),
        "recorded, not queued again"
    );
    let (from, to, reason): (String, String, String) = sqlx::query_as(
        "SELECT gap_from::text, gap_to::text, reason FROM price_gaps WHERE asset_id = $1",
    )
    .bind(w.aapl)
    .fetch_one(&w.db.pool)
    .await
    .unwrap();
    assert_eq!((from.as_str(), to.as_str()), ("2025-03-05", "2025-03-05"));
    assert!(reason.contains("yahoo"), "{reason}");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM backfill_queue WHERE asset_id = $1")
        .bind(w.aapl)
        .fetch_one(&w.db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 2, "no new job for the recorded gap");
}
