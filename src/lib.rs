//! pricekeeper keeps price history and live prices for exactly the assets
//! that portfolios hold.
//!
//! A host application writes `portfolio_transactions`; a trigger appends each
//! write to the `portfolio_events` outbox and wakes listeners with
//! `pg_notify`. The orchestrator applies events exactly once, keeping a
//! reference count per asset (`tracked_assets`) and queueing backfills
//! (`backfill_queue`). Workers claim jobs with `FOR UPDATE SKIP LOCKED` under
//! a lease, fetch daily history from free providers and bulk-upsert it into
//! the year-partitioned `asset_prices`. PostgreSQL is the only moving part
//! besides this binary.

pub mod bench;
pub mod calendar;
pub mod catalog;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod db;
pub mod demo;
pub mod embedded_pg;
pub mod events;
pub mod exchanges;
pub mod local_http;
pub mod memory;
pub mod ops;
pub mod panics;
pub mod pipeline;
pub mod providers;
pub mod queue;
pub mod shutdown;
pub mod telemetry;
