//! One tick of the daemon: claim the slot, fetch the prices its plan asks
//! for in batched requests, and write them behind the leader's fence.
//!
//! The slot claim and the writes are separate short transactions, each
//! fenced by the term; the provider calls between them hold no transaction
//! and no lock. A leader that lost its term between the two (paused, cut
//! off) finds the fence closed and writes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::DaemonError;
use super::close::{self, CloseReport};
use super::gaps::{self, GapReport};
use super::lease::{self, Term};
use super::plan::{self, Plan, Scope, Wanted};
use crate::calendar::{CalendarId, Calendars, Session};
use crate::db::assets::Asset;
use crate::providers::http::not_sent;
use crate::providers::{ProviderError, ProviderKind, Providers, Quote, Quotes};
use crate::queue::ledger::Ledger;

/// Above this many symbols, one all-symbols ticker request (weight 4) is
/// cheaper than lists of 100.
const BINANCE_ALL_ABOVE: usize = 40;
use crate::queue::cooldown;

/// What starts a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A scheduled refresh, labelled by its slot time.
    Refresh { slot: DateTime<Utc> },
    /// The tick after a session closed: final prices and the daily bar.
    Close {
        calendar: CalendarId,
        session: Session,
    },
}

impl Trigger {
    fn slot(&self) -> (String, DateTime<Utc>) {
        match self {
            Self::Refresh { slot } => ("refresh".to_owned(), *slot),
            Self::Close { calendar, session } => (format!("close:{calendar}"), session.close),
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct TickReport {
    pub kind: String,
    pub slot: DateTime<Utc>,
    /// False when another daemon (or an earlier term) already ran the slot.
    pub ran: bool,
    pub tracked: usize,
    #[serde(flatten)]
    pub plan: Plan,
    /// Symbols asked per provider.
    pub asked: BTreeMap<String, usize>,
    pub quotes_written: u64,
    pub missing: usize,
    /// Providers whose whole batch failed, with the reason.
    pub failed: BTreeMap<String, String>,
    pub valuations_written: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close: Option<CloseReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gaps: Option<GapReport>,
    pub fetch_ms: u128,
    pub db_ms: u128,
}

/// What a tick needs, shared by every tick of one daemon.
#[derive(Debug, Clone)]
pub struct Ticker {
    pub pool: PgPool,
    pub providers: Providers,
    pub calendars: Calendars,
    pub trading_hours_only: bool,
    /// First cooldown after a rate limit, doubling (`RETRY_EXPONENTIAL_BASE`).
    pub retry_base: Duration,
    pub role: String,
    /// Longest a frozen leader may hold its fence open.
    pub fence_hold: Duration,
    /// `max_attempts` of the backfills a close queues.
    pub max_attempts: i32,
    /// What the providers did, for `provider_state`, written after each tick.
    pub ledger: std::sync::Arc<Ledger>,
}

/// A fetched price for one asset.
pub struct Priced {
    pub wanted: Wanted,
    pub quote: Quote,
    pub source: ProviderKind,
}

impl Ticker {
    /// Runs `trigger` under `term` as of `now` (injected: tests choose it).
    #[tracing::instrument(skip_all, fields(term = term.number), err)]
    pub async fn tick(
        &self,
        term: &Term,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Result<TickReport, DaemonError> {
        let (kind, slot) = trigger.slot();
        let mut report = TickReport {
            kind: kind.clone(),
            slot,
            ..TickReport::default()
        };
        let db_started = std::time::Instant::now();
        if !self.claim(term, &kind, slot).await? {
            return Ok(report);
        }
        report.ran = true;
        let assets: Vec<Asset> =
            sqlx::query_as(include_str!("../../sql/daemon_tracked_assets.sql"))
                .fetch_all(&self.pool)
                .await?;
        report.tracked = assets.len();
        cooldown::restore_unavailable(&self.pool, &self.providers).await?;
        let cooling: HashSet<ProviderKind> = cooldown::cooling_providers(&self.pool, Some(now))
            .await?
            .into_iter()
            .filter_map(|(name, _)| name.parse().ok())
            .collect();
        let scope = match trigger {
            Trigger::Refresh { .. } => Scope::Refresh {
                trading_hours_only: self.trading_hours_only,
            },
            Trigger::Close { calendar, .. } => Scope::Close(calendar),
        };
        let mut plan = plan::plan(
            assets,
            scope,
            now,
            &self.calendars,
            &self.providers,
            &cooling,
        );
        let mut db_time = db_started.elapsed();

        let fetch_started = std::time::Instant::now();
        let groups = std::mem::take(&mut plan.groups);
        let priced = self.fetch(groups, &cooling, now, &mut report).await?;
        report.fetch_ms = fetch_started.elapsed().as_millis();
        report.plan = plan;

        let db_started = std::time::Instant::now();
        let mut tx = self.pool.begin().await?;
        if !lease::fence(&mut tx, &self.role, term, self.fence_hold).await? {
            return Err(DaemonError::NotLeader { term: term.number });
        }
        report.quotes_written = write_quotes(&mut tx, &priced).await?;
        let asset_ids: Vec<i64> = priced.iter().map(|p| p.wanted.asset.id).collect();
        report.valuations_written =
            sqlx::query(include_str!("../../sql/daemon_refresh_valuations.sql"))
                .bind(&asset_ids)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if let Trigger::Close { calendar, session } = trigger {
            let close = close::store_close(
                &mut tx,
                &self.calendars,
                calendar,
                &session,
                &priced,
                &report.plan.selected,
                self.max_attempts,
            )
            .await?;
            report.close = Some(close);
            if close::keeps_daily_bars(calendar) {
                report.gaps = Some(
                    gaps::scan(
                        &mut tx,
                        &self.calendars,
                        calendar,
                        &session,
                        &report.plan.selected,
                        self.max_attempts,
                    )
                    .await?,
                );
            }
        }
        db_time += db_started.elapsed();
        report.db_ms = db_time.as_millis();
        sqlx::query("UPDATE daemon_slots SET finished_at = now(), summary = $3 WHERE kind = $1 AND slot = $2")
            .bind(&kind)
            .bind(slot)
            .bind(serde_json::to_value(&report).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if let Err(e) = self
            .ledger
            .flush(&self.pool, &self.providers, Some(now))
            .await
        {
            tracing::warn!(error = %e, "could not record provider successes and errors; kept for the next tick");
        }
        Ok(report)
    }

    async fn claim(
        &self,
        term: &Term,
        kind: &str,
        slot: DateTime<Utc>,
    ) -> Result<bool, DaemonError> {
        claim_slot(&self.pool, &self.role, term, self.fence_hold, kind, slot).await
    }

    /// One batched request series per provider, all providers at once. An
    /// asset its provider did not answer for goes to the next provider of
    /// its chain in another round. A rate limit pauses the provider for
    /// every process (as the workers do).
    async fn fetch(
        &self,
        groups: BTreeMap<ProviderKind, Vec<Wanted>>,
        cooling: &HashSet<ProviderKind>,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<Vec<Priced>, DaemonError> {
        let mut priced = Vec::new();
        let mut failed: HashSet<ProviderKind> = HashSet::new();
        let mut round = groups;
        while !round.is_empty() {
            for (kind, wanted) in &round {
                *report.asked.entry(kind.to_string()).or_default() += wanted.len();
            }
            let calls = round.into_iter().map(|(kind, wanted)| async move {
                let symbols: Vec<String> = wanted.iter().map(|w| w.symbol.clone()).collect();
                let answer = self.ask(kind, &symbols).await;
                (kind, wanted, answer)
            });
            let mut unanswered: Vec<(ProviderKind, Wanted)> = Vec::new();
            for (kind, wanted, answer) in join_all(calls).await {
                let quotes = match answer {
                    Ok(quotes) => {
                        self.ledger.success(kind, now);
                        quotes
                    }
                    Err(e) => {
                        self.note_failure(kind, &e, now).await?;
                        report.failed.insert(kind.to_string(), e.to_string());
                        failed.insert(kind);
                        unanswered.extend(wanted.into_iter().map(|w| (kind, w)));
                        continue;
                    }
                };
                if let Some(limited) = quotes
                    .missing
                    .iter()
                    .find(|e| matches!(e, ProviderError::RateLimited { .. }))
                {
                    self.note_failure(kind, limited, now).await?;
                    failed.insert(kind);
                }
                let by_symbol: HashMap<String, Quote> = quotes
                    .quotes
                    .into_iter()
                    .map(|q| (q.symbol.clone(), q))
                    .collect();
                for w in wanted {
                    match by_symbol.get(&w.symbol) {
                        Some(quote) => priced.push(Priced {
                            quote: quote.clone(),
                            wanted: w,
                            source: kind,
                        }),
                        None => unanswered.push((kind, w)),
                    }
                }
            }
            round = BTreeMap::new();
            for (tried, w) in unanswered {
                let next = self
                    .providers
                    .candidates(&w.asset)
                    .into_iter()
                    .skip_while(|(kind, _)| *kind != tried)
                    .skip(1)
                    .find(|(kind, _)| !cooling.contains(kind) && !failed.contains(kind));
                match next {
                    Some((kind, symbol)) => {
                        round.entry(kind).or_default().push(Wanted { symbol, ..w })
                    }
                    None => report.missing += 1,
                }
            }
        }
        Ok(priced)
    }

    /// One provider's batched quotes. Binance answers many symbols cheapest
    /// with its all-symbols ticker.
    async fn ask(&self, kind: ProviderKind, symbols: &[String]) -> Result<Quotes, ProviderError> {
        if kind == ProviderKind::Binance && symbols.len() > BINANCE_ALL_ABOVE {
            self.providers.binance().all_prices(symbols).await
        } else {
            self.providers.get(kind).quotes(symbols).await
        }
    }

    async fn note_failure(
        &self,
        kind: ProviderKind,
        error: &ProviderError,
        now: DateTime<Utc>,
    ) -> Result<(), DaemonError> {
        tracing::warn!(provider = %kind, error = %error, "quote batch failed");
        self.ledger.failed(kind, now, error);
        if let ProviderError::RateLimited { retry_after, .. } = error
            && !not_sent(error)
        {
            cooldown::record_rate_limit(&self.pool, kind, Some(now), *retry_after, self.retry_base)
                .await?;
        }
        Ok(())
    }
}

/// Claims the slot (`kind`, `slot`) for `term` behind the lease's fence:
/// true when this term is the first to claim it (the weekly catalog
/// refresh claims its slots here too).
pub async fn claim_slot(
    pool: &PgPool,
    role: &str,
    term: &Term,
    hold: Duration,
    kind: &str,
    slot: DateTime<Utc>,
) -> Result<bool, DaemonError> {
    let mut tx = pool.begin().await?;
    if !lease::fence(&mut tx, role, term, hold).await? {
        return Err(DaemonError::NotLeader { term: term.number });
    }
    let claimed: Option<DateTime<Utc>> =
        sqlx::query_scalar(include_str!("../../sql/daemon_claim_slot.sql"))
            .bind(kind)
            .bind(slot)
            .bind(term.number)
            .bind(term.holder)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(claimed.is_some())
}

async fn write_quotes(tx: &mut PgConnection, priced: &[Priced]) -> Result<u64, sqlx::Error> {
    if priced.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = priced.iter().map(|p| p.wanted.asset.id).collect();
    let prices: Vec<Decimal> = priced.iter().map(|p| p.quote.price).collect();
    let currencies: Vec<Option<String>> = priced
        .iter()
        .map(|p| {
            p.quote
                .currency
                .clone()
                .or_else(|| p.wanted.asset.currency.clone())
        })
        .collect();
    let times: Vec<DateTime<Utc>> = priced.iter().map(|p| p.quote.ts).collect();
    let sources: Vec<&str> = priced.iter().map(|p| p.source.as_str()).collect();
    sqlx::query(include_str!("../../sql/daemon_upsert_quotes.sql"))
        .bind(&ids)
        .bind(prices)
        .bind(currencies)
        .bind(times)
        .bind(sources)
        .execute(tx)
        .await?;
    Ok(priced.len() as u64)
}
