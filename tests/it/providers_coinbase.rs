//! Coinbase Exchange against a local server in its real shapes: candles as
//! `[time, low, high, open, close, volume]` numbers, newest first, empty
//! intervals left out, at most 300 per request (longer ranges are asked
//! window by window), and its `{"message": …}` errors.

use crate::provider_support;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use pricekeeper::providers::{Coinbase, Interval, Provider, ProviderError};
use provider_support::{assert_bad_data, broken_bodies, config, date, dec, fixture, json};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const CANDLES: &str = "/products/BTC-USD/candles";

fn coinbase(server: &MockServer) -> Coinbase {
    Coinbase::new(config(server)).unwrap()
}

fn error(status: u16, fixture_path: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(fixture(fixture_path), "application/json")
}

#[tokio::test]
async fn candles_put_low_before_high_and_come_newest_first() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(CANDLES))
        .and(query_param("granularity", "86400"))
        .and(query_param("start", "2024-03-01T00:00:00Z"))
        .and(query_param("end", "2024-03-05T00:00:00Z"))
        .respond_with(json("coinbase/candles_btc_usd_1d.json"))
        .expect(1)
        .mount(&server)
        .await;

    let history = coinbase(&server)
        .history(
            "BTC-USD",
            date("2024-03-01"),
            date("2024-03-05"),
            Interval::D1,
        )
        .await
        .unwrap();

    assert_eq!(history.bars.len(), 5);
    let first = &history.bars[0];
    assert_eq!(
        first.ts,
        "2024-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(first.low, Some(dec("60777")));
    assert_eq!(first.high, Some(dec("63114.23")));
    assert_eq!(first.open, Some(dec("61130.98")));
    assert_eq!(first.close, dec("62387.9"));
    assert_eq!(first.currency.as_deref(), Some("USD"));
    assert!(
        history.bars.windows(2).all(|w| w[0].ts < w[1].ts),
        "oldest first"
    );
}

/// Answers every window with one candle per day it spans, leaving one day
/// out (an interval without trades), and records the windows asked.
struct Windows(Arc<Mutex<Vec<(String, String)>>>);

impl Respond for Windows {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let param = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        let (start, end) = (param("start"), param("end"));
        self.0.lock().unwrap().push((start.clone(), end.clone()));
        let start = start.parse::<DateTime<Utc>>().unwrap().timestamp();
        let end = end.parse::<DateTime<Utc>>().unwrap().timestamp();
        let mut rows: Vec<Value> = (start..=end)
            .step_by(86_400)
            .filter(|t| *t != 1_704_326_400) // 2024-01-04: no trades
            .map(|t| json!([t, 1.0, 2.0, 1.5, 1.75, 10.0]))
            .collect();
        rows.reverse();
        ResponseTemplate::new(200).set_body_json(rows)
    }
}

#[tokio::test]
async fn a_long_range_is_asked_three_hundred_candles_at_a_time() {
    let server = MockServer::start().await;
    let asked = Arc::new(Mutex::new(Vec::new()));
    Mock::given(path(CANDLES))
        .respond_with(Windows(asked.clone()))
        .mount(&server)
        .await;
    let (from, to) = (date("2024-01-01"), date("2024-12-31"));

    let history = coinbase(&server)
        .history("BTC-USD", from, to, Interval::D1)
        .await
        .unwrap();

    let asked = asked.lock().unwrap().clone();
    assert_eq!(
        asked,
        [
            (
                "2024-01-01T00:00:00Z".to_owned(),
                "2024-10-26T00:00:00Z".to_owned()
            ),
            (
                "2024-10-27T00:00:00Z".to_owned(),
                "2024-12-31T00:00:00Z".to_owned()
            ),
        ]
    );
    assert_eq!(
        history.bars.len(),
        365,
        "366 days less the one without trades"
    );
    let first_days: Vec<NaiveDate> = history.bars[..4]
        .iter()
        .map(|b| b.ts.date_naive())
        .collect();
    assert_eq!(
        first_days,
        [
            date("2024-01-01"),
            date("2024-01-02"),
            date("2024-01-03"),
            date("2024-01-05")
        ]
    );
}

#[tokio::test]
async fn the_current_candle_is_still_open() {
    let server = MockServer::start().await;
    let today = Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap();
    let ts = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    Mock::given(path(CANDLES))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            [ts(today), 1.0, 2.0, 1.5, 1.75, 10.0],
            [ts(yesterday), 1.0, 2.0, 1.5, 1.75, 10.0]
        ])))
        .mount(&server)
        .await;
    let history = coinbase(&server)
        .history("BTC-USD", yesterday, today, Interval::D1)
        .await
        .unwrap();
    let dates: Vec<_> = history.bars.iter().map(|b| b.ts.date_naive()).collect();
    assert_eq!(dates, [yesterday]);
}

#[tokio::test]
async fn a_ticker_is_a_quote_and_an_unknown_product_is_missing() {
    let server = MockServer::start().await;
    Mock::given(path("/products/BTC-USD/ticker"))
        .respond_with(json("coinbase/ticker_btc_usd.json"))
        .mount(&server)
        .await;
    Mock::given(path("/products/NOPE-USD/ticker"))
        .respond_with(error(404, "coinbase/error_not_found.json"))
        .mount(&server)
        .await;
    let symbols = ["BTC-USD", "NOPE-USD"].map(str::to_owned);

    let quotes = coinbase(&server).quotes(&symbols).await.unwrap();

    assert_eq!(quotes.quotes.len(), 1);
    let quote = &quotes.quotes[0];
    assert_eq!(quote.price, dec("65861.7"));
    assert_eq!(quote.currency.as_deref(), Some("USD"));
    assert_eq!(quote.ts.to_rfc3339(), "2024-04-01T12:00:00.123456+00:00");
    match &quotes.missing[..] {
        [
            ProviderError::NotFound {
                symbol, message, ..
            },
        ] => {
            assert_eq!(symbol, "NOPE-USD");
            assert_eq!(message, "HTTP 404: NotFound");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn error_shapes_are_classified() {
    let server = MockServer::start().await;
    Mock::given(path("/products/NOPE-USD/candles"))
        .respond_with(error(404, "coinbase/error_not_found.json"))
        .mount(&server)
        .await;
    Mock::given(path(CANDLES))
        .respond_with(error(429, "coinbase/error_rate_limit.json"))
        .mount(&server)
        .await;
    let provider = coinbase(&server);
    let (from, to) = (date("2024-03-01"), date("2024-03-05"));
    let unknown = provider.history("NOPE-USD", from, to, Interval::D1).await;
    assert!(
        matches!(unknown, Err(ProviderError::NotFound { .. })),
        "{unknown:?}"
    );
    let throttled = provider.history("BTC-USD", from, to, Interval::D1).await;
    match throttled {
        Err(ProviderError::RateLimited { message, .. }) => {
            assert_eq!(message, "HTTP 429: Public rate limit exceeded")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_body_makes_it_panic() {
    let mut bodies = broken_bodies();
    bodies.push((
        "prices as strings",
        200,
        br#"[[1709251200,"1","2","1","2","3"]]"#.to_vec(),
    ));
    bodies.push(("an object", 200, br#"{"message":"weird"}"#.to_vec()));
    for (what, status, body) in bodies {
        let server = MockServer::start().await;
        Mock::given(path(CANDLES))
            .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        let result = coinbase(&server)
            .history(
                "BTC-USD",
                date("2024-03-01"),
                date("2024-03-05"),
                Interval::D1,
            )
            .await;
        assert_bad_data(result, what);
    }
}
