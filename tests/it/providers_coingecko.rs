//! CoinGecko against a local server in its real shapes: seconds in and
//! milliseconds out, daily midnight points with a trailing live point,
//! `simple/price` for many ids, the demo key header, and the 429 shapes
//! (JSON with retry-after, an HTML page, a 200 with a status object).

use crate::provider_support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use pricekeeper::providers::bar::decimal_from_f64;
use pricekeeper::providers::{CoinGecko, EndpointConfig, Interval, Provider, ProviderError};
use provider_support::{assert_bad_data, broken_bodies, config, date, dec, fixture, json};
use wiremock::matchers::{header, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const RANGE: &str = "/coins/bitcoin/market_chart/range";

fn coingecko(server: &MockServer, key: Option<&str>) -> CoinGecko {
    CoinGecko::new(config(server), key.map(str::to_owned), "usd".to_owned()).unwrap()
}

fn utc(raw: &str) -> DateTime<Utc> {
    raw.parse().unwrap()
}

#[tokio::test]
async fn midnight_points_become_daily_closes_and_the_live_point_is_dropped() {
    let server = MockServer::start().await;
    Mock::given(path(RANGE))
        .and(query_param("vs_currency", "usd"))
        // Seconds in: at least 91 days back (daily granularity), through
        // 01:00Z after the last day's closing midnight.
        .and(query_param("from", "1701734400"))
        .and(query_param("to", "1709600400"))
        .respond_with(json("coingecko/market_chart_range_bitcoin.json"))
        .expect(1)
        .mount(&server)
        .await;

    let history = coingecko(&server, None)
        .history(
            "bitcoin",
            date("2024-03-01"),
            date("2024-03-04"),
            Interval::D1,
        )
        .await
        .unwrap();

    let starts: Vec<_> = history.bars.iter().map(|b| b.ts).collect();
    assert_eq!(
        starts,
        [
            utc("2024-03-01T00:00:00Z"),
            utc("2024-03-02T00:00:00Z"),
            utc("2024-03-03T00:00:00Z"),
            utc("2024-03-04T00:00:00Z"),
        ]
    );
    // Milliseconds out: the 2024-03-02T00:00Z point closes the 03-01 bar.
    let first = &history.bars[0];
    assert_eq!(first.close, dec("38356.1251759"));
    assert_eq!(Some(first.close), decimal_from_f64(38356.12517586101));
    assert_eq!(first.volume, Some(dec("43695452290.2")));
    assert_eq!((first.open, first.high, first.low), (None, None, None));
    assert_eq!(first.currency.as_deref(), Some("USD"));
    // The live point (14:23:07.123Z) would have made a fifth, partial bar.
    assert_eq!(history.bars.last().unwrap().close, dec("39603.7295276"));
    assert!(history.rejected.is_empty());
}

#[tokio::test]
async fn the_demo_key_goes_in_its_header() {
    let server = MockServer::start().await;
    Mock::given(path("/simple/price"))
        .and(header("x-cg-demo-api-key", "CG-test-key"))
        .respond_with(json("coingecko/simple_price.json"))
        .expect(1)
        .mount(&server)
        .await;

    let quotes = coingecko(&server, Some("CG-test-key"))
        .quotes(&["bitcoin".to_owned()])
        .await
        .unwrap();

    assert_eq!(quotes.quotes.len(), 1);
}

#[tokio::test]
async fn many_ids_in_one_simple_price_request() {
    let server = MockServer::start().await;
    Mock::given(path("/simple/price"))
        .and(query_param("ids", "bitcoin,ethereum,no-such-coin"))
        .and(query_param("vs_currencies", "usd"))
        .and(query_param("include_last_updated_at", "true"))
        .respond_with(json("coingecko/simple_price.json"))
        .expect(1)
        .mount(&server)
        .await;
    let ids: Vec<String> = ["bitcoin", "ethereum", "no-such-coin"]
        .map(String::from)
        .to_vec();

    let quotes = coingecko(&server, None).quotes(&ids).await.unwrap();

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
            ("bitcoin", "67234.12".to_owned(), Some("USD")),
            ("ethereum", "3510.84".to_owned(), Some("USD"))
        ]
    );
    assert_eq!(quotes.quotes[0].ts, utc("2024-04-01T15:01:22Z"));
    assert!(
        matches!(&quotes.missing[..], [ProviderError::NotFound { symbol, .. }] if symbol == "no-such-coin")
    );
}

/// What is answered, and what the error must look like.
type Case = (&'static str, ResponseTemplate, fn(&ProviderError) -> bool);

#[tokio::test]
async fn every_error_shape_is_classified() {
    let html = fixture("coingecko/error_429.html");
    let cases: Vec<Case> = vec![
        (
            "JSON 429 with retry-after",
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .set_body_raw(fixture("coingecko/error_429.json"), "application/json"),
            |e| {
                e.retry_after() == Some(Duration::from_secs(30))
                    && e.to_string().contains("exceeded the Rate Limit")
            },
        ),
        (
            "HTML 429 with retry-after",
            ResponseTemplate::new(429)
                .insert_header("retry-after", "60")
                .set_body_raw(html.clone(), "text/html"),
            |e| {
                e.retry_after() == Some(Duration::from_secs(60))
                    && e.to_string().contains("HTML page")
            },
        ),
        (
            "HTML 429 without retry-after",
            ResponseTemplate::new(429).set_body_raw(html, "text/html"),
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
            "200 carrying a 429 status",
            ResponseTemplate::new(200)
                .set_body_raw(fixture("coingecko/error_429.json"), "application/json"),
            |e| matches!(e, ProviderError::RateLimited { .. }),
        ),
        (
            "404 coin not found",
            ResponseTemplate::new(404).set_body_raw(
                fixture("coingecko/error_not_found.json"),
                "application/json",
            ),
            |e| {
                matches!(e, ProviderError::NotFound { .. })
                    && e.to_string().ends_with("HTTP 404: coin not found")
            },
        ),
        (
            "401 bad key",
            ResponseTemplate::new(401).set_body_raw(
                r#"{"status":{"error_code":10002,"error_message":"API Key Missing"}}"#,
                "application/json",
            ),
            |e| {
                matches!(e, ProviderError::Refused { .. })
                    && e.to_string().contains("API Key Missing")
            },
        ),
        ("500", ResponseTemplate::new(500), |e| {
            matches!(e, ProviderError::Transient { .. })
        }),
    ];
    for (what, response, check) in cases {
        let server = MockServer::start().await;
        Mock::given(path(RANGE))
            .respond_with(response)
            .mount(&server)
            .await;
        let err = coingecko(&server, None)
            .history(
                "bitcoin",
                date("2024-03-01"),
                date("2024-03-04"),
                Interval::D1,
            )
            .await
            .unwrap_err();
        assert!(check(&err), "{what}: {err:?}");
        assert!(
            err.to_string().starts_with("coingecko bitcoin: "),
            "{what}: {err}"
        );
    }
}

#[tokio::test]
async fn only_daily_bars_are_offered() {
    let server = MockServer::start().await;
    let err = coingecko(&server, None)
        .history(
            "bitcoin",
            date("2024-03-01"),
            date("2024-03-04"),
            Interval::H1,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }), "{err:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn no_body_makes_it_panic() {
    for (what, status, body) in broken_bodies() {
        let server = MockServer::start().await;
        Mock::given(path(RANGE))
            .respond_with(ResponseTemplate::new(status).set_body_bytes(body.clone()))
            .mount(&server)
            .await;
        Mock::given(path("/simple/price"))
            .respond_with(ResponseTemplate::new(status).set_body_bytes(body))
            .mount(&server)
            .await;
        let provider = coingecko(&server, None);
        let history = provider
            .history(
                "bitcoin",
                date("2024-03-01"),
                date("2024-03-04"),
                Interval::D1,
            )
            .await;
        assert_bad_data(history, what);
        let quotes = provider.quotes(&["bitcoin".to_owned()]).await;
        assert_bad_data(quotes, what);
    }
}

#[tokio::test]
async fn a_slow_server_is_a_transient_timeout() {
    let server = MockServer::start().await;
    Mock::given(path(RANGE))
        .respond_with(
            json("coingecko/market_chart_range_bitcoin.json").set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let provider = CoinGecko::new(
        EndpointConfig {
            timeout: Duration::from_millis(200),
            ..config(&server)
        },
        None,
        "usd".to_owned(),
    )
    .unwrap();
    let err = provider
        .history(
            "bitcoin",
            date("2024-03-01"),
            date("2024-03-04"),
            Interval::D1,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Transient { .. }) && err.to_string().contains("timed out"),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_key_is_a_configuration_error_reported_once_and_never_retried() {
    let server = MockServer::start().await;
    Mock::given(path(RANGE))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "status": {"error_code": 10002, "error_message": "API Key Missing"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let coingecko = coingecko(&server, Some("CG-wrong"));
    for _ in 0..3 {
        let err = coingecko
            .history(
                "bitcoin",
                date("2024-03-01"),
                date("2024-03-04"),
                Interval::D1,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProviderError::Refused { message, .. } if message.contains("COINGECKO_API_KEY")),
            "{err:?}"
        );
    }
}

#[test]
fn coingecko_defaults_to_10_per_minute_keyless_and_30_with_a_key() {
    use pricekeeper::providers::rate_limit::Rate;
    use pricekeeper::providers::{ProviderKind, Providers};
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        settings: pricekeeper::config::Settings,
    }
    let rate = |args: &[&str]| {
        let argv = std::iter::once("pricekeeper").chain(args.iter().copied());
        let settings = <Cli as clap::Parser>::try_parse_from(argv)
            .unwrap()
            .settings;
        Providers::from_settings(&settings)
            .unwrap()
            .rate(ProviderKind::CoinGecko)
    };
    assert_eq!(rate(&["--coingecko-api-key="]), Rate::per_minute(10));
    assert_eq!(rate(&["--coingecko-api-key=CG-abc"]), Rate::per_minute(30));
    assert_eq!(
        rate(&["--coingecko-api-key=CG-abc", "--coingecko-rate=500/min"]),
        Rate::per_minute(500)
    );
}
