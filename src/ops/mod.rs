//! The ops surface of every long-running process: an HTTP server with
//! health checks, Prometheus metrics, a status page and admin actions
//! ([`server`]), and the housekeeping that keeps the tables from growing
//! with every write ([`retention`]).
//!
//! What it shows is read from PostgreSQL at request time ([`snapshot`],
//! [`sources`]), so every process answers for the whole cluster; only
//! request counters, latencies and tick counts are this process's own
//! ([`metrics`], [`window`]).

pub mod actions;
pub mod admin;
pub mod health;
pub mod metrics;
pub mod page;
pub mod retention;
pub mod server;
pub mod snapshot;
pub mod sources;

use std::net::SocketAddr;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Settings, duration, ranged};

/// The settings of the ops HTTP server, for `worker`, `daemon` and `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct OpsArgs {
    /// Address of the ops HTTP server (health, metrics, status page, admin
    /// actions): `host:port`, port 0 for any free port, or `off`.
    #[arg(long, env = "PRICEKEEPER_HTTP_ADDR", default_value = "127.0.0.1:9187",
          value_parser = http_addr, help_heading = "Ops")]
    pub http_addr: HttpAddr,

    /// Bearer token for the admin actions (retry, cancel, queue a
    /// backfill); at least 16 printable characters. Unset: the admin
    /// actions are off and answer 404.
    #[arg(long, env = "PRICEKEEPER_ADMIN_TOKEN", value_parser = crate::config::Secret(admin_token),
          hide_env_values = true, help_heading = "Ops")]
    pub admin_token: Option<AdminToken>,

    #[command(flatten)]
    pub thresholds: Thresholds,

    #[command(flatten)]
    pub retention: retention::RetentionArgs,
}

/// Starts the ops surface of a long-running process on `tasks`: the HTTP
/// server (bound before this returns, so a taken port stops the process
/// at once), retention under `gate`, and the watch that logs providers
/// turning `failing`. All stop with `cancel`.
pub async fn start(
    pool: PgPool,
    settings: &Settings,
    ops: &OpsArgs,
    role: &'static str,
    gate: retention::Gate,
    cancel: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<Option<SocketAddr>, server::ServerError> {
    let state = server::OpsState::new(pool.clone(), settings, ops, role)?;
    let rates = state.rates.clone();
    let running = server::start(state, ops.http_addr, cancel.clone()).await?;
    let addr = running.map(|r| {
        tasks.spawn(async move {
            let _ = r.task.await;
        });
        r.addr
    });
    tasks.spawn(retention::run(
        pool.clone(),
        ops.retention.clone(),
        gate,
        cancel.clone(),
    ));
    tasks.spawn(sources::watch(
        pool,
        rates,
        ops.thresholds.source_failing_after,
        cancel.clone(),
    ));
    Ok(addr)
}

/// When `/health/queue` says `degraded` or `failing` (and answers 503).
#[derive(Debug, Clone, clap::Args)]
pub struct Thresholds {
    /// Queue health is `degraded` once the oldest due job has waited this long.
    #[arg(long, env = "PRICEKEEPER_HEALTH_DUE_DEGRADED", default_value = "15m",
          value_parser = duration("PRICEKEEPER_HEALTH_DUE_DEGRADED", Duration::from_secs(1), Duration::from_secs(7 * 86_400)),
          help_heading = "Ops")]
    pub due_degraded: Duration,

    /// Queue health is `failing` once the oldest due job has waited this long.
    #[arg(long, env = "PRICEKEEPER_HEALTH_DUE_FAILING", default_value = "1h",
          value_parser = duration("PRICEKEEPER_HEALTH_DUE_FAILING", Duration::from_secs(1), Duration::from_secs(7 * 86_400)),
          help_heading = "Ops")]
    pub due_failing: Duration,

    /// Queue health is `degraded` once the oldest unapplied outbox event is this old.
    #[arg(long, env = "PRICEKEEPER_HEALTH_OUTBOX_DEGRADED", default_value = "1m",
          value_parser = duration("PRICEKEEPER_HEALTH_OUTBOX_DEGRADED", Duration::from_secs(1), Duration::from_secs(7 * 86_400)),
          help_heading = "Ops")]
    pub outbox_degraded: Duration,

    /// Queue health is `failing` once the oldest unapplied outbox event is this old.
    #[arg(long, env = "PRICEKEEPER_HEALTH_OUTBOX_FAILING", default_value = "10m",
          value_parser = duration("PRICEKEEPER_HEALTH_OUTBOX_FAILING", Duration::from_secs(1), Duration::from_secs(7 * 86_400)),
          help_heading = "Ops")]
    pub outbox_failing: Duration,

    /// Queue health is `degraded` with this many jobs failed in the last hour.
    #[arg(long, env = "PRICEKEEPER_HEALTH_FAILED_DEGRADED", default_value_t = 1,
          value_parser = ranged::<u32>("PRICEKEEPER_HEALTH_FAILED_DEGRADED", 1, 1_000_000),
          help_heading = "Ops")]
    pub failed_degraded: u32,

    /// Queue health is `failing` with this many jobs failed in the last hour.
    #[arg(long, env = "PRICEKEEPER_HEALTH_FAILED_FAILING", default_value_t = 50,
          value_parser = ranged::<u32>("PRICEKEEPER_HEALTH_FAILED_FAILING", 1, 1_000_000),
          help_heading = "Ops")]
    pub failed_failing: u32,

    /// A provider that has refused every request for this long (no success
    /// since) is `failing` in /health/sources, and logged as a warning.
    #[arg(long, env = "PRICEKEEPER_SOURCE_FAILING_AFTER", default_value = "2h",
          value_parser = duration("PRICEKEEPER_SOURCE_FAILING_AFTER", Duration::from_secs(60), Duration::from_secs(30 * 86_400)),
          help_heading = "Ops")]
    pub source_failing_after: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            due_degraded: Duration::from_secs(15 * 60),
            due_failing: Duration::from_secs(3600),
            outbox_degraded: Duration::from_secs(60),
            outbox_failing: Duration::from_secs(600),
            failed_degraded: 1,
            failed_failing: 50,
            source_failing_after: Duration::from_secs(2 * 3600),
        }
    }
}

/// Where the ops server listens, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpAddr {
    Off,
    On(SocketAddr),
}

fn http_addr(raw: &str) -> Result<HttpAddr, String> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("off") {
        return Ok(HttpAddr::Off);
    }
    raw.parse().map(HttpAddr::On).map_err(|_| {
        format!(
            "PRICEKEEPER_HTTP_ADDR must be host:port with an IP address (127.0.0.1:9187, \
             0.0.0.0:9187, [::1]:9187) or `off`, not {raw:?}"
        )
    })
}

/// The admin bearer token. Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// At least 16 visible ASCII characters: it travels in a header, and a
/// short one is guessed. The message never quotes the value.
fn admin_token(raw: &str) -> Result<AdminToken, String> {
    let token = raw.trim();
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "PRICEKEEPER_ADMIN_TOKEN must be printable ASCII without spaces (it is sent as an \
             HTTP header); the value given ({} characters) is not",
            raw.chars().count()
        ));
    }
    if token.len() < 16 {
        return Err(format!(
            "PRICEKEEPER_ADMIN_TOKEN must be at least 16 characters long (got {}); \
             e.g. `openssl rand -hex 32`",
            token.len()
        ));
    }
    Ok(AdminToken(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_addr_takes_socket_addresses_or_off() {
        assert_eq!(http_addr("off"), Ok(HttpAddr::Off));
        assert_eq!(
            http_addr("127.0.0.1:0"),
            Ok(HttpAddr::On("127.0.0.1:0".parse().unwrap()))
        );
        assert!(http_addr("[::1]:9187").is_ok());
        for bad in ["localhost:9187", "9187", "127.0.0.1", ""] {
            assert!(
                http_addr(bad)
                    .unwrap_err()
                    .starts_with("PRICEKEEPER_HTTP_ADDR"),
                "{bad}"
            );
        }
    }

    #[test]
    fn admin_tokens_are_long_header_values_and_never_echoed() {
        assert!(admin_token("0123456789abcdef").is_ok());
        for bad in [
            "short",
            "with a space 0123456789",
            "caf\u{e9}0123456789abcdef",
        ] {
            let err = admin_token(bad).unwrap_err();
            assert!(err.starts_with("PRICEKEEPER_ADMIN_TOKEN"), "{err}");
            assert!(!err.contains(bad), "{err}");
        }
        let shown = format!("{:?}", admin_token("0123456789abcdef").unwrap());
        assert!(!shown.contains("0123"), "{shown}");
    }
}
