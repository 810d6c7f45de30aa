//! The health endpoints. `/health` never touches the database (a
//! liveness probe must not restart a process because PostgreSQL is down);
//! `/health/ready` does; `/health/queue` answers 503 when the queue is
//! `failing`, so a load balancer or probe can act on the code alone.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Thresholds;
use super::server::{Shared, db};
use super::snapshot::{Health, Snapshot, Verdict, judge};
use super::sources::Source;
use crate::db::MIGRATOR;

pub async fn live(State(state): State<Shared>) -> Response {
    Json(serde_json::json!({
        "status": "ok",
        "role": state.role,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
    }))
    .into_response()
}

pub async fn ready(State(state): State<Shared>) -> Response {
    let applied = db("ready", async {
        sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&state.pool)
            .await
    })
    .await;
    let applied: BTreeSet<i64> = match applied {
        Ok(versions) => versions.into_iter().collect(),
        Err(response) => return response,
    };
    let missing: Vec<i64> = MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if missing.is_empty() {
        Json(serde_json::json!({ "status": "ready", "migrations": applied.len() })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "not ready",
                "reason": "the database schema is behind this build; run `pricekeeper migrate`",
                "missing_migrations": missing,
            })),
        )
            .into_response()
    }
}

/// `/health/queue` and `pricekeeper status --format json`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub checked_at: DateTime<Utc>,
    /// Jobs by status.
    pub jobs: BTreeMap<String, i64>,
    /// Statuses whose count is the planner's estimate (large tables).
    pub estimated: Vec<String>,
    pub due_now: i64,
    pub oldest_due_age_seconds: Option<f64>,
    pub next_retry_after: Option<DateTime<Utc>>,
    pub expired_leases: i64,
    pub last_hour: LastHour,
    pub outbox: Outbox,
    pub tracked_assets: i64,
    pub daemon: DaemonState,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastHour {
    pub completed: i64,
    pub failed: i64,
    /// How long a completed backfill took (its last attempt), in seconds.
    pub backfill_avg_seconds: Option<f64>,
    pub backfill_p95_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outbox {
    pub unprocessed: i64,
    pub oldest_age_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DaemonState {
    /// The holder of the live leader lease, if any daemon is active.
    pub leader: Option<Uuid>,
    pub term: Option<i64>,
    pub lease_renewed_at: Option<DateTime<Utc>>,
    pub last_tick_at: Option<DateTime<Utc>>,
    pub last_tick_age_seconds: Option<f64>,
}

pub fn queue_report(s: &Snapshot, t: &Thresholds) -> QueueReport {
    let secs = |d: Option<std::time::Duration>| d.map(|d| round1(d.as_secs_f64()));
    QueueReport {
        verdict: judge(s, t),
        checked_at: s.now,
        jobs: s.jobs.0.clone(),
        estimated: s.estimated.clone(),
        due_now: s.due_now,
        oldest_due_age_seconds: secs(s.oldest_due_age()),
        next_retry_after: s.next_retry_after,
        expired_leases: s.expired_leases,
        last_hour: LastHour {
            completed: s.completed_last_hour,
            failed: s.failed_last_hour,
            backfill_avg_seconds: s.backfill_avg_seconds.map(round1),
            backfill_p95_seconds: s.backfill_p95_seconds.map(round1),
        },
        outbox: Outbox {
            unprocessed: s.outbox_unprocessed,
            oldest_age_seconds: secs(s.outbox_oldest_age()),
        },
        tracked_assets: s.tracked_assets,
        daemon: DaemonState {
            leader: s.daemon_holder,
            term: s.daemon_term,
            lease_renewed_at: s.daemon_renewed_at,
            last_tick_at: s.daemon_last_tick,
            last_tick_age_seconds: secs(s.daemon_last_tick_age()),
        },
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub async fn queue(State(state): State<Shared>) -> Response {
    let snapshot = match db("health/queue", super::snapshot::fetch(&state.pool, None)).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let report = queue_report(&snapshot, &state.thresholds);
    let code = match report.verdict.status {
        Health::Ok | Health::Degraded => StatusCode::OK,
        Health::Failing => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, Json(report)).into_response()
}

#[derive(Debug, Serialize)]
struct SourcesReport {
    checked_at: DateTime<Utc>,
    /// "requests", "rate_limited" and "errors" in `last_hour` count what
    /// this process sent; the totals and states are shared by all.
    sources: Vec<Source>,
}

pub async fn sources(State(state): State<Shared>) -> Response {
    let now = Utc::now();
    let read = super::sources::fetch(
        &state.pool,
        now,
        &state.rates,
        state.thresholds.source_failing_after,
    );
    match db("health/sources", read).await {
        Ok(sources) => Json(SourcesReport {
            checked_at: now,
            sources,
        })
        .into_response(),
        Err(response) => response,
    }
}
