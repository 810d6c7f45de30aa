//! The cluster's state as one statement reads it (`sql/ops_snapshot.sql`):
//! the queue, the outbox, the tracked assets and the daemon. Every view of
//! the ops surface (`/health/queue`, `/metrics`, the status page,
//! `pricekeeper status`) is drawn from one [`Snapshot`], and [`judge`]
//! turns it into `ok | degraded | failing` in one place.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use super::Thresholds;

const SNAPSHOT: &str = include_str!("../../sql/ops_snapshot.sql");

/// Above this many rows (the planner's estimate) a status is estimated
/// rather than counted: counting a million completed jobs takes ~50 ms,
/// the estimate nothing.
pub const EXACT_COUNT_LIMIT: i64 = 100_000;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Snapshot {
    pub now: DateTime<Utc>,
    pub jobs: Json<BTreeMap<String, i64>>,
    pub estimated: Vec<String>,
    pub due_now: i64,
    pub oldest_due_since: Option<DateTime<Utc>>,
    pub next_retry_after: Option<DateTime<Utc>>,
    pub expired_leases: i64,
    pub completed_last_hour: i64,
    pub backfill_avg_seconds: Option<f64>,
    pub backfill_p95_seconds: Option<f64>,
    pub failed_last_hour: i64,
    pub outbox_unprocessed: i64,
    pub outbox_oldest: Option<DateTime<Utc>>,
    pub tracked_assets: i64,
    pub daemon_holder: Option<Uuid>,
    pub daemon_term: Option<i64>,
    pub daemon_renewed_at: Option<DateTime<Utc>>,
    pub daemon_last_tick: Option<DateTime<Utc>>,
}

/// Reads the snapshot; `now` None means the database clock.
pub async fn fetch(
    db: impl PgExecutor<'_>,
    now: Option<DateTime<Utc>>,
) -> Result<Snapshot, sqlx::Error> {
    sqlx::query_as(SNAPSHOT)
        .bind(now)
        .bind(EXACT_COUNT_LIMIT)
        .fetch_one(db)
        .await
}

impl Snapshot {
    pub fn jobs(&self, status: &str) -> i64 {
        self.jobs.get(status).copied().unwrap_or(0)
    }

    pub fn oldest_due_age(&self) -> Option<Duration> {
        self.oldest_due_since.map(|t| age(self.now, t))
    }

    pub fn outbox_oldest_age(&self) -> Option<Duration> {
        self.outbox_oldest.map(|t| age(self.now, t))
    }

    pub fn daemon_last_tick_age(&self) -> Option<Duration> {
        self.daemon_last_tick.map(|t| age(self.now, t))
    }
}

fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (now - then).to_std().unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Ok,
    Degraded,
    Failing,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Failing => "failing",
        }
    }
}

/// The queue's health and every reason for it, worst first.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub status: Health,
    pub reasons: Vec<String>,
}

/// Judges a snapshot against the thresholds: the oldest due job's wait,
/// the outbox lag, and the failures of the last hour.
pub fn judge(s: &Snapshot, t: &Thresholds) -> Verdict {
    let mut found: Vec<(Health, String)> = Vec::new();
    let mut check = |value: Duration, degraded: Duration, failing: Duration, what: &str| {
        let level = if value >= failing {
            Health::Failing
        } else if value >= degraded {
            Health::Degraded
        } else {
            return;
        };
        let limit = if level == Health::Failing {
            failing
        } else {
            degraded
        };
        found.push((
            level,
            format!(
                "{what} {} (limit {})",
                seconds_text(value),
                humantime::format_duration(limit)
            ),
        ));
    };
    if let Some(wait) = s.oldest_due_age() {
        check(
            wait,
            t.due_degraded,
            t.due_failing,
            "the oldest due backfill job has waited",
        );
    }
    if let Some(lag) = s.outbox_oldest_age() {
        check(
            lag,
            t.outbox_degraded,
            t.outbox_failing,
            "the oldest unapplied outbox event is",
        );
    }
    let failed = s.failed_last_hour;
    if failed >= i64::from(t.failed_failing) || failed >= i64::from(t.failed_degraded) {
        let (level, limit) = if failed >= i64::from(t.failed_failing) {
            (Health::Failing, t.failed_failing)
        } else {
            (Health::Degraded, t.failed_degraded)
        };
        found.push((
            level,
            format!("{failed} backfill jobs failed in the last hour (limit {limit})"),
        ));
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    Verdict {
        status: found.first().map_or(Health::Ok, |f| f.0),
        reasons: found.into_iter().map(|f| f.1).collect(),
    }
}

/// A duration for people, to the second (`1h 2m 3s`).
pub fn seconds_text(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let now = "2026-01-05T12:00:00Z".parse().unwrap();
        Snapshot {
            now,
            jobs: Json(BTreeMap::new()),
            estimated: vec![],
            due_now: 0,
            oldest_due_since: None,
            next_retry_after: None,
            expired_leases: 0,
            completed_last_hour: 0,
            backfill_avg_seconds: None,
            backfill_p95_seconds: None,
            failed_last_hour: 0,
            outbox_unprocessed: 0,
            outbox_oldest: None,
            tracked_assets: 0,
            daemon_holder: None,
            daemon_term: None,
            daemon_renewed_at: None,
            daemon_last_tick: None,
        }
    }

    #[test]
    fn each_threshold_moves_the_verdict() {
        let t = Thresholds::default();
        let minutes = |m: i64| Some(snapshot().now - chrono::Duration::minutes(m));
        let cases: Vec<(&str, Snapshot, Health)> = vec![
            ("quiet", snapshot(), Health::Ok),
            (
                "due 5m",
                Snapshot {
                    oldest_due_since: minutes(5),
                    ..snapshot()
                },
                Health::Ok,
            ),
            (
                "due 20m",
                Snapshot {
                    oldest_due_since: minutes(20),
                    ..snapshot()
                },
                Health::Degraded,
            ),
            (
                "due 2h",
                Snapshot {
                    oldest_due_since: minutes(120),
                    ..snapshot()
                },
                Health::Failing,
            ),
            (
                "outbox 2m",
                Snapshot {
                    outbox_oldest: minutes(2),
                    ..snapshot()
                },
                Health::Degraded,
            ),
            (
                "outbox 11m",
                Snapshot {
                    outbox_oldest: minutes(11),
                    ..snapshot()
                },
                Health::Failing,
            ),
            (
                "one failure",
                Snapshot {
                    failed_last_hour: 1,
                    ..snapshot()
                },
                Health::Degraded,
            ),
            (
                "many failures",
                Snapshot {
                    failed_last_hour: 50,
                    ..snapshot()
                },
                Health::Failing,
            ),
        ];
        for (name, s, want) in cases {
            let verdict = judge(&s, &t);
            assert_eq!(verdict.status, want, "{name}: {verdict:?}");
            assert_eq!(verdict.reasons.is_empty(), want == Health::Ok, "{name}");
        }
    }

    #[test]
    fn the_worst_reason_comes_first() {
        let s = Snapshot {
            failed_last_hour: 2,
            outbox_oldest: Some(snapshot().now - chrono::Duration::minutes(30)),
            ..snapshot()
        };
        let verdict = judge(&s, &Thresholds::default());
        assert_eq!(verdict.status, Health::Failing);
        assert!(verdict.reasons[0].contains("outbox"), "{verdict:?}");
        assert!(verdict.reasons[1].contains("failed"), "{verdict:?}");
    }
}
