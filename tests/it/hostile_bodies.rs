//! Issue 9 acceptance: forty hostile provider answers through the
//! `pricekeeper worker` binary. None makes it panic; every job ends either
//! completed with a valid daily series (at most one bar per date, every
//! price positive and inside its range) or failed with its reason; the
//! worker's peak memory stays under 300 MB.

use crate::common;
use crate::queue_common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::test_db;
use queue_common::{date, series, weekdays, yahoo_chart};
use serde_json::{Value, json};
use tokio::process::Command;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MEMORY_LIMIT_KB: u64 = 300 * 1024;

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn raw(status: u16, body: impl Into<Vec<u8>>, mime: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into(), mime)
}

fn valid() -> Value {
    let days = weekdays(date("2024-03-04"), date("2024-03-29"));
    yahoo_chart("X", &days, &series(days.len()))
}

/// `valid()` with `f` applied to the first result.
fn edit(f: impl FnOnce(&mut Value)) -> Value {
    let mut body = valid();
    f(&mut body["chart"]["result"][0]);
    body
}

fn set_prices(result: &mut Value, i: usize, value: Value) {
    for col in ["open", "high", "low", "close"] {
        result["indicators"]["quote"][0][col][i] = value.clone();
    }
}

/// A daily chart carrying `points` timestamps a minute apart, written as
/// text so the test does not hold it as a JSON tree.
fn flood(points: usize) -> Vec<u8> {
    let mut out = String::with_capacity(points * 60);
    out.push_str(r#"{"chart":{"result":[{"meta":{"currency":"USD","exchangeTimezoneName":"America/New_York"},"timestamp":["#);
    for i in 0..points {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&(1_709_562_600 + i * 60).to_string());
    }
    out.push_str(r#"],"indicators":{"quote":[{"#);
    for (n, col) in ["open", "high", "low", "close", "volume"]
        .iter()
        .enumerate()
    {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&format!("\"{col}\":["));
        for i in 0..points {
            if i > 0 {
                out.push(',');
            }
            out.push_str("100.25");
        }
        out.push(']');
    }
    out.push_str("}]}}],\"error\":null}}");
    out.into_bytes()
}

fn gzip_bomb(megabytes: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1024 * 1024];
    encoder.write_all(b"{\"chart\":").unwrap();
    for _ in 0..megabytes {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.finish().unwrap()
}

fn hostile() -> Vec<(&'static str, ResponseTemplate)> {
    let text = valid().to_string();
    vec![
        ("valid series", ok(valid())),
        ("valid, served as text/plain", raw(200, text.clone(), "text/plain")),
        ("truncated JSON", raw(200, &text.as_bytes()[..text.len() / 2], "application/json")),
        ("empty body", raw(200, "", "application/json")),
        ("consent page with 200", raw(200, "<!DOCTYPE html><html><head><title>Before you continue</title></head></html>", "text/html")),
        ("captive portal with 200", raw(200, "<html><body>Please log in to the hotel WiFi</body></html>", "text/html")),
        ("CDN error page with 200", raw(200, "<html><head><title>502 Bad Gateway</title></head></html>", "text/html")),
        ("binary garbage", raw(200, vec![0xff, 0x00, 0xfe, 0x7b, 0x22, 0x80], "application/octet-stream")),
        ("JSON of another shape", ok(json!({"chart": 5, "prices": "x"}))),
        ("no result, no error", ok(json!({"chart": {"result": null, "error": null}}))),
        ("5 MB of nesting", raw(200, "[".repeat(5_000_000), "application/json")),
        ("40 MB of text", raw(200, "x".repeat(40 * 1024 * 1024), "application/json")),
        ("9.5 MB of minute points", raw(200, flood(190_000), "application/json")),
        ("28 MB of minute points", raw(200, flood(567_000), "application/json")),
        ("NaN prices", raw(200, text.replacen("100.25", "NaN", 3), "application/json")),
        ("negative prices", ok(edit(|r| set_prices(r, 3, json!(-5.0))))),
        ("zero prices", ok(edit(|r| set_prices(r, 4, json!(0.0))))),
        ("3e38 prices", ok(edit(|r| set_prices(r, 5, json!(3e38))))),
        ("1e300 prices", ok(edit(|r| set_prices(r, 6, json!(1e300))))),
        ("a millionfold close", ok(edit(|r| set_prices(r, 7, json!(1.0e8))))),
        ("low above high", ok(edit(|r| r["indicators"]["quote"][0]["low"][2] = json!(500.0)))),
        ("far-future timestamps", ok(edit(|r| {
            let n = r["timestamp"].as_array().unwrap().len() as i64;
            r["timestamp"] = json!((0..n).map(|i| 4_102_444_800 + i * 86_400).collect::<Vec<_>>());
        }))),
        ("timestamps beyond any date", ok(edit(|r| r["timestamp"][0] = json!(9_000_000_000_000_000_i64)))),
        ("misaligned arrays", ok(edit(|r| {
            r["indicators"]["quote"][0]["high"].as_array_mut().unwrap().truncate(7);
        }))),
        ("several points per day", ok(edit(|r| {
            let ts: Vec<i64> = r["timestamp"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
            let shifted: Vec<i64> = ts.iter().enumerate().map(|(i, t)| if i % 2 == 1 { ts[i - 1] + 3600 } else { *t }).collect();
            r["timestamp"] = json!(shifted);
        }))),
        ("the same timestamp twice", ok(edit(|r| {
            let first = r["timestamp"][0].clone();
            r["timestamp"][1] = first;
        }))),
        ("every value null", ok(edit(|r| {
            for col in ["open", "high", "low", "close", "volume"] {
                let n = r["indicators"]["quote"][0][col].as_array().unwrap().len();
                r["indicators"]["quote"][0][col] = json!(vec![Value::Null; n]);
            }
        }))),
        ("prices as strings", ok(edit(|r| r["indicators"]["quote"][0]["close"][0] = json!("101.5")))),
        ("timestamps as strings", ok(edit(|r| r["timestamp"][0] = json!("yesterday")))),
        ("another currency", ok(edit(|r| r["meta"]["currency"] = json!("EUR")))),
        ("pence for a dollar stock", ok(edit(|r| r["meta"]["currency"] = json!("GBp")))),
        ("no currency", ok(edit(|r| r["meta"]["currency"] = Value::Null))),
        ("an unknown time zone", ok(edit(|r| r["meta"]["exchangeTimezoneName"] = json!("Mars/Olympus")))),
        ("a broken split", ok(edit(|r| r["events"] = json!({"splits": {"1709735400": {"numerator": 0.0, "denominator": 0.0}}})))),
        ("a slow body", ok(valid()).set_delay(Duration::from_secs(4))),
        ("a gzip bomb", raw(200, gzip_bomb(200), "application/json").insert_header("content-encoding", "gzip")),
        ("gzip that is not", raw(200, b"\x1f\x8b\x08\x00garbage".to_vec(), "application/json").insert_header("content-encoding", "gzip")),
        ("404 with chart.error", ResponseTemplate::new(404).set_body_json(json!({"chart": {"result": null, "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"}}}))),
        ("500 with HTML", raw(500, "<html><title>Internal Server Error</title></html>", "text/html")),
        ("a 2 MB meta string", ok(edit(|r| r["meta"]["longName"] = json!("n".repeat(2_000_000))))),
    ]
}

#[tokio::test]
async fn forty_hostile_bodies_end_as_valid_series_or_reasons_within_300_mb() {
    let db = test_db().await;
    let server = MockServer::start().await;
    let cases = hostile();
    assert_eq!(cases.len(), 40);
    let mut assets = Vec::new();
    for (i, (what, response)) in cases.into_iter().enumerate() {
        let symbol = format!("H{i:02}");
        Mock::given(method("GET"))
            .and(path(format!("/v8/finance/chart/{symbol}")))
            .respond_with(response)
            .mount(&server)
            .await;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO assets (symbol, asset_type, exchange, currency)
             VALUES ($1, 'stock', 'XNAS', 'USD') RETURNING id",
        )
        .bind(&symbol)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        sqlx::query(
            // One attempt: what would be retried ends now, with its reason.
            "INSERT INTO backfill_queue (asset_id, start_date, end_date, max_attempts)
             VALUES ($1, '2024-03-04', '2024-03-29', 1)",
        )
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
        assets.push((id, what));
    }

    let worker = Command::new(env!("CARGO_BIN_EXE_pricekeeper"))
        // Any free port: tests run side by side.
        .env("PRICEKEEPER_HTTP_ADDR", "127.0.0.1:0")
        .arg("worker")
        .env("DATABASE_URL", db.url())
        .env("PRICEKEEPER_YAHOO_URL", server.uri())
        .env("PRICEKEEPER_YAHOO_RATE", "100000/min")
        .env("PRICEKEEPER_HTTP_TIMEOUT", "2s")
        .env("PRICEKEEPER_CONCURRENCY", "8")
        .env("PRICEKEEPER_LOG_FORMAT", "pretty")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = worker.id().unwrap();

    let all_ended = || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM backfill_queue WHERE status NOT IN ('completed', 'failed')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        open == 0
    };
    if tokio::time::timeout(Duration::from_secs(120), async {
        while !all_ended().await {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .is_err()
    {
        let open: Vec<(String, String, i32, Option<String>)> = sqlx::query_as(
            "SELECT a.symbol, q.status::text, q.attempts, q.error_message
             FROM backfill_queue q JOIN assets a ON a.id = q.asset_id
             WHERE q.status NOT IN ('completed', 'failed') ORDER BY a.symbol",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        panic!("jobs still open after 120 s: {open:#?}");
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();

    let mut report = Vec::new();
    for (asset, what) in &assets {
        let (status, stored, message): (String, Option<i32>, Option<String>) = sqlx::query_as(
            "SELECT status::text, bars_stored, error_message FROM backfill_queue WHERE asset_id = $1",
        )
        .bind(asset)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        match status.as_str() {
            "completed" => assert!(
                stored.unwrap_or(0) > 0 || message.is_some(),
                "{what}: completed with nothing stored and no reason"
            ),
            _ => assert!(
                message
                    .as_deref()
                    .is_some_and(|m| !m.trim().is_empty() && !m.contains("database refused")),
                "{what}: failed without the provider's reason: {message:?}"
            ),
        }
        report.push(format!(
            "{what:32} {status:9} bars={:<3} {}",
            stored.unwrap_or(0),
            message
                .unwrap_or_default()
                .chars()
                .take(150)
                .collect::<String>()
        ));
    }
    println!("{}", report.join("\n"));
    println!("worker peak RSS (VmHWM): {} MB", peak_kb / 1024);

    let (crowded, invalid): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM (SELECT asset_id, (ts AT TIME ZONE 'America/New_York')::date
                                       FROM asset_prices GROUP BY 1, 2 HAVING count(*) > 1) d),
                (SELECT count(*) FROM asset_prices
                 WHERE close <= 0 OR low > least(open, close) OR high < greatest(open, close)
                    OR close > 1000000 OR ts > now())",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (crowded, invalid),
        (0, 0),
        "stored bars are one valid series per asset"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(30), worker.wait_with_output())
        .await
        .expect("worker exits after SIGTERM")
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {logs}", out.status);
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(
        peak_kb < MEMORY_LIMIT_KB,
        "worker peak RSS {} MB over 300 MB",
        peak_kb / 1024
    );
}
