//! The leader lease: one active daemon per role, without advisory locks.
//!
//! A row in `leader_leases` names the holder, its term (from a sequence) and
//! `expires_at` by the database clock. The holder renews it every third of
//! the lease and trusts it only until its *local* deadline, counted from
//! before the request that took or renewed it was sent, so the local
//! deadline always passes before the database's `expires_at`. Renewal and
//! resignation name holder and term: a holder that was paused past its lease
//! cannot extend or drop a newer term. Every write a leader makes goes
//! through [`fence`], which checks the term inside the write's transaction.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor, PgPool};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("leader lease query failed: {0}")]
    Db(#[from] sqlx::Error),
    #[error("leader lease query took longer than {0:?}")]
    Timeout(Duration),
}

/// A term this process holds, trusted until `deadline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    pub number: i64,
    pub holder: Uuid,
    pub deadline: Instant,
}

impl Term {
    pub fn is_live(&self) -> bool {
        Instant::now() < self.deadline
    }
}

/// Takes the lease when it is free or has run out; `Some(term)` on success.
pub async fn try_acquire(
    db: impl PgExecutor<'_>,
    role: &str,
    holder: Uuid,
    lease: Duration,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(include_str!("../../sql/lease_acquire.sql"))
        .bind(role)
        .bind(holder)
        .bind(lease.as_secs_f64())
        .fetch_optional(db)
        .await
}

/// Extends `term`; false when it is no longer this holder's live lease.
pub async fn renew(
    db: impl PgExecutor<'_>,
    role: &str,
    holder: Uuid,
    term: i64,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    let renewed: Option<i64> = sqlx::query_scalar(include_str!("../../sql/lease_renew.sql"))
        .bind(role)
        .bind(holder)
        .bind(term)
        .bind(lease.as_secs_f64())
        .fetch_optional(db)
        .await?;
    Ok(renewed.is_some())
}

/// Gives up `term` so a standby can take over at once.
pub async fn resign(
    db: impl PgExecutor<'_>,
    role: &str,
    holder: Uuid,
    term: i64,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM leader_leases WHERE role = $1 AND holder = $2 AND term = $3")
            .bind(role)
            .bind(holder)
            .bind(term)
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Inside a write transaction: true when `term` is still the live lease.
/// The row stays share-locked until the transaction ends, so no standby
/// takes over in between. A leader frozen while it holds that lock (e.g.
/// SIGSTOP) must not block the hand-over: the server ends its transaction
/// after `hold_limit` of idleness.
pub async fn fence(
    tx: &mut PgConnection,
    role: &str,
    term: &Term,
    hold_limit: Duration,
) -> Result<bool, sqlx::Error> {
    let millis = hold_limit.as_millis().max(1);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL idle_in_transaction_session_timeout = {millis}"
    )))
    .execute(&mut *tx)
    .await?;
    let held: Option<i64> = sqlx::query_scalar(include_str!("../../sql/lease_fence.sql"))
        .bind(role)
        .bind(term.holder)
        .bind(term.number)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(held.is_some() && term.is_live())
}

/// Keeps (or waits for) the lease of one role and publishes the live term.
#[derive(Debug)]
pub struct Leadership {
    pool: PgPool,
    role: String,
    holder: Uuid,
    lease: Duration,
    state: watch::Sender<Option<Term>>,
}

impl Leadership {
    pub fn new(pool: PgPool, role: impl Into<String>, lease: Duration) -> Self {
        Self {
            pool,
            role: role.into(),
            holder: Uuid::new_v4(),
            lease,
            state: watch::Sender::new(None),
        }
    }

    pub fn role(&self) -> &str {
        &self.role
    }

    pub fn holder(&self) -> Uuid {
        self.holder
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Term>> {
        self.state.subscribe()
    }

    /// The term this process may act under now, if any.
    pub fn current(&self) -> Option<Term> {
        let term = *self.state.borrow();
        term.filter(Term::is_live)
    }

    /// One round: renew a held term, or try to take the lease. Returns the
    /// live term after it. A database error keeps a held term only until its
    /// local deadline.
    pub async fn step(&self) -> Result<Option<Term>, LeaseError> {
        let held = *self.state.borrow();
        if let Some(term) = held.filter(|t| !t.is_live()) {
            tracing::warn!(
                term = term.number,
                "leader lease ran out before it was renewed; stepping down"
            );
            self.state.send_replace(None);
        }
        let sent = Instant::now();
        let limit = self.lease / 3;
        let outcome = match held.filter(Term::is_live) {
            Some(term) => {
                let renewed = tokio::time::timeout(
                    limit,
                    renew(&self.pool, &self.role, self.holder, term.number, self.lease),
                )
                .await
                .map_err(|_| LeaseError::Timeout(limit))??;
                if renewed {
                    Some(Term {
                        deadline: sent + self.lease,
                        ..term
                    })
                } else {
                    tracing::warn!(
                        term = term.number,
                        "leader lease lost to another daemon; stepping down"
                    );
                    None
                }
            }
            None => {
                let acquired = tokio::time::timeout(
                    limit,
                    try_acquire(&self.pool, &self.role, self.holder, self.lease),
                )
                .await
                .map_err(|_| LeaseError::Timeout(limit))??;
                acquired.map(|number| {
                    tracing::info!(term = number, holder = %self.holder, "became the active daemon");
                    Term {
                        number,
                        holder: self.holder,
                        deadline: sent + self.lease,
                    }
                })
            }
        };
        self.state.send_replace(outcome);
        Ok(outcome)
    }

    /// Renews or waits for the lease every third of it until `cancel`,
    /// then resigns a held term so a standby takes over at once.
    pub async fn run(self: std::sync::Arc<Self>, cancel: CancellationToken) {
        let every = self.lease / 3;
        loop {
            if let Err(e) = self.step().await {
                tracing::warn!(error = %e, "leader lease round failed; will retry");
            }
            crate::ops::metrics::record_lease(&self.role, self.current().is_some());
            let wake = match self.current() {
                // Wake at the deadline too, to step down on time should
                // renewals keep failing.
                Some(term) => (Instant::now() + every).min(term.deadline),
                None => Instant::now() + every,
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        crate::ops::metrics::record_lease(&self.role, false);
        if let Some(term) = self.state.send_replace(None) {
            match resign(&self.pool, &self.role, self.holder, term.number).await {
                Ok(true) => tracing::info!(term = term.number, "resigned the leader lease"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not resign the leader lease; it runs out by itself")
                }
            }
        }
    }
}
