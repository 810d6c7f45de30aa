//! `pricekeeper jobs list|retry`: the backfill queue for an operator with
//! database access, the same actions as the admin API
//! ([`crate::ops::actions`]).

use std::process::ExitCode;

use super::status::{EXIT_USAGE, Format, clean, connect_or_report, table, truncate};
use crate::config::Settings;
use crate::ops::actions::{self, ActionError, Changed, Selector};

/// What `jobs list` shows without --status: every job not ended for good.
const OPEN: [&str; 4] = ["pending", "in_progress", "rate_limited", "failed"];
const ALL: [&str; 6] = [
    "pending",
    "in_progress",
    "rate_limited",
    "failed",
    "completed",
    "cancelled",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    /// Pending, in progress, rate limited and failed.
    Open,
    Pending,
    InProgress,
    RateLimited,
    Failed,
    Completed,
    Cancelled,
    All,
}

impl StatusFilter {
    fn statuses(self) -> Vec<&'static str> {
        match self {
            Self::Open => OPEN.to_vec(),
            Self::All => ALL.to_vec(),
            Self::Pending => vec!["pending"],
            Self::InProgress => vec!["in_progress"],
            Self::RateLimited => vec!["rate_limited"],
            Self::Failed => vec!["failed"],
            Self::Completed => vec!["completed"],
            Self::Cancelled => vec!["cancelled"],
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// Backfill jobs with their asset and reason, newest change first.
    List {
        #[arg(long, value_enum, default_value_t = StatusFilter::Open)]
        status: StatusFilter,
        /// Only this asset's jobs (its symbol).
        #[arg(long)]
        asset: Option<String>,
        /// Exchange (MIC) of --asset, when several list the symbol.
        #[arg(long, requires = "asset")]
        exchange: Option<String>,
        /// Show at most this many jobs.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Give failed jobs a new set of attempts (or, with --waiting, make
    /// pending and rate-limited jobs due now), for one job, one asset or all.
    Retry {
        /// One job, by id.
        #[arg(long, conflicts_with_all = ["asset", "all"])]
        job: Option<i64>,
        /// Every job of this asset (its symbol).
        #[arg(long, conflicts_with = "all")]
        asset: Option<String>,
        /// Exchange (MIC) of --asset, when several list the symbol.
        #[arg(long, requires = "asset")]
        exchange: Option<String>,
        /// Every job.
        #[arg(long)]
        all: bool,
        /// Make waiting jobs (pending or rate limited, due later) due now
        /// instead of retrying failed ones. A provider still cooling down
        /// keeps its jobs waiting.
        #[arg(long)]
        waiting: bool,
    },
}

pub async fn jobs(settings: &Settings, command: JobsCommand) -> ExitCode {
    if let JobsCommand::Retry {
        job: None,
        asset: None,
        all: false,
        ..
    } = &command
    {
        eprintln!("error: name the jobs to retry: --job ID, --asset SYMBOL or --all");
        return ExitCode::from(EXIT_USAGE);
    }
    let Some(pool) = connect_or_report(settings).await else {
        return ExitCode::FAILURE;
    };
    let done = match command {
        JobsCommand::List {
            status,
            asset,
            exchange,
            limit,
            format,
        } => list(&pool, status, asset, exchange, limit, format).await,
        JobsCommand::Retry {
            job,
            asset,
            exchange,
            all: _,
            waiting,
        } => retry(&pool, job, asset, exchange, waiting).await,
    };
    match done {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", clean(&e.to_string()));
            match e {
                ActionError::NotFound(_) => ExitCode::from(super::prices::EXIT_NOT_FOUND),
                ActionError::Invalid(_) | ActionError::Ambiguous { .. } => {
                    ExitCode::from(EXIT_USAGE)
                }
                ActionError::Db(_) => ExitCode::FAILURE,
            }
        }
    }
}

async fn asset_id(
    pool: &sqlx::PgPool,
    asset: Option<String>,
    exchange: Option<String>,
) -> Result<Option<i64>, ActionError> {
    match asset {
        Some(symbol) => Ok(Some(
            actions::find_asset(pool, &symbol, exchange.as_deref())
                .await?
                .id,
        )),
        None => Ok(None),
    }
}

async fn list(
    pool: &sqlx::PgPool,
    status: StatusFilter,
    asset: Option<String>,
    exchange: Option<String>,
    limit: i64,
    format: Format,
) -> Result<ExitCode, ActionError> {
    let asset = asset_id(pool, asset, exchange).await?;
    let jobs = actions::list_jobs(pool, &status.statuses(), asset, limit).await?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&jobs).expect("jobs serialize")
        ),
        Format::Table => {
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        format!("{} {}", clean(&j.symbol), clean(&j.exchange)),
                        j.status.clone(),
                        format!("{}..{}", j.start_date, j.end_date),
                        format!("{}/{}", j.attempts, j.max_attempts),
                        j.provider.clone().unwrap_or_else(|| "-".to_owned()),
                        j.updated_at.format("%Y-%m-%d %H:%M").to_string(),
                        j.error_message
                            .as_deref()
                            .map_or("-".to_owned(), |m| truncate(&clean(m), 80)),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "JOB", "ASSET", "STATUS", "RANGE", "ATTEMPTS", "PROVIDER", "UPDATED",
                        "REASON"
                    ],
                    &rows
                )
            );
            if jobs.is_empty() {
                println!("(no jobs)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn retry(
    pool: &sqlx::PgPool,
    job: Option<i64>,
    asset: Option<String>,
    exchange: Option<String>,
    waiting: bool,
) -> Result<ExitCode, ActionError> {
    let which = match (job, asset_id(pool, asset, exchange).await?) {
        (Some(id), _) => Selector::Job(id),
        (None, Some(asset)) => Selector::Asset(asset),
        (None, None) => Selector::All,
    };
    let changed: Vec<Changed> = if waiting {
        actions::make_due(pool, which).await?
    } else {
        actions::retry_failed(pool, which).await?
    };
    let (action, verb) = if waiting {
        ("make_due", "made due now")
    } else {
        ("retry", "queued again")
    };
    tracing::info!(
        action,
        ?which,
        jobs = changed.len(),
        "jobs {verb} by an operator"
    );
    for c in &changed {
        println!(
            "job {} ({} {}, {}..{}, was {}) {verb}",
            c.id,
            clean(&c.symbol),
            clean(&c.exchange),
            c.start_date,
            c.end_date,
            c.was
        );
    }
    if changed.is_empty() {
        println!(
            "nothing to do: no {} jobs matched",
            if waiting { "waiting" } else { "failed" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
