//! `provider_state`: what every worker on every machine knows about each
//! provider. A rate limit sets `cooldown_until`, and until then no worker
//! calls that provider (the claim leaves jobs whose whole chain is cooling,
//! and [`Cooldowns`] skips a cooling provider within a chain).
//!
//! `consecutive_rate_limits` counts refusals in a row and drives the 5, 10,
//! 20, 40 minute pauses; a success resets it. A 429 that arrives while a
//! cooldown is already in force (a request that left before it was set)
//! does not count again, so ten jobs refused at once pause the provider
//! once, not 2^10 times as long.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgExecutor, Postgres};

use super::{backoff, millis};
use crate::providers::ProviderKind;

/// Records a rate limit from `provider` and returns the end of its
/// cooldown: `retry_after` when the provider said, else the doubling
/// default for its consecutive refusals from `base`.
pub async fn record_rate_limit(
    db: impl Acquire<'_, Database = Postgres>,
    provider: ProviderKind,
    now: Option<DateTime<Utc>>,
    retry_after: Option<Duration>,
    base: Duration,
    message: &str,
) -> Result<DateTime<Utc>, sqlx::Error> {
    let mut tx = db.begin().await?;
    // The row lock taken here serializes concurrent refusals of one provider.
    let consecutive: i32 = sqlx::query_scalar(
        "INSERT INTO provider_state AS s
             (provider, consecutive_rate_limits, requests_total, rate_limited_total,
              last_error_at, last_error, updated_at)
         VALUES ($1, 1, 1, 1, coalesce($2::timestamptz, now()), $3, coalesce($2::timestamptz, now()))
         ON CONFLICT (provider) DO UPDATE
         SET consecutive_rate_limits = CASE
                 WHEN s.cooldown_until > coalesce($2::timestamptz, now()) THEN s.consecutive_rate_limits
                 ELSE s.consecutive_rate_limits + 1
             END,
             requests_total = s.requests_total + 1,
             rate_limited_total = s.rate_limited_total + 1,
             last_error_at = excluded.last_error_at,
             last_error = excluded.last_error,
             updated_at = excluded.updated_at
         RETURNING consecutive_rate_limits",
    )
    .bind(provider.as_str())
    .bind(now)
    .bind(message)
    .fetch_one(&mut *tx)
    .await?;
    let delay = backoff::rate_limit_delay(base, consecutive.max(1) as u32, retry_after);
    let until: DateTime<Utc> = sqlx::query_scalar(
        "UPDATE provider_state
         SET cooldown_until = greatest(cooldown_until,
                                       coalesce($2::timestamptz, now()) + $3 * interval '1 millisecond')
         WHERE provider = $1
         RETURNING cooldown_until",
    )
    .bind(provider.as_str())
    .bind(now)
    .bind(millis(delay))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::warn!(%provider, consecutive, %until, "provider rate limited; paused for every worker");
    Ok(until)
}

/// Records a failed request that was not a rate limit.
pub async fn record_error(
    db: impl PgExecutor<'_>,
    provider: ProviderKind,
    now: Option<DateTime<Utc>>,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO provider_state AS s
             (provider, requests_total, errors_total, last_error_at, last_error, updated_at)
         VALUES ($1, 1, 1, coalesce($2::timestamptz, now()), $3, coalesce($2::timestamptz, now()))
         ON CONFLICT (provider) DO UPDATE
         SET requests_total = s.requests_total + 1,
             errors_total = s.errors_total + 1,
             last_error_at = excluded.last_error_at,
             last_error = excluded.last_error,
             updated_at = excluded.updated_at",
    )
    .bind(provider.as_str())
    .bind(now)
    .bind(message)
    .execute(db)
    .await?;
    Ok(())
}

/// Records `requests` successful requests: the refusal streak is over.
pub async fn record_success(
    db: impl PgExecutor<'_>,
    provider: ProviderKind,
    now: Option<DateTime<Utc>>,
    requests: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO provider_state AS s (provider, requests_total, last_success_at, updated_at)
         VALUES ($1, $3, coalesce($2::timestamptz, now()), coalesce($2::timestamptz, now()))
         ON CONFLICT (provider) DO UPDATE
         SET consecutive_rate_limits = 0,
             requests_total = s.requests_total + $3,
             last_success_at = excluded.last_success_at,
             updated_at = excluded.updated_at",
    )
    .bind(provider.as_str())
    .bind(now)
    .bind(requests)
    .execute(db)
    .await?;
    Ok(())
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

/// This process's copy of the cooldowns: refreshed from the database
/// before every claim, and updated at once when a job here is refused.
#[derive(Debug, Default)]
pub struct Cooldowns {
    until: Mutex<HashMap<ProviderKind, DateTime<Utc>>>,
}

impl Cooldowns {
    pub fn replace(&self, cooling: Vec<(String, DateTime<Utc>)>) {
        let fresh = cooling
            .into_iter()
            .filter_map(|(name, until)| Some((name.parse().ok()?, until)))
            .collect();
        *self.until.lock().expect("cooldowns") = fresh;
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
