//! The integration tests, one crate: each file below was its own test
//! binary, each linking the whole dependency tree again. One binary builds
//! and links once (`cargo test --test it queue_rate_limits::` runs one file).

mod common;
mod daemon_common;
mod events_common;
mod provider_support;
mod queue_common;

mod adoption;
mod bar_store;
mod calendar_cli;
mod catalog;
mod cli;
mod daemon_cli;
mod daemon_failover;
mod daemon_tick;
mod db_sockets;
mod demo;
mod demo_market;
mod deploy;
mod e2e;
mod embedded_pg;
mod events;
mod events_resilience;
mod fetch_cli;
mod hostile_bodies;
mod lifecycle;
mod ops_cli;
mod ops_http;
mod ops_retention;
mod provider_answers;
mod provider_chains;
mod providers_binance;
mod providers_coinbase;
mod providers_coingecko;
mod providers_frankfurter;
mod providers_keyed;
mod providers_kraken;
mod providers_yahoo;
mod providers_yahoo_crumb;
mod queue_backfill;
mod queue_claim;
mod queue_lease;
mod queue_rate_limits;
mod queue_recovery;
mod queue_shutdown;
mod queue_wakeup;
mod schema;
mod shared_budget;
