//! `provider_state`: what every worker on every machine knows about each
//! provider. A rate limit sets `cooldown_until`, and until then no worker
//! calls that provider (the claim leaves jobs whose whole chain is cooling,
//! and [`Cooldowns`] skips a cooling provider within a chain).
//!
//! `consecutive_rate_limits` counts refusals in a row and drives the 5, 10,
//! 20, 40 minute pauses; a success once the pause is over resets it (see
//! `sql/provider_state_flush.sql`). A 429 that arrives while a
//! cooldown is already in force (a request that left before it was set)
//! does not count again, so ten jobs refused at once pause the provider
//! once, not 2^10 times as long. A new or longer pause is announced on
//! [`COOLDOWNS_CHANNEL`]: every worker process stops sending within a
//! notification's delay, requests already waiting for a token included.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::{Acquire, PgExecutor, PgPool, Postgres};
use tokio_util::sync::CancellationToken;

use super::{Clock, backoff};
use crate::events::listener;
use crate::providers::rate_limit::SharedCooldown;
use crate::providers::{ProviderKind, Providers};

/// Notified (payload `provider epoch_millis`) when a cooldown begins or
/// grows, so every worker process stops sending at once.
pub const COOLDOWNS_CHANNEL: &str = "pricekeeper_cooldowns";

/// Records a rate limit `provider` answered and returns the end of its
/// cooldown. When no cooldown is in force this refusal starts one, the
/// `consecutive`-th in a row: the provider's Retry-After, raised to the
/// doubling default (5, 10, 20, 40 min from `base`). During a cooldown the
/// pause grows only if the provider asked for longer. The row is written
/// only when the pause changes; counts and the message go through the
/// [`super::ledger::Ledger`].
pub async fn record_rate_limit(
    db: impl Acquire<'_, Database = Postgres>,
    provider: ProviderKind,
    now: Option<DateTime<Utc>>,
    retry_after: Option<Duration>,
    base: Duration,
) -> Result<Recorded, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("INSERT INTO provider_state (provider) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(provider.as_str())
        .execute(&mut *tx)
        .await?;
    // The row lock serializes concurrent refusals of one provider.
    let (now, current, consecutive): (DateTime<Utc>, Option<DateTime<Utc>>, i32) = sqlx::query_as(
        "SELECT coalesce($2::timestamptz, now()), cooldown_until, consecutive_rate_limits
             FROM provider_state WHERE provider = $1 FOR UPDATE",
    )
    .bind(provider.as_str())
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let asked = retry_after.map(|wait| now + chrono_duration(wait));
    let (streak, until) = match current.filter(|until| *until > now) {
        // A request that left before the pause began: same streak.
        Some(current) => (
            consecutive,
            asked.map_or(current, |asked| asked.max(current)),
        ),
        None => {
            let n = consecutive.saturating_add(1);
            let delay = backoff::rate_limit_delay(base, n.max(1) as u32, retry_after);
            (n, now + chrono_duration(delay))
        }
    };
    let began = Some(until) != current;
    if began {
        sqlx::query(
            "UPDATE provider_state
             SET consecutive_rate_limits = $2,
                 cooldown_until = $3,
                 updated_at = $4
             WHERE provider = $1",
        )
        .bind(provider.as_str())
        .bind(streak)
        .bind(until)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(COOLDOWNS_CHANNEL)
            .bind(format!(
                "{} {}",
                provider.as_str(),
                until.timestamp_millis()
            ))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if began {
        tracing::warn!(%provider, consecutive = streak, %until, "provider rate limited; paused for every worker");
    }
    Ok(Recorded { until, began })
}

/// What [`record_rate_limit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The end of the provider's cooldown.
    pub until: DateTime<Utc>,
    /// Whether this refusal started the cooldown or made it longer.
    pub began: bool,
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Providers cooling down at `now`, with the end of each cooldown.
pub async fn cooling_providers(
    db: impl PgExecutor<'_>,
    now: Option<DateTime<Utc>>,
) -> Result<Vec<(String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT provider, cooldown_until
         FROM provider_state
         WHERE cooldown_until > coalesce($1::timestamptz, now())",
    )
    .bind(now)
    .fetch_all(db)
    .await
}

/// Marks in `providers` every provider `provider_state` records as
/// unavailable for this deployment (Binance's 451 on both hosts), so no
/// process asks it again, restarts included.
pub async fn restore_unavailable(
    db: impl PgExecutor<'_>,
    providers: &Providers,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT provider, unavailable_reason
         FROM provider_state
         WHERE unavailable_since IS NOT NULL",
    )
    .fetch_all(db)
    .await?;
    for (name, reason) in rows {
        if let Ok(kind) = name.parse::<ProviderKind>() {
            let reason = reason.unwrap_or_else(|| "recorded as unavailable".to_owned());
            providers.mark_unavailable(kind, &reason);
        }
    }
    Ok(())
}

/// This process's copy of the cooldowns: merged from the database before
/// every claim and on every notification, set at once when a provider
/// refuses a request here. It is the providers' [`SharedCooldown`]: every
/// request checks it before and after waiting for its token.
#[derive(Debug)]
pub struct Cooldowns {
    until: Mutex<HashMap<ProviderKind, DateTime<Utc>>>,
    /// The worker's clock, known from its first call.
    clock: OnceLock<Clock>,
    /// `RETRY_EXPONENTIAL_BASE`: the pause a refusal starts with.
    base: Duration,
    /// When the table was last read (process time).
    refreshed: Mutex<Option<std::time::Instant>>,
}

impl Cooldowns {
    pub fn new(base: Duration) -> Self {
        Self {
            until: Mutex::new(HashMap::new()),
            clock: OnceLock::new(),
            base,
            refreshed: Mutex::new(None),
        }
    }

    /// Whether the table should be read again (not read within `every`);
    /// if so, counts it as read now.
    pub fn due_for_refresh(&self, every: Duration) -> bool {
        let mut refreshed = self.refreshed.lock().expect("cooldowns");
        let due = refreshed.is_none_or(|at| at.elapsed() >= every);
        if due {
            *refreshed = Some(std::time::Instant::now());
        }
        due
    }

    /// Binds the worker's clock (the first one given stays).
    pub fn use_clock(&self, clock: &Clock) {
        let _ = self.clock.set(clock.clone());
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.get().map_or_else(Utc::now, Clock::local)
    }

    /// Adds what the database says. A pause known here and not (yet)
    /// there is kept: the refusal that set it is being recorded.
    pub fn merge(&self, cooling: Vec<(String, DateTime<Utc>)>) {
        for (name, until) in cooling {
            if let Ok(provider) = name.parse() {
                self.set(provider, until);
            }
        }
    }

    pub fn set(&self, provider: ProviderKind, until: DateTime<Utc>) {
        let mut map = self.until.lock().expect("cooldowns");
        let entry = map.entry(provider).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// The end of `provider`'s cooldown, if it is cooling at `now`.
    pub fn cooling_until(
        &self,
        provider: ProviderKind,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let map = self.until.lock().expect("cooldowns");
        map.get(&provider).copied().filter(|until| *until > now)
    }
}

impl SharedCooldown for Cooldowns {
    fn cooling_left(&self, kind: ProviderKind) -> Option<Duration> {
        let now = self.now();
        let until = self.cooling_until(kind, now)?;
        (until - now).to_std().ok()
    }

    fn refused(&self, kind: ProviderKind, retry_after: Option<Duration>) {
        let wait = backoff::rate_limit_delay(self.base, 1, retry_after);
        self.set(kind, self.now() + chrono_duration(wait));
    }
}

/// Keeps `cooldowns` current from [`COOLDOWNS_CHANNEL`] until cancelled,
/// re-reading the table after every (re)connect for what it missed.
pub async fn watch(pool: PgPool, cooldowns: Arc<Cooldowns>, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        let connected = async {
            let mut listener = PgListener::connect_with(&listener::dedicated(&pool)).await?;
            listener.listen(COOLDOWNS_CHANNEL).await?;
            cooldowns
                .merge(cooling_providers(&pool, cooldowns.clock.get().and_then(Clock::sql)).await?);
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = cancel.cancelled() => return,
            connected = connected => match connected {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot watch provider cooldowns; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(note)) => {
                        if let Some((provider, until)) = parse_note(note.payload()) {
                            cooldowns.set(provider, until);
                        }
                    }
                    Ok(None) | Err(_) => {
                        tracing::warn!("cooldown LISTEN connection lost; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

/// `yahoo 1767225600000` → (Yahoo, that instant).
fn parse_note(payload: &str) -> Option<(ProviderKind, DateTime<Utc>)> {
    let (name, millis) = payload.split_once(' ')?;
    Some((
        name.parse().ok()?,
        DateTime::from_timestamp_millis(millis.parse().ok()?)?,
    ))
}
