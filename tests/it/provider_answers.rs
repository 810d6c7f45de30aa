//! Issue 9: provider answers through the backfill worker, real provider
//! clients against a local server answering in Yahoo's, Binance's and
//! CoinGecko's shapes. The right listing (the exchange's Yahoo suffix, the
//! currency checked), one bar per trading date, misaligned and unstorable
//! answers refused or recorded, symbols a URL would change refused before
//! any request, 200 HTML pages retried before they count as bad data, a
//! partial answer completed down the chain, and a split putting older bars
//! back on one scale.

use crate::common;
use crate::queue_common;

use chrono::{DateTime, NaiveDate, Utc};
use common::test_db;
use pricekeeper::queue::Clock;
use queue_common::*;
use serde_json::{Value, json};
use sqlx::PgPool;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn answer(server: &MockServer, route: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(route))
        .respond_with(response)
        .mount(server)
        .await;
}

fn ok_json(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// A Yahoo chart for an LSE listing: bars at 08:00Z, prices in `currency`
/// (`GBp`: pence), the London zone.
fn london_chart(symbol: &str, currency: &str, days: &[NaiveDate], closes: &[f64]) -> Value {
    let ts: Vec<i64> = days
        .iter()
        .map(|d| d.and_hms_opt(8, 0, 0).unwrap().and_utc().timestamp())
        .collect();
    let f = |delta: f64| -> Vec<Value> {
        closes
            .iter()
            .map(|c| json!(f64::from((c + delta) as f32)))
            .collect()
    };
    json!({"chart": {"result": [{
        "meta": {
            "currency": currency, "symbol": symbol, "exchangeName": "LSE",
            "instrumentType": "EQUITY", "gmtoffset": 0, "timezone": "GMT",
            "exchangeTimezoneName": "Europe/London", "dataGranularity": "1d", "range": ""
        },
        "timestamp": ts,
        "indicators": {
            "quote": [{"open": f(0.0), "high": f(1.0), "low": f(-1.0), "close": f(0.0),
                       "volume": vec![json!(1000); closes.len()]}],
            "adjclose": [{"adjclose": f(0.0)}]
        }
    }], "error": null}})
}

fn stock_on<'a>(symbol: &'a str, exchange: &'a str, currency: &'a str) -> NewAsset<'a> {
    NewAsset {
        exchange,
        currency: Some(currency),
        ..stock(symbol)
    }
}

async fn stored(pool: &PgPool) -> Vec<(DateTime<Utc>, String, Option<String>, String)> {
    sqlx::query_as(
        "SELECT ts, close::text, currency, source FROM asset_prices ORDER BY asset_id, ts",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn rejects(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT reason FROM backfill_rejects ORDER BY ts, id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn run_one(pool: &PgPool, server: &MockServer, clock: Clock) {
    let worker = backfill_worker(pool, &settings(&server.uri(), &[]), clock);
    worker.process_next().await.unwrap();
}

// ---------------------------------------------------------------------------
// 1. The exchange decides the listing; the currency must agree.

/// VOD on XLON priced in GBP, with no Yahoo symbol; the London listing
/// answers five days in `currency`. Returns the job as it ended.
async fn vod_job(pool: &PgPool, server: &MockServer, currency: &str) -> JobRow {
    let days = weekdays(date("2024-03-04"), date("2024-03-08"));
    let closes = [70.0, 71.0, 72.0, 73.0, 74.0];
    // Only the London listing answers; the US `VOD` would 404.
    let body = london_chart("VOD.L", currency, &days, &closes);
    answer(server, "/v8/finance/chart/VOD.L", ok_json(body)).await;
    let asset = insert_asset(pool, stock_on("VOD", "XLON", "GBP")).await;
    let id = insert_job(pool, asset, date("2024-03-04"), date("2024-03-08")).await;
    run_one(pool, server, Clock::Database).await;
    job(pool, id).await
}

#[tokio::test]
async fn an_xlon_asset_without_a_yahoo_symbol_is_fetched_as_its_london_listing() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let row = vod_job(&db.pool, &server, "GBp").await;
    assert_eq!(
        (row.status.as_str(), row.bars_stored),
        ("completed", Some(5)),
        "{row:?}"
    );
    let bars = stored(&db.pool).await;
    assert_eq!(bars[0].0.to_rfc3339(), "2024-03-04T08:00:00+00:00");
    assert_eq!(
        (bars[0].1.as_str(), bars[0].2.as_deref()),
        ("0.7", Some("GBP"))
    );
    let requested: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(requested, ["/v8/finance/chart/VOD.L"]);
}

#[tokio::test]
async fn an_answer_in_another_currency_stores_nothing_and_names_the_mismatch() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let row = vod_job(&db.pool, &server, "USD").await;
    assert_eq!(row.status, "failed");
    let message = row.error_message.unwrap();
    assert!(
        message.contains("yahoo VOD.L: bad data: answered in USD but the asset is priced in GBP"),
        "{message}"
    );
    assert!(stored(&db.pool).await.is_empty());
}

#[tokio::test]
async fn symbols_and_mics_are_upper_cased_so_lowercase_is_not_a_second_asset() {
    let db = test_db().await;
    let first = insert_asset(&db.pool, stock_on(" aapl ", "xnas", "usd")).await;
    let (symbol, exchange, currency): (String, String, String) =
        sqlx::query_as("SELECT symbol, exchange, currency FROM assets WHERE id = $1")
            .bind(first)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (symbol.as_str(), exchange.as_str(), currency.as_str()),
        ("AAPL", "XNAS", "USD")
    );
    let again = sqlx::query(
        "INSERT INTO assets (symbol, asset_type, exchange) VALUES ('AAPL', 'stock', 'XNAS')",
    )
    .execute(&db.pool)
    .await
    .unwrap_err();
    assert_eq!(
        again.as_database_error().unwrap().code().as_deref(),
        Some("23505")
    );
}

#[tokio::test]
async fn an_unknown_mic_is_refused_when_the_host_writes_it() {
    let db = test_db().await;
    let err = sqlx::query(
        "INSERT INTO assets (symbol, asset_type, exchange) VALUES ('VOD', 'stock', 'LSE')",
    )
    .execute(&db.pool)
    .await
    .unwrap_err();
    let db_err = err.as_database_error().unwrap();
    assert_eq!(db_err.code().as_deref(), Some("23503"), "{db_err}");
    assert_eq!(db_err.constraint(), Some("assets_exchange_known"));
}

/// mic, name, yahoo_suffix, country, currency
type ExchangeRow = (String, String, String, Option<String>, Option<String>);

#[tokio::test]
async fn the_exchanges_table_is_the_codes_table() {
    let db = test_db().await;
    let rows: Vec<ExchangeRow> = sqlx::query_as(
        "SELECT mic, name, yahoo_suffix, country, currency FROM exchanges ORDER BY mic",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let mut code: Vec<_> = pricekeeper::exchanges::EXCHANGES
        .iter()
        .map(|e| {
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            (
                e.mic.to_owned(),
                e.name.to_owned(),
                e.yahoo_suffix.to_owned(),
                opt(e.country),
                opt(e.currency),
            )
        })
        .collect();
    code.sort();
    assert_eq!(rows, code);
}

// ---------------------------------------------------------------------------
// 4. Symbols that a URL would change.

#[tokio::test]
async fn the_schema_and_the_worker_agree_on_what_a_symbol_may_contain() {
    let db = test_db().await;
    // PostgreSQL text cannot hold NUL at all.
    for (symbol, ok) in pricekeeper::providers::symbol::EXAMPLES
        .iter()
        .filter(|(s, _)| !s.contains('\0'))
    {
        let sql: bool = sqlx::query_scalar("SELECT symbol_is_valid($1)")
            .bind(symbol)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(sql, *ok, "{symbol:?}");
    }
    for bad in ["A\tB", "A\nB", "..", "   "] {
        let err = sqlx::query(
            "INSERT INTO assets (symbol, asset_type, exchange) VALUES ($1, 'stock', 'XNAS')",
        )
        .bind(bad)
        .execute(&db.pool)
        .await
        .unwrap_err();
        let code = err.as_database_error().unwrap().code();
        assert_eq!(code.as_deref(), Some("23514"), "{bad:?}");
    }
    let err = sqlx::query(
        "INSERT INTO assets (symbol, asset_type, exchange, yahoo_symbol)
         VALUES ('OK', 'stock', 'XNAS', 'A' || chr(13) || chr(10) || 'B')",
    )
    .execute(&db.pool)
    .await
    .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().constraint(),
        Some("assets_yahoo_symbol_valid")
    );
}

#[tokio::test]
async fn a_symbol_with_a_tab_fails_its_job_before_any_request() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let (n, response) = {
        let days = weekdays(date("2024-03-04"), date("2024-03-08"));
        (
            days.len(),
            ok_json(yahoo_chart("AB", &days, &series(days.len()))),
        )
    };
    assert_eq!(n, 5);
    answer(&server, "/v8/finance/chart/AB", response).await;
    // A row written before the schema refused such symbols.
    sqlx::query("ALTER TABLE assets DROP CONSTRAINT assets_symbol_valid")
        .execute(&db.pool)
        .await
        .unwrap();
    let asset = insert_asset(&db.pool, stock("A\tB")).await;
    let id = insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-08")).await;
    run_one(&db.pool, &server, Clock::Database).await;

    let row = job(&db.pool, id).await;
    assert_eq!(row.status, "failed");
    let message = row.error_message.unwrap();
    assert!(
        message.contains(
            r#"yahoo "A\tB": unsupported: the symbol "A\tB" contains the control character \t"#
        ),
        "{message}"
    );
    assert!(!message.contains('\t'), "the reason escapes what it prints");
    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(stored(&db.pool).await.is_empty());
}

// ---------------------------------------------------------------------------
// 2, 3. One bar per trading date; misaligned and unstorable answers.

async fn yahoo_job(pool: &PgPool, server: &MockServer, symbol: &str, body: Value) -> JobRow {
    answer(
        server,
        &format!("/v8/finance/chart/{symbol}"),
        ok_json(body),
    )
    .await;
    let asset = insert_asset(pool, stock(symbol)).await;
    let id = insert_job(pool, asset, date("2024-03-04"), date("2024-03-15")).await;
    run_one(pool, server, Clock::Database).await;
    job(pool, id).await
}

fn march() -> Vec<NaiveDate> {
    weekdays(date("2024-03-04"), date("2024-03-15"))
}

#[tokio::test]
async fn several_points_on_one_date_are_refused_as_not_a_daily_series() {
    let db = test_db().await;
    let server = MockServer::start().await;
    // Five days, three points each: few enough rows for a twelve-day range.
    let mut body = yahoo_chart("HOURLY", &march()[..5], &series(5));
    // Every bar also at 15:30Z, 16:30Z: hourly points in a "daily" answer.
    let ts: Vec<i64> = body["chart"]["result"][0]["timestamp"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| {
            let t = t.as_i64().unwrap();
            [t, t + 3600, t + 7200]
        })
        .collect();
    let triple = |v: &Value| -> Value {
        Value::Array(
            v.as_array()
                .unwrap()
                .iter()
                .flat_map(|x| [x.clone(), x.clone(), x.clone()])
                .collect(),
        )
    };
    let result = &mut body["chart"]["result"][0];
    result["timestamp"] = json!(ts);
    for col in ["open", "high", "low", "close", "volume"] {
        let tripled = triple(&result["indicators"]["quote"][0][col]);
        result["indicators"]["quote"][0][col] = tripled;
    }
    let tripled = triple(&result["indicators"]["adjclose"][0]["adjclose"]);
    result["indicators"]["adjclose"][0]["adjclose"] = tripled;

    let row = yahoo_job(&db.pool, &server, "HOURLY", body).await;
    assert_eq!(row.status, "failed");
    let message = row.error_message.unwrap();
    assert!(
        message.contains(
            "not a daily series: 5 dates carry several bars (first: 2024-03-04 with 3 bars"
        ),
        "{message}"
    );
    assert!(stored(&db.pool).await.is_empty());
}

#[tokio::test]
async fn a_date_stored_under_another_timestamp_keeps_one_daily_bar() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let asset = insert_asset(&db.pool, stock("LIVE")).await;
    let days = march();
    let worker = backfill_worker(&db.pool, &settings(&server.uri(), &[]), Clock::Database);
    // First fetched with the last day stamped at its last trade (20:59Z),
    // as Yahoo does for the live bar when it sends no session times.
    let mut body = yahoo_chart("LIVE", &days, &series(days.len()));
    let last = days.len() - 1;
    let live = days[last]
        .and_hms_opt(20, 59, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    body["chart"]["result"][0]["timestamp"][last] = json!(live);
    answer(&server, "/v8/finance/chart/LIVE", ok_json(body)).await;
    insert_job(&db.pool, asset, days[0], days[last]).await;
    worker.process_next().await.unwrap();
    // Re-fetched later: the same date at the session open.
    server.reset().await;
    answer(
        &server,
        "/v8/finance/chart/LIVE",
        ok_json(yahoo_chart("LIVE", &days, &series(days.len()))),
    )
    .await;
    insert_job(&db.pool, asset, days[0], days[last]).await;
    worker.process_next().await.unwrap();

    let per_date: Vec<(String, i64)> = sqlx::query_as(
        "SELECT (ts AT TIME ZONE 'America/New_York')::date::text, count(*)
         FROM asset_prices GROUP BY 1 HAVING count(*) > 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(per_date, [], "one daily bar per trading date");
    let bars = stored(&db.pool).await;
    assert_eq!(bars.len(), days.len());
    assert_eq!(bars[last].0.to_rfc3339(), "2024-03-15T14:30:00+00:00");
}

#[tokio::test]
async fn binance_candles_several_a_day_are_refused_as_not_a_daily_series() {
    let db = test_db().await;
    let server = MockServer::start().await;
    // Hourly candles served for a daily request: shift every other row's
    // open time by an hour onto the previous row's day.
    let days = days_between("2024-03-01", "2024-03-10");
    let mut rows = binance_klines(&days);
    for (i, row) in rows.as_array_mut().unwrap().iter_mut().enumerate() {
        if i % 2 == 1 {
            let prev_day = row[0].as_i64().unwrap() - 86_400_000 + 3_600_000;
            row[0] = json!(prev_day);
        }
    }
    answer(&server, "/api/v3/klines", ok_json(rows)).await;
    let asset = insert_asset(&db.pool, crypto("HRLY", Some("HRLYUSDT"), None)).await;
    let id = insert_job(&db.pool, asset, date("2024-03-01"), date("2024-03-10")).await;
    let worker = backfill_worker(
        &db.pool,
        &settings(&server.uri(), &["--crypto-chain=binance"]),
        Clock::Database,
    );
    worker.process_next().await.unwrap();
    let row = job(&db.pool, id).await;
    assert_eq!(row.status, "failed");
    let message = row.error_message.unwrap();
    assert!(
        message
            .contains("binance HRLYUSDT: bad data: not a daily series: 5 dates carry several bars"),
        "{message}"
    );
    assert!(stored(&db.pool).await.is_empty());
}

#[tokio::test]
async fn far_more_rows_than_the_range_holds_are_refused_before_they_are_read() {
    let db = test_db().await;
    let server = MockServer::start().await;
    // 2,000 minute points for a twelve-day range (small enough a body to
    // be read: larger ones are cut off by the body cap first).
    let ts: Vec<i64> = (0..2_000).map(|i| 1_709_562_600 + i * 60).collect();
    let closes = vec![json!(100.0); ts.len()];
    let body = json!({"chart": {"result": [{
        "meta": {"currency": "USD", "exchangeTimezoneName": "America/New_York"},
        "timestamp": ts,
        "indicators": {"quote": [{"close": closes}]}
    }], "error": null}});
    let row = yahoo_job(&db.pool, &server, "FLOOD", body).await;
    assert_eq!(row.status, "failed");
    let message = row.error_message.unwrap();
    assert!(
        message.contains("2000 rows for 2024-03-04..2024-03-15 at 1d, which holds at most 42"),
        "{message}"
    );
}

#[tokio::test]
async fn misaligned_arrays_are_refused_rather_than_paired_by_index() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let mut body = yahoo_chart("SKEW", &march(), &series(10));
    // One high missing in the middle: every later high would belong to the next day.
    body["chart"]["result"][0]["indicators"]["quote"][0]["high"]
        .as_array_mut()
        .unwrap()
        .remove(4);
    let row = yahoo_job(&db.pool, &server, "SKEW", body).await;
    assert_eq!(row.status, "failed");
    let message = row.error_message.unwrap();
    assert!(
        message.contains("misaligned arrays: 10 timestamps but high has 9"),
        "{message}"
    );
    assert!(stored(&db.pool).await.is_empty());
}

#[tokio::test]
async fn unstorable_and_implausible_prices_leave_a_reject_record_each() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let mut body = yahoo_chart("HUGE", &march(), &series(10));
    let quote = &mut body["chart"]["result"][0]["indicators"]["quote"][0];
    // 3e38 is an f32 too large for a decimal; 1e300 an f64; the third a
    // close a millionfold the others.
    for (i, value) in [(2, json!(3e38)), (5, json!(1e300)), (7, json!(1.0e8))] {
        for col in ["open", "high", "low", "close"] {
            quote[col][i] = value.clone();
        }
    }
    let row = yahoo_job(&db.pool, &server, "HUGE", body).await;
    assert_eq!(
        (row.status.as_str(), row.bars_stored, row.bars_rejected),
        ("completed", Some(7), Some(3)),
        "{row:?}"
    );
    let reasons = rejects(&db.pool).await;
    assert!(
        reasons[0].starts_with("open 3e38 cannot be stored"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("open 1e300 cannot be stored"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].starts_with("price 100000000 is over 10000 times the median close"),
        "{reasons:?}"
    );
}

// ---------------------------------------------------------------------------
// 6. A 200 HTML page.

const CONSENT: &str = "<!DOCTYPE html><html><head><title>Before you continue</title></head>\
                       <body>consent</body></html>";

#[tokio::test]
async fn a_200_html_page_is_retried_with_backoff_before_it_counts_as_bad_data() {
    let db = test_db().await;
    let server = MockServer::start().await;
    answer(
        &server,
        "/v8/finance/chart/PAGE",
        ResponseTemplate::new(200).set_body_raw(CONSENT, "text/html"),
    )
    .await;
    let clock = Clock::manual(t0());
    let asset = insert_asset(&db.pool, stock("PAGE")).await;
    let id = insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-15")).await;
    let worker = backfill_worker(&db.pool, &settings(&server.uri(), &[]), clock.clone());

    for attempt in 1..=2 {
        worker.process_next().await.unwrap();
        let row = job(&db.pool, id).await;
        assert_eq!(
            (row.status.as_str(), row.attempts),
            ("pending", attempt),
            "{row:?}"
        );
        let message = row.error_message.unwrap();
        assert!(
            message.contains("unreadable answer: HTTP 200: unexpected body")
                && message.contains("HTML page \"Before you continue\""),
            "{message}"
        );
        clock.set(row.retry_after.unwrap());
    }
    worker.process_next().await.unwrap();
    let row = job(&db.pool, id).await;
    assert_eq!(
        (row.status.as_str(), row.attempts),
        ("failed", 3),
        "{row:?}"
    );

    // The page goes away: a job retried after one HTML answer completes.
    server.reset().await;
    let days = march();
    Mock::given(method("GET"))
        .and(path("/v8/finance/chart/PAGE"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(CONSENT, "text/html"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    answer(
        &server,
        "/v8/finance/chart/PAGE",
        ok_json(yahoo_chart("PAGE", &days, &series(days.len()))),
    )
    .await;
    let again = insert_job(&db.pool, asset, date("2024-03-04"), date("2024-03-15")).await;
    worker.process_next().await.unwrap();
    clock.set(job(&db.pool, again).await.retry_after.unwrap());
    worker.process_next().await.unwrap();
    let row = job(&db.pool, again).await;
    assert_eq!(
        (row.status.as_str(), row.bars_stored),
        ("completed", Some(10)),
        "{row:?}"
    );
}

// ---------------------------------------------------------------------------
// 5. A partial answer: the next provider is asked for the missing head.

fn coingecko_range(days: &[NaiveDate]) -> Value {
    // Point at 00:00Z of D+1 closes day D.
    let prices: Vec<Value> = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let ms = (d
                .succ_opt()
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc())
            .timestamp_millis();
            json!([ms, 1.0 + i as f64 * 0.01])
        })
        .collect();
    let volumes: Vec<Value> = prices.iter().map(|p| json!([p[0], 5000.0])).collect();
    json!({"prices": prices, "market_caps": volumes, "total_volumes": volumes})
}

#[tokio::test]
async fn a_partial_answer_asks_the_next_provider_for_the_missing_head() {
    let db = test_db().await;
    let server = MockServer::start().await;
    // Listed on Binance on 2024-03-01; bought in June, so the job wants
    // the year before. CoinGecko has it all.
    let listed = days_between("2024-03-01", "2024-06-30");
    answer(&server, "/api/v3/klines", ok_json(binance_klines(&listed))).await;
    let head = days_between("2023-06-01", "2024-02-29");
    answer(
        &server,
        "/coins/newcoin/market_chart/range",
        ok_json(coingecko_range(&head)),
    )
    .await;
    let asset = insert_asset(&db.pool, crypto("NEW", Some("NEWUSDT"), Some("newcoin"))).await;
    sqlx::query(
        "INSERT INTO tracked_assets (asset_id, tracking_users, history_from, history_to)
         VALUES ($1, 1, '2023-06-01', '2024-06-30')",
    )
    .bind(asset)
    .execute(&db.pool)
    .await
    .unwrap();
    let id = insert_job(&db.pool, asset, date("2023-06-01"), date("2024-06-30")).await;
    run_one(&db.pool, &server, Clock::Database).await;

    let row = job(&db.pool, id).await;
    assert_eq!(row.status, "completed", "{row:?}");
    assert_eq!(row.provider.as_deref(), Some("binance"));
    assert_eq!(row.bars_stored, Some((head.len() + listed.len()) as i32));
    let by_source: Vec<(String, i64, String, String)> = sqlx::query_as(
        "SELECT source, count(*), min(ts)::date::text, max(ts)::date::text
         FROM asset_prices GROUP BY source ORDER BY source",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        by_source,
        [
            (
                "binance".into(),
                listed.len() as i64,
                "2024-03-01".into(),
                "2024-06-30".into()
            ),
            (
                "coingecko".into(),
                head.len() as i64,
                "2023-06-01".into(),
                "2024-02-29".into()
            ),
        ]
    );
    let from: String =
        sqlx::query_scalar("SELECT history_from::text FROM tracked_assets WHERE asset_id = $1")
            .bind(asset)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(from, "2023-06-01");
}

#[tokio::test]
async fn a_head_no_provider_has_is_noted_and_left_out_of_coverage() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let listed = days_between("2024-03-01", "2024-06-30");
    answer(&server, "/api/v3/klines", ok_json(binance_klines(&listed))).await;
    let asset = insert_asset(&db.pool, crypto("ONLY", Some("ONLYUSDT"), None)).await;
    sqlx::query(
        "INSERT INTO tracked_assets (asset_id, tracking_users, history_from, history_to)
         VALUES ($1, 1, '2023-06-01', '2024-06-30')",
    )
    .bind(asset)
    .execute(&db.pool)
    .await
    .unwrap();
    // Yahoo (ONLY-USD) does not know it.
    let id = insert_job(&db.pool, asset, date("2023-06-01"), date("2024-06-30")).await;
    run_one(&db.pool, &server, Clock::Database).await;

    let row = job(&db.pool, id).await;
    assert_eq!(row.status, "completed", "{row:?}");
    let note = row.error_message.unwrap();
    assert!(
        note.starts_with("history starts on 2024-03-01, not 2023-06-01: "),
        "{note}"
    );
    let from: String =
        sqlx::query_scalar("SELECT history_from::text FROM tracked_assets WHERE asset_id = $1")
            .bind(asset)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(from, "2024-03-01", "coverage is what was stored");
}

// ---------------------------------------------------------------------------
// 7. Splits.

#[tokio::test]
async fn a_new_split_queues_a_refetch_so_older_bars_are_on_the_new_scale() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let asset = insert_asset(&db.pool, stock("NVDA")).await;
    let before = weekdays(date("2024-05-27"), date("2024-06-07"));
    let after = weekdays(date("2024-06-10"), date("2024-06-14"));
    let worker = backfill_worker(&db.pool, &settings(&server.uri(), &[]), Clock::Database);

    // Bars stored in early June, before the 10:1 split: about 1200 each.
    let old: Vec<Ohlcv> = (0..before.len())
        .map(|i| {
            let c = 1200.0 + i as f64;
            Some((c, c + 10.0, c - 10.0, c, 1000.0))
        })
        .collect();
    answer(
        &server,
        "/v8/finance/chart/NVDA",
        ok_json(yahoo_chart("NVDA", &before, &old)),
    )
    .await;
    insert_job(&db.pool, asset, before[0], *before.last().unwrap()).await;
    worker.process_next().await.unwrap();
    sqlx::query("UPDATE asset_prices SET fetched_at = '2024-06-08T00:00:00Z'")
        .execute(&db.pool)
        .await
        .unwrap();

    // Later the week of the split is fetched: adjusted bars and the split.
    let split_ts = after[0]
        .and_hms_opt(13, 30, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    let new: Vec<Ohlcv> = (0..after.len())
        .map(|i| {
            let c = 121.0 + i as f64;
            Some((c, c + 1.0, c - 1.0, c, 10000.0))
        })
        .collect();
    let mut body = yahoo_chart("NVDA", &after, &new);
    body["chart"]["result"][0]["events"] = json!({"splits": {split_ts.to_string(): {
        "date": split_ts, "numerator": 10.0, "denominator": 1.0, "splitRatio": "10:1"}}});
    server.reset().await;
    answer(&server, "/v8/finance/chart/NVDA", ok_json(body)).await;
    insert_job(&db.pool, asset, after[0], *after.last().unwrap()).await;
    worker.process_next().await.unwrap();

    let actions: Vec<(String, String, String)> =
        sqlx::query_as("SELECT kind, numerator::text, denominator::text FROM corporate_actions")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(actions, [("split".into(), "10".into(), "1".into())]);
    let queued: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT start_date::text, end_date::text, status::text FROM backfill_queue
         WHERE status = 'pending'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        queued,
        [("2024-05-27".into(), "2024-06-07".into(), "pending".into())]
    );

    // The re-fetch answers on the new scale, and the series is one again.
    let adjusted: Vec<Ohlcv> = old
        .iter()
        .map(|b| b.map(|(o, h, l, c, v)| (o / 10.0, h / 10.0, l / 10.0, c / 10.0, v * 10.0)))
        .collect();
    server.reset().await;
    answer(
        &server,
        "/v8/finance/chart/NVDA",
        ok_json(yahoo_chart("NVDA", &before, &adjusted)),
    )
    .await;
    worker.process_next().await.unwrap();
    let closes: Vec<f64> = sqlx::query_scalar("SELECT close::float8 FROM asset_prices ORDER BY ts")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(closes.len(), before.len() + after.len());
    assert!(
        closes.iter().all(|c| (115.0..135.0).contains(c)),
        "{closes:?}"
    );
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM backfill_queue WHERE status <> 'completed'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(pending, 0, "the re-fetch queues nothing more");
}
