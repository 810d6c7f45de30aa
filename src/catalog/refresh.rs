//! The daemon's weekly catalog refresh. On each minute firing the active
//! daemon asks [`WeeklyRefresh::on_minute`] whether the latest weekly slot
//! has run; if not it claims the slot in `daemon_slots` (so no slot runs
//! twice, across leaders) and runs the refresh in the background, each
//! source written behind the leader's fence. A slot missed while no daemon
//! ran is caught up at the next start.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::seed::{Fence, RunReport, Seeder};
use super::settings::{CatalogSettings, RefreshSettings, RefreshSources, Schedule};
use super::{CatalogError, Source};
use crate::config::Settings;
use crate::daemon::DaemonError;
use crate::daemon::lease::Term;
use crate::daemon::tick;

/// `daemon_slots.kind` of a weekly refresh.
pub const SLOT_KIND: &str = "catalog";

pub struct WeeklyRefresh {
    pool: PgPool,
    settings: Settings,
    catalog: CatalogSettings,
    refresh: RefreshSettings,
    role: String,
    hold: Duration,
    /// The last slot this process looked at, so a minute costs no query.
    checked: Mutex<Option<DateTime<Utc>>>,
    running: Mutex<Option<JoinHandle<()>>>,
}

impl WeeklyRefresh {
    /// `role` and `hold` are the daemon's lease role and fence hold.
    pub fn new(
        pool: PgPool,
        settings: &Settings,
        catalog: CatalogSettings,
        refresh: RefreshSettings,
        role: &str,
        hold: Duration,
    ) -> Self {
        Self {
            pool,
            settings: settings.clone(),
            catalog,
            refresh,
            role: role.to_owned(),
            hold,
            checked: Mutex::new(None),
            running: Mutex::new(None),
        }
    }

    pub fn schedule(&self) -> Schedule {
        self.refresh.schedule
    }

    /// The daemon's minute hook: starts the due slot's refresh in the
    /// background when this daemon leads (`term`) and none is running.
    pub fn on_minute(
        self: &std::sync::Arc<Self>,
        at: DateTime<Utc>,
        term: Option<Term>,
        cancel: &CancellationToken,
    ) {
        let (Some(slot), Some(term)) = (self.refresh.schedule.last_before(at), term) else {
            return;
        };
        if *self.checked.lock().expect("checked") == Some(slot) {
            return;
        }
        let mut running = self.running.lock().expect("running");
        if running.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        *self.checked.lock().expect("checked") = Some(slot);
        let this = self.clone();
        let cancel = cancel.child_token();
        *running = Some(tokio::spawn(async move {
            match this.run_slot(slot, &term, cancel).await {
                Ok(Some(report)) => tracing::info!(%slot, applied = report.sources.len(),
                    failed = report.failed.len(), "weekly catalog refresh done"),
                Ok(None) => {}
                Err(e) => tracing::warn!(%slot, error = %e, "weekly catalog refresh failed"),
            }
        }));
    }

    /// Claims `slot` under `term` and runs the refresh; `None` when the
    /// slot had run already or there is nothing to refresh.
    pub async fn run_slot(
        &self,
        slot: DateTime<Utc>,
        term: &Term,
        cancel: CancellationToken,
    ) -> Result<Option<RunReport>, CatalogError> {
        let sources = self.sources().await?;
        if sources.is_empty() {
            tracing::debug!(%slot, "no catalog source to refresh (none seeded, or none configured)");
            return Ok(None);
        }
        let claimed =
            tick::claim_slot(&self.pool, &self.role, term, self.hold, SLOT_KIND, slot).await;
        match claimed {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(DaemonError::Db(e)) => return Err(e.into()),
            Err(_) => return Err(CatalogError::NotLeader),
        }
        tracing::info!(%slot, sources = ?sources, "weekly catalog refresh starting");
        let fence = Fence {
            role: self.role.clone(),
            term: *term,
            hold: self.hold,
        };
        let seeder = Seeder::new(
            self.pool.clone(),
            &self.settings,
            self.catalog.clone(),
            cancel,
        )?
        .fenced(fence);
        let report = seeder.run(&sources, false, |_, _| {}).await;
        sqlx::query(
            "UPDATE daemon_slots SET finished_at = now(), summary = $3 WHERE kind = $1 AND slot = $2",
        )
        .bind(SLOT_KIND)
        .bind(slot)
        .bind(serde_json::to_value(&report).unwrap_or_default())
        .execute(&self.pool)
        .await?;
        Ok(Some(report))
    }

    /// The configured sources; for `auto`, those a catalog run filled before.
    async fn sources(&self) -> Result<Vec<Source>, CatalogError> {
        match &self.refresh.sources {
            RefreshSources::Listed(sources) => Ok(sources.clone()),
            RefreshSources::Auto => {
                let seeded: Vec<String> =
                    sqlx::query_scalar("SELECT DISTINCT source FROM catalog_listings")
                        .fetch_all(&self.pool)
                        .await?;
                let mut sources: Vec<Source> =
                    seeded.iter().filter_map(|n| Source::named(n)).collect();
                sources.sort(); // Source::ALL's order: built-in first
                Ok(sources)
            }
        }
    }
}
