//! Frankfurter against a local server in its real shapes: ECB reference
//! rates keyed by date, none on weekends and ECB holidays, a range starting
//! on a closed day answered from the working day before, `latest` for many
//! quotes of one base, and 404 `{"message":"not found"}`.

use crate::provider_support;

use pricekeeper::providers::{BarFlag, Frankfurter, Interval, Provider, ProviderError};
use provider_support::{assert_bad_data, broken_bodies, config, date, dec, fixture, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn frankfurter(server: &MockServer) -> Frankfurter {
    Frankfurter::new(config(server)).unwrap()
}

#[tokio::test]
async fn reference_rates_become_close_only_bars_on_working_days() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/2024-01-01..2024-01-05"))
        .and(query_param("base", "EUR"))
        .and(query_param("symbols", "USD"))
        .respond_with(json("frankfurter/range_eur_usd.json"))
        .expect(1)
        .mount(&server)
        .await;

    let history = frankfurter(&server)
        .history(
            "EURUSD",
            date("2024-01-01"),
            date("2024-01-05"),
            Interval::D1,
        )
        .await
        .unwrap();

    // 2023-12-29 (asked from a holiday) is outside the range; 2024-01-01
    // is an ECB holiday and has no rate.
    let dates: Vec<_> = history.bars.iter().map(|b| b.ts.date_naive()).collect();
    assert_eq!(
        dates,
        [
            date("2024-01-02"),
            date("2024-01-03"),
            date("2024-01-04"),
            date("2024-01-05")
        ]
    );
    let bar = &history.bars[0];
    assert_eq!(bar.close, dec("1.0956"));
    assert_eq!(
        (bar.open, bar.high, bar.low, bar.volume),
        (None, None, None, None)
    );
    assert_eq!(bar.currency.as_deref(), Some("USD"));
    assert!(
        history
            .bars
            .iter()
            .all(|b| b.flags.contains(&BarFlag::Reference))
    );
}

#[tokio::test]
async fn latest_answers_many_quotes_of_one_base() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/latest"))
        .and(query_param("base", "EUR"))
        .and(query_param("symbols", "USD,GBP"))
        .respond_with(json("frankfurter/latest_eur.json"))
        .expect(1)
        .mount(&server)
        .await;
    let symbols = ["EURUSD", "EURGBP"].map(str::to_owned);

    let quotes = frankfurter(&server).quotes(&symbols).await.unwrap();

    assert!(quotes.missing.is_empty(), "{:?}", quotes.missing);
    assert_eq!(quotes.quotes[0].price, dec("1.0766"));
    assert_eq!(quotes.quotes[1].currency.as_deref(), Some("GBP"));
    assert_eq!(
        quotes.quotes[0].ts.to_rfc3339(),
        "2024-04-02T14:00:00+00:00"
    );
}

#[tokio::test]
async fn an_unknown_currency_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/2024-01-01..2024-01-05"))
        .respond_with(ResponseTemplate::new(404).set_body_raw(
            fixture("frankfurter/error_not_found.json"),
            "application/json",
        ))
        .mount(&server)
        .await;
    let result = frankfurter(&server)
        .history(
            "EURXXX",
            date("2024-01-01"),
            date("2024-01-05"),
            Interval::D1,
        )
        .await;
    assert!(
        matches!(result, Err(ProviderError::NotFound { .. })),
        "{result:?}"
    );
    let not_a_pair = frankfurter(&server)
        .history(
            "EURUSD=X",
            date("2024-01-01"),
            date("2024-01-05"),
            Interval::D1,
        )
        .await;
    assert!(
        matches!(not_a_pair, Err(ProviderError::Unsupported { .. })),
        "{not_a_pair:?}"
    );
}

#[tokio::test]
async fn throttling_is_a_rate_limit() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/latest"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .mount(&server)
        .await;
    let result = frankfurter(&server).quotes(&["EURUSD".to_owned()]).await;
    assert!(
        matches!(
            result,
            Err(ProviderError::RateLimited {
                retry_after: Some(_),
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn no_body_makes_it_panic() {
    let mut bodies = broken_bodies();
    bodies.push((
        "a rate as a string",
        200,
        br#"{"rates":{"2024-01-02":{"USD":"1.09"}}}"#.to_vec(),
    ));
    bodies.push((
        "a date that is not one",
        200,
        br#"{"rates":{"yesterday":{"USD":1.09}}}"#.to_vec(),
    ));
    for (what, status, body) in bodies {
        let server = MockServer::start().await;
        Mock::given(path("/v1/2024-01-01..2024-01-05"))
            .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        let result = frankfurter(&server)
            .history(
                "EURUSD",
                date("2024-01-01"),
                date("2024-01-05"),
                Interval::D1,
            )
            .await;
        match result {
            // A rate that is no number is a rejected row, not a panic.
            Ok(history) if what == "a rate as a string" => {
                assert!(
                    history.bars.is_empty() && history.rejected.len() == 1,
                    "{history:?}"
                )
            }
            other => assert_bad_data(other, what),
        }
    }
}
