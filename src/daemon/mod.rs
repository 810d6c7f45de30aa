//! The price daemon: live prices of held assets while their markets are
//! open, the day's bar after each close, one active daemon at a time.
//!
//! Triggers ([`schedule`]) feed one loop that runs ticks one after another
//! (single flight). Each tick runs only under a live leader term
//! ([`lease`]), claims its slot so no slot runs twice, and writes behind the
//! term's fence ([`tick`]). Calendars decide what is open ([`crate::calendar`]).

pub mod close;
pub mod gaps;
pub mod lease;
pub mod plan;
pub mod schedule;
pub mod tick;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::calendar::{CalendarId, Calendars, Closures};
use crate::config::Settings;
use crate::db::budget::PgBudget;
use crate::providers::Providers;
use lease::Leadership;
use schedule::Fire;
use tick::{TickReport, Ticker, Trigger};

/// The lease role of the price daemon.
pub const ROLE: &str = "daemon";

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("this daemon no longer holds the leader lease (term {term}); nothing written")]
    NotLeader { term: i64 },
    #[error("another daemon is active; this one is a standby")]
    Standby,
    #[error("bad cron expression {expr:?}: {reason}")]
    Cron { expr: String, reason: String },
    #[error("scheduler: {0}")]
    Scheduler(String),
    #[error(transparent)]
    Calendar(#[from] crate::calendar::CalendarError),
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A look back for session closes when a daemon starts or takes over, so
/// a close the previous leader did not get to is still handled (its slot
/// claim makes a repeat a no-op).
const CLOSE_LOOKBACK: TimeDelta = TimeDelta::minutes(30);

pub struct Daemon {
    ticker: Ticker,
    leadership: Arc<Leadership>,
    interval_minutes: u32,
    cron: Option<String>,
    catalog: Option<Arc<crate::catalog::refresh::WeeklyRefresh>>,
}

impl Daemon {
    pub fn from_settings(pool: PgPool, settings: &Settings) -> Result<Self, DaemonError> {
        if let Some(cron) = &settings.cron {
            schedule::cron_expression(cron)?;
        }
        let closures = Closures::builtin_and_file(settings.closures.calendar_closures.as_deref())?;
        let lease = settings.daemon_lease;
        let providers = Providers::from_settings(settings)?;
        // Quotes spend the same request budgets as every worker's backfills.
        providers.share_budget(Arc::new(PgBudget::new(pool.clone())));
        Ok(Self {
            ticker: Ticker {
                pool: pool.clone(),
                providers,
                calendars: Calendars::new(closures),
                trading_hours_only: settings.trading_hours_only,
                retry_base: settings.retry_exponential_base,
                role: ROLE.to_owned(),
                fence_hold: lease,
                max_attempts: settings.max_backfill_attempts as i32,
                ledger: Arc::default(),
            },
            leadership: Arc::new(Leadership::new(pool, ROLE, lease)),
            interval_minutes: settings.fetch_interval_minutes,
            cron: settings.cron.clone(),
            catalog: None,
        })
    }

    /// Adds the weekly catalog refresh, run under this daemon's lease.
    pub fn with_catalog_refresh(mut self, refresh: crate::catalog::refresh::WeeklyRefresh) -> Self {
        self.catalog = Some(Arc::new(refresh));
        self
    }

    pub fn ticker(&self) -> &Ticker {
        &self.ticker
    }

    pub fn leadership(&self) -> &Arc<Leadership> {
        &self.leadership
    }

    /// `--once`: take the lease (or fail as a standby), run one refresh
    /// tick now, resign.
    pub async fn run_once(&self) -> Result<TickReport, DaemonError> {
        self.report_unknown_exchanges().await?;
        let term = self.leadership.step().await?.ok_or(DaemonError::Standby)?;
        let now = Utc::now();
        let slot = schedule::fired_for(now, TimeDelta::seconds(1));
        let result = self
            .ticker
            .tick(&term, Trigger::Refresh { slot }, now)
            .await;
        lease::resign(&self.ticker.pool, ROLE, term.holder, term.number).await?;
        result
    }

    /// Runs until `cancel`: keeps (or waits for) the lease and ticks as the
    /// leader. Resigns on the way out so a standby takes over at once.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), DaemonError> {
        self.report_unknown_exchanges().await?;
        let (fires, mut fired) = mpsc::channel(4);
        let mut scheduler = schedule::start(self.cron.as_deref(), fires).await?;
        crate::ops::metrics::record_tick_interval(schedule::longest_gap(
            self.cron.as_deref(),
            self.interval_minutes,
            Utc::now(),
        ));
        let leadership = tokio::spawn(self.leadership.clone().run(cancel.clone()));
        tracing::info!(
            interval_minutes = self.interval_minutes,
            cron = self.cron.as_deref().unwrap_or(""),
            trading_hours_only = self.ticker.trading_hours_only,
            "price daemon started"
        );
        let mut closes_checked = Utc::now() - CLOSE_LOOKBACK;
        loop {
            let fire = tokio::select! {
                () = cancel.cancelled() => break,
                fire = fired.recv() => match fire {
                    Some(fire) => fire,
                    None => break,
                },
            };
            if let (Fire::Minute(at), Some(catalog)) = (fire, &self.catalog) {
                catalog.on_minute(at, self.leadership.current(), &cancel);
            }
            for trigger in self.triggers(fire, &mut closes_checked) {
                self.run_trigger(trigger).await;
            }
        }
        let _ = scheduler.shutdown().await;
        let _ = leadership.await;
        Ok(())
    }

    /// What one firing asks for: a refresh on its slot, and a close tick for
    /// every session that closed since the last check.
    fn triggers(&self, fire: Fire, closes_checked: &mut DateTime<Utc>) -> Vec<Trigger> {
        let mut triggers = Vec::new();
        match fire {
            Fire::Cron(slot) => triggers.push(Trigger::Refresh { slot }),
            Fire::Minute(at) => {
                if self.cron.is_none() && schedule::on_grid(at, self.interval_minutes) {
                    triggers.push(Trigger::Refresh { slot: at });
                }
                if at > *closes_checked {
                    for calendar in ALL_CALENDARS {
                        for session in
                            self.ticker
                                .calendars
                                .closes_between(calendar, *closes_checked, at)
                        {
                            triggers.push(Trigger::Close { calendar, session });
                        }
                    }
                    *closes_checked = at;
                }
            }
        }
        triggers
    }

    async fn run_trigger(&self, trigger: Trigger) {
        let Some(term) = self.leadership.current() else {
            tracing::debug!(?trigger, "standby: another daemon is active");
            return;
        };
        let ticked = self.ticker.tick(&term, trigger, Utc::now()).await;
        if let Ok(report) = &ticked
            && report.ran
        {
            crate::ops::metrics::record_tick(&report.kind);
        }
        match ticked {
            Ok(report) if report.ran => tracing::info!(
                kind = %report.kind,
                slot = %report.slot,
                quotes = report.quotes_written,
                market_closed = report.plan.market_closed,
                missing = report.missing,
                failed = report.failed.len(),
                fetch_ms = report.fetch_ms as u64,
                db_ms = report.db_ms as u64,
                "tick done"
            ),
            Ok(report) => {
                tracing::info!(kind = %report.kind, slot = %report.slot, "slot already run")
            }
            Err(e) => tracing::warn!(error = %e, "tick failed"),
        }
    }

    /// Logs every exchange of a tracked asset that has no calendar: its
    /// assets are refreshed on every tick, since its hours are unknown.
    async fn report_unknown_exchanges(&self) -> Result<BTreeSet<String>, DaemonError> {
        let exchanges: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT a.exchange FROM tracked_assets t JOIN assets a ON a.id = t.asset_id
             WHERE t.tracking_users > 0 ORDER BY 1",
        )
        .fetch_all(&self.ticker.pool)
        .await?;
        let unknown: BTreeSet<String> = exchanges
            .into_iter()
            .filter(|e| CalendarId::for_exchange(e).is_none())
            .collect();
        if !unknown.is_empty() {
            tracing::warn!(
                exchanges = ?unknown,
                "no trading calendar for these exchanges; their assets are refreshed on every tick"
            );
        }
        Ok(unknown)
    }
}

const ALL_CALENDARS: [CalendarId; 6] = [
    CalendarId::Xnys,
    CalendarId::Xlon,
    CalendarId::Xetr,
    CalendarId::Cme,
    CalendarId::Fx,
    CalendarId::Crypto,
];
