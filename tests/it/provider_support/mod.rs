//! Helpers for the provider tests: fixtures from `tests/fixtures/`, an
//! endpoint pointed at a wiremock server, and the error shapes every
//! provider must survive.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveDate;
use pricekeeper::providers::{EndpointConfig, ProviderError, Rate};
use rust_decimal::Decimal;
use wiremock::{MockServer, ResponseTemplate};

pub fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

pub fn json(path: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(path), "application/json")
}

/// An endpoint on `server` with a generous rate, so pacing never slows a test.
pub fn config(server: &MockServer) -> EndpointConfig {
    EndpointConfig {
        timeout: Duration::from_secs(5),
        ..EndpointConfig::new(server.uri().parse().unwrap(), Rate::per_minute(60_000))
    }
}

pub fn date(raw: &str) -> NaiveDate {
    raw.parse().unwrap()
}

pub fn dec(raw: &str) -> Decimal {
    Decimal::from_str(raw).unwrap()
}

/// Bodies that must end as `BadData` (or `Unreadable`, bad data that is
/// retried a few times), never a panic: (what, status, body).
pub fn broken_bodies() -> Vec<(&'static str, u16, Vec<u8>)> {
    vec![
        (
            "malformed JSON",
            200,
            br#"{"chart": {"result": [{"meta": "#.to_vec(),
        ),
        ("empty body", 200, Vec::new()),
        (
            "JSON of another shape",
            200,
            br#"{"chart": 5, "prices": "x"}"#.to_vec(),
        ),
        (
            "an HTML page",
            200,
            b"<!DOCTYPE html><html><title>Consent</title></html>".to_vec(),
        ),
        ("binary garbage", 200, vec![0xff, 0x00, 0xfe, 0x7b, 0x22]),
        // 5 MB of nesting: beyond serde_json's depth limit, never a stack overflow.
        (
            "several megabytes of nesting",
            200,
            "[".repeat(5_000_000).into_bytes(),
        ),
        (
            "several megabytes of text",
            200,
            "x".repeat(6_000_000).into_bytes(),
        ),
    ]
}

pub fn assert_bad_data(result: Result<impl std::fmt::Debug, ProviderError>, what: &str) {
    match result {
        Err(ProviderError::BadData { .. } | ProviderError::Unreadable { .. }) => {}
        other => panic!("{what}: expected BadData, got {other:?}"),
    }
}
