//! Kraken against a local server in its real shapes: OHLC keyed by
//! Kraken's own pair name next to `last`, prices as strings, the open last
//! candle, many pairs per Ticker call, and errors as HTTP 200 with an
//! `error` list.

use crate::provider_support;

use chrono::{DateTime, Utc};
use pricekeeper::providers::{Interval, Kraken, Provider, ProviderError};
use provider_support::{assert_bad_data, broken_bodies, config, date, dec, json};
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OHLC: &str = "/0/public/OHLC";
const TICKER: &str = "/0/public/Ticker";

fn kraken(server: &MockServer) -> Kraken {
    Kraken::new(config(server)).unwrap()
}

#[tokio::test]
async fn ohlc_is_read_from_krakens_own_pair_name_with_string_prices() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(OHLC))
        .and(query_param("pair", "XBTUSD"))
        .and(query_param("interval", "1440"))
        .and(query_param("since", "1709251199"))
        .respond_with(json("kraken/ohlc_xbtusd_1d.json"))
        .expect(1)
        .mount(&server)
        .await;

    let history = kraken(&server)
        .history(
            "XBTUSD",
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
    assert_eq!(bar.open, Some(dec("61130.9")));
    assert_eq!(bar.high, Some(dec("63114.2")));
    assert_eq!(bar.low, Some(dec("60777")));
    assert_eq!(bar.close, dec("62387.9"));
    assert_eq!(bar.volume, Some(dec("2737.9347358")));
    assert_eq!(bar.currency.as_deref(), Some("USD"));
    assert_eq!(history.bars[4].close, dec("63724"));
}

#[tokio::test]
async fn the_still_open_last_candle_is_not_a_bar() {
    let server = MockServer::start().await;
    let today = Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap();
    let ts = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    let row = |d| json!([ts(d), "1.0", "2.0", "0.5", "1.5", "1.2", "10.0", 5]);
    let body = json!({"error": [], "result": {"XETHZUSD": [row(yesterday), row(today)], "last": ts(today)}});
    Mock::given(path(OHLC))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;

    let history = kraken(&server)
        .history("ETHUSD", yesterday, today, Interval::D1)
        .await
        .unwrap();

    let dates: Vec<_> = history.bars.iter().map(|b| b.ts.date_naive()).collect();
    assert_eq!(dates, [yesterday], "today's candle is still trading");
}

#[tokio::test]
async fn many_pairs_come_in_one_ticker_call() {
    let server = MockServer::start().await;
    Mock::given(path(TICKER))
        .and(query_param("pair", "XBTUSD,ETHUSD,SOLUSD"))
        .respond_with(json("kraken/ticker_many.json"))
        .expect(1)
        .mount(&server)
        .await;
    let symbols = ["XBTUSD", "ETHUSD", "SOLUSD"].map(str::to_owned);

    let quotes = kraken(&server).quotes(&symbols).await.unwrap();

    assert!(quotes.missing.is_empty(), "{:?}", quotes.missing);
    let prices: Vec<(&str, String)> = quotes
        .quotes
        .iter()
        .map(|q| (q.symbol.as_str(), q.price.to_string()))
        .collect();
    assert_eq!(
        prices,
        [
            ("XBTUSD", "65861.6".to_owned()),
            ("ETHUSD", "3501.5".to_owned()),
            ("SOLUSD", "182.5".to_owned())
        ]
    );
    assert_eq!(quotes.quotes[0].currency.as_deref(), Some("USD"));
}

#[tokio::test]
async fn an_unknown_pair_in_a_batch_is_found_by_asking_one_by_one() {
    let server = MockServer::start().await;
    Mock::given(path(TICKER))
        .and(query_param("pair", "XBTUSD,NOPEUSD"))
        .respond_with(json("kraken/error_unknown_pair.json"))
        .mount(&server)
        .await;
    Mock::given(path(TICKER))
        .and(query_param("pair", "NOPEUSD"))
        .respond_with(json("kraken/error_unknown_pair.json"))
        .mount(&server)
        .await;
    Mock::given(path(TICKER))
        .and(query_param("pair", "XBTUSD"))
        .respond_with(json("kraken/ticker_many.json"))
        .mount(&server)
        .await;
    let symbols = ["XBTUSD", "NOPEUSD"].map(str::to_owned);

    let quotes = kraken(&server).quotes(&symbols).await.unwrap();

    assert_eq!(quotes.quotes.len(), 1);
    assert!(
        matches!(&quotes.missing[..], [ProviderError::NotFound { symbol, .. }] if symbol == "NOPEUSD"),
        "{:?}",
        quotes.missing
    );
}

#[tokio::test]
async fn errors_in_a_200_body_are_classified() {
    let server = MockServer::start().await;
    Mock::given(path(OHLC))
        .and(query_param("pair", "NOPEUSD"))
        .respond_with(json("kraken/error_unknown_pair.json"))
        .mount(&server)
        .await;
    Mock::given(path(OHLC))
        .and(query_param("pair", "XBTUSD"))
        .respond_with(json("kraken/error_rate_limit.json"))
        .mount(&server)
        .await;
    let provider = kraken(&server);
    let (from, to) = (date("2024-03-01"), date("2024-03-05"));

    let unknown = provider.history("NOPEUSD", from, to, Interval::D1).await;
    match unknown {
        Err(ProviderError::NotFound { message, .. }) => {
            assert!(message.contains("EQuery:Unknown asset pair"), "{message}")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let throttled = provider.history("XBTUSD", from, to, Interval::D1).await;
    assert!(
        matches!(throttled, Err(ProviderError::RateLimited { .. })),
        "{throttled:?}"
    );
    // The rate limit pauses Kraken: the next call is refused unsent.
    assert!(provider.limiter().cooldown_left().is_some());
}

#[tokio::test]
async fn server_errors_are_transient() {
    let server = MockServer::start().await;
    Mock::given(path(OHLC))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>down</html>"))
        .mount(&server)
        .await;
    let result = kraken(&server)
        .history(
            "XBTUSD",
            date("2024-03-01"),
            date("2024-03-05"),
            Interval::D1,
        )
        .await;
    assert!(
        matches!(result, Err(ProviderError::Transient { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn no_body_makes_it_panic() {
    let mut bodies = broken_bodies();
    bodies.push((
        "two pairs",
        200,
        br#"{"error":[],"result":{"A":[],"B":[],"last":1}}"#.to_vec(),
    ));
    bodies.push((
        "a candle with a number for a price",
        200,
        br#"{"error":[],"result":{"XXBTZUSD":[[1709251200,61130.9,"1","1","1","1","1",1]],"last":1}}"#
            .to_vec(),
    ));
    bodies.push((
        "more than 720 candles",
        200,
        format!(
            r#"{{"error":[],"result":{{"XXBTZUSD":[{}],"last":1}}}}"#,
            vec![r#"[1709251200,"1","1","1","1","1","1",1]"#; 721].join(",")
        )
        .into_bytes(),
    ));
    for (what, status, body) in bodies {
        let server = MockServer::start().await;
        Mock::given(path(OHLC))
            .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        let result = kraken(&server)
            .history(
                "XBTUSD",
                date("2024-01-01"),
                date("2024-12-31"),
                Interval::D1,
            )
            .await;
        assert_bad_data(result, what);
    }
}

/// Kraken refuses requests without a User-Agent; a compressed body must be
/// decoded, not read as garbage.
#[tokio::test]
async fn requests_carry_a_user_agent_and_accept_gzip() {
    use std::io::Write;

    let server = MockServer::start().await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(provider_support::fixture("kraken/ohlc_xbtusd_1d.json").as_bytes())
        .unwrap();
    Mock::given(path(OHLC))
        .and(wiremock::matchers::header_regex(
            "user-agent",
            "^pricekeeper/",
        ))
        .and(wiremock::matchers::header_regex("accept-encoding", "gzip"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_raw(gz.finish().unwrap(), "application/json"),
        )
        .expect(1)
        .mount(&server)
        .await;

    let history = kraken(&server)
        .history(
            "XBTUSD",
            date("2024-03-01"),
            date("2024-03-05"),
            Interval::D1,
        )
        .await
        .unwrap();

    assert_eq!(history.bars.len(), 5);
}
