//! `bench ops`: what a scrape of `/metrics` and `/health/queue` costs on a
//! big cluster (a million jobs, mostly completed, and a million processed
//! events), through the real HTTP server; then how long each retention
//! batch takes when those rows have aged past their retention.

use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{BenchError, Percentiles, Scratch, round3};
use crate::config::Settings;
use crate::ops::retention::{self, RetentionArgs, Trimmed};
use crate::ops::server::{self, OpsState};
use crate::ops::{HttpAddr, Thresholds};

#[derive(Debug, clap::Args)]
pub struct OpsBench {
    /// Rows in backfill_queue (about 98% completed, most past retention).
    #[arg(long, default_value_t = 1_000_000)]
    pub jobs: i64,
    /// Processed outbox events (past the event retention).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: i64,
    /// Requests timed per endpoint.
    #[arg(long, default_value_t = 100)]
    pub requests: usize,
    /// Rows per retention batch (PRICEKEEPER_RETENTION_BATCH).
    #[arg(long, default_value_t = 1000)]
    pub batch: u32,
}

#[derive(Debug, serde::Serialize)]
pub struct OpsReport {
    pub jobs: i64,
    pub events: i64,
    pub seed_seconds: f64,
    /// GET /metrics through the server, database read included.
    pub metrics: Percentiles,
    /// GET /health/queue through the server.
    pub health_queue: Percentiles,
    /// The snapshot statement alone.
    pub snapshot_sql: Percentiles,
    pub retention: Vec<Trimmed>,
    pub retention_mean_batch_ms: Vec<(String, f64)>,
}

pub async fn run(settings: &Settings, args: &OpsBench) -> Result<OpsReport, BenchError> {
    let scratch = Scratch::create(&settings.connect_options(), 8).await?;
    let report = measure(&scratch, args).await;
    scratch.drop().await?;
    report
}

async fn measure(scratch: &Scratch, args: &OpsBench) -> Result<OpsReport, BenchError> {
    let pool = &scratch.pool;
    let seeding = Instant::now();
    seed(pool, args).await?;
    let seed_seconds = round3(seeding.elapsed().as_secs_f64());

    let cancel = CancellationToken::new();
    let state = OpsState {
        pool: pool.clone(),
        thresholds: Thresholds::default(),
        rates: vec![],
        admin_token: None,
        metrics: None,
        role: "bench",
        max_attempts: 5,
        started: Instant::now(),
    };
    let running = server::start(
        state,
        HttpAddr::On("127.0.0.1:0".parse().expect("an address")),
        cancel.clone(),
    )
    .await
    .map_err(|e| BenchError::Stalled(e.to_string()))?
    .ok_or_else(|| BenchError::Stalled("server off".into()))?;
    let http = reqwest::Client::new();
    let timed = |path: &'static str| {
        let (http, url) = (http.clone(), format!("http://{}{path}", running.addr));
        async move {
            let mut samples = Vec::with_capacity(args.requests);
            // One warm-up request: the first plan and cache fill.
            let _ = http.get(&url).send().await;
            for _ in 0..args.requests {
                let started = Instant::now();
                let r = http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| BenchError::Stalled(e.to_string()))?;
                let _ = r.bytes().await;
                samples.push(started.elapsed());
            }
            Ok::<_, BenchError>(Percentiles::of(samples))
        }
    };
    let metrics = timed("/metrics").await?;
    let health_queue = timed("/health/queue").await?;
    let mut samples = Vec::new();
    for _ in 0..args.requests {
        let started = Instant::now();
        crate::ops::snapshot::fetch(pool, None).await?;
        samples.push(started.elapsed());
    }
    let snapshot_sql = Percentiles::of(samples);
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), running.task).await;

    let retention_args = RetentionArgs {
        retention_batch: args.batch,
        ..RetentionArgs::default()
    };
    let report =
        retention::run_once(pool, &retention_args, Utc::now(), &CancellationToken::new()).await?;
    let means = report
        .trimmed
        .iter()
        .map(|t| {
            (
                t.what.to_owned(),
                round3(t.total_ms / f64::from(t.batches.max(1))),
            )
        })
        .collect();
    Ok(OpsReport {
        jobs: args.jobs,
        events: args.events,
        seed_seconds,
        metrics,
        health_queue,
        snapshot_sql,
        retention: report.trimmed,
        retention_mean_batch_ms: means,
    })
}

/// A cluster after months of work: mostly completed jobs (most of them
/// older than the job retention, a thousand in the last hour), a working
/// set of pending, waiting, running and failed jobs, and processed events.
async fn seed(pool: &sqlx::PgPool, args: &OpsBench) -> Result<(), BenchError> {
    let active = (args.jobs / 50).max(1);
    let recent = 1000.min(args.jobs / 2);
    let old = (args.jobs - active - recent).max(0);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO assets (symbol, asset_type, exchange, currency)
         SELECT 'B' || g, 'stock', 'XNAS', 'USD' FROM generate_series(1, 1000) AS g;
         INSERT INTO backfill_queue (asset_id, start_date, end_date, status, attempts, provider,
                                     created_at, started_at, completed_at, updated_at)
         SELECT a.id, date '1900-01-01' + (g / 1000), date '1900-01-01' + (g / 1000), 'completed', 1,
                'yahoo', t - interval '2 minutes', t - interval '3 seconds', t, t
         FROM generate_series(1, {old}) AS g
         CROSS JOIN LATERAL (SELECT now() - interval '31 days' - g * interval '2 seconds' AS t) AS at
         JOIN assets a ON a.symbol = 'B' || (1 + g % 1000);
         INSERT INTO backfill_queue (asset_id, start_date, end_date, status, attempts, provider,
                                     created_at, started_at, completed_at, updated_at)
         SELECT a.id, date '2200-01-01' + g, date '2200-01-01' + g, 'completed', 1, 'yahoo',
                t - interval '1 minute', t - (g % 10) * interval '1 second', t, t
         FROM generate_series(1, {recent}) AS g
         CROSS JOIN LATERAL (SELECT now() - g * interval '3 seconds' AS t) AS at
         JOIN assets a ON a.symbol = 'B' || (1 + g % 1000);
         INSERT INTO backfill_queue (asset_id, start_date, end_date, status, retry_after, attempts,
                                     error_message, locked_by, locked_until)
         SELECT a.id, date '2300-01-01' + g, date '2300-01-01' + g, s.status,
                CASE WHEN s.status IN ('pending', 'rate_limited')
                     THEN now() + (g % 120 - 60) * interval '1 minute' END,
                1, CASE WHEN s.status = 'failed' THEN 'HTTP 404: no data' END,
                CASE WHEN s.status = 'in_progress' THEN gen_random_uuid() END,
                CASE WHEN s.status = 'in_progress' THEN now() + interval '1 minute' END
         FROM generate_series(1, {active}) AS g
         CROSS JOIN LATERAL (SELECT (ARRAY['pending', 'pending', 'pending', 'rate_limited',
                                           'in_progress', 'failed', 'cancelled'])[1 + g % 7]::backfill_status
                             AS status) AS s
         JOIN assets a ON a.symbol = 'B' || (1 + g % 1000);
         INSERT INTO portfolio_events (op, transaction_id, new_portfolio_id, new_asset_id, new_side,
                                       new_quantity, new_executed_at, created_at, processed_at)
         SELECT 'insert', g, gen_random_uuid(), (SELECT min(id) FROM assets), 'buy', 1, now(),
                now() - interval '10 days' - g * interval '1 second',
                now() - interval '10 days' - g * interval '1 second'
         FROM generate_series(1, {events}) AS g;
         INSERT INTO portfolio_events (op, transaction_id, new_portfolio_id, new_asset_id, new_side,
                                       new_quantity, new_executed_at)
         SELECT 'insert', g, gen_random_uuid(), (SELECT min(id) FROM assets), 'buy', 1, now()
         FROM generate_series(1, 10) AS g;",
        events = args.events,
    )))
    .execute(pool)
    .await?;
    // Outside the seed's transaction: VACUUM cannot run in one. The
    // visibility map it sets is what a long-running table has too.
    for table in ["backfill_queue", "portfolio_events"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(pool)
            .await?;
    }
    Ok(())
}
