//! Helpers for the queue tests: settings pointing the real provider clients
//! at a local server, rows to start from, the queue as rows to assert on,
//! and provider answers in the real formats (PROVIDERS.md).
#![allow(dead_code)] // each test binary uses a different part of this module

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc, Weekday};
use clap::Parser;
use pricekeeper::config::Settings;
use pricekeeper::providers::Providers;
use pricekeeper::queue::backfill::Backfill;
use pricekeeper::queue::worker::NoOp;
use pricekeeper::queue::{Clock, Worker, WorkerConfig};
use serde_json::{Value, json};
use sqlx::PgPool;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

/// Settings as the binary would read them from `args` (plus the
/// environment), with every provider pointed at `server` and rates high
/// enough never to be the thing under test.
pub fn settings(server: &str, args: &[&str]) -> Settings {
    let mut argv = vec![
        "pricekeeper".to_owned(),
        format!("--yahoo-url={server}"),
        format!("--binance-url={server}"),
        format!("--coingecko-url={server}"),
        format!("--binance-data-url={server}/binance-data"),
        format!("--kraken-url={server}"),
        format!("--coinbase-url={server}"),
        format!("--frankfurter-url={server}"),
        "--yahoo-rate=100000/min".to_owned(),
        "--binance-rate=100000/min".to_owned(),
        "--coingecko-rate=100000/min".to_owned(),
    ];
    // A rate given in `args` replaces the default above.
    argv.retain(|a| {
        !a.starts_with("--")
            || !args
                .iter()
                .any(|given| given.split('=').next() == a.split('=').next())
    });
    argv.extend(args.iter().map(|a| a.to_string()));
    Cli::try_parse_from(argv).expect("test settings").settings
}

pub fn config(settings: &Settings) -> WorkerConfig {
    WorkerConfig::from_settings(settings)
}

/// A worker running the real backfill body against `settings`' providers.
pub fn backfill_worker(pool: &PgPool, settings: &Settings, clock: Clock) -> Worker<Backfill> {
    let providers = Providers::from_settings(settings).expect("providers");
    let body = Backfill::new(pool.clone(), providers, settings.retry_exponential_base);
    Worker::with_clock(pool.clone(), config(settings), body, clock)
}

/// A worker whose jobs succeed at once (the queue alone).
pub fn bare_worker(pool: &PgPool, batch_size: u32, clock: Clock) -> Worker<NoOp> {
    let settings = settings(
        "http://127.0.0.1:9",
        &[&format!("--backfill-batch-size={batch_size}")],
    );
    Worker::with_clock(pool.clone(), config(&settings), NoOp, clock)
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 2, 12, 0, 0).unwrap()
}

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[derive(Debug, Clone, Default)]
pub struct NewAsset<'a> {
    pub symbol: &'a str,
    pub asset_type: &'a str,
    pub exchange: &'a str,
    pub currency: Option<&'a str>,
    pub yahoo_symbol: Option<&'a str>,
    pub binance_symbol: Option<&'a str>,
    pub coingecko_id: Option<&'a str>,
}

pub fn stock(symbol: &str) -> NewAsset<'_> {
    NewAsset {
        symbol,
        asset_type: "stock",
        exchange: "XNAS",
        currency: Some("USD"),
        ..NewAsset::default()
    }
}

pub fn crypto<'a>(
    symbol: &'a str,
    binance: Option<&'a str>,
    coingecko: Option<&'a str>,
) -> NewAsset<'a> {
    NewAsset {
        symbol,
        asset_type: "crypto",
        exchange: "CRYPTO",
        currency: Some("USD"),
        binance_symbol: binance,
        coingecko_id: coingecko,
        ..NewAsset::default()
    }
}

pub async fn insert_asset(pool: &PgPool, a: NewAsset<'_>) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO assets (symbol, asset_type, exchange, currency, yahoo_symbol, binance_symbol, coingecko_id)
         VALUES ($1, $2::asset_type, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(a.symbol)
    .bind(a.asset_type)
    .bind(a.exchange)
    .bind(a.currency)
    .bind(a.yahoo_symbol)
    .bind(a.binance_symbol)
    .bind(a.coingecko_id)
    .fetch_one(pool)
    .await
    .expect("insert asset")
}

pub async fn insert_job(pool: &PgPool, asset_id: i64, start: NaiveDate, end: NaiveDate) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO backfill_queue (asset_id, start_date, end_date) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(asset_id)
    .bind(start)
    .bind(end)
    .fetch_one(pool)
    .await
    .expect("insert job")
}

/// `n` jobs for one asset, each for its own one-day range.
pub async fn insert_jobs(pool: &PgPool, n: i64) -> Vec<i64> {
    let asset = insert_asset(pool, stock("BULK")).await;
    sqlx::query_scalar(
        "INSERT INTO backfill_queue (asset_id, start_date, end_date)
         SELECT $1, d, d FROM generate_series(1, $2) AS i,
              LATERAL (SELECT date '1900-01-01' + i::int AS d) AS day
         RETURNING id",
    )
    .bind(asset)
    .bind(n)
    .fetch_all(pool)
    .await
    .expect("insert jobs")
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub status: String,
    pub attempts: i32,
    pub retry_after: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub locked_by: Option<uuid::Uuid>,
    pub locked_until: Option<DateTime<Utc>>,
    pub provider: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub bars_stored: Option<i32>,
    pub bars_rejected: Option<i32>,
    pub updated_at: DateTime<Utc>,
}

pub async fn job(pool: &PgPool, id: i64) -> JobRow {
    sqlx::query_as(
        "SELECT id, status::text, attempts, retry_after, error_message, locked_by, locked_until,
                provider, completed_at, bars_stored, bars_rejected, updated_at
         FROM backfill_queue WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("job row")
}

pub async fn count_status(pool: &PgPool, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM backfill_queue WHERE status = $1::backfill_status")
        .bind(status)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ProviderRow {
    pub provider: String,
    pub cooldown_until: Option<DateTime<Utc>>,
    pub consecutive_rate_limits: i32,
    pub rate_limited_total: i64,
    pub last_error: Option<String>,
    pub requests_total: i64,
    pub errors_total: i64,
}

pub async fn provider_state(pool: &PgPool, provider: &str) -> ProviderRow {
    sqlx::query_as(
        "SELECT provider, cooldown_until, consecutive_rate_limits, rate_limited_total, last_error,
                requests_total, errors_total
         FROM provider_state WHERE provider = $1",
    )
    .bind(provider)
    .fetch_one(pool)
    .await
    .expect("provider_state row")
}

/// Weekdays in `[from, to]`.
pub fn weekdays(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    from.iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .collect()
}

/// One Yahoo bar: open, high, low, close, volume; None for a missing bar.
pub type Ohlcv = Option<(f64, f64, f64, f64, f64)>;

/// A Yahoo v8 chart answer for a NASDAQ stock: bars start at the session
/// open (14:30Z), prices are f32 values widened to f64.
pub fn yahoo_chart(symbol: &str, days: &[NaiveDate], bars: &[Ohlcv]) -> Value {
    let ts: Vec<i64> = days
        .iter()
        .map(|d| d.and_hms_opt(14, 30, 0).unwrap().and_utc().timestamp())
        .collect();
    let col = |f: fn(&(f64, f64, f64, f64, f64)) -> f64| -> Vec<Value> {
        bars.iter()
            .map(|b| {
                b.as_ref()
                    .map_or(Value::Null, |b| json!(f64::from(f(b) as f32)))
            })
            .collect()
    };
    json!({"chart": {"result": [{
        "meta": {
            "currency": "USD", "symbol": symbol, "exchangeName": "NMS", "instrumentType": "EQUITY",
            "gmtoffset": -14400, "timezone": "EDT", "exchangeTimezoneName": "America/New_York",
            "dataGranularity": "1d", "range": ""
        },
        "timestamp": ts,
        "indicators": {
            "quote": [{"open": col(|b| b.0), "high": col(|b| b.1), "low": col(|b| b.2),
                       "close": col(|b| b.3), "volume": col(|b| b.4)}],
            "adjclose": [{"adjclose": col(|b| b.3)}]
        }
    }], "error": null}})
}

/// A plausible daily series: close drifting up a quarter a day.
pub fn series(n: usize) -> Vec<Ohlcv> {
    (0..n)
        .map(|i| {
            let c = 100.0 + i as f64 * 0.25;
            Some((c - 0.5, c + 1.0, c - 1.0, c, 1_000_000.0 + i as f64))
        })
        .collect()
}

/// Binance klines for daily candles starting on `days` (all closed).
pub fn binance_klines(days: &[NaiveDate]) -> Value {
    let rows: Vec<Value> = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let open = d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
            let c = 60000.0 + i as f64 * 10.0;
            json!([
                open,
                format!("{:.8}", c - 5.0),
                format!("{:.8}", c + 20.0),
                format!("{:.8}", c - 20.0),
                format!("{c:.8}"),
                "123.45600000",
                open + 86_399_999,
                "7400000.00",
                1000,
                "60.0",
                "3600000.0",
                "0"
            ])
        })
        .collect();
    Value::Array(rows)
}

pub fn days_between(from: &str, to: &str) -> Vec<NaiveDate> {
    date(from)
        .iter_days()
        .take_while(|d| *d <= date(to))
        .collect()
}

/// Waits (bounded) for `check`, polling; never a bare sleep.
pub async fn until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // A guard against a hang, not a timing: generous for a loaded machine.
    super::common::eventually(Duration::from_secs(60), what, check).await
}
