//! The backfill queue: workers that drain `backfill_queue` against the
//! providers without losing a job, running one twice, or getting banned.
//!
//! - [`claim`] takes due jobs with `FOR UPDATE SKIP LOCKED` under a lease,
//!   leaving alone jobs whose every provider is cooling down.
//! - [`backfill`] is the job body: provider chain → validated bars, and the
//!   one place provider errors become queue [`Outcome`]s.
//! - [`transitions`] moves jobs out of `in_progress`, each move guarded by
//!   the lease (`in_progress`, `locked_by = me`, `attempts` = the claim's),
//!   so a worker that lost its job changes nothing. The schema makes
//!   "held" and "in_progress" the same thing, so the guard reads
//!   `locked_by = me` and finds rows by primary key.
//! - [`cooldown`] is `provider_state`: shared pauses after a rate limit.
//! - [`reaper`] returns jobs whose lease expired; [`worker`] runs it all.
//!
//! Every timestamp is the database's clock (`now()`), so leases mean the
//! same on every machine; tests pass a [`Clock::manual`] time instead.

pub mod answer;
pub mod backfill;
pub mod backoff;
pub mod claim;
pub mod cooldown;
pub mod ledger;
pub mod reaper;
pub mod store;
pub mod transitions;
pub mod worker;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use claim::{ChainFilter, ClaimedJob};
pub use transitions::{Completion, Outcome};
pub use worker::{Worker, WorkerConfig, WorkerError};

/// A `backfill_queue` row id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type, serde::Serialize,
)]
#[sqlx(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifies one worker process (fresh at every start); it is what
/// `backfill_queue.locked_by` holds while the process owns a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct WorkerId(pub Uuid);

impl WorkerId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for WorkerId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `backfill_status` in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "backfill_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    InProgress,
    RateLimited,
    Completed,
    Failed,
    /// Ended without a provider call: the asset was made inactive.
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::RateLimited => "rate_limited",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Where "now" comes from for every queue statement.
///
/// `Database` (production) binds NULL, and the SQL uses its own `now()`:
/// one clock for every worker on every machine, so a lease means the same
/// everywhere. `Manual` binds a time a test controls, which is how tests
/// walk through a 5 → 10 → 20 → 40 minute backoff without waiting.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    Database,
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self::Manual(Arc::new(Mutex::new(start)))
    }

    /// The value bound as `$now`: None means the database's `now()`.
    pub fn sql(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Database => None,
            Self::Manual(t) => Some(*t.lock().expect("clock lock")),
        }
    }

    /// This process's idea of now, for in-memory decisions (the cooldown
    /// cache). Close to the database's clock; never written anywhere.
    pub fn local(&self) -> DateTime<Utc> {
        self.sql().unwrap_or_else(Utc::now)
    }

    /// Moves a manual clock; does nothing to the database clock.
    pub fn advance(&self, by: Duration) {
        if let Self::Manual(t) = self {
            let mut t = t.lock().expect("clock lock");
            *t += chrono::Duration::from_std(by).expect("duration in range");
        }
    }

    /// Sets a manual clock; does nothing to the database clock.
    pub fn set(&self, to: DateTime<Utc>) {
        if let Self::Manual(t) = self {
            *t.lock().expect("clock lock") = to;
        }
    }
}

/// A duration as whole milliseconds, the unit queue SQL takes delays in
/// (`$n * interval '1 millisecond'`).
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
