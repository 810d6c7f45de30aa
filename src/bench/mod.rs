//! `pricekeeper bench …`: measurements of the real code paths against a
//! scratch database on the configured server, printed as JSON on stdout.
//! The scratch database is created fresh and dropped afterwards, so a bench
//! never touches real data.

pub mod budget;
pub mod catalog;
pub mod cooldown;
pub mod daemon;
pub mod events;
pub mod ingest;
mod market;
pub mod ops;
pub mod queue;
mod workers;
mod yahoo_server;

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor, PgPool};

use crate::config::Settings;
use crate::db::{self, DbError, quote_ident};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("database error during the benchmark: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("benchmark did not finish: {0}")]
    Stalled(String),
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Worker processes sharing one Yahoo budget through the database: the
    /// peak request count in any window of the budget's period.
    Budget(budget::BudgetBench),
    /// Worker processes against a Yahoo that refuses every other request:
    /// requests that still arrive during an announced cooldown.
    Cooldown(cooldown::CooldownBench),
    /// Seeding a generated Nasdaq symbol directory of 10,000 securities:
    /// wall time and statements of a first seed, an unchanged rerun and a
    /// rerun with churn.
    Catalog(catalog::CatalogBench),
    /// One daemon tick and the daily-close passes for 10,000 held assets
    /// against a local market: requests sent, wall and database time.
    Daemon(daemon::DaemonBench),
    /// Portfolio write → queued backfill latency, and outbox catch-up throughput.
    Events(events::EventsBench),
    /// The bar write path against a plain COPY of the same rows (a ratio).
    Ingest(ingest::IngestBench),
    /// Scrape cost of /metrics and /health/queue on a million jobs and a
    /// million processed events, and retention batch durations.
    Ops(ops::OpsBench),
    /// Backfill queue drain rates (bare and real), insert → start latency, peak memory.
    Queue(queue::QueueBench),
}

/// Runs one benchmark and returns its report as JSON.
pub async fn run(
    settings: &Settings,
    command: &BenchCommand,
) -> Result<serde_json::Value, BenchError> {
    let report = match command {
        BenchCommand::Budget(args) => serde_json::to_value(budget::run(settings, args).await?),
        BenchCommand::Catalog(args) => serde_json::to_value(catalog::run(settings, args).await?),
        BenchCommand::Cooldown(args) => serde_json::to_value(cooldown::run(settings, args).await?),
        BenchCommand::Daemon(args) => serde_json::to_value(daemon::run(settings, args).await?),
        BenchCommand::Events(args) => serde_json::to_value(events::run(settings, args).await?),
        BenchCommand::Ingest(args) => serde_json::to_value(ingest::run(settings, args).await?),
        BenchCommand::Ops(args) => serde_json::to_value(ops::run(settings, args).await?),
        BenchCommand::Queue(args) => serde_json::to_value(queue::run(settings, args).await?),
    };
    Ok(report.expect("reports serialize"))
}

/// A freshly migrated database that is dropped by [`Scratch::drop`].
pub struct Scratch {
    pub pool: PgPool,
    name: String,
    admin: PgConnectOptions,
}

impl Scratch {
    pub async fn create(
        server: &PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, BenchError> {
        let scratch = Self::create_empty(server, max_connections).await?;
        db::migrate(&scratch.pool).await?;
        Ok(scratch)
    }

    /// A scratch database without the schema, for a bench that lets the
    /// binary it measures migrate it (an older build knows fewer
    /// migrations and refuses a newer schema).
    pub async fn create_empty(
        server: &PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, BenchError> {
        let name = format!("pricekeeper_bench_{}", uuid::Uuid::new_v4().simple());
        let options = server.clone().database(&name);
        let pool = db::connect(&options, max_connections, Duration::from_secs(30)).await?;
        let admin = server.clone().database("postgres");
        Ok(Self { pool, name, admin })
    }

    /// `base` (a database URL) pointing at this scratch database, for
    /// processes the bench starts.
    pub fn url(&self, base: &str) -> Result<String, BenchError> {
        let mut url = url::Url::parse(base)
            .map_err(|e| BenchError::Stalled(format!("DATABASE_URL is not a URL: {e}")))?;
        url.set_path(&self.name);
        Ok(url.to_string())
    }

    pub async fn drop(self) -> Result<(), BenchError> {
        self.pool.close().await;
        let mut conn = self.admin.connect().await?;
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.name)
        );
        conn.execute(AssertSqlSafe(sql)).await?;
        conn.close().await?;
        Ok(())
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, serde::Serialize)]
pub struct Percentiles {
    pub n: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            round3(samples[i].as_secs_f64() * 1000.0)
        };
        Self {
            n: samples.len(),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// The most of `arrivals` (in order) inside any window of length `per`:
/// what a provider counting requests per window would see at worst.
pub fn peak_in_window<T>(arrivals: &[T], per: Duration) -> usize
where
    T: Copy + std::ops::Sub<Output = Duration>,
{
    let mut peak = 0;
    let mut first = 0;
    for (i, at) in arrivals.iter().enumerate() {
        while *at - arrivals[first] >= per {
            first += 1;
        }
        peak = peak.max(i + 1 - first);
    }
    peak
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_fullest_window() {
        let t0 = std::time::Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let arrivals = [at(0), at(100), at(900), at(1000), at(1050), at(2500)];
        // [100, 1100) holds 100, 900, 1000, 1050.
        assert_eq!(peak_in_window(&arrivals, Duration::from_secs(1)), 4);
        assert_eq!(peak_in_window(&arrivals, Duration::from_secs(3)), 6);
        assert_eq!(
            peak_in_window::<std::time::Instant>(&[], Duration::from_secs(1)),
            0
        );
    }

    #[test]
    fn percentiles_pick_nearest_rank() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(samples);
        assert_eq!(
            (p.n, p.p50_ms, p.p95_ms, p.p99_ms, p.max_ms),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
    }
}
