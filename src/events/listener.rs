//! A LISTEN connection that turns notifications on one channel into
//! wake-ups. Notifications are only hints: after every (re)connect the
//! consumer is woken too, so it catches up on whatever was sent while the
//! connection was down.
//!
//! The LISTEN connection is its own, outside the pool: it is held for the
//! life of the process, and taking it from the pool would leave a small
//! pool (`PRICEKEEPER_DB_MAX_CONNECTIONS=2`) with nothing for the work.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Listens on `channel` until cancelled, calling `wake.notify_one()` for
/// every notification and after every successful (re)connect.
pub async fn listen(
    pool: PgPool,
    channel: &'static str,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        let mut listener = match subscribe(&pool, channel).await {
            Ok(listener) => {
                backoff = Duration::from_millis(100);
                tracing::debug!(channel, "listening");
                wake.notify_one();
                listener
            }
            Err(e) => {
                tracing::warn!(channel, error = %e, retry_in = ?backoff, "cannot LISTEN; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(_)) => wake.notify_one(),
                    // The connection dropped. Make a new listener rather than
                    // letting sqlx reconnect silently: we must know when it is
                    // back, to catch up on what it missed.
                    Ok(None) | Err(_) => {
                        tracing::warn!(channel, "LISTEN connection lost; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

async fn subscribe(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(&dedicated(pool)).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// A pool of one connection with `pool`'s options, for one long-lived
/// LISTEN (what `PgListener::connect` does for a URL).
pub fn dedicated(pool: &PgPool) -> PgPool {
    crate::db::nodelay::pool_options()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with((*pool.connect_options()).clone())
}
