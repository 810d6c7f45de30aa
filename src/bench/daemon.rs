//! `bench daemon`: one refresh tick and the daily-close passes for a large
//! set of held assets against a local market in the providers' real
//! formats: requests sent, wall time, time spent in the database.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::market::{self, Market};
use super::{BenchError, Scratch, round3};
use crate::calendar::{CalendarId, Calendars};
use crate::config::Settings;
use crate::daemon::Daemon;
use crate::daemon::tick::{TickReport, Trigger};
use crate::providers::Rate;

#[derive(Debug, clap::Args)]
pub struct DaemonBench {
    /// NYSE/Nasdaq stocks held.
    #[arg(long, default_value_t = 6000)]
    pub us_stocks: usize,
    /// London stocks held.
    #[arg(long, default_value_t = 1000)]
    pub london_stocks: usize,
    /// Coins Binance lists.
    #[arg(long, default_value_t = 2000)]
    pub binance_coins: usize,
    /// Coins only CoinGecko knows.
    #[arg(long, default_value_t = 1000)]
    pub coingecko_coins: usize,
}

#[derive(Debug, Serialize)]
pub struct DaemonReport {
    pub assets: usize,
    /// A refresh with every market open (Wednesday 2025-03-12 15:00 UTC).
    pub tick: Pass,
    /// The close ticks of XNYS, XLON and crypto that day.
    pub daily_close: Vec<Pass>,
}

#[derive(Debug, Serialize)]
pub struct Pass {
    pub kind: String,
    pub requests: usize,
    pub wall_ms: f64,
    pub fetch_ms: u128,
    pub db_ms: u128,
    pub quotes_written: u64,
    pub bars_written: u64,
    pub stretches_queued: usize,
    pub gaps_found: usize,
    pub gaps_queued: usize,
    pub missing: usize,
}

pub async fn run(settings: &Settings, args: &DaemonBench) -> Result<DaemonReport, BenchError> {
    let scratch = Scratch::create(&settings.connect_options(), 16).await?;
    let report = measure(&scratch, settings, args).await;
    scratch.drop().await?;
    report
}

async fn measure(
    scratch: &Scratch,
    settings: &Settings,
    args: &DaemonBench,
) -> Result<DaemonReport, BenchError> {
    let pool = &scratch.pool;
    let assets = seed(pool, args).await?;
    let market = Arc::new(Market {
        binance_pairs: args.binance_coins,
        ..Market::default()
    });
    let url = market::serve(market.clone()).await?;
    let mut local = settings.clone();
    let fast = Rate {
        count: 10_000_000,
        per: Duration::from_secs(1),
    };
    local.providers.yahoo_url = url.clone();
    local.providers.binance_url = url.clone();
    local.providers.coingecko_url = url;
    local.providers.yahoo_rate = fast;
    local.providers.binance_rate = fast;
    local.providers.coingecko_rate = Some(fast);
    local.providers.max_requests_per_minute = None;
    local.trading_hours_only = true;
    let daemon = Daemon::from_settings(pool.clone(), &local)
        .map_err(|e| BenchError::Stalled(e.to_string()))?;
    let term = daemon
        .leadership()
        .step()
        .await
        .map_err(|e| BenchError::Stalled(e.to_string()))?
        .ok_or_else(|| BenchError::Stalled("no lease on a scratch database".into()))?;

    let run = |trigger: Trigger, now: DateTime<Utc>| {
        let daemon = &daemon;
        let market = market.clone();
        async move {
            let before = market.total_requests();
            let started = Instant::now();
            let report = daemon
                .ticker()
                .tick(&term, trigger, now)
                .await
                .map_err(|e| BenchError::Stalled(e.to_string()))?;
            Ok::<Pass, BenchError>(pass(report, market.total_requests() - before, started))
        }
    };

    let now: DateTime<Utc> = "2025-03-12T15:00:00Z".parse().expect("instant");
    market.quote_time.store(now.timestamp(), Ordering::Relaxed);
    let tick = run(Trigger::Refresh { slot: now }, now).await?;

    let calendars = Calendars::default();
    let day: NaiveDate = "2025-03-12".parse().expect("date");
    let mut daily_close = Vec::new();
    for calendar in [CalendarId::Xlon, CalendarId::Xnys, CalendarId::Crypto] {
        let session = calendars
            .session(calendar, day)
            .ok_or_else(|| BenchError::Stalled(format!("{calendar} has no session on {day}")))?;
        market
            .quote_time
            .store(session.close.timestamp(), Ordering::Relaxed);
        let now = session.close + chrono::TimeDelta::seconds(30);
        daily_close.push(run(Trigger::Close { calendar, session }, now).await?);
    }
    Ok(DaemonReport {
        assets,
        tick,
        daily_close,
    })
}

fn pass(report: TickReport, requests: usize, started: Instant) -> Pass {
    Pass {
        kind: report.kind,
        requests,
        wall_ms: round3(started.elapsed().as_secs_f64() * 1000.0),
        fetch_ms: report.fetch_ms,
        db_ms: report.db_ms,
        quotes_written: report.quotes_written,
        bars_written: report.close.as_ref().map_or(0, |c| c.bars_written),
        stretches_queued: report.close.as_ref().map_or(0, |c| c.stretches_queued),
        gaps_found: report.gaps.as_ref().map_or(0, |g| g.found),
        gaps_queued: report.gaps.as_ref().map_or(0, |g| g.queued),
        missing: report.missing,
    }
}

/// The catalog, holdings in 1,000 portfolios, and daily bars through the
/// day before (the steady state), with one hole in a tenth of them.
async fn seed(pool: &sqlx::PgPool, args: &DaemonBench) -> Result<usize, BenchError> {
    sqlx::query(
        "INSERT INTO assets (symbol, asset_type, exchange, currency, yahoo_symbol, binance_symbol, coingecko_id)
         SELECT 'U' || i, 'stock'::asset_type, CASE WHEN i % 2 = 0 THEN 'XNYS' ELSE 'XNAS' END, 'USD', 'U' || i, NULL, NULL
         FROM generate_series(0, $1 - 1) AS i
         UNION ALL
         SELECT 'L' || i, 'stock'::asset_type, 'XLON', 'GBP', 'L' || i || '.L', NULL, NULL
         FROM generate_series(0, $2 - 1) AS i
         UNION ALL
         SELECT 'B' || i, 'crypto'::asset_type, 'CRYPTO', 'USD', NULL, 'B' || i || 'USDT', NULL
         FROM generate_series(0, $3 - 1) AS i
         UNION ALL
         SELECT 'G' || i, 'crypto'::asset_type, 'CRYPTO', 'USD', NULL, NULL, 'g-coin-' || i
         FROM generate_series(0, $4 - 1) AS i",
    )
    .bind(args.us_stocks as i64)
    .bind(args.london_stocks as i64)
    .bind(args.binance_coins as i64)
    .bind(args.coingecko_coins as i64)
    .execute(pool)
    .await?;
    for statement in [
        "INSERT INTO tracked_assets (asset_id, tracking_users, history_from, history_to)
         SELECT id, 1, '2025-03-03', '2025-03-11' FROM assets",
        "INSERT INTO holdings (portfolio_id, asset_id, quantity)
         SELECT md5((id % 1000)::text)::uuid, id, 10 FROM assets",
        "SELECT ensure_asset_prices_partition(2025)",
        // A bar for every session 03-03..03-11 except Wednesday 03-05 for a
        // tenth of the assets, so the gap scan has something to find.
        "INSERT INTO asset_prices (asset_id, ts, close, source)
         SELECT a.id, d + CASE WHEN a.exchange = 'CRYPTO' THEN interval '0 hours'
                               WHEN a.exchange = 'XLON' THEN interval '8 hours'
                               ELSE interval '13 hours 30 minutes' END, 100, 'yahoo'
         FROM assets a
         CROSS JOIN generate_series(timestamptz '2025-03-03 00:00Z', '2025-03-11 00:00Z', interval '1 day') AS d
         WHERE (a.exchange = 'CRYPTO' OR extract(isodow FROM d) < 6)
           AND NOT (a.id % 10 = 0 AND d = timestamptz '2025-03-05 00:00Z')",
    ] {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(args.us_stocks + args.london_stocks + args.binance_coins + args.coingecko_coins)
}
