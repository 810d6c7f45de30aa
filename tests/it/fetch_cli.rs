//! `pricekeeper fetch` and `pricekeeper quote` as operators run them: the
//! binary, pointed at a local server through `PRICEKEEPER_*_URL`, with no
//! database (DATABASE_URL points nowhere), checked on stdout, stderr and the
//! exit code for every answer shape.

use crate::provider_support;

use std::process::Output;
use std::time::Duration;

use provider_support::{fixture, json};
use serde_json::Value;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn pricekeeper(server: &MockServer, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pricekeeper"));
    cmd.args(args)
        // fetch and quote must not touch PostgreSQL: this one does not exist.
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("PRICEKEEPER_YAHOO_URL", server.uri())
        .env("PRICEKEEPER_BINANCE_URL", server.uri())
        // The same host: a 451 has no other host to move to.
        .env("PRICEKEEPER_BINANCE_DATA_URL", server.uri())
        .env("PRICEKEEPER_COINGECKO_URL", server.uri())
        .env("PRICEKEEPER_KRAKEN_URL", server.uri())
        .env("PRICEKEEPER_COINBASE_URL", server.uri())
        .env("PRICEKEEPER_FRANKFURTER_URL", server.uri())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run pricekeeper")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn serve(server: &MockServer, route: &str, response: ResponseTemplate) {
    Mock::given(path(route))
        .respond_with(response)
        .mount(server)
        .await;
}

const AAPL: [&str; 8] = [
    "fetch",
    "AAPL",
    "--provider",
    "yahoo",
    "--from",
    "2024-02-05",
    "--to",
    "2024-02-14",
];

#[tokio::test]
async fn fetch_prints_validated_bars_as_json() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/v8/finance/chart/AAPL",
        json("yahoo/chart_aapl_1d.json"),
    )
    .await;

    let out = pricekeeper(&server, &AAPL, &[]).await;

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bars: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let bars = bars.as_array().expect("an array");
    assert_eq!(bars.len(), 6);
    let first = &bars[0];
    assert_eq!(first["ts"], "2024-02-05T14:30:00Z");
    // Numbers, not strings; exact, without f32 noise.
    assert_eq!(first["close"].to_string(), "187.68");
    assert_eq!(first["open"].to_string(), "188.15");
    assert_eq!(first["volume"].to_string(), "69668800");
    assert_eq!(first["adj_close"].to_string(), "185.33775");
    assert_eq!(first["currency"], "USD");
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = [
        "ts",
        "open",
        "high",
        "low",
        "close",
        "adj_close",
        "volume",
        "currency",
    ];
    want.sort_unstable();
    let mut keys = keys.clone();
    keys.sort_unstable();
    assert_eq!(keys, want);
    let err = stderr(&out);
    assert!(
        err.contains("dividend 2024-02-09T14:30:00Z: 0.24 USD"),
        "{err}"
    );
    assert!(err.contains("6 bars, 0 rejected, 2 skipped"), "{err}");
}

#[tokio::test]
async fn fetch_prints_csv_with_a_header_and_empty_cells() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/v8/finance/chart/WSU.DE",
        json("yahoo/chart_wsu_de_fractional_split.json"),
    )
    .await;

    let args = [
        "fetch",
        "WSU.DE",
        "--provider",
        "yahoo",
        "--from",
        "2024-05-13",
        "--to",
        "2024-05-15",
        "--format",
        "csv",
    ];
    let out = pricekeeper(&server, &args, &[]).await;

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ts,open,high,low,close,adj_close,volume,currency");
    assert_eq!(
        lines[1],
        "2024-05-13T07:00:00Z,21.34,21.8,21.1,21.62,,182340,EUR"
    );
    assert_eq!(lines.len(), 4);
    assert!(
        stderr(&out).contains("split 2024-05-15T07:00:00Z: 3:2"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn fetch_converts_pence_and_reads_every_provider() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/v8/finance/chart/OCDO.L",
        json("yahoo/chart_ocdo_l_gbp.json"),
    )
    .await;
    serve(
        &server,
        "/api/v3/klines",
        json("binance/klines_btcusdt_1d.json"),
    )
    .await;
    serve(
        &server,
        "/coins/bitcoin/market_chart/range",
        json("coingecko/market_chart_range_bitcoin.json"),
    )
    .await;
    let cases = [
        (
            ["OCDO.L", "yahoo", "2024-07-01", "2024-07-05"],
            5,
            "3.106",
            "GBP",
        ),
        (
            ["BTCUSDT", "binance", "2024-03-01", "2024-03-05"],
            5,
            "62387.9",
            "USD",
        ),
        (
            ["bitcoin", "coingecko", "2024-03-01", "2024-03-04"],
            4,
            "38356.1251759",
            "USD",
        ),
    ];
    for ([symbol, provider, from, to], count, close, currency) in cases {
        let args = [
            "fetch",
            symbol,
            "--provider",
            provider,
            "--from",
            from,
            "--to",
            to,
        ];
        let out = pricekeeper(&server, &args, &[]).await;
        assert_eq!(out.status.code(), Some(0), "{provider}: {}", stderr(&out));
        let bars: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(bars.as_array().unwrap().len(), count, "{provider}");
        assert_eq!(bars[0]["close"].to_string(), close, "{provider}");
        assert_eq!(bars[0]["currency"], currency, "{provider}");
    }
}

#[tokio::test]
async fn rejected_rows_are_reported_on_stderr() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/v8/finance/chart/PNNY",
        json("yahoo/chart_bad_rows.json"),
    )
    .await;

    let args = [
        "fetch",
        "PNNY",
        "--provider",
        "yahoo",
        "--from",
        "2024-03-04",
        "--to",
        "2024-03-11",
    ];
    let out = pricekeeper(&server, &args, &[]).await;

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    for line in [
        "rejected 2024-03-05T13:30:00Z: close 0 is not above zero",
        "rejected 2024-03-06T13:30:00Z: low 10.3 is above open 10.2",
        "rejected 2024-03-07T13:30:00Z: volume -5 is negative",
        "flagged 2024-03-08T13:30:00Z: close moved more than 50% (spike)",
        "3 bars, 3 rejected, 0 skipped",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    let bars: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(bars.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn each_error_shape_has_its_exit_code() {
    let not_found = fixture("yahoo/chart_not_found.json");
    let cases: Vec<(&str, &str, ResponseTemplate, i32, &str)> = vec![
        (
            "yahoo",
            "/v8/finance/chart/NOPE",
            ResponseTemplate::new(404).set_body_raw(not_found, "application/json"),
            3,
            "yahoo NOPE: not found",
        ),
        (
            "yahoo",
            "/v8/finance/chart/NOPE",
            ResponseTemplate::new(429).set_body_string("Edge: Too Many Requests"),
            4,
            "no Retry-After given",
        ),
        (
            "binance",
            "/api/v3/klines",
            ResponseTemplate::new(429)
                .insert_header("retry-after", "120")
                .set_body_raw(fixture("binance/error_429.json"), "application/json"),
            4,
            "retry after 2m",
        ),
        (
            "binance",
            "/api/v3/klines",
            ResponseTemplate::new(418)
                .insert_header("retry-after", "7200")
                .set_body_raw(fixture("binance/error_418.json"), "application/json"),
            4,
            "retry after 2h",
        ),
        (
            "binance",
            "/api/v3/klines",
            ResponseTemplate::new(400).set_body_raw(
                fixture("binance/error_invalid_symbol.json"),
                "application/json",
            ),
            3,
            "Invalid symbol.",
        ),
        (
            "binance",
            "/api/v3/klines",
            ResponseTemplate::new(451)
                .set_body_raw(fixture("binance/error_451.json"), "application/json"),
            1,
            "restricted location",
        ),
        (
            "coingecko",
            "/coins/NOPE/market_chart/range",
            ResponseTemplate::new(429)
                .insert_header("retry-after", "60")
                .set_body_raw(fixture("coingecko/error_429.html"), "text/html"),
            4,
            "retry after 1m",
        ),
        (
            "coingecko",
            "/coins/NOPE/market_chart/range",
            ResponseTemplate::new(429)
                .set_body_raw(fixture("coingecko/error_429.json"), "application/json"),
            4,
            "exceeded the Rate Limit",
        ),
        (
            "yahoo",
            "/v8/finance/chart/NOPE",
            ResponseTemplate::new(200).set_body_string("{\"chart\": {\"result\": [{"),
            1,
            "unreadable answer",
        ),
        (
            "yahoo",
            "/v8/finance/chart/NOPE",
            ResponseTemplate::new(200),
            1,
            "empty body",
        ),
        (
            "yahoo",
            "/v8/finance/chart/NOPE",
            ResponseTemplate::new(200).set_body_string("[".repeat(4_000_000)),
            1,
            "bad data",
        ),
        (
            "yahoo",
            "/v8/finance/chart/NOPE",
            ResponseTemplate::new(502),
            1,
            "temporary failure",
        ),
    ];
    for (provider, route, response, code, message) in cases {
        let server = MockServer::start().await;
        serve(&server, route, response).await;
        let args = [
            "fetch",
            "NOPE",
            "--provider",
            provider,
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-05",
        ];
        let out = pricekeeper(&server, &args, &[]).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{provider} {route}: {err}");
        assert!(
            err.contains(message),
            "{provider} {route}: {message:?} not in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty(), "nothing on stdout after an error");
    }
}

#[tokio::test]
async fn a_slow_server_times_out_with_exit_1() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/v8/finance/chart/AAPL",
        json("yahoo/chart_aapl_1d.json").set_delay(Duration::from_secs(10)),
    )
    .await;

    let out = pricekeeper(&server, &AAPL, &[("PRICEKEEPER_HTTP_TIMEOUT", "300ms")]).await;

    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("yahoo AAPL: temporary failure: timed out"),
        "{}",
        stderr(&out)
    );
}

/// Arguments, environment, and what the message must mention.
type UsageCase = (
    Vec<&'static str>,
    Vec<(&'static str, &'static str)>,
    &'static str,
);

#[tokio::test]
async fn usage_errors_exit_2() {
    let server = MockServer::start().await; // nothing is served: nothing may be asked
    let cases: Vec<UsageCase> = vec![
        (
            vec![
                "fetch",
                "AAPL",
                "--provider",
                "yahoo",
                "--from",
                "2024-03-05",
                "--to",
                "2024-03-01",
            ],
            vec![],
            "after --to",
        ),
        (
            vec![
                "fetch",
                "AAPL",
                "--provider",
                "bitstamp",
                "--from",
                "2024-03-01",
            ],
            vec![],
            "bitstamp",
        ),
        (
            vec!["fetch", "AAPL", "--provider", "yahoo", "--from", "March"],
            vec![],
            "--from",
        ),
        (
            vec![
                "fetch",
                "bitcoin",
                "--provider",
                "coingecko",
                "--from",
                "2024-03-01",
                "--interval",
                "1h",
            ],
            vec![],
            "interval 1h is not offered",
        ),
        (
            vec![
                "fetch",
                "AAPL",
                "--provider",
                "yahoo",
                "--from",
                "2024-03-01",
                "--interval",
                "2d",
            ],
            vec![],
            "unknown interval",
        ),
        (vec!["quote", "--provider", "yahoo"], vec![], "SYMBOLS"),
        (
            vec![
                "fetch",
                "AAPL",
                "--provider",
                "yahoo",
                "--from",
                "2024-03-01",
            ],
            vec![("PRICEKEEPER_YAHOO_RATE", "lots")],
            "PRICEKEEPER_YAHOO_RATE",
        ),
        (
            vec![
                "fetch",
                "AAPL",
                "--provider",
                "yahoo",
                "--from",
                "2024-03-01",
            ],
            vec![("PRICEKEEPER_BINANCE_URL", "ftp://x")],
            "PRICEKEEPER_BINANCE_URL",
        ),
        (
            vec![
                "fetch",
                "AAPL",
                "--provider",
                "yahoo",
                "--from",
                "2024-03-01",
            ],
            vec![("PRICEKEEPER_CRYPTO_CHAIN", "binance,bitstamp")],
            "PRICEKEEPER_CRYPTO_CHAIN",
        ),
        (
            vec![
                "fetch",
                "AAPL",
                "--provider",
                "yahoo",
                "--from",
                "2024-03-01",
            ],
            vec![("PRICEKEEPER_HTTP_TIMEOUT", "forever")],
            "PRICEKEEPER_HTTP_TIMEOUT",
        ),
    ];
    for (args, env, message) in cases {
        let out = pricekeeper(&server, &args, &env).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(err.contains(message), "{args:?}: {message:?} not in {err}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn quote_prints_prices_and_exits_3_for_a_missing_symbol() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/v8/finance/spark",
        json("yahoo/spark_aapl_ocdo.json"),
    )
    .await;
    serve(
        &server,
        "/v8/finance/chart/NOPE",
        ResponseTemplate::new(404)
            .set_body_raw(fixture("yahoo/chart_not_found.json"), "application/json"),
    )
    .await;

    let out = pricekeeper(
        &server,
        &["quote", "AAPL", "OCDO.L", "NOPE", "--provider", "yahoo"],
        &[],
    )
    .await;

    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let quotes: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(quotes[0]["symbol"], "AAPL");
    assert_eq!(quotes[0]["price"].to_string(), "179.66");
    assert_eq!(quotes[0]["ts"], "2024-03-01T21:00:01Z");
    assert_eq!(quotes[1]["price"].to_string(), "2.853");
    assert_eq!(quotes[1]["currency"], "GBP");
    assert_eq!(quotes.as_array().unwrap().len(), 2);
    assert!(
        stderr(&out).contains("yahoo NOPE: not found"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn quote_reads_binance_and_coingecko_in_one_request_each() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v3/ticker/price"))
        .respond_with(json("binance/ticker_prices.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/simple/price"))
        .respond_with(json("coingecko/simple_price.json"))
        .expect(1)
        .mount(&server)
        .await;

    let out = pricekeeper(
        &server,
        &[
            "quote",
            "BTCUSDT",
            "ETHUSDT",
            "--provider",
            "binance",
            "--format",
            "csv",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "symbol,ts,price,currency");
    assert!(
        lines[1].starts_with("BTCUSDT,") && lines[1].ends_with(",65861.66,USD"),
        "{text}"
    );
    assert_eq!(lines.len(), 3);

    let out = pricekeeper(
        &server,
        &["quote", "bitcoin", "ethereum", "--provider", "coingecko"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let quotes: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(quotes[1]["symbol"], "ethereum");
    assert_eq!(quotes[1]["price"].to_string(), "3510.84");
}

#[tokio::test]
async fn quote_rate_limited_exits_4_with_the_wait() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/simple/price",
        ResponseTemplate::new(429)
            .insert_header("retry-after", "45")
            .set_body_raw(fixture("coingecko/error_429.json"), "application/json"),
    )
    .await;

    let out = pricekeeper(
        &server,
        &["quote", "bitcoin", "--provider", "coingecko"],
        &[],
    )
    .await;

    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("retry after 45s"), "{}", stderr(&out));
}

/// Every provider is asked by name with its own symbols; a keyed one needs
/// its key (exit 2 without), and the key appears nowhere in what is
/// printed, not even at trace level with the provider echoing it back.
#[tokio::test]
async fn keyed_providers_need_their_key_and_never_print_it() {
    let server = MockServer::start().await;
    let key = "S3CRETKEY";
    Mock::given(path("/query"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("alphavantage/information_daily.json"),
            "application/json",
        ))
        .mount(&server)
        .await;
    let base = [
        ("PRICEKEEPER_FMP_URL", server.uri()),
        ("PRICEKEEPER_ALPHA_VANTAGE_URL", server.uri()),
    ];
    let env = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        base.iter().cloned().chain(extra.iter().cloned()).collect()
    };
    let args = [
        "fetch",
        "IBM",
        "--provider",
        "alphavantage",
        "--from",
        "2024-01-02",
        "--to",
        "2024-01-05",
    ];

    let env_none = env(&[]);
    let pairs: Vec<(&str, &str)> = env_none.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = pricekeeper(&server, &args, &pairs).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ALPHA_VANTAGE_API_KEY"),
        "{}",
        stderr(&out)
    );
    assert!(server.received_requests().await.unwrap().is_empty());

    let env_key = env(&[
        ("ALPHA_VANTAGE_API_KEY", key.to_owned()),
        ("RUST_LOG", "trace".to_owned()),
    ]);
    let pairs: Vec<(&str, &str)> = env_key.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = pricekeeper(&server, &args, &pairs).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "rate limited: {err}");
    assert!(err.contains("25 requests per day"), "{err}");
    assert!(
        !err.contains(key) && !stdout(&out).contains(key),
        "the key leaked: {err}"
    );

    let help = pricekeeper(&server, &["fetch", "--help"], &[]).await;
    let help = stdout(&help);
    for name in [
        "kraken",
        "coinbase",
        "frankfurter",
        "fmp",
        "alphavantage",
        "needs FMP_API_KEY",
    ] {
        assert!(help.contains(name), "fetch --help lacks {name}");
    }
}
