//! `bench events`: how fast a portfolio write becomes a queued backfill,
//! and how fast a stopped orchestrator catches up on a backlog.

use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::{BenchError, Percentiles, Scratch, round3};
use crate::config::Settings;
use crate::events::JOBS_CHANNEL;
use crate::events::orchestrator::Orchestrator;

#[derive(Debug, clap::Args)]
pub struct EventsBench {
    /// Single writes timed from commit to their backfill job's notification.
    #[arg(long, default_value_t = 1000)]
    pub writes: usize,
    /// Events written while the orchestrator is stopped, then drained.
    #[arg(long, default_value_t = 100_000)]
    pub backlog: usize,
}

#[derive(Debug, serde::Serialize)]
pub struct EventsReport {
    /// Commit of a first buy → its backfill job committed (and announced).
    pub write_to_job: Percentiles,
    pub catch_up: CatchUp,
}

#[derive(Debug, serde::Serialize)]
pub struct CatchUp {
    pub events: usize,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub batch_size: u32,
    /// Backfill jobs the catch-up queued.
    pub jobs_queued: i64,
    /// Wake-ups a listening worker process received meanwhile.
    pub wakeups: u64,
    /// wakeups / jobs_queued: every worker process is woken by each.
    pub wakeups_per_job: f64,
}

pub async fn run(settings: &Settings, args: &EventsBench) -> Result<EventsReport, BenchError> {
    let scratch = Scratch::create(&settings.connect_options(), 16).await?;
    let report = measure(&scratch, settings, args).await;
    scratch.drop().await?;
    report
}

async fn measure(
    scratch: &Scratch,
    settings: &Settings,
    args: &EventsBench,
) -> Result<EventsReport, BenchError> {
    let pool = &scratch.pool;
    // Every write is a first purchase of its own asset, so each one queues
    // exactly one job.
    sqlx::query(
        "INSERT INTO assets (symbol, asset_type, exchange)
         SELECT 'L' || i, 'stock', 'XNAS' FROM generate_series(1, $1) AS i",
    )
    .bind(args.writes as i64)
    .execute(pool)
    .await?;
    let assets: Vec<i64> = sqlx::query_scalar("SELECT id FROM assets ORDER BY id")
        .fetch_all(pool)
        .await?;

    let mut jobs = PgListener::connect_with(pool).await?;
    jobs.listen(JOBS_CHANNEL).await?;
    let cancel = CancellationToken::new();
    let orchestrator = tokio::spawn(Orchestrator::new(pool.clone(), settings).run(cancel.clone()));

    let mut samples = Vec::with_capacity(assets.len());
    for asset in &assets {
        sqlx::query(
            "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
             VALUES (gen_random_uuid(), $1, 'buy', 1, 100, now())",
        )
        .bind(asset)
        .execute(pool)
        .await?;
        let committed = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), jobs.recv())
            .await
            .map_err(|_| BenchError::Stalled(format!("no job for asset {asset} within 10s")))??;
        samples.push(committed.elapsed());
    }
    cancel.cancel();
    let _ = orchestrator.await;
    // Not read from here on; a listener left behind would hold the
    // server's notification queue during the catch-up.
    drop(jobs);

    // The backlog: written in one statement while nothing applies it.
    sqlx::query(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         SELECT ('00000000-0000-0000-0000-' || lpad((i % 500)::text, 12, '0'))::uuid,
                (SELECT min(id) FROM assets) + i % $2,
                'buy', 1, 100, now() - (i % 700) * interval '1 day'
         FROM generate_series(1, $1) AS i",
    )
    .bind(args.backlog as i64)
    .bind(assets.len() as i64)
    .execute(pool)
    .await?;

    let jobs_before = queued(pool).await?;
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(JOBS_CHANNEL).await?;
    let listening = CancellationToken::new();
    let wakeups = tokio::spawn(count_wakeups(listener, listening.clone()));
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let handle = tokio::spawn(Orchestrator::new(pool.clone(), settings).run(cancel.clone()));
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM portfolio_events WHERE processed_at IS NULL")
                .fetch_one(pool)
                .await?;
        if left == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(BenchError::Stalled(format!(
                "{left} events left after 10 minutes"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    cancel.cancel();
    let _ = handle.await;
    let jobs_queued = queued(pool).await? - jobs_before;
    listening.cancel();
    let wakeups = wakeups
        .await
        .map_err(|e| BenchError::Stalled(e.to_string()))??;

    Ok(EventsReport {
        write_to_job: Percentiles::of(samples),
        catch_up: CatchUp {
            events: args.backlog,
            seconds: round3(seconds),
            events_per_sec: (args.backlog as f64 / seconds).round(),
            batch_size: settings.event_batch_size,
            jobs_queued,
            wakeups,
            wakeups_per_job: round3(wakeups as f64 / jobs_queued.max(1) as f64),
        },
    })
}

async fn queued(pool: &sqlx::PgPool) -> Result<i64, BenchError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM backfill_queue")
        .fetch_one(pool)
        .await?)
}

/// Counts the job notifications a worker's listener receives until
/// `stop`, reading them as they come so none queue up on the server.
async fn count_wakeups(
    mut listener: PgListener,
    stop: CancellationToken,
) -> Result<u64, BenchError> {
    let mut n = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(n),
            got = listener.recv() => {
                got?;
                n += 1;
            }
        }
    }
}
