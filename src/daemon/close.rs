//! After a session closes: the day's bar from the closing price, and a
//! backfill for any longer stretch between an asset's last stored bar and
//! that session, so a held asset's history never stops at its first
//! backfill.

use chrono::{DateTime, Datelike, Duration as TimeDelta, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgConnection;

use super::tick::Priced;
use crate::calendar::{CalendarId, Calendars, Session};

/// A closing quote counts for the day's bar when it was made during the
/// session or shortly after its close (closing auctions print late).
const CLOSE_SLACK: TimeDelta = TimeDelta::minutes(30);

#[derive(Debug, Default, Serialize)]
pub struct CloseReport {
    pub session: Option<NaiveDate>,
    pub bars_written: u64,
    pub stretches_queued: usize,
    /// Assets whose history was extended to the session (bar or job).
    pub current: usize,
}

/// Where a daily bar of `calendar` starts: the session's open for the
/// stock exchanges (as Yahoo stamps them) and 00:00 UTC for crypto. FX and
/// CME bars are stamped differently by each provider, so they are left to
/// the backfill.
fn bar_start(calendar: CalendarId, session: &Session) -> Option<DateTime<Utc>> {
    keeps_daily_bars(calendar).then_some(session.open)
}

/// Whether daily bars of `calendar` start at its session's open, so that
/// bars and sessions can be matched.
pub fn keeps_daily_bars(calendar: CalendarId) -> bool {
    match calendar {
        CalendarId::Xnys | CalendarId::Xlon | CalendarId::Xetr | CalendarId::Crypto => true,
        CalendarId::Fx | CalendarId::Cme => false,
    }
}

pub async fn store_close(
    tx: &mut PgConnection,
    calendars: &Calendars,
    calendar: CalendarId,
    session: &Session,
    priced: &[Priced],
    assets: &[i64],
    max_attempts: i32,
) -> Result<CloseReport, sqlx::Error> {
    let mut report = CloseReport {
        session: Some(session.date),
        ..CloseReport::default()
    };
    let ends: Vec<(i64, Option<DateTime<Utc>>, bool)> =
        sqlx::query_as(include_str!("../../sql/daemon_history_ends.sql"))
            .bind(assets)
            .fetch_all(&mut *tx)
            .await?;
    let mut closed_today: Vec<i64> = Vec::new();
    if let Some(ts) = bar_start(calendar, session) {
        let closing: Vec<&Priced> = priced
            .iter()
            .filter(|p| p.quote.ts >= session.open && p.quote.ts <= session.close + CLOSE_SLACK)
            .collect();
        if !closing.is_empty() {
            sqlx::query("SELECT ensure_asset_prices_partition($1)")
                .bind(ts.year())
                .execute(&mut *tx)
                .await?;
            let ids: Vec<i64> = closing.iter().map(|p| p.wanted.asset.id).collect();
            closed_today.clone_from(&ids);
            let starts = vec![ts; closing.len()];
            let closes: Vec<Decimal> = closing.iter().map(|p| p.quote.price).collect();
            let currencies: Vec<Option<String>> = closing
                .iter()
                .map(|p| {
                    p.quote
                        .currency
                        .clone()
                        .or_else(|| p.wanted.asset.currency.clone())
                })
                .collect();
            let sources: Vec<&str> = closing.iter().map(|p| p.source.as_str()).collect();
            report.bars_written = sqlx::query(include_str!("../../sql/daemon_close_bars.sql"))
                .bind(ids)
                .bind(starts)
                .bind(closes)
                .bind(currencies)
                .bind(sources)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
    }
    let tz = calendar.time_zone();
    let (mut ids, mut starts, mut ends_at, mut current) = (vec![], vec![], vec![], vec![]);
    for (asset, last_bar, queued) in ends {
        let Some(last_bar) = last_bar else {
            continue; // No history yet: its first backfill is the orchestrator's.
        };
        let last = last_bar.with_timezone(&tz).date_naive();
        if last >= session.date {
            current.push(asset);
            continue;
        }
        if queued {
            continue;
        }
        // Only the session just closed is missing, and its bar was written.
        let first_missing = last.succ_opt().unwrap_or(last);
        let missing = calendars
            .sessions(calendar, first_missing, session.date)
            .len();
        if missing <= 1 && closed_today.contains(&asset) {
            current.push(asset);
            continue;
        }
        ids.push(asset);
        starts.push(first_missing);
        ends_at.push(session.date);
        current.push(asset);
    }
    report.current = current.len();
    let queued: Vec<i64> = sqlx::query_scalar(include_str!("../../sql/daemon_queue_stretches.sql"))
        .bind(ids)
        .bind(starts)
        .bind(ends_at)
        .bind(&current)
        .bind(session.date)
        .bind(max_attempts)
        .fetch_all(&mut *tx)
        .await?;
    report.stretches_queued = queued.len();
    Ok(report)
}
