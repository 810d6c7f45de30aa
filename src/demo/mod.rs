//! `pricekeeper demo`: the whole pipeline on one machine, with no internet
//! and no setup. A fresh demo database on the chosen server (embedded by
//! default); a simulated market ([`market`]) that the real provider
//! clients fetch from; the host application's writes in plain SQL
//! ([`script`]); the orchestrator and workers until every job settled, one
//! daemon tick; then a summary read back from the tables ([`summary`]).

pub mod market;
pub mod progress;
pub mod script;
pub mod summary;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor, PgConnection};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::daemon::{Daemon, DaemonError};
use crate::db::{self, DbError, quote_ident};
use crate::embedded_pg::Choice;
use crate::local_http;
use crate::pipeline::{Pipeline, PipelineError};
use crate::providers::Rate;
use market::SimMarket;
use progress::{Progress, Snapshot};
use summary::Summary;

/// Demo databases tried in turn when another demo holds the first.
const PARALLEL_DEMOS: u32 = 5;

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "The market is simulated: prices are a deterministic random walk, \
    served in the real Yahoo, Binance and CoinGecko formats by a local HTTP server. \
    Nothing is fetched from the internet."
)]
pub struct DemoArgs {
    /// After the summary, keep the pipeline, the daemon and the simulated
    /// market running (until Ctrl-C) so you can write your own
    /// transactions with the psql line it prints.
    #[arg(long)]
    pub keep_running: bool,
    /// The database the demo drops and creates afresh on the server (a
    /// second demo running at the same time takes NAME_2, …).
    #[arg(
        long = "demo-database",
        env = "PRICEKEEPER_DEMO_DATABASE",
        default_value = "pricekeeper_demo",
        value_name = "NAME"
    )]
    pub database: String,
    /// How long the pipeline may take to settle before the demo gives up.
    #[arg(long = "demo-timeout", env = "PRICEKEEPER_DEMO_TIMEOUT", default_value = "120s",
          value_parser = crate::config::duration("PRICEKEEPER_DEMO_TIMEOUT", Duration::from_secs(5), Duration::from_secs(3600)))]
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("database error in the demo: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("cannot start the simulated market: {0}")]
    Market(#[from] std::io::Error),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("the daemon tick failed: {0}")]
    Daemon(#[from] DaemonError),
    #[error(
        "{PARALLEL_DEMOS} demos are already running on this server (databases {0}, {0}_2, …); pass --demo-database"
    )]
    Busy(String),
    #[error("the pipeline did not settle within {}: {}", humantime::format_duration(*.waited), .state)]
    Stalled { waited: Duration, state: String },
    #[error("interrupted")]
    Interrupted,
}

/// Runs the demo on `server`; returns when it is done (or, with
/// `--keep-running`, when `cancel` fires).
pub async fn run(
    settings: &Settings,
    args: &DemoArgs,
    server: &Choice,
    cancel: CancellationToken,
) -> Result<(), DemoError> {
    println!(
        "pricekeeper demo: the whole pipeline, against a SIMULATED market (no internet, no real prices)."
    );
    let (name, _claim) = claim_database(&server.options("postgres"), &args.database).await?;
    let options = server.options(&name);
    recreate(&server.options("postgres"), &name).await?;
    let (pool, schema) = db::connect_in_schema(
        &options,
        settings.db.schema.as_deref(),
        10,
        Duration::from_secs(30),
    )
    .await?;
    db::migrate(&pool).await?;
    println!("database: {name} (fresh), on {}", server.describe());

    let market = Arc::new(SimMarket::new(
        &script::instruments(),
        Utc::now().date_naive(),
        true,
    ));
    let url = local_http::serve(market.clone()).await?;
    println!(
        "simulated market: {url} (Yahoo, Binance and CoinGecko formats; a few 429s and 5xx on purpose)"
    );
    let settings = demo_settings(settings, &url);

    let assets = script::write_catalog(&pool).await?;
    let trades = script::write_transactions(&pool).await?;
    println!(
        "host application: wrote {assets} assets and {trades} buys and sells for 3 portfolios \
         (plain INSERTs into assets and portfolio_transactions)"
    );

    let pipeline = cancel.child_token();
    let mut tasks = JoinSet::new();
    Pipeline::new(pool.clone(), &settings)?.spawn(None, &pipeline, &mut tasks);
    let settled = wait_until_settled(&pool, args.timeout, &cancel).await;
    if let Err(e) = settled {
        pipeline.cancel();
        while tasks.join_next().await.is_some() {}
        return Err(e);
    }

    let tick = Daemon::from_settings(pool.clone(), &settings)?
        .run_once()
        .await?;
    let summary = Summary::read(&pool, market.stats(), tick.quotes_written).await?;
    println!();
    print!("{}", summary.render());
    println!();
    println!("Where to look next:");
    let psql = server.psql(&name, &schema);
    println!("  {psql}");
    println!("    SELECT * FROM tracked_assets;  SELECT * FROM backfill_queue;");
    println!(
        "    SELECT * FROM asset_prices ORDER BY ts DESC LIMIT 20;  SELECT * FROM portfolio_valuations;"
    );
    println!(
        "  pricekeeper status | jobs list | prices AAPL   (with DATABASE_URL set to the database above)"
    );
    println!(
        "  http://127.0.0.1:9187/   (the status page, while `run`, `worker` or `daemon` runs)"
    );
    println!("  The market above was simulated. For real prices: `pricekeeper run` (README).");

    if args.keep_running {
        let daemon_cancel = pipeline.clone();
        tasks.spawn(async move {
            let daemon = Daemon::from_settings(pool.clone(), &settings);
            if let Ok(daemon) = daemon
                && let Err(e) = daemon.run(daemon_cancel).await
            {
                tracing::error!(error = %e, "price daemon stopped");
            }
        });
        println!();
        println!(
            "Still running (pipeline, daemon, simulated market) until Ctrl-C. Try, in another terminal:"
        );
        println!(
            "  {} -c \"INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at) \
                  SELECT gen_random_uuid(), id, 'buy', 3, 150, now() - interval '30 days' FROM assets WHERE symbol = 'NVDA'\"",
            psql
        );
        cancel.cancelled().await;
    }
    pipeline.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Waits for every event to be applied and every job to finish, showing
/// progress, within `timeout`.
async fn wait_until_settled(
    pool: &sqlx::PgPool,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(), DemoError> {
    let mut progress = Progress::for_stdout();
    let started = tokio::time::Instant::now();
    let mut last = Snapshot::default();
    loop {
        last = Snapshot::read(pool).await.unwrap_or(last);
        progress.show(last);
        if last.settled() {
            progress.finish();
            println!(
                "pipeline settled in {:.1}s: {} backfill jobs completed, {} failed, {} retries, {} rate limits",
                started.elapsed().as_secs_f64(),
                last.completed,
                last.failed,
                last.retries,
                last.rate_limits
            );
            return Ok(());
        }
        if started.elapsed() > timeout {
            progress.finish();
            return Err(DemoError::Stalled {
                waited: timeout,
                state: format!("{last:?}"),
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => {
                progress.finish();
                return Err(DemoError::Interrupted);
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// The settings of the real pipeline, pointed at the simulated market and
/// sped up: quick retries and cooldowns, a short poll, every market open.
fn demo_settings(settings: &Settings, market: &url::Url) -> Settings {
    let mut s = settings.clone();
    let fast = Rate {
        count: 20,
        per: Duration::from_secs(1),
    };
    s.providers.yahoo_url = market.clone();
    s.providers.binance_url = market.clone();
    s.providers.coingecko_url = market.clone();
    // The simulated market answers as these three only: the other sources
    // would be asked on the real internet.
    {
        use crate::providers::ProviderKind::{Binance, CoinGecko, Yahoo};
        use crate::providers::settings::Chain;
        s.providers.crypto_chain = Chain(vec![Binance, CoinGecko, Yahoo]);
        s.providers.market_chain = Chain(vec![Yahoo]);
        s.providers.fx_chain = Chain(vec![Yahoo]);
    }
    s.providers.yahoo_rate = fast;
    s.providers.binance_rate = fast;
    s.providers.coingecko_rate = Some(Rate {
        count: 5,
        per: Duration::from_secs(1),
    });
    s.providers.http_timeout = Duration::from_secs(5);
    s.providers.max_requests_per_minute = None;
    s.providers.coingecko_api_key = None;
    s.retry_exponential_base = Duration::from_secs(1);
    s.poll_interval = Duration::from_millis(250);
    s.trading_hours_only = false;
    s.fetch_interval_minutes = 1;
    s.cron = None;
    s
}

/// Takes the first free demo database name: a session advisory lock held
/// by the returned connection for as long as the demo runs.
async fn claim_database(
    admin: &PgConnectOptions,
    base: &str,
) -> Result<(String, PgConnection), DemoError> {
    let mut conn = admin
        .clone()
        .log_statements(tracing::log::LevelFilter::Off)
        .connect()
        .await?;
    for n in 1..=PARALLEL_DEMOS {
        let name = if n == 1 {
            base.to_owned()
        } else {
            format!("{base}_{n}")
        };
        let free: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('pricekeeper demo ' || $1))")
                .bind(&name)
                .fetch_one(&mut conn)
                .await?;
        if free {
            return Ok((name, conn));
        }
    }
    Err(DemoError::Busy(base.to_owned()))
}

async fn recreate(admin: &PgConnectOptions, name: &str) -> Result<(), DemoError> {
    let mut conn = admin
        .clone()
        .log_statements(tracing::log::LevelFilter::Off)
        .connect()
        .await?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
        format!("CREATE DATABASE {}", quote_ident(name)),
    ] {
        conn.execute(AssertSqlSafe(sql)).await?;
    }
    let _ = conn.close().await;
    Ok(())
}
