//! What this process saw of each provider since it last wrote
//! `provider_state`: successes, errors and the request counts of the
//! providers' own tallies. Written in one statement per flush (after every
//! batch of outcomes, and after every daemon tick), only for providers
//! that changed, instead of one upsert per request on three hot rows.
//!
//! The request and rate-limit counts come from the providers' limiters,
//! which count requests actually sent: a request refused here during a
//! cooldown never reached the provider and is not counted.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::providers::http::not_sent;
use crate::providers::{ProviderError, ProviderKind, Providers};

const FLUSH: &str = include_str!("../../sql/provider_state_flush.sql");

#[derive(Debug, Default)]
pub struct Ledger {
    entries: Mutex<HashMap<ProviderKind, Entry>>,
    /// Providers whose unavailability was handed to a flush (once each;
    /// a failed write keeps it in the entries for the next one).
    recorded_unavailable: Mutex<std::collections::HashSet<ProviderKind>>,
}

#[derive(Debug, Default, Clone)]
struct Entry {
    requests: i64,
    rate_limited: i64,
    errors: i64,
    last_success: Option<DateTime<Utc>>,
    last_error: Option<(DateTime<Utc>, String)>,
    /// Well-formed answers without data since `last_data` (or since the
    /// last flush, when no data came).
    empty: i64,
    last_data: Option<DateTime<Utc>>,
    /// Why the provider is unavailable for this deployment, to record once.
    unavailable: Option<String>,
}

impl Entry {
    fn absorb(&mut self, other: Entry) {
        self.requests += other.requests;
        self.rate_limited += other.rate_limited;
        self.errors += other.errors;
        self.last_success = self.last_success.max(other.last_success);
        if other.last_data.is_some() {
            self.empty = other.empty;
        } else {
            self.empty += other.empty;
        }
        self.last_data = self.last_data.max(other.last_data);
        if self.unavailable.is_none() {
            self.unavailable = other.unavailable;
        }
        if other.last_error.as_ref().map(|e| e.0) > self.last_error.as_ref().map(|e| e.0) {
            self.last_error = other.last_error;
        }
    }

    fn is_empty(&self) -> bool {
        self.requests == 0
            && self.rate_limited == 0
            && self.errors == 0
            && self.last_success.is_none()
            && self.last_error.is_none()
            && self.empty == 0
            && self.last_data.is_none()
            && self.unavailable.is_none()
    }
}

impl Ledger {
    /// `provider` served a request well at `at`.
    pub fn success(&self, provider: ProviderKind, at: DateTime<Utc>) {
        self.with(provider, |e| e.last_success = e.last_success.max(Some(at)));
    }

    /// `provider` answered a history request well at `at`, with `bars`
    /// bars. A success either way; an empty one also lengthens its streak
    /// of empty answers (a silently changed API answers empty for every
    /// symbol), one with data ends it.
    pub fn answered(&self, provider: ProviderKind, at: DateTime<Utc>, bars: usize) {
        self.success(provider, at);
        self.with(provider, |e| {
            if bars == 0 {
                e.empty += 1;
            } else {
                e.empty = 0;
                e.last_data = e.last_data.max(Some(at));
            }
        });
    }

    /// `provider` failed a request at `at` with `error`. A refusal made
    /// here during a cooldown never reached the provider and is not
    /// recorded; a rate limit is counted by the limiter, other failures
    /// here. The message becomes the provider's last error either way.
    pub fn failed(&self, provider: ProviderKind, at: DateTime<Utc>, error: &ProviderError) {
        if not_sent(error) {
            return;
        }
        let counted = !matches!(error, ProviderError::RateLimited { .. });
        let message = error.to_string();
        self.with(provider, |e| {
            if counted {
                e.errors += 1;
            }
            e.absorb(Entry {
                last_error: Some((at, message)),
                ..Entry::default()
            });
        });
    }

    fn with(&self, provider: ProviderKind, f: impl FnOnce(&mut Entry)) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        f(entries.entry(provider).or_default());
    }

    /// Writes what changed since the last flush, with the requests the
    /// providers sent meanwhile, in one statement. What could not be
    /// written is kept for the next flush.
    pub async fn flush(
        &self,
        db: impl PgExecutor<'_>,
        providers: &Providers,
        now: Option<DateTime<Utc>>,
    ) -> Result<(), sqlx::Error> {
        let mut pending: HashMap<ProviderKind, Entry> = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *entries)
        };
        for kind in ProviderKind::ALL {
            let tally = providers.take_tally(kind);
            let entry = pending.entry(kind).or_default();
            entry.requests += tally.requests;
            entry.rate_limited += tally.rate_limited;
            if let Some(reason) = providers.unavailable(kind) {
                let mut recorded = self
                    .recorded_unavailable
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if recorded.insert(kind) {
                    entry.unavailable = Some(reason);
                }
            }
        }
        pending.retain(|_, e| !e.is_empty());
        if pending.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<(ProviderKind, Entry)> = pending.into_iter().collect();
        rows.sort_by_key(|(kind, _)| kind.as_str());
        let written = sqlx::query(FLUSH)
            .bind(rows.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, e)| e.requests).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, e)| e.rate_limited).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, e)| e.errors).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, e)| e.last_success).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|(_, e)| e.last_error.as_ref().map(|x| x.0))
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, e)| e.last_error.as_ref().map(|x| x.1.clone()))
                    .collect::<Vec<_>>(),
            )
            .bind(now)
            .bind(rows.iter().map(|(_, e)| e.empty).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, e)| e.last_data).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|(_, e)| e.unavailable.clone())
                    .collect::<Vec<_>>(),
            )
            .execute(db)
            .await;
        if written.is_err() {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            for (kind, entry) in rows {
                entries.entry(kind).or_default().absorb(entry);
            }
        }
        written.map(|_| ())
    }
}
