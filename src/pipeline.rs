//! The long-running pipeline of one process: the orchestrator, the
//! backfill workers (with their reaper) and, when asked, the price daemon,
//! side by side under one cancellation token. Used by `worker`, `run` and
//! `demo`.

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catalog::refresh::WeeklyRefresh;
use crate::catalog::settings::{CatalogSettings, RefreshSettings};
use crate::config::Settings;
use crate::daemon::{Daemon, DaemonError};
use crate::events::orchestrator::Orchestrator;
use crate::providers::Providers;
use crate::queue::backfill::Backfill;
use crate::queue::{Worker, WorkerConfig};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot set up the provider clients: {0}")]
    Providers(#[from] reqwest::Error),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// The pipeline of one process, built but not started.
pub struct Pipeline {
    pool: sqlx::PgPool,
    settings: Settings,
    workers: Worker<Backfill>,
}

impl Pipeline {
    pub fn new(pool: sqlx::PgPool, settings: &Settings) -> Result<Self, PipelineError> {
        let providers = Providers::from_settings(settings)?;
        let backfill = Backfill::new(pool.clone(), providers, settings.retry_exponential_base);
        let workers = Worker::new(
            pool.clone(),
            WorkerConfig::from_settings(settings),
            backfill,
        );
        Ok(Self {
            pool,
            settings: settings.clone(),
            workers,
        })
    }

    /// The backfill workers, whose `in_progress()` says what a forced stop
    /// leaves behind.
    pub fn workers(&self) -> Worker<Backfill> {
        self.workers.clone()
    }

    /// Spawns the tasks into `tasks`, all stopping on `cancel`, with
    /// `daemon` beside them when given. A daemon that fails cancels the
    /// rest.
    pub fn spawn(
        self,
        daemon: Option<Daemon>,
        cancel: &CancellationToken,
        tasks: &mut JoinSet<()>,
    ) {
        if let Some(daemon) = daemon {
            let cancel = cancel.clone();
            tasks.spawn(async move {
                if let Err(e) = daemon.run(cancel.clone()).await {
                    tracing::error!(error = %e, "price daemon stopped");
                    cancel.cancel();
                }
            });
        }
        tasks.spawn(Orchestrator::new(self.pool, &self.settings).run(cancel.clone()));
        tasks.spawn(self.workers.run(cancel.clone()));
    }
}

/// The price daemon with its weekly catalog refresh.
pub fn daemon(
    pool: sqlx::PgPool,
    settings: &Settings,
    catalog: CatalogSettings,
    refresh: RefreshSettings,
) -> Result<Daemon, DaemonError> {
    let weekly = WeeklyRefresh::new(
        pool.clone(),
        settings,
        catalog,
        refresh,
        crate::daemon::ROLE,
        settings.daemon_lease,
    );
    Ok(Daemon::from_settings(pool, settings)?.with_catalog_refresh(weekly))
}
