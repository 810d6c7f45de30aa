//! `bench queue`: the backfill queue's drain rate, bare (a no-op job body)
//! and real (the Yahoo client against a local server answering a one-year
//! daily series at once, validation, the bulk upsert), insert → start
//! latency with idle workers, and the peak memory of the real drain.
//!
//! Everything runs the production [`Worker`] loop: batched claims, job
//! tasks, batched completions, heartbeat, reaper and LISTEN.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::yahoo_server::{BARS, serve_year};
use super::{BenchError, Percentiles, Scratch, round3};
use crate::config::Settings;
use crate::events::JOBS_CHANNEL;
use crate::providers::{Providers, Rate};
use crate::queue::backfill::Backfill;
use crate::queue::worker::{JobBody, NoOp};
use crate::queue::{ClaimedJob, Clock, Completion, Outcome, Worker, WorkerConfig};

#[derive(Debug, clap::Args)]
pub struct QueueBench {
    /// Jobs per bare-queue drain.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// Jobs per real-backfill drain (each stores 252 daily bars).
    #[arg(long, default_value_t = 5_000)]
    pub real_jobs: usize,
    /// Single jobs timed from insert to start.
    #[arg(long, default_value_t = 1_000)]
    pub latency_jobs: usize,
    /// Worker concurrencies to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "4,16,64")]
    pub concurrencies: Vec<usize>,
    /// Jobs per claim in the drains; default: the concurrency.
    #[arg(long)]
    pub batch_size: Option<u32>,
}

#[derive(Debug, serde::Serialize)]
pub struct QueueReport {
    pub bare: Vec<Drain>,
    pub real: Vec<Drain>,
    /// Commit of a job (announced as the orchestrator does) → its body starts.
    pub insert_to_start: Percentiles,
    pub peak_rss: PeakRss,
    pub targets: Vec<Target>,
}

#[derive(Debug, serde::Serialize)]
pub struct Drain {
    pub concurrency: usize,
    pub batch_size: u32,
    pub jobs: usize,
    pub seconds: f64,
    pub jobs_per_sec: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bars_per_sec: Option<f64>,
}

#[derive(Debug, serde::Serialize)]
pub struct PeakRss {
    pub concurrency: usize,
    pub vm_hwm_mb: f64,
    /// Resident when the measurement started (what earlier phases left).
    pub rss_at_start_mb: f64,
    /// What the number covers.
    pub scope: String,
}

#[derive(Debug, serde::Serialize)]
pub struct Target {
    pub what: &'static str,
    pub target: String,
    pub measured: f64,
    pub met: bool,
}

pub async fn run(settings: &Settings, args: &QueueBench) -> Result<QueueReport, BenchError> {
    let scratch = Scratch::create(&settings.connect_options(), 16).await?;
    let report = measure(&scratch.pool, settings, args).await;
    scratch.drop().await?;
    report
}

async fn measure(
    pool: &PgPool,
    settings: &Settings,
    args: &QueueBench,
) -> Result<QueueReport, BenchError> {
    let mut bare = Vec::new();
    for &concurrency in &args.concurrencies {
        let config = drain_config(settings, concurrency, args.batch_size);
        reset(pool).await?;
        insert_bare_jobs(pool, args.jobs).await?;
        let worker = Worker::new(pool.clone(), config.clone(), NoOp);
        let seconds = drain(worker, args.jobs).await?;
        bare.push(Drain::of(&config, args.jobs, seconds, None));
        tracing::info!(
            concurrency,
            jobs_per_sec = bare.last().map(|d| d.jobs_per_sec),
            "bare drain"
        );
    }

    let (server, days) = serve_year(None).await?;
    let mut real = Vec::new();
    let mut peak_rss = None;
    let widest = args.concurrencies.iter().copied().max().unwrap_or(1);
    for &concurrency in &args.concurrencies {
        let config = drain_config(settings, concurrency, args.batch_size);
        reset(pool).await?;
        insert_real_jobs(pool, args.real_jobs, &days).await?;
        let reset_peak = concurrency == widest && reset_peak_rss();
        let rss_at_start = vm_rss_mb();
        let mut local = settings.clone();
        local.providers.yahoo_url = server.clone();
        local.providers.yahoo_rate = Rate {
            count: 10_000_000,
            per: Duration::from_secs(1),
        };
        local.providers.max_requests_per_minute = None;
        let providers =
            Providers::from_settings(&local).map_err(|e| BenchError::Stalled(e.to_string()))?;
        let body = Backfill::new(pool.clone(), providers, settings.retry_exponential_base);
        let worker = Worker::new(pool.clone(), config.clone(), body);
        let seconds = drain(worker, args.real_jobs).await?;
        check_stored(pool, args.real_jobs).await?;
        real.push(Drain::of(&config, args.real_jobs, seconds, Some(BARS)));
        tracing::info!(
            concurrency,
            jobs_per_sec = real.last().map(|d| d.jobs_per_sec),
            "real drain"
        );
        if concurrency == widest {
            peak_rss = Some(PeakRss {
                concurrency,
                vm_hwm_mb: vm_hwm_mb(),
                rss_at_start_mb: rss_at_start,
                scope: if reset_peak {
                    "this process during the real drain at this concurrency: the worker and the \
                     local HTTP server it calls"
                } else {
                    "this process since it started (the peak could not be reset): every drain \
                     before, the worker and the local HTTP server"
                }
                .to_owned(),
            });
        }
    }

    reset(pool).await?;
    let insert_to_start = latency(pool, settings, args.latency_jobs).await?;
    let peak_rss = peak_rss.unwrap_or(PeakRss {
        concurrency: 0,
        vm_hwm_mb: vm_hwm_mb(),
        rss_at_start_mb: vm_rss_mb(),
        scope: "no real drain ran".to_owned(),
    });
    let targets = targets(&bare, &real, &insert_to_start, &peak_rss);
    Ok(QueueReport {
        bare,
        real,
        insert_to_start,
        peak_rss,
        targets,
    })
}

fn drain_config(settings: &Settings, concurrency: usize, batch: Option<u32>) -> WorkerConfig {
    WorkerConfig {
        concurrency,
        batch_size: batch.unwrap_or(concurrency as u32),
        ..WorkerConfig::from_settings(settings)
    }
}

impl Drain {
    fn of(config: &WorkerConfig, jobs: usize, seconds: f64, bars: Option<usize>) -> Self {
        let rate = jobs as f64 / seconds;
        Self {
            concurrency: config.concurrency,
            batch_size: config.batch_size,
            jobs,
            seconds: round3(seconds),
            jobs_per_sec: rate.round(),
            bars_per_sec: bars.map(|b| (rate * b as f64).round()),
        }
    }
}

async fn reset(pool: &PgPool) -> Result<(), BenchError> {
    sqlx::query(
        "TRUNCATE backfill_queue, backfill_rejects, asset_prices, provider_state, assets CASCADE",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// `n` jobs for one asset, each for its own day (active jobs must differ).
async fn insert_bare_jobs(pool: &PgPool, n: usize) -> Result<(), BenchError> {
    sqlx::query(
        "WITH a AS (INSERT INTO assets (symbol, asset_type, exchange)
                    VALUES ('BENCH', 'stock', 'XNAS') RETURNING id)
         INSERT INTO backfill_queue (asset_id, start_date, end_date)
         SELECT a.id, date '1800-01-01' + i, date '1800-01-01' + i
         FROM a, generate_series(1, $1) AS i",
    )
    .bind(n as i32)
    .execute(pool)
    .await?;
    analyze(pool).await
}

/// One asset per job, each a one-year backfill.
pub(super) async fn insert_real_jobs(
    pool: &PgPool,
    n: usize,
    days: &[NaiveDate],
) -> Result<(), BenchError> {
    sqlx::query(
        "WITH a AS (INSERT INTO assets (symbol, asset_type, exchange, currency)
                    SELECT 'B' || i, 'stock', 'XNAS', 'USD' FROM generate_series(1, $1) AS i
                    RETURNING id)
         INSERT INTO backfill_queue (asset_id, start_date, end_date)
         SELECT id, $2, $3 FROM a",
    )
    .bind(n as i32)
    .bind(days[0])
    .bind(days[days.len() - 1])
    .execute(pool)
    .await?;
    analyze(pool).await
}

async fn analyze(pool: &PgPool) -> Result<(), BenchError> {
    sqlx::query("VACUUM ANALYZE backfill_queue")
        .execute(pool)
        .await?;
    sqlx::query("ANALYZE assets").execute(pool).await?;
    Ok(())
}

/// Runs `worker` until it has completed `jobs`; returns the seconds taken.
async fn drain<B: JobBody>(worker: Worker<B>, jobs: usize) -> Result<f64, BenchError> {
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let watched = worker.clone();
    let running = tokio::spawn(worker.run(cancel.clone()));
    let mut last = (0, Instant::now());
    loop {
        let done = watched.stats().completed.load(Ordering::Relaxed) as usize;
        if done >= jobs {
            break;
        }
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) {
            cancel.cancel();
            return Err(BenchError::Stalled(format!(
                "no job completed for 30 s ({done} of {jobs} done)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    cancel.cancel();
    let _ = running.await;
    Ok(seconds)
}

/// Every real job stored its whole series.
async fn check_stored(pool: &PgPool, jobs: usize) -> Result<(), BenchError> {
    let (completed, bars): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM backfill_queue WHERE status = 'completed' AND bars_stored = $1),
                (SELECT count(*) FROM asset_prices)",
    )
    .bind(BARS as i32)
    .fetch_one(pool)
    .await?;
    if completed as usize != jobs || bars as usize != jobs * BARS {
        return Err(BenchError::Stalled(format!(
            "the real drain stored {bars} bars for {completed} jobs; expected {} for {jobs}",
            jobs * BARS
        )));
    }
    Ok(())
}

/// Records when each job's body started, and wakes the waiting bench.
#[derive(Clone, Default)]
struct Stamp {
    started: Arc<Mutex<HashMap<i64, Instant>>>,
    wake: Arc<Notify>,
}

#[async_trait]
impl JobBody for Stamp {
    async fn run(&self, job: &ClaimedJob, _clock: &Clock) -> Outcome {
        self.started
            .lock()
            .expect("stamps")
            .insert(job.id.0, Instant::now());
        self.wake.notify_one();
        Outcome::Complete(Completion::empty())
    }
}

/// Insert → start over `n` single jobs, each announced in its inserting
/// statement as the orchestrator does, the worker idle before each.
async fn latency(pool: &PgPool, settings: &Settings, n: usize) -> Result<Percentiles, BenchError> {
    let asset: i64 = sqlx::query_scalar(
        "INSERT INTO assets (symbol, asset_type, exchange) VALUES ('LAT', 'stock', 'XNAS') RETURNING id",
    )
    .fetch_one(pool)
    .await?;
    let stamp = Stamp::default();
    let worker = Worker::new(
        pool.clone(),
        WorkerConfig::from_settings(settings),
        stamp.clone(),
    );
    let watched = worker.clone();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(worker.run(cancel.clone()));
    // The worker is up once it has taken a first job.
    let mut samples = Vec::with_capacity(n);
    for i in 0..=n {
        let before = Instant::now();
        let id: i64 = sqlx::query_scalar(
            "WITH job AS (INSERT INTO backfill_queue (asset_id, start_date, end_date)
                          VALUES ($1, date '1800-01-01' + $2, date '1800-01-01' + $2)
                          RETURNING id)
             SELECT id FROM job CROSS JOIN LATERAL pg_notify($3, job.id::text) AS woken",
        )
        .bind(asset)
        .bind(i as i32)
        .bind(JOBS_CHANNEL)
        .fetch_one(pool)
        .await?;
        let started = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(at) = stamp.started.lock().expect("stamps").get(&id) {
                    return *at;
                }
                stamp.wake.notified().await;
            }
        })
        .await
        .map_err(|_| BenchError::Stalled(format!("job {id} did not start within 10 s")))?;
        // Idle again: its completion is written before the next insert.
        while watched.stats().completed.load(Ordering::Relaxed) < (i + 1) as u64 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        if i > 0 {
            samples.push(started.saturating_duration_since(before));
        }
    }
    cancel.cancel();
    let _ = running.await;
    Ok(Percentiles::of(samples))
}

/// Resets the kernel's peak-RSS mark for this process (Linux: writing 5 to
/// clear_refs); false when that is not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// VmHWM (peak resident memory) from /proc/self/status, in MB; 0 when unavailable.
fn vm_hwm_mb() -> f64 {
    status_mb("VmHWM:")
}

/// VmRSS (resident memory now), in MB.
fn vm_rss_mb() -> f64 {
    status_mb("VmRSS:")
}

fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    round3(kb / 1024.0)
}

fn targets(bare: &[Drain], real: &[Drain], latency: &Percentiles, rss: &PeakRss) -> Vec<Target> {
    let best = |drains: &[Drain]| drains.iter().map(|d| d.jobs_per_sec).fold(0.0, f64::max);
    vec![
        Target {
            what: "bare drain, best concurrency (jobs/s)",
            target: "> 25000".into(),
            measured: best(bare),
            met: best(bare) > 25_000.0,
        },
        Target {
            what: "real backfill drain, best concurrency (jobs/s)",
            target: "> 400".into(),
            measured: best(real),
            met: best(real) > 400.0,
        },
        Target {
            what: "insert → start latency p95 (ms)",
            target: "< 10".into(),
            measured: latency.p95_ms,
            met: latency.p95_ms < 10.0,
        },
        Target {
            what: "peak RSS at the widest concurrency (MB)",
            target: "< 100".into(),
            measured: rss.vm_hwm_mb,
            met: rss.vm_hwm_mb > 0.0 && rss.vm_hwm_mb < 100.0,
        },
    ]
}
