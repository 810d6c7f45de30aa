//! The `pricekeeper` binary: parses the command line, sets up logging and
//! hands over to the library. anyhow lives only here.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pricekeeper::bench::{self, BenchCommand};
use pricekeeper::catalog::refresh::WeeklyRefresh;
use pricekeeper::catalog::seed::{self, SeedArgs};
use pricekeeper::catalog::settings::{CatalogSettings, RefreshSettings};
use pricekeeper::commands::calendar::{self, CalendarArgs};
use pricekeeper::commands::fetch::{self, FetchArgs, QuoteArgs};
use pricekeeper::config::Settings;
use pricekeeper::daemon::Daemon;
use pricekeeper::events::orchestrator::Orchestrator;
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
    Worker,
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
        catalog: CatalogSettings,
        #[command(flatten)]
        refresh: RefreshSettings,
    },
    /// Everything a single machine needs, in one process: the `worker`
    /// (orchestrator, backfill workers, reaper) and the `daemon`.
    Run {
        #[command(flatten)]
        catalog: CatalogSettings,
        #[command(flatten)]
        refresh: RefreshSettings,
    },
    /// Fill `assets` with what users can buy: US stocks and ETFs (Nasdaq
    /// Trader), the top cryptocurrencies (CoinGecko, with Binance pairs),
    /// commodity futures, FX pairs and bond ETFs (built in).
    ///
    /// Idempotent: new listings are added, names updated, provider symbols
    /// filled in where none is set; a symbol that vanished from its source
    /// is marked inactive (never deleted), unless a portfolio holds it
    /// (then it is reported). A source whose files are malformed changes
    /// nothing; the others are still applied (exit 1). Prints a line per
    /// source and a summary. The daemon repeats it weekly.
    SeedCatalog(SeedArgs),
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
        Command::SeedCatalog(args) => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            return Ok(seed::command(pool, &settings, args).await);
        }
        Command::Worker => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            run_worker(pool, &settings, None).await?;
        }
        Command::Run { catalog, refresh } => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            run_worker(pool, &settings, Some((catalog, refresh))).await?;
        }
        Command::Daemon {
            once,
            catalog,
            refresh,
        } => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            let daemon = daemon(pool, &settings, catalog, refresh)?;
            if once {
                let report = daemon.run_once().await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let bound = settings.shutdown_grace + Duration::from_secs(2);
                let cancel = shutdown::on_signal(bound, || "the price daemon's tick".to_owned());
                daemon.run(cancel).await?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The price daemon with its weekly catalog refresh.
fn daemon(
    pool: sqlx::PgPool,
    settings: &Settings,
    catalog: CatalogSettings,
    refresh: RefreshSettings,
) -> anyhow::Result<Daemon> {
    let weekly = WeeklyRefresh::new(
        pool.clone(),
        settings,
        catalog,
        refresh,
        pricekeeper::daemon::ROLE,
        settings.daemon_lease,
    );
    Ok(Daemon::from_settings(pool, settings)?.with_catalog_refresh(weekly))
}

/// The orchestrator and the backfill workers (with their reaper), and the
/// price daemon when given its catalog settings, side by side until a
/// signal; a task that dies cancels the others.
async fn run_worker(
    pool: sqlx::PgPool,
    settings: &Settings,
    with_daemon: Option<(CatalogSettings, RefreshSettings)>,
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
    if let Some((catalog, refresh)) = with_daemon {
        let daemon = daemon(pool.clone(), settings, catalog, refresh)?;
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
