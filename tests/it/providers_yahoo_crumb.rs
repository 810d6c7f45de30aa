//! Yahoo's v7 quotes with cookie and crumb, against a local server that
//! answers as Yahoo does: the crumb dance, "Invalid Crumb", a crumb body
//! that is "Too Many Requests", and the fall back to spark.

use crate::provider_support;

use pricekeeper::providers::{Provider, Yahoo};
use provider_support::{config, dec};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn v7_body(symbols: &[String]) -> Value {
    let result: Vec<Value> = symbols
        .iter()
        .map(|s| {
            json!({
                "language": "en-US", "region": "US", "quoteType": "EQUITY",
                "currency": if s.ends_with(".L") { "GBp" } else { "USD" },
                "exchangeTimezoneName": "America/New_York",
                "regularMarketPrice": 227.48, "regularMarketTime": 1741636800,
                "symbol": s
            })
        })
        .collect();
    json!({"quoteResponse": {"result": result, "error": null}})
}

const INVALID_CRUMB: &str =
    r#"{"finance":{"result":null,"error":{"code":"Unauthorized","description":"Invalid Crumb"}}}"#;

async fn cookie_host(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(
            ResponseTemplate::new(404)
                .insert_header("set-cookie", "A3=d=AQABBK; Expires=Tue, 1 Dec 2026 00:00:00 GMT; Domain=.yahoo.com; Secure; HttpOnly")
                .set_body_string("<html>404</html>"),
        )
        .mount(server)
        .await;
}

async fn spark(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/v8/finance/spark"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            provider_support::fixture("yahoo/spark_aapl_ocdo.json"),
            "application/json",
        ))
        .mount(server)
        .await;
}

async fn count(server: &MockServer, on: &str) -> usize {
    let all = server.received_requests().await.unwrap_or_default();
    all.iter().filter(|r| r.url.path() == on).count()
}

fn symbols(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("S{i:04}")).collect()
}

#[tokio::test]
async fn v7_quotes_many_symbols_per_request_with_a_cached_crumb() {
    let server = MockServer::start().await;
    cookie_host(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/test/getcrumb"))
        .and(header("cookie", "A3=d=AQABBK"))
        .respond_with(ResponseTemplate::new(200).set_body_string("Xy7.ab/Cd9"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v7/finance/quote"))
        .and(query_param("crumb", "Xy7.ab/Cd9"))
        .and(header("cookie", "A3=d=AQABBK"))
        .respond_with(|req: &wiremock::Request| {
            let list = req
                .url
                .query_pairs()
                .find(|(k, _)| k == "symbols")
                .map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
                .unwrap_or_default();
            ResponseTemplate::new(200).set_body_json(v7_body(&list))
        })
        .mount(&server)
        .await;
    let yahoo = Yahoo::new(config(&server)).unwrap();
    let wanted = symbols(600);
    let quotes = yahoo.quotes(&wanted).await.unwrap();
    assert_eq!(quotes.quotes.len(), 600);
    assert_eq!(quotes.quotes[0].price, dec("227.48"));
    assert_eq!(
        count(&server, "/v7/finance/quote").await,
        3,
        "250 symbols a request"
    );
    // The crumb is cached for the next call.
    yahoo.quotes(&symbols(10)).await.unwrap();
    assert_eq!(count(&server, "/v1/test/getcrumb").await, 1);
    assert_eq!(count(&server, "/v8/finance/spark").await, 0);
}

#[tokio::test]
async fn an_invalid_crumb_is_refreshed_once() {
    let server = MockServer::start().await;
    cookie_host(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/test/getcrumb"))
        .respond_with(ResponseTemplate::new(200).set_body_string("stale1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/test/getcrumb"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fresh2"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v7/finance/quote"))
        .and(query_param("crumb", "stale1"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(INVALID_CRUMB, "application/json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v7/finance/quote"))
        .and(query_param("crumb", "fresh2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(v7_body(&["AAPL".into(), "OCDO.L".into()])),
        )
        .mount(&server)
        .await;
    let yahoo = Yahoo::new(config(&server)).unwrap();
    let quotes = yahoo
        .quotes(&["AAPL".into(), "OCDO.L".into()])
        .await
        .unwrap();
    assert_eq!(quotes.quotes.len(), 2);
    // Pence become pounds.
    let ocdo = quotes.quotes.iter().find(|q| q.symbol == "OCDO.L").unwrap();
    assert_eq!(
        (ocdo.price, ocdo.currency.as_deref()),
        (dec("2.2748"), Some("GBP"))
    );
    assert_eq!(count(&server, "/v1/test/getcrumb").await, 2);
    assert_eq!(count(&server, "/v8/finance/spark").await, 0);
}

#[tokio::test]
async fn a_crumb_body_of_too_many_requests_falls_back_to_spark() {
    let server = MockServer::start().await;
    cookie_host(&server).await;
    spark(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/test/getcrumb"))
        .respond_with(ResponseTemplate::new(200).set_body_string("Too Many Requests"))
        .mount(&server)
        .await;
    let yahoo = Yahoo::new(config(&server)).unwrap();
    let quotes = yahoo
        .quotes(&["AAPL".into(), "OCDO.L".into()])
        .await
        .unwrap();
    assert_eq!(quotes.quotes.len(), 2);
    assert_eq!(
        count(&server, "/v7/finance/quote").await,
        0,
        "no request with a bogus crumb"
    );
    assert_eq!(count(&server, "/v8/finance/spark").await, 1);
    // The failure is remembered: no crumb request on every call.
    yahoo.quotes(&["AAPL".into()]).await.unwrap();
    assert_eq!(count(&server, "/v1/test/getcrumb").await, 1);
}

#[tokio::test]
async fn a_crumb_refused_after_its_refresh_falls_back_to_spark() {
    let server = MockServer::start().await;
    cookie_host(&server).await;
    spark(&server).await;
    Mock::given(method("GET"))
        .and(path("/v1/test/getcrumb"))
        .respond_with(ResponseTemplate::new(200).set_body_string("abc123"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v7/finance/quote"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(INVALID_CRUMB, "application/json"))
        .mount(&server)
        .await;
    let yahoo = Yahoo::new(config(&server)).unwrap();
    let quotes = yahoo
        .quotes(&["AAPL".into(), "OCDO.L".into()])
        .await
        .unwrap();
    assert_eq!(quotes.quotes.len(), 2);
    assert_eq!(
        count(&server, "/v7/finance/quote").await,
        2,
        "the first try and one after the refresh"
    );
    assert_eq!(count(&server, "/v8/finance/spark").await, 1);
}
