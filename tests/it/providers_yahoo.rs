//! Yahoo Finance against a local server answering in Yahoo's real shapes,
//! quirks included (PROVIDERS.md): nulls inside and at the end of arrays,
//! the no-data shape, GBp, non-New-York time zones, splits and dividends,
//! spark quotes with the chart fallback, and every error shape.

use crate::provider_support;

use std::time::Duration;

use chrono::{DateTime, Days, TimeZone, Utc};
use pricekeeper::providers::{
    CorporateEvent, EndpointConfig, Interval, Provider, ProviderError, Yahoo,
};
use provider_support::{assert_bad_data, broken_bodies, config, date, dec, json};
use serde_json::json;
use wiremock::matchers::{header_regex, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn utc(raw: &str) -> DateTime<Utc> {
    raw.parse().unwrap()
}

async fn yahoo(server: &MockServer) -> Yahoo {
    Yahoo::new(config(server)).unwrap()
}

#[tokio::test]
async fn daily_bars_are_exact_skip_nulls_and_keep_dividends() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v8/finance/chart/AAPL"))
        // A day more on each side, in unix seconds.
        .and(query_param("period1", "1707004800"))
        .and(query_param("period2", "1708041600"))
        .and(query_param("interval", "1d"))
        .and(query_param("events", "div|split"))
        .and(header_regex("user-agent", "^Mozilla/5.0 .*Chrome/"))
        .respond_with(json("yahoo/chart_aapl_1d.json"))
        .expect(1)
        .mount(&server)
        .await;

    let history = yahoo(&server)
        .await
        .history("AAPL", date("2024-02-05"), date("2024-02-14"), Interval::D1)
        .await
        .unwrap();

    // 8 timestamps: 02-08 is all null inside, 02-14 all null at the end.
    assert_eq!(history.bars.len(), 6);
    assert_eq!(history.skipped, 2);
    assert!(history.rejected.is_empty());
    assert_eq!(history.currency.as_deref(), Some("USD"));
    assert_eq!(history.timezone.as_deref(), Some("America/New_York"));
    let first = &history.bars[0];
    assert_eq!(first.ts, utc("2024-02-05T14:30:00Z"));
    // 187.67999267578125 on the wire.
    assert_eq!(first.close, dec("187.68"));
    assert_eq!(first.open, Some(dec("188.15")));
    assert_eq!(first.high, Some(dec("189.25")));
    assert_eq!(first.low, Some(dec("185.84")));
    assert_eq!(first.volume, Some(dec("69668800")));
    // An f32 computed by Yahoo: its shortest form, not rounded further.
    assert_eq!(first.adj_close, Some(dec("185.33775")));
    assert_eq!(first.currency.as_deref(), Some("USD"));
    let dates: Vec<String> = history
        .bars
        .iter()
        .map(|b| b.ts.date_naive().to_string())
        .collect();
    assert_eq!(
        dates,
        [
            "2024-02-05",
            "2024-02-06",
            "2024-02-07",
            "2024-02-09",
            "2024-02-12",
            "2024-02-13"
        ]
    );
    assert_eq!(
        history.events,
        [CorporateEvent::Dividend {
            ts: utc("2024-02-09T14:30:00Z"),
            amount: dec("0.24"),
            currency: Some("USD".to_owned()),
        }]
    );
}

#[tokio::test]
async fn pence_become_pounds_dated_in_london_not_by_gmtoffset() {
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/chart/OCDO.L"))
        .respond_with(json("yahoo/chart_ocdo_l_gbp.json"))
        .mount(&server)
        .await;

    let history = yahoo(&server)
        .await
        .history(
            "OCDO.L",
            date("2024-07-01"),
            date("2024-07-05"),
            Interval::D1,
        )
        .await
        .unwrap();

    assert_eq!(history.currency.as_deref(), Some("GBP"));
    assert_eq!(history.timezone.as_deref(), Some("Europe/London"));
    let closes: Vec<_> = history.bars.iter().map(|b| b.close).collect();
    assert_eq!(
        closes,
        [
            dec("3.106"),
            dec("2.982"),
            dec("3.014"),
            dec("3.052"),
            dec("2.728")
        ]
    );
    let bar = &history.bars[0];
    // 08:00 in London in July (BST), though the request-time gmtoffset says 0.
    assert_eq!(bar.ts, utc("2024-07-01T07:00:00Z"));
    assert_eq!(bar.open, Some(dec("3.05")));
    assert_eq!(bar.volume, Some(dec("2143587")), "volume is not divided");
    assert_eq!(bar.currency.as_deref(), Some("GBP"));
}

#[tokio::test]
async fn sydney_bars_belong_to_their_sydney_date() {
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/chart/BHP.AX"))
        .respond_with(json("yahoo/chart_bhp_ax_sydney.json"))
        .mount(&server)
        .await;

    let history = yahoo(&server)
        .await
        .history(
            "BHP.AX",
            date("2024-01-08"),
            date("2024-01-10"),
            Interval::D1,
        )
        .await
        .unwrap();

    // 10:00 AEDT is 23:00Z the day before: UTC dates would pick other bars.
    let starts: Vec<_> = history.bars.iter().map(|b| b.ts).collect();
    assert_eq!(
        starts,
        [
            utc("2024-01-07T23:00:00Z"),
            utc("2024-01-08T23:00:00Z"),
            utc("2024-01-09T23:00:00Z")
        ]
    );
    assert_eq!(history.bars[0].close, dec("49.68"));
    assert_eq!(history.currency.as_deref(), Some("AUD"));
}

#[tokio::test]
async fn splits_and_dividends_are_kept_as_events() {
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/chart/NVDA"))
        .respond_with(json("yahoo/chart_nvda_split.json"))
        .mount(&server)
        .await;

    let history = yahoo(&server)
        .await
        .history("NVDA", date("2024-06-07"), date("2024-06-12"), Interval::D1)
        .await
        .unwrap();

    assert_eq!(history.bars.len(), 4);
    assert_eq!(
        history.bars[0].ts,
        utc("2024-06-07T13:30:00Z"),
        "EDT: 13:30Z"
    );
    assert_eq!(
        history.bars[0].close,
        dec("120.888"),
        "split-adjusted, f32 noise removed"
    );
    assert_eq!(
        history.events,
        [
            CorporateEvent::Split {
                ts: utc("2024-06-10T13:30:00Z"),
                numerator: dec("10"),
                denominator: dec("1"),
                ratio: "10:1".to_owned(),
            },
            CorporateEvent::Dividend {
                ts: utc("2024-06-11T13:30:00Z"),
                amount: dec("0.01"),
                currency: Some("USD".to_owned()),
            },
        ]
    );
}

#[tokio::test]
async fn fractional_split_and_missing_adjclose_in_berlin() {
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/chart/WSU.DE"))
        .respond_with(json("yahoo/chart_wsu_de_fractional_split.json"))
        .mount(&server)
        .await;

    let history = yahoo(&server)
        .await
        .history(
            "WSU.DE",
            date("2024-05-13"),
            date("2024-05-15"),
            Interval::D1,
        )
        .await
        .unwrap();

    assert_eq!(history.timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(history.currency.as_deref(), Some("EUR"));
    assert_eq!(history.bars.len(), 3);
    assert!(history.bars.iter().all(|b| b.adj_close.is_none()));
    assert_eq!(
        history.events,
        [CorporateEvent::Split {
            ts: utc("2024-05-15T07:00:00Z"),
            numerator: dec("1.5"),
            denominator: dec("1"),
            ratio: "3:2".to_owned(),
        }]
    );
    // The split day's drop (21.88 → 14.70, -33%) is no spike.
    assert!(history.bars.iter().all(|b| b.flags.is_empty()));
}

#[tokio::test]
async fn no_data_shape_is_an_empty_history() {
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/chart/VWRL.L"))
        .respond_with(json("yahoo/chart_no_data.json"))
        .mount(&server)
        .await;

    let history = yahoo(&server)
        .await
        .history(
            "VWRL.L",
            date("2024-01-01"),
            date("2024-01-31"),
            Interval::D1,
        )
        .await
        .unwrap();

    assert!(history.bars.is_empty());
    assert_eq!(history.skipped, 0);
    assert_eq!(history.currency.as_deref(), Some("GBP"));
}

#[tokio::test]
async fn broken_rows_are_rejected_with_reasons_and_spikes_flagged() {
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/chart/PNNY"))
        .respond_with(json("yahoo/chart_bad_rows.json"))
        .mount(&server)
        .await;

    let history = yahoo(&server)
        .await
        .history("PNNY", date("2024-03-04"), date("2024-03-11"), Interval::D1)
        .await
        .unwrap();

    let reasons: Vec<&str> = history.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "close 0 is not above zero",
            "low 10.3 is above open 10.2",
            "volume -5 is negative"
        ]
    );
    assert_eq!(history.bars.len(), 3);
    let spike = &history.bars[1];
    assert_eq!(spike.close, dec("16"));
    assert_eq!(spike.flags.len(), 1, "a 57% jump is flagged, not dropped");
}

#[tokio::test]
async fn the_live_bar_of_an_open_session_is_left_out() {
    let now = Utc::now();
    let today = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let yesterday = today - Days::new(1);
    let live = (now - chrono::Duration::seconds(60)).max(today);
    let body = json!({"chart": {"result": [{
        "meta": {
            "currency": "USD", "symbol": "BTC-USD", "instrumentType": "CRYPTOCURRENCY",
            "exchangeTimezoneName": "UTC", "timezone": "UTC", "gmtoffset": 0,
            "regularMarketPrice": 65000.5, "regularMarketTime": live.timestamp(),
            "currentTradingPeriod": {"regular": {
                "timezone": "UTC", "gmtoffset": 0,
                "start": today.timestamp(), "end": (today + Days::new(1)).timestamp() - 60
            }}
        },
        "timestamp": [yesterday.timestamp(), live.timestamp()],
        "indicators": {
            "quote": [{"open": [64000.0, 64500.0], "high": [65500.0, 65200.0],
                       "low": [63500.0, 64400.0], "close": [64500.0, 65000.5],
                       "volume": [31000000000u64, 12000000000u64]}],
            "adjclose": [{"adjclose": [64500.0, 65000.5]}]
        }
    }], "error": null}});
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/chart/BTC-USD"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;

    let history = yahoo(&server)
        .await
        .history(
            "BTC-USD",
            yesterday.date_naive(),
            today.date_naive(),
            Interval::D1,
        )
        .await
        .unwrap();

    let starts: Vec<_> = history.bars.iter().map(|b| b.ts).collect();
    assert_eq!(starts, [yesterday], "today's bar is still trading");
}

#[tokio::test]
async fn quotes_come_from_spark_with_the_chart_as_fallback() {
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/spark"))
        .and(query_param("symbols", "AAPL,OCDO.L,EURUSD=X,NOPE"))
        .and(query_param("range", "1d"))
        .respond_with(json("yahoo/spark_aapl_ocdo.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v8/finance/chart/EURUSD=X"))
        .and(query_param("range", "1d"))
        .respond_with(json("yahoo/chart_quote_eurusd.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/v8/finance/chart/NOPE"))
        .respond_with(ResponseTemplate::new(404).set_body_raw(
            provider_support::fixture("yahoo/chart_not_found.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;

    let symbols: Vec<String> = ["AAPL", "OCDO.L", "EURUSD=X", "NOPE"]
        .map(String::from)
        .to_vec();
    let quotes = yahoo(&server).await.quotes(&symbols).await.unwrap();

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
            ("AAPL", "179.66".to_owned(), Some("USD")),
            ("OCDO.L", "2.853".to_owned(), Some("GBP")),
            ("EURUSD=X", "1.0839".to_owned(), Some("USD")),
        ]
    );
    assert_eq!(
        quotes.quotes[0].ts,
        Utc.timestamp_opt(1_709_326_801, 0).unwrap()
    );
    assert_eq!(quotes.missing.len(), 1);
    assert!(
        matches!(&quotes.missing[0], ProviderError::NotFound { symbol, .. } if symbol == "NOPE"),
        "{:?}",
        quotes.missing
    );
}

#[tokio::test]
async fn a_failed_spark_falls_back_but_a_throttled_one_stops() {
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/spark"))
        .and(query_param("symbols", "EURUSD=X"))
        .respond_with(ResponseTemplate::new(500).set_body_string("Internal Server Error"))
        .mount(&server)
        .await;
    Mock::given(path("/v8/finance/chart/EURUSD=X"))
        .respond_with(json("yahoo/chart_quote_eurusd.json"))
        .mount(&server)
        .await;
    Mock::given(path("/v8/finance/spark"))
        .and(query_param("symbols", "AAPL"))
        .respond_with(ResponseTemplate::new(429).set_body_string("Edge: Too Many Requests"))
        .mount(&server)
        .await;
    let provider = yahoo(&server).await;

    let quotes = provider.quotes(&["EURUSD=X".to_owned()]).await.unwrap();
    assert_eq!(quotes.quotes.len(), 1);

    let err = provider.quotes(&["AAPL".to_owned()]).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::RateLimited {
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn unknown_symbol_is_not_found_naming_provider_and_symbol() {
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/chart/NOPE"))
        .respond_with(ResponseTemplate::new(404).set_body_raw(
            provider_support::fixture("yahoo/chart_not_found.json"),
            "application/json",
        ))
        .mount(&server)
        .await;

    let err = yahoo(&server)
        .await
        .history("NOPE", date("2024-01-01"), date("2024-01-31"), Interval::D1)
        .await
        .unwrap_err();

    assert!(matches!(err, ProviderError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "yahoo NOPE: not found: HTTP 404: No data found, symbol may be delisted"
    );
}

#[tokio::test]
async fn error_statuses_are_classified() {
    let cases = [
        (ResponseTemplate::new(429).set_body_string("Edge: Too Many Requests"), "rate limited (no Retry-After given)"),
        (
            ResponseTemplate::new(429)
                .insert_header("retry-after", "90")
                .set_body_raw(r#"{"finance":{"error":{"code":"Too Many Requests"}}}"#, "application/json"),
            "rate limited (retry after 1m 30s)",
        ),
        (ResponseTemplate::new(503).set_body_string("<html><title>Service Unavailable</title></html>"), "temporary failure"),
        (ResponseTemplate::new(401).set_body_string(r#"{"finance":{"result":null,"error":{"code":"Unauthorized","description":"Invalid Crumb"}}}"#), "refused"),
    ];
    for (response, want) in cases {
        let server = MockServer::start().await;
        Mock::given(path("/v8/finance/chart/AAPL"))
            .respond_with(response)
            .mount(&server)
            .await;
        let err = yahoo(&server)
            .await
            .history("AAPL", date("2024-01-01"), date("2024-01-31"), Interval::D1)
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with(&format!("yahoo AAPL: {want}")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn no_body_makes_it_panic() {
    for (what, status, body) in broken_bodies() {
        let server = MockServer::start().await;
        Mock::given(path("/v8/finance/chart/AAPL"))
            .respond_with(ResponseTemplate::new(status).set_body_bytes(body))
            .mount(&server)
            .await;
        let result = yahoo(&server)
            .await
            .history("AAPL", date("2024-01-01"), date("2024-01-31"), Interval::D1)
            .await;
        assert_bad_data(result, what);
    }
}

#[tokio::test]
async fn bodies_beyond_the_cap_are_not_read() {
    let server = MockServer::start().await;
    let big = format!(
        r#"{{"chart":{{"result":null,"error":null,"pad":"{}"}}}}"#,
        "x".repeat(3 << 20)
    );
    Mock::given(path("/v8/finance/chart/AAPL"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(big, "application/json"))
        .mount(&server)
        .await;
    let provider = Yahoo::new(EndpointConfig {
        max_body: 1 << 20,
        ..config(&server)
    })
    .unwrap();
    let err = provider
        .history("AAPL", date("2024-01-01"), date("2024-01-31"), Interval::D1)
        .await
        .unwrap_err();
    // A month of daily bars needs far less than 1 MiB: the history cap is lower.
    assert!(
        err.to_string().contains("body larger than 296 KiB"),
        "{err}"
    );
}

#[tokio::test]
async fn a_slow_server_is_a_transient_timeout() {
    let server = MockServer::start().await;
    Mock::given(path("/v8/finance/chart/AAPL"))
        .respond_with(json("yahoo/chart_aapl_1d.json").set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let provider = Yahoo::new(EndpointConfig {
        timeout: Duration::from_millis(200),
        ..config(&server)
    })
    .unwrap();
    let err = provider
        .history("AAPL", date("2024-02-05"), date("2024-02-14"), Interval::D1)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Transient { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn requests_it_cannot_serve_are_refused_before_sending() {
    let server = MockServer::start().await; // no mocks: any request would 404
    let provider = yahoo(&server).await;
    let today = Utc::now().date_naive();
    let long_ago = today - Days::new(400);
    let err = provider
        .history("AAPL", long_ago, today, Interval::M5)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }), "{err:?}");
    let err = provider
        .history("AAPL", date("2024-02-01"), date("2024-01-01"), Interval::D1)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported { .. }), "{err:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_redirect_loop_is_the_providers_error_not_a_transient_one() {
    use wiremock::matchers::any;
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/loop", server.uri())),
        )
        .mount(&server)
        .await;
    let yahoo = Yahoo::new(config(&server)).unwrap();
    let err = yahoo
        .history("AAPL", date("2024-01-02"), date("2024-01-31"), Interval::D1)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused { message, .. } if message.contains("redirected")),
        "{err:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}
