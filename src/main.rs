//! The `pricekeeper` binary: parses the command line, sets up logging and
//! hands over to the library. anyhow lives only here.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pricekeeper::bench::{self, BenchCommand};
use pricekeeper::commands::calendar::{self, CalendarArgs};
use pricekeeper::commands::fetch::{self, FetchArgs, QuoteArgs};
use pricekeeper::commands::jobs::{self, JobsCommand};
use pricekeeper::commands::prices::{self, PricesArgs};
use pricekeeper::commands::status::{self, StatusArgs};
use pricekeeper::config::Settings;
use pricekeeper::daemon::Daemon;
use pricekeeper::events::orchestrator::Orchestrator;
use pricekeeper::ops::{self, OpsArgs, retention::Gate};
use pricekeeper::providers::Providers;
use pricekeeper::queue::backfill::Backfill;
use pricekeeper::queue::worker::FINAL_WRITES;
use pricekeeper::queue::{Worker, WorkerConfig};
use pricekeeper::{db, shutdown, telemetry};
use tokio::task::JoinSet;

#[derive(Debug, Parser)]
#[command(
    name = "pricekeeper",
    version,
    about = "Keeps price history and live prices for the assets portfolios hold.",
    long_about = "Keeps price history and live prices for exactly the assets that portfolios hold.\n\n\
        A host application writes buy and sell transactions into PostgreSQL; pricekeeper turns \
        each write into tracked assets and queued one-year backfills, and fills them from free \
        market-data APIs. Every setting can be given as a flag or as the environment variable \
        shown beside it."
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the database if it is missing and apply all migrations (idempotent).
    Migrate,
    /// Apply portfolio events and run the backfill workers and their reaper.
    ///
    /// Keeps holdings and tracked assets, queues backfills, and fills them
    /// from the providers, `--concurrency` jobs at a time. Runs until
    /// SIGINT/SIGTERM: then it claims nothing more, lets running jobs finish
    /// within `--shutdown-grace`, hands the rest back to the queue and exits 0.
    /// Several workers may run against one database, on any number of machines.
    /// Serves the ops HTTP endpoints on --http-addr.
    Worker {
        #[command(flatten)]
        ops: OpsArgs,
    },
    /// The live price daemon: quotes of held assets while their markets are
    /// open, the day's bar after each close, portfolio valuations.
    ///
    /// Ticks every FETCH_INTERVAL_MINUTES (or on --cron, in UTC) and right
    /// after each session close. Only one daemon acts at a time (a leader
    /// lease in PostgreSQL); start more as standbys. On SIGTERM it resigns
    /// the lease so a standby takes over at once.
    Daemon {
        /// Run one refresh tick now, print its report as JSON and exit
        /// (exit 1 if another daemon holds the lease).
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        ops: OpsArgs,
    },
    /// Everything a single machine needs, in one process: the `worker`
    /// (orchestrator, backfill workers, reaper) and the `daemon`, with the
    /// ops HTTP endpoints on --http-addr.
    Run {
        #[command(flatten)]
        ops: OpsArgs,
    },
    /// The queue, the providers, the tracked assets and the daemon at a
    /// glance, from the database (no server needed).
    ///
    /// Exit code 0 when the queue is ok or degraded, 3 when it is failing.
    Status(StatusArgs),
    /// Stored daily bars and the latest quote of one asset, from the database.
    Prices(PricesArgs),
    /// List backfill jobs, retry failed ones or make waiting ones due now
    /// (the admin API's actions, for an operator with database access).
    Jobs {
        #[command(subcommand)]
        what: JobsCommand,
    },
    /// Print validated bars for one symbol from one provider (no database).
    ///
    /// JSON (an array of objects) or CSV on stdout; rejected rows, flagged
    /// bars and splits/dividends on stderr. Exit codes: 0 ok, 2 usage,
    /// 3 not found, 4 rate limited (the wait on stderr), 1 anything else.
    Fetch(FetchArgs),
    /// Print current prices for symbols from one provider (no database).
    ///
    /// Same formats and exit codes as `fetch`; prices found are printed even
    /// when some symbols are not.
    Quote(QuoteArgs),
    /// Print the trading sessions of an exchange (no database).
    ///
    /// One row per session: `date,open,close`, the instants in RFC 3339 UTC,
    /// so you can see when the daemon will refresh prices and store daily
    /// bars. Years beyond the exchanges' published calendars are computed
    /// by rule.
    Calendar(CalendarArgs),
    /// Measure the real code paths against a scratch database (JSON on stdout).
    ///
    /// The scratch database is created on the configured server and dropped
    /// afterwards; build with --release for meaningful numbers.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.settings.log_format);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings;
    match cli.command {
        Command::Migrate => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            tracing::info!(
                migrations = db::MIGRATOR.iter().count(),
                "database schema is up to date"
            );
        }
        Command::Bench { what } => {
            let report = bench::run(&settings, &what).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Calendar(args) => return Ok(calendar::calendar(&settings, args)),
        Command::Fetch(args) => return Ok(fetch::fetch(&settings, args).await),
        Command::Quote(args) => return Ok(fetch::quote(&settings, args).await),
        Command::Status(args) => return Ok(status::status(&settings, args).await),
        Command::Prices(args) => return Ok(prices::prices(&settings, args).await),
        Command::Jobs { what } => return Ok(jobs::jobs(&settings, what).await),
        Command::Worker { ops } => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            run_worker(pool, &settings, &ops, false).await?;
        }
        Command::Run { ops } => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            run_worker(pool, &settings, &ops, true).await?;
        }
        Command::Daemon { once, ops } => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            let daemon = Daemon::from_settings(pool.clone(), &settings)?;
            if once {
                let report = daemon.run_once().await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let bound = settings.shutdown_grace + Duration::from_secs(2);
                let cancel = shutdown::on_signal(bound, || "the price daemon's tick".to_owned());
                let mut tasks = JoinSet::new();
                let gate = Gate::Daemon(daemon.leadership().clone());
                ops::start(pool, &settings, &ops, "daemon", gate, &cancel, &mut tasks).await?;
                let ran = daemon.run(cancel.clone()).await;
                cancel.cancel();
                while tasks.join_next().await.is_some() {}
                ran?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The orchestrator and the backfill workers (with their reaper), and the
/// price daemon when `with_daemon`, side by side until a signal; a task
/// that dies cancels the others.
async fn run_worker(
    pool: sqlx::PgPool,
    settings: &Settings,
    ops: &OpsArgs,
    with_daemon: bool,
) -> anyhow::Result<()> {
    let providers = Providers::from_settings(settings)?;
    let backfill = Backfill::new(pool.clone(), providers, settings.retry_exponential_base);
    let workers = Worker::new(
        pool.clone(),
        WorkerConfig::from_settings(settings),
        backfill,
    );
    // Running jobs get the grace, their outcomes FINAL_WRITES more; past
    // that the process exits anyway (a database that went away).
    let bound = settings.shutdown_grace + FINAL_WRITES + Duration::from_secs(2);
    let held = workers.clone();
    let cancel = shutdown::on_signal(bound, move || held.in_progress());
    let mut tasks = JoinSet::new();
    // The active daemon trims old rows; without one, a worker does.
    let daemon = with_daemon
        .then(|| Daemon::from_settings(pool.clone(), settings))
        .transpose()?;
    let (role, gate) = match &daemon {
        Some(d) => ("run", Gate::Daemon(d.leadership().clone())),
        None => (
            "worker",
            Gate::Worker {
                holder: uuid::Uuid::new_v4(),
            },
        ),
    };
    ops::start(pool.clone(), settings, ops, role, gate, &cancel, &mut tasks).await?;
    if let Some(daemon) = daemon {
        let cancel = cancel.clone();
        tasks.spawn(async move {
            if let Err(e) = daemon.run(cancel.clone()).await {
                tracing::error!(error = %e, "price daemon stopped");
                cancel.cancel();
            }
        });
    }
    tasks.spawn(Orchestrator::new(pool, settings).run(cancel.clone()));
    tasks.spawn(workers.run(cancel.clone()));
    let mut failure = None;
    while let Some(ended) = tasks.join_next().await {
        if let Err(e) = ended {
            cancel.cancel();
            failure.get_or_insert(e);
        }
    }
    match failure {
        Some(e) => Err(anyhow::anyhow!("a worker task crashed: {e}")),
        None => Ok(()),
    }
}

async fn connect(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    Ok(db::connect(
        &settings.connect_options(),
        settings.db_max_connections,
        settings.db_connect_timeout,
    )
    .await?)
}

/// The error and its causes, skipping a cause whose text the message above
/// it already carries (many of ours embed their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}
