//! `pricekeeper bench …`: measurements of the real code paths against a
//! scratch database on the configured server, printed as JSON on stdout.
//! The scratch database is created fresh and dropped afterwards, so a bench
//! never touches real data.

pub mod daemon;
pub mod events;
mod market;
pub mod ops;
pub mod queue;

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
    /// One daemon tick and the daily-close passes for 10,000 held assets
    /// against a local market: requests sent, wall and database time.
    Daemon(daemon::DaemonBench),
    /// Portfolio write → queued backfill latency, and outbox catch-up throughput.
    Events(events::EventsBench),
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
        BenchCommand::Daemon(args) => serde_json::to_value(daemon::run(settings, args).await?),
        BenchCommand::Events(args) => serde_json::to_value(events::run(settings, args).await?),
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
        let name = format!("pricekeeper_bench_{}", uuid::Uuid::new_v4().simple());
        let options = server.clone().database(&name);
        let pool = db::connect(&options, max_connections, Duration::from_secs(30)).await?;
        db::migrate(&pool).await?;
        let admin = server.clone().database("postgres");
        Ok(Self { pool, name, admin })
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

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

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
