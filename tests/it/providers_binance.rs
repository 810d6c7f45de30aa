//! Binance against a local server in its real shapes: klines as arrays of
//! decimal strings with millisecond times, the open last candle, paging past
//! 1000 rows, batch tickers, the used-weight header and every error shape
//! (400 -1121, 429 and 418 with Retry-After, 451).

use crate::provider_support;

use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use pricekeeper::providers::binance::PAGE;
use pricekeeper::providers::{Binance, EndpointConfig, Interval, Provider, ProviderError};
use provider_support::{assert_bad_data, broken_bodies, config, date, dec, fixture, json};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KLINES: &str = "/api/v3/klines";
const TICKER: &str = "/api/v3/ticker/price";

fn binance(server: &MockServer) -> Binance {
    Binance::new(config(server), 6000).unwrap()
}

fn millis(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

/// A daily kline row as Binance writes it.
fn kline(day: NaiveDate, close: f64) -> Value {
    let open = millis(day);
    json!([
        open,
        format!("{:.8}", close - 100.0),
        format!("{:.8}", close + 250.0),
        format!("{:.8}", close - 300.0),
        format!("{close:.8}"),
        "1234.56780000",
        open + 86_400_000 - 1,
        "81234567.12345678",
        123456,
        "600.12340000",
        "40000000.00000000",
        "0"
    ])
}

fn error(status: u16, fixture_path: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(fixture(fixture_path), "application/json")
}

#[tokio::test]
async fn daily_klines_parse_exact_decimal_strings_and_millisecond_times() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(KLINES))
        .and(query_param("symbol", "BTCUSDT"))
        .and(query_param("interval", "1d"))
        .and(query_param("startTime", "1709251200000"))
        .and(query_param("endTime", "1709683199999"))
        .and(query_param("limit", "1000"))
        .respond_with(
            json("binance/klines_btcusdt_1d.json").insert_header("x-mbx-used-weight-1m", "12"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let provider = binance(&server);

    let history = provider
        .history(
            "BTCUSDT",
            date("2024-03-01"),
            date("2024-03-05"),
            Interval::D1,
        )
        .await
        .unwrap();

    assert_eq!(history.bars.len(), 5);
    let bar = &history.bars[0];
    assert_eq!(
        bar.ts,
        "2024-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(bar.open, Some(dec("61130.98")));
    assert_eq!(bar.high, Some(dec("63114.23")));
    assert_eq!(bar.low, Some(dec("60777")));
    assert_eq!(bar.close, dec("62387.9"));
    assert_eq!(bar.volume, Some(dec("47737.93473")));
    assert_eq!(bar.adj_close, None);
    assert_eq!(bar.currency.as_deref(), Some("USD"));
    assert_eq!(history.timezone.as_deref(), Some("UTC"));
    assert_eq!(
        provider.limiter().held_until(),
        None,
        "12 of 6000 is far from the budget"
    );
}

#[tokio::test]
async fn the_still_open_last_candle_is_not_a_bar() {
    let today = Utc::now().date_naive();
    let yesterday = today - Days::new(1);
    let server = MockServer::start().await;
    Mock::given(path(KLINES))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([kline(yesterday, 65000.0), kline(today, 65500.0)])),
        )
        .mount(&server)
        .await;

    let history = binance(&server)
        .history("BTCUSDT", yesterday, today, Interval::D1)
        .await
        .unwrap();

    assert_eq!(history.bars.len(), 1);
    assert_eq!(history.bars[0].ts.date_naive(), yesterday);
}

#[tokio::test]
async fn long_ranges_page_past_a_thousand_rows() {
    let first = date("2019-01-01");
    let days: Vec<NaiveDate> = (0..1500).map(|i| first + Days::new(i)).collect();
    let last = days[1499];
    let rows: Vec<Value> = days
        .iter()
        .enumerate()
        .map(|(i, d)| kline(*d, 4000.0 + i as f64))
        .collect();
    let server = MockServer::start().await;
    Mock::given(path(KLINES))
        .and(query_param("startTime", millis(first).to_string()))
        .respond_with(ResponseTemplate::new(200).set_body_json(&rows[..PAGE]))
        .expect(1)
        .mount(&server)
        .await;
    // The next page starts one millisecond after the last open time seen.
    Mock::given(path(KLINES))
        .and(query_param(
            "startTime",
            (millis(days[PAGE - 1]) + 1).to_string(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(&rows[PAGE..]))
        .expect(1)
        .mount(&server)
        .await;

    let history = binance(&server)
        .history("ETHUSDT", first, last, Interval::D1)
        .await
        .unwrap();

    assert_eq!(history.bars.len(), 1500);
    assert_eq!(history.bars[0].ts.date_naive(), first);
    assert_eq!(history.bars[1499].ts.date_naive(), last);
    assert_eq!(history.bars[1499].close, dec("5499"));
}

#[tokio::test]
async fn used_weight_near_the_budget_holds_the_next_request() {
    let server = MockServer::start().await;
    Mock::given(path(KLINES))
        .respond_with(
            json("binance/klines_btcusdt_1d.json").insert_header("x-mbx-used-weight-1m", "5200"),
        )
        .mount(&server)
        .await;
    let provider = binance(&server);

    provider
        .history(
            "BTCUSDT",
            date("2024-03-01"),
            date("2024-03-05"),
            Interval::D1,
        )
        .await
        .unwrap();

    let held = provider
        .limiter()
        .held_until()
        .expect("a hold until the next minute");
    let wait = held - tokio::time::Instant::now();
    assert!(wait <= Duration::from_secs(61), "{wait:?}");
}

#[tokio::test]
async fn many_prices_come_in_one_ticker_request() {
    let server = MockServer::start().await;
    Mock::given(path(TICKER))
        .and(query_param("symbols", r#"["BTCUSDT","ETHUSDT","ETHBTC"]"#))
        .respond_with(json("binance/ticker_prices.json"))
        .expect(1)
        .mount(&server)
        .await;
    let symbols: Vec<String> = ["BTCUSDT", "ETHUSDT", "ETHBTC"].map(String::from).to_vec();

    let quotes = binance(&server).quotes(&symbols).await.unwrap();

    let got: Vec<(&str, String, Option<&str>)> = quotes
        .quotes
        .iter()
        .map(|q| {
            (
                q.symbol.as_str(),
                q.price.to_string(),
                q.currency.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("BTCUSDT", "65861.66".to_owned(), Some("USD")),
            ("ETHUSDT", "3421.07".to_owned(), Some("USD")),
            ("ETHBTC", "0.05194".to_owned(), None),
        ]
    );
    assert!(quotes.missing.is_empty());
}

#[tokio::test]
async fn an_invalid_symbol_in_a_batch_is_found_by_asking_one_by_one() {
    let server = MockServer::start().await;
    Mock::given(path(TICKER))
        .and(query_param("symbols", r#"["BTCUSDT","NOPEUSDT"]"#))
        .respond_with(error(400, "binance/error_invalid_symbol.json"))
        .mount(&server)
        .await;
    Mock::given(path(TICKER))
        .and(query_param("symbol", "BTCUSDT"))
        .respond_with(json("binance/ticker_price_one.json"))
        .mount(&server)
        .await;
    Mock::given(path(TICKER))
        .and(query_param("symbol", "NOPEUSDT"))
        .respond_with(error(400, "binance/error_invalid_symbol.json"))
        .mount(&server)
        .await;

    let quotes = binance(&server)
        .quotes(&["BTCUSDT".to_owned(), "NOPEUSDT".to_owned()])
        .await
        .unwrap();

    assert_eq!(quotes.quotes.len(), 1);
    assert_eq!(quotes.quotes[0].price, dec("65861.66"));
    assert_eq!(quotes.missing.len(), 1);
    assert_eq!(
        quotes.missing[0].to_string(),
        "binance NOPEUSDT: not found: HTTP 400 (-1121): Invalid symbol."
    );
}

/// What is answered, and what the error must look like.
type Case = (&'static str, ResponseTemplate, fn(&ProviderError) -> bool);

#[tokio::test]
async fn every_error_shape_is_classified() {
    let soon = Utc::now().timestamp_millis() + 300_000;
    let ban_body = format!(
        r#"{{"code":-1003,"msg":"Way too much request weight used; IP banned until {soon}. Please use WebSocket Streams for live updates to avoid bans."}}"#
    );
    let cases: Vec<Case> = vec![
        (
            "400 -1121",
            error(400, "binance/error_invalid_symbol.json"),
            |e| matches!(e, ProviderError::NotFound { .. }),
        ),
        (
            "429 with Retry-After",
            error(429, "binance/error_429.json").insert_header("retry-after", "120"),
            |e| e.retry_after() == Some(Duration::from_secs(120)),
        ),
        (
            "429 without Retry-After",
            error(429, "binance/error_429.json"),
            |e| {
                matches!(
                    e,
                    ProviderError::RateLimited {
                        retry_after: None,
                        ..
                    }
                )
            },
        ),
        (
            "418 with Retry-After",
            error(418, "binance/error_418.json").insert_header("retry-after", "7200"),
            |e| {
                e.retry_after() == Some(Duration::from_secs(7200))
                    && e.to_string().contains("IP banned")
            },
        ),
        (
            "418 with the ban end only in the message",
            ResponseTemplate::new(418).set_body_raw(ban_body, "application/json"),
            |e| {
                e.retry_after()
                    .is_some_and(|w| w > Duration::from_secs(290) && w <= Duration::from_secs(300))
            },
        ),
        ("451", error(451, "binance/error_451.json"), |e| {
            matches!(e, ProviderError::Refused { .. })
                && e.to_string().contains("restricted location")
        }),
        (
            "502",
            ResponseTemplate::new(502)
                .set_body_string("<html><title>502 Bad Gateway</title></html>"),
            |e| matches!(e, ProviderError::Transient { .. }),
        ),
        (
            "400 -1120",
            ResponseTemplate::new(400).set_body_raw(
                r#"{"code":-1120,"msg":"Invalid interval."}"#,
                "application/json",
            ),
            |e| matches!(e, ProviderError::Unsupported { .. }),
        ),
    ];
    for (what, response, check) in cases {
        let server = MockServer::start().await;
        Mock::given(path(KLINES))
            .respond_with(response)
            .mount(&server)
            .await;
        let err = binance(&server)
            .history(
                "NOPEUSDT",
                date("2024-03-01"),
                date("2024-03-05"),
                Interval::D1,
            )
            .await
            .unwrap_err();
        assert!(check(&err), "{what}: {err:?}");
        assert!(
            err.to_string().starts_with("binance NOPEUSDT: "),
            "{what}: {err}"
        );
    }
}

#[tokio::test]
async fn after_a_retry_after_nothing_is_sent_until_it_ends() {
    let server = MockServer::start().await;
    Mock::given(path(KLINES))
        .respond_with(error(429, "binance/error_429.json").insert_header("retry-after", "120"))
        .expect(1)
        .mount(&server)
        .await;
    let provider = binance(&server);
    let ask = || {
        provider.history(
            "BTCUSDT",
            date("2024-03-01"),
            date("2024-03-05"),
            Interval::D1,
        )
    };

    let first = ask().await.unwrap_err();
    let second = ask().await.unwrap_err();

    assert_eq!(first.retry_after(), Some(Duration::from_secs(120)));
    let left = second.retry_after().expect("the cooldown's remainder");
    assert!(
        left <= Duration::from_secs(120) && left > Duration::from_secs(100),
        "{left:?}"
    );
    assert!(second.to_string().contains("no request sent"), "{second}");
    // `expect(1)`: the server saw only the first request.
}

#[tokio::test]
async fn no_body_makes_it_panic() {
    for (what, status, body) in broken_bodies() {
        let server = MockServer::start().await;
        Mock::given(path(KLINES))
            .respond_with(ResponseTemplate::new(status).set_body_bytes(body.clone()))
            .mount(&server)
            .await;
        Mock::given(path(TICKER))
            .respond_with(ResponseTemplate::new(status).set_body_bytes(body))
            .mount(&server)
            .await;
        let provider = binance(&server);
        let history = provider
            .history(
                "BTCUSDT",
                date("2024-03-01"),
                date("2024-03-05"),
                Interval::D1,
            )
            .await;
        assert_bad_data(history, what);
        let quotes = provider
            .quotes(&["BTCUSDT".to_owned(), "ETHUSDT".to_owned()])
            .await;
        assert_bad_data(quotes, what);
    }
    // A row of the wrong shape is bad data too.
    let server = MockServer::start().await;
    Mock::given(path(KLINES))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([[
            1709251200000i64,
            61130.98,
            "x"
        ]])))
        .mount(&server)
        .await;
    let history = binance(&server)
        .history(
            "BTCUSDT",
            date("2024-03-01"),
            date("2024-03-05"),
            Interval::D1,
        )
        .await;
    assert_bad_data(history, "a short kline of numbers");
}

#[tokio::test]
async fn a_slow_server_is_a_transient_timeout() {
    let server = MockServer::start().await;
    Mock::given(path(KLINES))
        .respond_with(json("binance/klines_btcusdt_1d.json").set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let provider = Binance::new(
        EndpointConfig {
            timeout: Duration::from_millis(200),
            ..config(&server)
        },
        6000,
    )
    .unwrap();
    let err = provider
        .history(
            "BTCUSDT",
            date("2024-03-01"),
            date("2024-03-05"),
            Interval::D1,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Transient { .. }) && err.to_string().contains("timed out"),
        "{err}"
    );
}
