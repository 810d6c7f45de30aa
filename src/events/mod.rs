//! The event pipeline: outbox rows written by the trigger on
//! `portfolio_transactions` become holdings, reference counts in
//! `tracked_assets` and queued backfills, exactly once.

mod apply;
pub mod listener;
pub mod orchestrator;
pub mod plan;

/// The channel the outbox trigger notifies on (payload: the event id).
pub const EVENTS_CHANNEL: &str = "pricekeeper_events";
/// The channel new backfill jobs are announced on (payload: the job id).
pub const JOBS_CHANNEL: &str = "pricekeeper_jobs";

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("database error while applying events: {0}")]
    Database(#[from] sqlx::Error),
}
