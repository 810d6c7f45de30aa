//! The backfill job body: daily history for the job's range from the first
//! provider of the asset's chain that serves it. Providers already
//! validate: valid bars are stored, rejected rows recorded with their
//! reason (see [`super::store`]).
//!
//! [`decide`] is the one place where provider answers become queue
//! outcomes:
//!
//! | the chain's answers                         | outcome                                   |
//! |---------------------------------------------|-------------------------------------------|
//! | a provider sent bars                        | Complete (the first such provider)        |
//! | some provider rate limited or cooling down  | Snooze until the earliest cooldown ends   |
//! | else some transient failure                 | Retry after backoff(attempt)              |
//! | else some provider answered with no bars    | Complete, nothing stored, with a note     |
//! | else (not found, bad data, refused, none)   | Fail at once, every reason listed         |
//!
//! A rate limit moves on to the next provider rather than waiting; the job
//! waits only when no provider in its chain can serve it now. An answer in
//! another currency than the asset's counts as bad data ([`answer`]); one
//! that starts later than asked is kept, and the rest of the chain is asked
//! for the missing head (its bars become [`Completion::head`] parts). An
//! unreadable answer (a 200 HTML page) is transient for the first
//! [`UNREADABLE_RETRIES`] attempts, bad data after.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clap::ValueEnum;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::answer;
use super::claim::snooze_unservable;
use super::cooldown::{self, Cooldowns};
use super::ledger::Ledger;
use super::worker::JobBody;
use super::{ChainFilter, ClaimedJob, Clock, Completion, Outcome, backoff};
use crate::db::assets::AssetType;
use crate::db::budget::PgBudget;
use crate::providers::http::not_sent;
use crate::providers::{Disposition, History, Interval, ProviderError, ProviderKind, Providers};

/// Attempts on which an unreadable answer (a 200 HTML page) is retried
/// with backoff before it counts as bad data.
pub const UNREADABLE_RETRIES: i32 = 2;

/// How often the claim path re-reads `provider_state` besides the
/// notifications.
const COOLDOWN_REFRESH: Duration = Duration::from_secs(1);

/// Fetches and stores daily history through the providers.
#[derive(Debug)]
pub struct Backfill {
    pool: PgPool,
    providers: Providers,
    retry_base: Duration,
    cooldowns: Arc<Cooldowns>,
    /// Successes and errors for `provider_state`, written after each batch.
    ledger: Arc<Ledger>,
}

impl Backfill {
    pub fn new(pool: PgPool, providers: Providers, retry_base: Duration) -> Self {
        let cooldowns = Arc::new(Cooldowns::new(retry_base));
        // Every request checks the shared view before and after its token
        // wait, so a pause set anywhere stops requests waiting here.
        providers.share_cooldowns(cooldowns.clone());
        // ... and every request takes from the budget all processes share.
        providers.share_budget(Arc::new(PgBudget::new(pool.clone())));
        Self {
            pool,
            providers,
            retry_base,
            cooldowns,
            ledger: Arc::new(Ledger::default()),
        }
    }

    /// Records what a provider's error says about the provider (a rate
    /// limit pauses it for every worker) and how this job fared with it.
    /// `attempts` is the job's attempt number: an unreadable answer is
    /// retried for the first [`UNREADABLE_RETRIES`] of them.
    async fn refused(&self, error: ProviderError, clock: &Clock, attempts: i32) -> Tried {
        let provider = error.provider();
        if not_sent(&error) {
            // Refused here, not by the provider: nothing to record.
            let left = error.retry_after().unwrap_or_default();
            let until = self
                .cooldowns
                .cooling_until(provider, clock.local())
                .unwrap_or_else(|| {
                    clock.local() + chrono::Duration::from_std(left).unwrap_or_default()
                });
            return Tried::Cooling { provider, until };
        }
        self.ledger.failed(provider, clock.local(), &error);
        match error.disposition() {
            Disposition::RateLimited { retry_after } => {
                let until = match cooldown::record_rate_limit(
                    &self.pool,
                    provider,
                    clock.sql(),
                    retry_after,
                    self.retry_base,
                )
                .await
                {
                    Ok(recorded) => {
                        if recorded.began {
                            self.snooze_unservable(clock).await;
                        }
                        recorded.until
                    }
                    Err(e) => {
                        // Still pause it here; other processes learn of it
                        // from their own refusals.
                        tracing::error!(%provider, error = %e, "could not record a rate limit");
                        let wait = backoff::rate_limit_delay(self.retry_base, 1, retry_after);
                        clock.local() + chrono::Duration::from_std(wait).unwrap_or_default()
                    }
                };
                self.cooldowns.set(provider, until);
                Tried::RateLimited { until, error }
            }
            other => match other {
                Disposition::Retry => Tried::Transient(error),
                Disposition::RetryThenNextProvider if attempts <= UNREADABLE_RETRIES => {
                    Tried::Transient(error)
                }
                _ => Tried::Permanent(error),
            },
        }
    }
}

impl Backfill {
    /// Moves the jobs nobody can serve now out of the claims' way until the
    /// first cooldown ends (a cost paid once per cooldown, not per claim).
    async fn snooze_unservable(&self, clock: &Clock) {
        match snooze_unservable(&self.pool, clock.sql(), &self.chains()).await {
            Ok(0) => {}
            Ok(jobs) => tracing::info!(jobs, "jobs wait for a provider cooldown to end"),
            Err(e) => tracing::warn!(error = %e, "could not snooze the jobs behind a cooldown"),
        }
    }
}

#[async_trait]
impl JobBody for Backfill {
    fn chains(&self) -> ChainFilter {
        ChainFilter::new(AssetType::value_variants().iter().flat_map(|&asset_type| {
            self.providers
                .chain(asset_type)
                .iter()
                .map(move |p| (p.as_str().to_owned(), asset_type))
        }))
    }

    async fn before_claim(&self, clock: &Clock) -> Result<(), sqlx::Error> {
        self.cooldowns.use_clock(clock);
        // The watcher keeps the view current (notifications); this read is
        // its safety net, once a second rather than before every claim.
        if !self.cooldowns.due_for_refresh(COOLDOWN_REFRESH) {
            return Ok(());
        }
        let cooling = cooldown::cooling_providers(&self.pool, clock.sql()).await?;
        self.cooldowns.merge(cooling);
        // A provider another process (or an earlier run) found unavailable
        // is not asked again.
        cooldown::restore_unavailable(&self.pool, &self.providers).await?;
        Ok(())
    }

    async fn background(&self, cancel: CancellationToken) {
        cooldown::watch(self.pool.clone(), self.cooldowns.clone(), cancel).await;
    }

    async fn after_write(&self, clock: &Clock) {
        if let Err(e) = self
            .ledger
            .flush(&self.pool, &self.providers, clock.sql())
            .await
        {
            tracing::warn!(error = %e, "could not record provider successes and errors; kept for the next batch");
        }
    }

    async fn run(&self, job: &ClaimedJob, clock: &Clock) -> Outcome {
        self.cooldowns.use_clock(clock);
        if !job.asset.active {
            // Queued before the host made the asset inactive: nothing to
            // fetch any more. A purchase after it is active again queues
            // the range anew.
            return Outcome::Cancel {
                reason: format!(
                    "asset {} ({}) is inactive: not fetched",
                    job.asset.id, job.asset.symbol
                ),
            };
        }
        if let Some(reason) = answer::unknown_exchange(&job.asset) {
            return Outcome::Fail {
                reason,
                provider: None,
            };
        }
        let mut tried = Vec::new();
        // Bars served so far, newest part first; the range still wanted is
        // [job.start_date, wanted_to].
        let mut served: Option<Completion> = None;
        let mut wanted_to = job.end_date;
        for (provider, symbol) in self.providers.candidates(&job.asset) {
            if let Some(until) = self.cooldowns.cooling_until(provider, clock.local()) {
                tried.push(Tried::Cooling { provider, until });
                continue;
            }
            let reply = self
                .providers
                .get(provider)
                .history(&symbol, job.start_date, wanted_to, Interval::D1)
                .await;
            if let Ok(history) = &reply {
                self.ledger
                    .answered(provider, clock.local(), history.bars.len());
            }
            let history = match reply {
                Ok(history) if !history.bars.is_empty() => history,
                Ok(history) => {
                    tried.push(Tried::NoBars(history));
                    continue;
                }
                Err(error) => {
                    tried.push(self.refused(error, clock, job.attempts).await);
                    continue;
                }
            };
            if let Some(why) = answer::currency_mismatch(&job.asset, &history) {
                tried.push(Tried::Permanent(ProviderError::BadData {
                    provider,
                    symbol,
                    message: why,
                }));
                continue;
            }
            let starts = answer::first_date(&history);
            let part = completion(history, None);
            match served.as_mut() {
                None => served = Some(part),
                Some(main) => main.head.push(part),
            }
            match starts {
                // A partial answer (the provider's history starts later,
                // e.g. a coin listed there after the purchase): ask the
                // rest of the chain for the missing head.
                Some(first) if answer::head_missing(job.start_date, first) => {
                    wanted_to = first.pred_opt().unwrap_or(first);
                    tried.clear();
                }
                _ => break,
            }
        }
        match served {
            Some(mut main) => {
                if let Some(covered) = main
                    .parts()
                    .filter_map(|p| p.bars.first())
                    .map(|b| b.ts.date_naive())
                    .min()
                    .filter(|&first| answer::head_missing(job.start_date, first))
                {
                    main.covered_from = Some(covered);
                    let why = if tried.is_empty() {
                        "no other provider in the chain".to_owned()
                    } else {
                        summary(&tried)
                    };
                    main.note = Some(format!(
                        "history starts on {covered}, not {}: {why}",
                        job.start_date
                    ));
                }
                Outcome::Complete(main)
            }
            None => decide(job, tried, self.retry_base, rand::random()),
        }
    }
}

/// What one provider of the chain did for a job.
#[derive(Debug, Clone)]
pub enum Tried {
    /// Skipped: cooling down after an earlier rate limit.
    Cooling {
        provider: ProviderKind,
        until: DateTime<Utc>,
    },
    /// Refused with a rate limit just now; paused until `until`.
    RateLimited {
        until: DateTime<Utc>,
        error: ProviderError,
    },
    Transient(ProviderError),
    /// Not found, bad data, refused, unsupported: this provider never will.
    Permanent(ProviderError),
    /// Answered, but with no valid bar in the range.
    NoBars(History),
}

/// The one mapping from the chain's answers to the job's outcome (see the
/// table in the module documentation). `unit` in `[0, 1)` is the jitter.
pub fn decide(job: &ClaimedJob, tried: Vec<Tried>, retry_base: Duration, unit: f64) -> Outcome {
    if tried.is_empty() {
        return Outcome::Fail {
            reason: format!(
                "no provider in the {} chain has a symbol for asset {} ({}); set its \
                 yahoo_symbol, binance_symbol or coingecko_id",
                type_name(job.asset.asset_type),
                job.asset.id,
                job.asset.symbol
            ),
            provider: None,
        };
    }
    let paused = tried.iter().filter_map(|t| match t {
        Tried::Cooling { provider, until } => Some((*provider, *until)),
        Tried::RateLimited { until, error } => Some((error.provider(), *until)),
        _ => None,
    });
    if let Some((provider, until)) = paused.min_by_key(|(_, until)| *until) {
        return Outcome::Snooze {
            until,
            reason: format!("{}; waiting until {until}", summary(&tried)),
            provider: Some(provider),
        };
    }
    if let Some(provider) = tried.iter().find_map(|t| match t {
        Tried::Transient(e) => Some(e.provider()),
        _ => None,
    }) {
        return Outcome::Retry {
            after: backoff::transient_delay(retry_base, job.attempts.max(1) as u32, unit),
            reason: summary(&tried),
            provider: Some(provider),
        };
    }
    let note = format!(
        "no bars between {} and {}: {}",
        job.start_date,
        job.end_date,
        summary(&tried)
    );
    match tried.into_iter().find_map(|t| match t {
        Tried::NoBars(history) => Some(history),
        _ => None,
    }) {
        Some(history) => Outcome::Complete(completion(history, Some(note))),
        None => Outcome::Fail {
            reason: format!("no provider can serve it: {note}"),
            provider: None,
        },
    }
}

fn type_name(asset_type: AssetType) -> String {
    asset_type
        .to_possible_value()
        .map_or_else(|| format!("{asset_type:?}"), |v| v.get_name().to_owned())
}

/// Every provider's answer, in chain order, in an operator's words.
fn summary(tried: &[Tried]) -> String {
    let parts: Vec<String> = tried
        .iter()
        .map(|t| match t {
            Tried::Cooling { provider, until } => {
                format!("{provider} cooling down after a rate limit until {until}")
            }
            Tried::RateLimited { error, .. }
            | Tried::Transient(error)
            | Tried::Permanent(error) => error.to_string(),
            Tried::NoBars(h) if h.rejected.is_empty() => {
                format!("{} {}: no bars in the range", h.provider, h.symbol)
            }
            Tried::NoBars(h) => format!(
                "{} {}: every row was invalid ({} rejected, first: {})",
                h.provider,
                h.symbol,
                h.rejected.len(),
                h.rejected[0].reason
            ),
        })
        .collect();
    parts.join("; ")
}

fn completion(history: History, note: Option<String>) -> Completion {
    let note = note.or_else(|| {
        (!history.rejected.is_empty()).then(|| {
            format!(
                "{} of {} rows from {} were invalid and not stored (see backfill_rejects)",
                history.rejected.len(),
                history.rejected.len() + history.bars.len(),
                history.provider
            )
        })
    });
    Completion {
        provider: Some(history.provider),
        interval: history.interval,
        bars: history.bars,
        rejected: history.rejected,
        events: history.events,
        note,
        ..Completion::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::assets::Asset;
    use crate::providers::{Bar, Rejected};
    use crate::queue::JobId;

    const BASE: Duration = Duration::from_secs(300);

    fn job(attempts: i32) -> ClaimedJob {
        ClaimedJob {
            id: JobId(1),
            attempts,
            max_attempts: 5,
            start_date: "2024-01-01".parse().unwrap(),
            end_date: "2024-12-31".parse().unwrap(),
            asset: Asset {
                id: 9,
                symbol: "BTC".into(),
                asset_type: AssetType::Crypto,
                exchange: "CRYPTO".into(),
                currency: Some("USD".into()),
                yahoo_symbol: None,
                binance_symbol: None,
                coingecko_id: None,
                active: true,
            },
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn limited(provider: ProviderKind, until: &str) -> Tried {
        Tried::RateLimited {
            until: at(until),
            error: ProviderError::RateLimited {
                provider,
                symbol: "BTCUSDT".into(),
                retry_after: None,
                message: "HTTP 429".into(),
            },
        }
    }

    fn transient(provider: ProviderKind) -> Tried {
        Tried::Transient(ProviderError::Transient {
            provider,
            symbol: "BTC-USD".into(),
            message: "HTTP 503".into(),
        })
    }

    fn not_found(provider: ProviderKind) -> Tried {
        Tried::Permanent(ProviderError::NotFound {
            provider,
            symbol: "BTC-USD".into(),
            message: "No data found, symbol may be delisted".into(),
        })
    }

    fn history(provider: ProviderKind, bars: usize, rejected: usize) -> History {
        let ts = at("2024-03-01T00:00:00Z");
        History {
            provider,
            symbol: "BTC-USD".into(),
            interval: Interval::D1,
            currency: Some("USD".into()),
            timezone: None,
            bars: (0..bars)
                .map(|_| Bar {
                    ts,
                    open: None,
                    high: None,
                    low: None,
                    close: rust_decimal::Decimal::ONE,
                    adj_close: None,
                    volume: None,
                    currency: Some("USD".into()),
                    flags: Vec::new(),
                })
                .collect(),
            events: Vec::new(),
            rejected: (0..rejected)
                .map(|_| Rejected {
                    ts,
                    reason: "close must be positive, got -1".into(),
                })
                .collect(),
            skipped: 0,
        }
    }

    #[derive(Debug, PartialEq)]
    enum Kind {
        Complete,
        Snooze(DateTime<Utc>),
        Retry(Duration),
        Fail,
    }

    fn kind(o: &Outcome) -> Kind {
        match o {
            Outcome::Complete(_) => Kind::Complete,
            Outcome::Snooze { until, .. } => Kind::Snooze(*until),
            Outcome::Retry { after, .. } => Kind::Retry(*after),
            Outcome::Fail { .. } => Kind::Fail,
            Outcome::Release { .. } | Outcome::Cancel { .. } => unreachable!(),
        }
    }

    #[test]
    fn the_chain_decides_the_outcome() {
        use ProviderKind::*;
        let t1 = "2025-01-01T00:05:00Z";
        let t2 = "2025-01-01T00:10:00Z";
        let cases: Vec<(Vec<Tried>, i32, Kind)> = vec![
            (vec![], 1, Kind::Fail),
            (vec![not_found(Binance), not_found(Yahoo)], 1, Kind::Fail),
            (vec![limited(Binance, t2)], 1, Kind::Snooze(at(t2))),
            // the earliest pause wins, a transient failure elsewhere does not
            (
                vec![
                    limited(Binance, t2),
                    Tried::Cooling {
                        provider: CoinGecko,
                        until: at(t1),
                    },
                    transient(Yahoo),
                ],
                3,
                Kind::Snooze(at(t1)),
            ),
            (
                vec![limited(Binance, t2), not_found(Yahoo)],
                1,
                Kind::Snooze(at(t2)),
            ),
            (
                vec![not_found(Binance), transient(Yahoo)],
                1,
                Kind::Retry(BASE),
            ),
            (vec![transient(Yahoo)], 3, Kind::Retry(4 * BASE)),
            (
                vec![Tried::NoBars(history(Binance, 0, 0)), not_found(Yahoo)],
                1,
                Kind::Complete,
            ),
            (
                vec![Tried::NoBars(history(Binance, 0, 0)), transient(Yahoo)],
                1,
                Kind::Retry(BASE),
            ),
        ];
        for (tried, attempts, want) in cases {
            let what = format!("{tried:?}");
            assert_eq!(
                kind(&decide(&job(attempts), tried, BASE, 0.5)),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn reasons_name_every_provider_in_an_operators_words() {
        use ProviderKind::*;
        let Outcome::Fail { reason, .. } = decide(&job(1), vec![], BASE, 0.5) else {
            panic!()
        };
        assert_eq!(
            reason,
            "no provider in the crypto chain has a symbol for asset 9 (BTC); set its \
             yahoo_symbol, binance_symbol or coingecko_id"
        );
        let Outcome::Fail { reason, .. } = decide(
            &job(1),
            vec![not_found(Binance), not_found(Yahoo)],
            BASE,
            0.5,
        ) else {
            panic!()
        };
        assert_eq!(
            reason,
            "no provider can serve it: no bars between 2024-01-01 and 2024-12-31: \
             binance BTC-USD: not found: No data found, symbol may be delisted; \
             yahoo BTC-USD: not found: No data found, symbol may be delisted"
        );
        let Outcome::Snooze { reason, .. } = decide(
            &job(1),
            vec![limited(Binance, "2025-01-01T00:05:00Z")],
            BASE,
            0.5,
        ) else {
            panic!()
        };
        assert_eq!(
            reason,
            "binance BTCUSDT: rate limited (no Retry-After given): HTTP 429; \
             waiting until 2025-01-01 00:05:00 UTC"
        );
        let Outcome::Complete(c) = decide(
            &job(1),
            vec![Tried::NoBars(history(Yahoo, 0, 2))],
            BASE,
            0.5,
        ) else {
            panic!()
        };
        assert_eq!(c.rejected.len(), 2);
        assert!(
            c.note
                .unwrap()
                .contains("every row was invalid (2 rejected")
        );
    }

    #[test]
    fn partial_answers_keep_valid_bars_and_note_the_rejects() {
        let c = completion(history(ProviderKind::Yahoo, 3, 1), None);
        assert_eq!((c.bars.len(), c.rejected.len()), (3, 1));
        assert_eq!(
            c.note.as_deref(),
            Some("1 of 4 rows from yahoo were invalid and not stored (see backfill_rejects)")
        );
    }
}
