//! The `pricekeeper` binary: parses the command line, sets up logging and
//! hands over to the library. anyhow lives only here.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pricekeeper::bench::{self, BenchCommand};
use pricekeeper::catalog::seed::{self, SeedArgs};
use pricekeeper::catalog::settings::{CatalogSettings, RefreshSettings};
use pricekeeper::commands::calendar::{self, CalendarArgs};
use pricekeeper::commands::fetch::{self, FetchArgs, QuoteArgs};
use pricekeeper::commands::jobs::{self, JobsCommand};
use pricekeeper::commands::market::{self, MarketArgs};
use pricekeeper::commands::prices::{self, PricesArgs};
use pricekeeper::commands::status::{self, StatusArgs};
use pricekeeper::config::{DbSettings, Global, Settings};
use pricekeeper::demo::{self, DemoArgs, DemoError};
use pricekeeper::embedded_pg::{self, Choice};
use pricekeeper::ops::{self, OpsArgs, retention::Gate};
use pricekeeper::pipeline::{self, Pipeline};
use pricekeeper::queue::worker::FINAL_WRITES;
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
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the database if it is missing and apply all migrations (idempotent).
    Migrate {
        #[command(flatten)]
        db: DbSettings,
    },
    /// Apply portfolio events and run the backfill workers and their reaper.
    ///
    /// Keeps holdings and tracked assets, queues backfills, and fills them
    /// from the providers, `--concurrency` jobs at a time. Runs until
    /// SIGINT/SIGTERM: then it claims nothing more, lets running jobs finish
    /// within `--shutdown-grace`, hands the rest back to the queue and exits 0.
    /// Several workers may run against one database, on any number of machines.
    Worker {
        #[command(flatten)]
        ops: OpsArgs,
        #[command(flatten)]
        settings: Settings,
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
        #[command(flatten)]
        catalog: CatalogSettings,
        #[command(flatten)]
        refresh: RefreshSettings,
        #[command(flatten)]
        settings: Settings,
    },
    /// Everything a single machine needs, in one process: the `worker`
    /// (orchestrator, backfill workers, reaper) and the `daemon`.
    ///
    /// Without DATABASE_URL and with nothing answering on 127.0.0.1:5432,
    /// it starts a private PostgreSQL from the server binaries installed on
    /// this machine (see PRICEKEEPER_EMBEDDED_PG) and stops it on exit.
    Run {
        #[command(flatten)]
        ops: OpsArgs,
        #[command(flatten)]
        catalog: CatalogSettings,
        #[command(flatten)]
        refresh: RefreshSettings,
        #[command(flatten)]
        settings: Settings,
    },
    /// The queue, the providers, the tracked assets and the daemon at a
    /// glance, from the database (no server needed).
    ///
    /// Exit code 0 when the queue is ok or degraded, 3 when it is failing.
    Status {
        #[command(flatten)]
        args: StatusArgs,
        #[command(flatten)]
        settings: Settings,
    },
    /// Stored daily bars and the latest quote of one asset, from the database.
    Prices {
        #[command(flatten)]
        args: PricesArgs,
        #[command(flatten)]
        settings: Settings,
    },
    /// List backfill jobs, retry failed ones or make waiting ones due now
    /// (the admin API's actions, for an operator with database access).
    Jobs {
        #[command(subcommand)]
        what: JobsCommand,
        #[command(flatten)]
        settings: Settings,
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
    SeedCatalog {
        #[command(flatten)]
        args: SeedArgs,
        #[command(flatten)]
        settings: Settings,
    },
    /// The whole pipeline end to end on this machine, in under a minute:
    /// no internet, no setup.
    ///
    /// A fresh demo database (on the embedded PostgreSQL unless DATABASE_URL
    /// is set or a server answers on 127.0.0.1:5432), a simulated market
    /// answering in the real Yahoo, Binance and CoinGecko formats, three
    /// portfolios' trades written in plain SQL, the orchestrator and workers
    /// until every backfill settled, one daemon tick, and a summary read
    /// back from the tables.
    Demo {
        #[command(flatten)]
        args: DemoArgs,
        #[command(flatten)]
        settings: Settings,
    },
    /// Serve the demo's simulated market over HTTP (no database), for a
    /// deployment without internet: point PRICEKEEPER_YAHOO_URL,
    /// PRICEKEEPER_BINANCE_URL and PRICEKEEPER_COINGECKO_URL at it.
    ///
    /// Answers as Yahoo, Binance and CoinGecko do, in their formats, for the
    /// demo catalog's instruments (sql/demo_catalog.sql), with a few 429s and
    /// 5xx on purpose. Runs until SIGINT/SIGTERM.
    Market(MarketArgs),
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
        #[command(flatten)]
        settings: Settings,
    },
}

/// Settings each command ignores, hidden from its `--help` and usage (one
/// `Settings` serves every command that runs the pipeline): the daemon's
/// for `worker`, the backfill workers' for `daemon`, the embedded server's
/// where none is started, and for `demo` what it sets itself.
const UNUSED: &[(&str, &[&[&str]])] = &[
    ("worker", &[DAEMON, EMBEDDED]),
    ("status", &[DAEMON, WORKERS, EMBEDDED]),
    ("prices", &[DAEMON, WORKERS, EMBEDDED]),
    ("jobs", &[DAEMON, WORKERS, EMBEDDED]),
    ("daemon", &[WORKERS, EMBEDDED]),
    ("bench", &[EMBEDDED]),
    ("demo", &[DEMO_SETS]),
];
const DAEMON: &[&str] = &[
    "fetch_interval_minutes",
    "trading_hours_only",
    "cron",
    "daemon_lease",
    "calendar_closures",
];
const WORKERS: &[&str] = &[
    "backfill_batch_size",
    "failed_cooloff",
    "failed_rounds",
    "job_lease",
    "concurrency",
    "poll_interval",
    "event_batch_size",
    "backfill_months",
];
const EMBEDDED: &[&str] = &["embedded_pg", "pg_bindir", "pg_dir"];
/// The demo points the providers at its market and speeds everything up.
const DEMO_SETS: &[&str] = &[
    "yahoo_url",
    "binance_url",
    "coingecko_url",
    "yahoo_rate",
    "binance_rate",
    "coingecko_rate",
    "max_requests_per_minute",
    "coingecko_api_key",
    "http_timeout",
    "retry_exponential_base",
    "poll_interval",
    "trading_hours_only",
    "fetch_interval_minutes",
    "cron",
];

/// The command line, with each command's help and usage showing only the
/// settings it uses.
fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Cli::command();
    for (name, lists) in UNUSED {
        command = command.mut_subcommand(name, |sub| {
            lists
                .iter()
                .flat_map(|list| list.iter())
                .fold(sub, |sub, id| sub.mut_arg(id, |a| a.hide(true)))
        });
    }
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    // While this is the only thread (see the function).
    pricekeeper::memory::one_malloc_arena();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts")
        .block_on(start())
}

async fn start() -> ExitCode {
    let cli = parse();
    telemetry::init(cli.global.log_format);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Migrate { db } => {
            let pool = connect_to(&db, &db.connect_options()).await?;
            db::migrate(&pool).await?;
            tracing::info!(
                migrations = db::MIGRATOR.iter().count(),
                "database schema is up to date"
            );
        }
        Command::Bench { what, settings } => {
            let report = bench::run(&settings, &what).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Calendar(args) => return Ok(calendar::calendar(args)),
        Command::Market(args) => {
            let cancel =
                shutdown::on_signal(Duration::from_secs(2), || "the simulated market".to_owned());
            market::serve(&args, cancel.cancelled()).await?;
        }
        Command::Fetch(args) => return Ok(fetch::fetch(args).await),
        Command::Quote(args) => return Ok(fetch::quote(args).await),
        Command::Status { args, settings } => return Ok(status::status(&settings, args).await),
        Command::Prices { args, settings } => return Ok(prices::prices(&settings, args).await),
        Command::Jobs { what, settings } => return Ok(jobs::jobs(&settings, what).await),
        Command::SeedCatalog { args, settings } => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            return Ok(seed::command(pool, &settings, args).await);
        }
        Command::Worker { ops, settings } => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            run_worker(pool, &settings, &ops, None).await?;
        }
        Command::Run {
            ops,
            catalog,
            refresh,
            settings,
        } => {
            let server = choose_server(&settings).await?;
            let result = async {
                let pool = connect_to(&settings.db, &server.main_options()).await?;
                db::migrate(&pool).await?;
                run_worker(pool, &settings, &ops, Some((catalog, refresh))).await
            }
            .await;
            stop_embedded(&server);
            result?;
        }
        Command::Demo { args, settings } => {
            let server = choose_server(&settings).await?;
            let cancel = shutdown::on_signal(Duration::from_secs(10), || "the demo".to_owned());
            let result = demo::run(&settings, &args, &server, cancel).await;
            stop_embedded(&server);
            match result {
                Err(DemoError::Interrupted) => return Ok(ExitCode::from(130)),
                other => other?,
            }
        }
        Command::Daemon {
            once,
            ops,
            catalog,
            refresh,
            settings,
        } => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            let daemon = pipeline::daemon(pool.clone(), &settings, catalog, refresh)?;
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
/// price daemon when given its catalog settings, side by side until a
/// signal; a task that dies cancels the others.
async fn run_worker(
    pool: sqlx::PgPool,
    settings: &Settings,
    ops: &OpsArgs,
    with_daemon: Option<(CatalogSettings, RefreshSettings)>,
) -> anyhow::Result<()> {
    // Running jobs get the grace, their outcomes FINAL_WRITES more; past
    // that the process exits anyway (a database that went away).
    let bound = settings.shutdown_grace + FINAL_WRITES + Duration::from_secs(2);
    let pipeline = Pipeline::new(pool.clone(), settings)?;
    let held = pipeline.workers();
    let cancel = shutdown::on_signal(bound, move || held.in_progress());
    let mut tasks = JoinSet::new();
    let daemon = with_daemon
        .map(|(catalog, refresh)| pipeline::daemon(pool.clone(), settings, catalog, refresh))
        .transpose()?;
    // The active daemon trims old rows; without one, a worker does.
    let (role, gate) = match &daemon {
        Some(d) => ("run", Gate::Daemon(d.leadership().clone())),
        None => (
            "worker",
            Gate::Worker {
                holder: uuid::Uuid::new_v4(),
            },
        ),
    };
    ops::start(pool, settings, ops, role, gate, &cancel, &mut tasks).await?;
    pipeline.spawn(daemon, &cancel, &mut tasks);
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
    connect_to(&settings.db, &settings.connect_options()).await
}

async fn connect_to(
    db: &DbSettings,
    options: &sqlx::postgres::PgConnectOptions,
) -> anyhow::Result<sqlx::PgPool> {
    let (pool, schema) = db::connect_in_schema(
        options,
        db.schema.as_deref(),
        db.db_max_connections,
        db.db_connect_timeout,
    )
    .await?;
    tracing::info!(%schema, "pricekeeper's tables live in this schema");
    Ok(pool)
}

/// DATABASE_URL, the default address, or the embedded PostgreSQL (which a
/// forced exit stops too).
async fn choose_server(settings: &Settings) -> anyhow::Result<Choice> {
    let db = &settings.db;
    let server = embedded_pg::choose(
        db.explicit_database(),
        db.connect_options(),
        db.embedded_pg,
        db.embedded_place(),
    )
    .await?;
    if let Some(pg) = server.embedded() {
        let pg = pg.clone();
        shutdown::before_forced_exit(move || pg.stop());
    }
    tracing::info!(database = %server.describe(), "database server chosen");
    Ok(server)
}

fn stop_embedded(server: &Choice) {
    if let Some(pg) = server.embedded() {
        pg.stop();
    }
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
    db::without_server_line(&text)
}
