//! The providers as operators see them (`/health/sources`, the status
//! page, `pricekeeper status`): the shared `provider_state` row, this
//! process's requests of the last hour, the request budget, and a status.
//!
//! A provider is `failing` once it has refused every request for
//! PRICEKEEPER_SOURCE_FAILING_AFTER: its last error is newer than its last
//! success and that success is older than the limit. One that never
//! succeeded has no such start; it counts as failing once four rate limits
//! in a row (5 + 10 + 20 + 40 minutes of cooldown) or twenty errors say so.
//!
//! Two states outrank these: `unavailable`, a provider refused for good for
//! this deployment (Binance's 451 on both its hosts, recorded in
//! `provider_state` and kept across restarts), and `unhealthy`, a provider
//! whose last [`EMPTY_UNHEALTHY_AFTER`] answers were well-formed but held
//! no data for any symbol: an API that changed silently, not that many
//! unknown symbols.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

use crate::providers::ProviderKind;
use crate::providers::rate_limit::Rate;

const SOURCES: &str = include_str!("../../sql/ops_sources.sql");

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    provider: String,
    cooldown_until: Option<DateTime<Utc>>,
    cooling: Option<bool>,
    consecutive_rate_limits: i32,
    last_success_at: Option<DateTime<Utc>>,
    last_error_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    requests_total: i64,
    errors_total: i64,
    rate_limited_total: i64,
    unavailable_since: Option<DateTime<Utc>>,
    unavailable_reason: Option<String>,
    empty_streak: i32,
    last_data_at: Option<DateTime<Utc>>,
    budget_ahead_s: Option<f64>,
    hour_requests: i64,
    hour_rate_limited: i64,
    hour_errors: i64,
}

/// Requests, rate-limit answers and errors in a stretch of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub requests: u64,
    pub rate_limited: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceStatus {
    /// Never called yet.
    Unused,
    Ok,
    /// Paused after a rate limit; jobs wait for it.
    Cooling,
    /// Refusing for longer than PRICEKEEPER_SOURCE_FAILING_AFTER.
    Failing,
    /// Answers well-formed but empty for every symbol, many in a row.
    Unhealthy,
    /// Refused for good for this deployment (Binance's 451).
    Unavailable,
}

impl SourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unused => "unused",
            Self::Ok => "ok",
            Self::Cooling => "cooling",
            Self::Failing => "failing",
            Self::Unhealthy => "unhealthy",
            Self::Unavailable => "unavailable",
        }
    }
}

/// What a provider may be sent.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    /// The configured rate (`2000/1h`), capped by MAX_REQUESTS_PER_MINUTE.
    pub rate: String,
    pub requests_per_minute: f64,
    /// Rate limits in a row; drives the doubling cooldown.
    pub consecutive_rate_limits: i32,
    /// How far every process together has spent the shared budget ahead
    /// of now, in seconds: 0 when a whole burst may go at once; requests
    /// wait once it passes the burst's worth.
    pub shared_spent_ahead_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub provider: String,
    pub status: SourceStatus,
    /// Set only while the provider is cooling down.
    pub cooling_until: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Requests, rate-limit answers and errors of the last hour, from
    /// every process (`provider_minutes`).
    pub last_hour: Counts,
    /// Since the provider was first called, by every process.
    pub requests_total: i64,
    pub errors_total: i64,
    pub rate_limited_total: i64,
    /// Set when the provider is unavailable for this deployment.
    pub unavailable_since: Option<DateTime<Utc>>,
    /// What is wrong beyond the last error, in an operator's words
    /// (`unavailable` and `unhealthy` say why).
    pub problem: Option<String>,
    /// Well-formed answers without data in a row, and when data last came.
    pub empty_answers_in_a_row: i32,
    pub last_data_at: Option<DateTime<Utc>>,
    pub budget: Budget,
}

/// Empty answers in a row after which a provider is `unhealthy`: a few
/// unknown symbols in a row happen; this many, across every symbol asked,
/// is an API that stopped answering with data.
pub const EMPTY_UNHEALTHY_AFTER: i32 = 20;

/// Every known provider (called or not), from `provider_state` and `rates`.
pub async fn fetch(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    rates: &[(ProviderKind, Rate)],
    failing_after: Duration,
) -> Result<Vec<Source>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(SOURCES).bind(now).fetch_all(db).await?;
    let mut sources: Vec<Source> = rates
        .iter()
        .map(|&(kind, rate)| {
            let row = rows.iter().find(|r| r.provider == kind.as_str());
            source(kind.as_str(), row, Some(rate), now, failing_after)
        })
        .collect();
    // A provider_state row of a provider this build does not know (renamed,
    // or written by a newer version) is still shown.
    for row in &rows {
        if !sources.iter().any(|s| s.provider == row.provider) {
            sources.push(source(&row.provider, Some(row), None, now, failing_after));
        }
    }
    Ok(sources)
}

fn source(
    name: &str,
    row: Option<&Row>,
    rate: Option<Rate>,
    now: DateTime<Utc>,
    failing_after: Duration,
) -> Source {
    let last_hour = row.map_or_else(Counts::default, |r| Counts {
        requests: r.hour_requests.max(0) as u64,
        rate_limited: r.hour_rate_limited.max(0) as u64,
        errors: r.hour_errors.max(0) as u64,
    });
    let status = row.map_or(SourceStatus::Unused, |r| status(r, now, failing_after));
    Source {
        provider: name.to_owned(),
        status,
        cooling_until: row
            .filter(|r| r.cooling == Some(true))
            .and_then(|r| r.cooldown_until),
        last_success_at: row.and_then(|r| r.last_success_at),
        last_error_at: row.and_then(|r| r.last_error_at),
        last_error: row.and_then(|r| r.last_error.clone()),
        last_hour,
        requests_total: row.map_or(0, |r| r.requests_total),
        errors_total: row.map_or(0, |r| r.errors_total),
        rate_limited_total: row.map_or(0, |r| r.rate_limited_total),
        unavailable_since: row.and_then(|r| r.unavailable_since),
        problem: row.and_then(problem),
        empty_answers_in_a_row: row.map_or(0, |r| r.empty_streak),
        last_data_at: row.and_then(|r| r.last_data_at),
        budget: budget(rate, row),
    }
}

/// The budget's state: the configured rate, the rate-limit streak and how
/// far the budget shared through PostgreSQL is spent ahead.
fn budget(rate: Option<Rate>, row: Option<&Row>) -> Budget {
    Budget {
        rate: rate.map_or_else(|| "unknown".to_owned(), |r| r.to_string()),
        requests_per_minute: rate.map_or(0.0, |r| {
            let per_minute = f64::from(r.count) * 60.0 / r.per.as_secs_f64().max(1e-9);
            (per_minute * 1000.0).round() / 1000.0
        }),
        consecutive_rate_limits: row.map_or(0, |r| r.consecutive_rate_limits),
        shared_spent_ahead_s: row
            .and_then(|r| r.budget_ahead_s)
            .map_or(0.0, |s| (s * 1000.0).round() / 1000.0),
    }
}

/// Why a provider is `unavailable` or `unhealthy`, if it is.
fn problem(r: &Row) -> Option<String> {
    if r.unavailable_since.is_some() {
        return Some(
            r.unavailable_reason
                .clone()
                .unwrap_or_else(|| "unavailable for this deployment".to_owned()),
        );
    }
    (r.empty_streak >= EMPTY_UNHEALTHY_AFTER).then(|| {
        format!(
            "the last {} answers were well-formed but held no data for any symbol; \
             the API may have changed",
            r.empty_streak
        )
    })
}

fn status(r: &Row, now: DateTime<Utc>, failing_after: Duration) -> SourceStatus {
    if r.unavailable_since.is_some() {
        return SourceStatus::Unavailable;
    }
    let refusing = match (r.last_error_at, r.last_success_at) {
        (Some(error), Some(success)) => error > success,
        (Some(_), None) => true,
        _ => false,
    };
    let limit = chrono::Duration::from_std(failing_after).unwrap_or(chrono::Duration::MAX);
    let failing = refusing
        && match r.last_success_at {
            Some(success) => now - success >= limit,
            None => r.consecutive_rate_limits >= 4 || r.errors_total >= 20,
        };
    if failing {
        SourceStatus::Failing
    } else if r.empty_streak >= EMPTY_UNHEALTHY_AFTER {
        SourceStatus::Unhealthy
    } else if r.cooling == Some(true) {
        SourceStatus::Cooling
    } else if r.last_success_at.is_none() && r.last_error_at.is_none() {
        SourceStatus::Unused
    } else {
        SourceStatus::Ok
    }
}

/// How often [`watch`] looks at the providers.
const WATCH_EVERY: Duration = Duration::from_secs(60);

/// Logs a warning when a provider turns `failing` (it has refused every
/// request for PRICEKEEPER_SOURCE_FAILING_AFTER), once, and an info line
/// when it serves again: a cooldown is routine, hours of refusals are not.
pub async fn watch(
    pool: sqlx::PgPool,
    rates: Vec<(ProviderKind, Rate)>,
    failing_after: Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut failing: std::collections::BTreeSet<String> = Default::default();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        let Ok(sources) = fetch(&pool, Utc::now(), &rates, failing_after).await else {
            continue; // the database is down: other loops say so
        };
        for s in sources {
            let now_failing = matches!(
                s.status,
                SourceStatus::Failing | SourceStatus::Unhealthy | SourceStatus::Unavailable
            );
            if now_failing && failing.insert(s.provider.clone()) {
                tracing::warn!(provider = %s.provider, status = s.status.as_str(),
                    last_success_at = ?s.last_success_at,
                    last_error = s.last_error.as_deref().unwrap_or(""),
                    cooling_until = ?s.cooling_until,
                    problem = s.problem.as_deref().unwrap_or(""),
                    "provider is not serving (failing: no success for longer than PRICEKEEPER_SOURCE_FAILING_AFTER; \
                     unhealthy: empty answers for every symbol; unavailable: refused for this deployment); \
                     its jobs wait or fall back to the next provider");
            } else if !now_failing && failing.remove(&s.provider) {
                tracing::info!(provider = %s.provider, "provider serves again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row {
            provider: "yahoo".into(),
            cooldown_until: None,
            cooling: None,
            consecutive_rate_limits: 0,
            last_success_at: None,
            last_error_at: None,
            last_error: None,
            requests_total: 0,
            errors_total: 0,
            rate_limited_total: 0,
            unavailable_since: None,
            unavailable_reason: None,
            empty_streak: 0,
            last_data_at: None,
            budget_ahead_s: None,
            hour_requests: 0,
            hour_rate_limited: 0,
            hour_errors: 0,
        }
    }

    #[test]
    fn a_provider_refusing_past_the_limit_is_failing() {
        let now: DateTime<Utc> = "2026-01-05T12:00:00Z".parse().unwrap();
        let ago = |h: i64| Some(now - chrono::Duration::minutes(h));
        let limit = Duration::from_secs(2 * 3600);
        let cases = [
            ("untouched", row(), SourceStatus::Unused),
            (
                "served",
                Row {
                    last_success_at: ago(1),
                    ..row()
                },
                SourceStatus::Ok,
            ),
            (
                "cooling",
                Row {
                    last_success_at: ago(30),
                    last_error_at: ago(1),
                    cooling: Some(true),
                    ..row()
                },
                SourceStatus::Cooling,
            ),
            (
                "refusing for 3h",
                Row {
                    last_success_at: ago(180),
                    last_error_at: ago(1),
                    cooling: Some(true),
                    ..row()
                },
                SourceStatus::Failing,
            ),
            (
                "recovered",
                Row {
                    last_success_at: ago(1),
                    last_error_at: ago(180),
                    ..row()
                },
                SourceStatus::Ok,
            ),
            (
                "never served, one 429",
                Row {
                    last_error_at: ago(1),
                    consecutive_rate_limits: 1,
                    cooling: Some(true),
                    ..row()
                },
                SourceStatus::Cooling,
            ),
            (
                "never served, four 429s",
                Row {
                    last_error_at: ago(1),
                    consecutive_rate_limits: 4,
                    ..row()
                },
                SourceStatus::Failing,
            ),
            (
                "twenty empty answers in a row",
                Row {
                    last_success_at: ago(1),
                    empty_streak: EMPTY_UNHEALTHY_AFTER,
                    ..row()
                },
                SourceStatus::Unhealthy,
            ),
            (
                "nineteen empty answers",
                Row {
                    last_success_at: ago(1),
                    empty_streak: EMPTY_UNHEALTHY_AFTER - 1,
                    ..row()
                },
                SourceStatus::Ok,
            ),
            (
                "refused from this location",
                Row {
                    last_error_at: ago(1),
                    unavailable_since: ago(10),
                    ..row()
                },
                SourceStatus::Unavailable,
            ),
        ];
        for (name, r, want) in cases {
            assert_eq!(status(&r, now, limit), want, "{name}");
        }
    }

    #[test]
    fn the_budget_is_shown_per_minute() {
        let b = budget(Some(Rate::per_hour(2000)), None);
        assert_eq!(b.requests_per_minute, 33.333);
        assert_eq!(budget(None, None).rate, "unknown");
    }
}
