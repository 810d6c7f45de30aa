//! The `pricekeeper` binary: parses the command line, sets up logging and
//! hands over to the library. anyhow lives only here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pricekeeper::commands::fetch::{self, FetchArgs, QuoteArgs};
use pricekeeper::config::Settings;
use pricekeeper::events::orchestrator::Orchestrator;
use pricekeeper::{db, shutdown, telemetry};

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
    /// Apply portfolio events: keep holdings and tracked assets, queue backfills.
    ///
    /// Runs until SIGINT/SIGTERM. Several workers may run against one
    /// database; each applies events no other one holds.
    Worker,
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
        Command::Fetch(args) => return Ok(fetch::fetch(&settings, args).await),
        Command::Quote(args) => return Ok(fetch::quote(&settings, args).await),
        Command::Worker => {
            let pool = connect(&settings).await?;
            db::migrate(&pool).await?;
            let cancel = shutdown::on_signal();
            Orchestrator::new(pool, &settings).run(cancel).await;
        }
    }
    Ok(ExitCode::SUCCESS)
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
