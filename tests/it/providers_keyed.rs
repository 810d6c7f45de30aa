//! Financial Modeling Prep and Alpha Vantage against a local server in
//! their real shapes: FMP's newest-first `historical` and its `{}` for an
//! unknown symbol, 401 for a bad key, "Limit Reach"; Alpha Vantage's
//! string values keyed by date and its HTTP 200 `Error Message`, `Note`
//! and `Information` answers. Keys never appear in errors or logs, and
//! without a key nothing is sent.

use crate::provider_support;

use pricekeeper::providers::keyed::ApiKey;
use pricekeeper::providers::{AlphaVantage, Fmp, Interval, Provider, ProviderError};
use provider_support::{assert_bad_data, broken_bodies, config, date, dec, fixture, json};
use wiremock::matchers::{path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "S3CRETKEY";

fn fmp(server: &MockServer) -> Fmp {
    Fmp::new(config(server), ApiKey::new(Some(KEY))).unwrap()
}

fn alpha(server: &MockServer) -> AlphaVantage {
    AlphaVantage::new(config(server), ApiKey::new(Some(KEY))).unwrap()
}

fn assert_no_key(e: &ProviderError) {
    assert!(!e.to_string().contains(KEY), "the key leaked: {e}");
}

#[tokio::test]
async fn fmp_history_is_newest_first_with_the_key_in_the_query() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v3/historical-price-full/AAPL"))
        .and(query_param("from", "2024-01-02"))
        .and(query_param("to", "2024-01-05"))
        .and(query_param("apikey", KEY))
        .respond_with(json("fmp/historical_aapl.json"))
        .expect(1)
        .mount(&server)
        .await;

    let history = fmp(&server)
        .history("AAPL", date("2024-01-02"), date("2024-01-05"), Interval::D1)
        .await
        .unwrap();

    assert_eq!(history.bars.len(), 4);
    let first = &history.bars[0];
    assert_eq!(
        first.ts.to_rfc3339(),
        "2024-01-02T14:30:00+00:00",
        "the session open"
    );
    assert_eq!(first.close, dec("185.64"));
    assert_eq!(first.adj_close, Some(dec("184.73")));
    assert_eq!(first.volume, Some(dec("82488700")));
    assert_eq!(first.currency.as_deref(), Some("USD"));
}

#[tokio::test]
async fn fmp_errors_are_classified_without_the_key() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v3/historical-price-full/NOPE"))
        .respond_with(json("fmp/historical_unknown.json"))
        .mount(&server)
        .await;
    Mock::given(path("/api/v3/historical-price-full/AAPL"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_raw(fixture("fmp/error_invalid_key.json"), "application/json"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/v3/historical-price-full/MSFT"))
        .respond_with(json("fmp/error_limit.json"))
        .mount(&server)
        .await;
    Mock::given(path("/api/v3/historical-price-full/TSLA"))
        .respond_with(ResponseTemplate::new(429).set_body_string("Too Many Requests"))
        .mount(&server)
        .await;
    let (from, to) = (date("2024-01-02"), date("2024-01-05"));
    let unknown = fmp(&server)
        .history("NOPE", from, to, Interval::D1)
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, ProviderError::NotFound { .. }),
        "{unknown}"
    );
    let bad_key = fmp(&server)
        .history("AAPL", from, to, Interval::D1)
        .await
        .unwrap_err();
    assert!(
        matches!(bad_key, ProviderError::Refused { .. }),
        "{bad_key}"
    );
    assert!(bad_key.to_string().contains("FMP_API_KEY"), "{bad_key}");
    let limit = fmp(&server)
        .history("MSFT", from, to, Interval::D1)
        .await
        .unwrap_err();
    assert!(
        matches!(limit, ProviderError::RateLimited { .. }),
        "{limit}"
    );
    let throttled = fmp(&server)
        .history("TSLA", from, to, Interval::D1)
        .await
        .unwrap_err();
    assert!(
        matches!(throttled, ProviderError::RateLimited { .. }),
        "{throttled}"
    );
    for e in [unknown, bad_key, limit, throttled] {
        assert_no_key(&e);
    }
}

#[tokio::test]
async fn fmp_quotes_many_symbols_in_one_request() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v3/quote/AAPL,MSFT,NOPE"))
        .respond_with(json("fmp/quote_many.json"))
        .expect(1)
        .mount(&server)
        .await;
    // A symbol a URL would change is refused alone, never sent.
    let symbols = ["AAPL", "..", "MSFT", "NO\nPE", "NOPE"].map(str::to_owned);
    let quotes = fmp(&server).quotes(&symbols).await.unwrap();
    assert_eq!(quotes.quotes.len(), 2);
    assert_eq!(quotes.quotes[0].price, dec("189.84"));
    let missing: Vec<(&str, bool)> = quotes
        .missing
        .iter()
        .map(|e| (e.symbol(), matches!(e, ProviderError::NotFound { .. })))
        .collect();
    assert_eq!(missing, [("..", false), ("NO\nPE", false), ("NOPE", true)]);
}

#[tokio::test]
async fn without_a_key_nothing_is_sent() {
    let server = MockServer::start().await;
    let keyless = Fmp::new(config(&server), None).unwrap();
    let e = keyless
        .history("AAPL", date("2024-01-02"), date("2024-01-05"), Interval::D1)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("FMP_API_KEY is not set"), "{e}");
    let keyless = AlphaVantage::new(config(&server), ApiKey::new(Some("  "))).unwrap();
    let e = keyless.quotes(&["IBM".to_owned()]).await.unwrap_err();
    assert!(
        e.to_string().contains("ALPHA_VANTAGE_API_KEY is not set"),
        "{e}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn alpha_vantage_daily_series_are_strings_keyed_by_date() {
    let server = MockServer::start().await;
    Mock::given(path("/query"))
        .and(query_param("function", "TIME_SERIES_DAILY"))
        .and(query_param("symbol", "IBM"))
        .and(query_param("outputsize", "full"))
        .and(query_param("apikey", KEY))
        .respond_with(json("alphavantage/daily_ibm.json"))
        .expect(1)
        .mount(&server)
        .await;

    let history = alpha(&server)
        .history("IBM", date("2024-01-02"), date("2024-01-05"), Interval::D1)
        .await
        .unwrap();

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
    assert_eq!(history.bars[0].open, Some(dec("162.83")));
    assert_eq!(history.bars[0].close, dec("161.5"));
    assert_eq!(history.bars[0].volume, Some(dec("3825045")));
}

#[tokio::test]
async fn alpha_vantage_200s_carry_errors_and_throttling_without_the_key() {
    let cases = [
        ("alphavantage/error_invalid_call.json", "not found"),
        ("alphavantage/note_throttled.json", "rate limited"),
        ("alphavantage/information_daily.json", "rate limited"),
    ];
    for (body, want) in cases {
        let server = MockServer::start().await;
        Mock::given(path("/query"))
            .respond_with(json(body))
            .mount(&server)
            .await;
        let e = alpha(&server)
            .history("NOPE", date("2024-01-02"), date("2024-01-05"), Interval::D1)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(want), "{body}: {e}");
        assert_no_key(&e);
        if body.contains("daily") {
            let wait = e.retry_after().unwrap();
            assert!(
                wait <= std::time::Duration::from_secs(86_400),
                "{wait:?}: until the next UTC day"
            );
        }
    }
}

#[tokio::test]
async fn alpha_vantage_quotes_one_symbol_per_call() {
    let server = MockServer::start().await;
    Mock::given(path("/query"))
        .and(query_param("function", "GLOBAL_QUOTE"))
        .and(query_param("symbol", "IBM"))
        .respond_with(json("alphavantage/global_quote_ibm.json"))
        .mount(&server)
        .await;
    Mock::given(path("/query"))
        .and(query_param("symbol", "NOPE"))
        .respond_with(json("alphavantage/global_quote_empty.json"))
        .mount(&server)
        .await;
    let quotes = alpha(&server)
        .quotes(&["IBM".to_owned(), "NOPE".to_owned()])
        .await
        .unwrap();
    assert_eq!(quotes.quotes[0].price, dec("189.83"));
    assert_eq!(
        quotes.quotes[0].ts.to_rfc3339(),
        "2024-04-01T13:30:00+00:00"
    );
    assert!(matches!(
        &quotes.missing[..],
        [ProviderError::NotFound { .. }]
    ));
}

#[tokio::test]
async fn no_body_makes_them_panic() {
    let mut bodies = broken_bodies();
    bodies.push((
        "a price that is no number",
        200,
        br#"{"Time Series (Daily)":{"2024-01-02":{"1. open":"x","4. close":"1"}},"historical":[{"date":"2024-01-02","close":"x"}]}"#.to_vec(),
    ));
    for (what, status, body) in bodies {
        let server = MockServer::start().await;
        Mock::given(path("/query"))
            .respond_with(
                ResponseTemplate::new(status).set_body_raw(body.clone(), "application/json"),
            )
            .mount(&server)
            .await;
        Mock::given(path("/api/v3/historical-price-full/AAPL"))
            .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        let (from, to) = (date("2024-01-02"), date("2024-01-05"));
        assert_bad_data(
            alpha(&server).history("IBM", from, to, Interval::D1).await,
            what,
        );
        assert_bad_data(
            fmp(&server).history("AAPL", from, to, Interval::D1).await,
            what,
        );
    }
}
