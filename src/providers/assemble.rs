//! Turns a provider's rows into a [`History`]: the one-bar-per-date rule of
//! daily series, then validation ([`super::validate`]), with what was left
//! out logged once per answer.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::bar::{BarFlag, CorporateEvent, History, Interval, RawBar};
use super::error::{ErrorContext, ProviderError};
use super::symbol::Printable;
use super::validate;

/// Validates provider rows into a [`History`] and logs what was left out.
/// A daily answer with two bars on one trading date (in `timezone`, the
/// exchange's zone) is refused whole: it is not a daily series, and
/// storing it would key "daily" bars on raw timestamps.
pub(crate) fn assemble(
    ctx: &ErrorContext,
    interval: Interval,
    currency: Option<String>,
    timezone: Option<String>,
    rows: Vec<RawBar>,
    events: Vec<CorporateEvent>,
    now: DateTime<Utc>,
) -> Result<History, ProviderError> {
    if interval == Interval::D1 {
        let tz = timezone
            .as_deref()
            .and_then(|z| z.parse::<Tz>().ok())
            .unwrap_or(Tz::UTC);
        check_one_bar_per_date(ctx, &rows, tz)?;
    }
    let checked = validate::validate(rows, currency.as_deref(), now);
    for rejected in &checked.rejected {
        tracing::debug!(provider = %ctx.provider, symbol = %Printable(&ctx.symbol), ts = %rejected.ts,
            reason = %rejected.reason, "row rejected");
    }
    if !checked.rejected.is_empty() {
        tracing::warn!(provider = %ctx.provider, symbol = %Printable(&ctx.symbol),
            rejected = checked.rejected.len(), first = %checked.rejected[0].reason,
            "rows rejected by validation");
    }
    let spikes = checked
        .bars
        .iter()
        .filter(|b| b.flags.contains(&BarFlag::Spike))
        .count();
    if spikes > 0 {
        tracing::warn!(provider = %ctx.provider, symbol = %Printable(&ctx.symbol), spikes,
            "close moved more than 50% in one bar; kept and flagged");
    }
    tracing::debug!(provider = %ctx.provider, symbol = %Printable(&ctx.symbol), bars = checked.bars.len(),
        skipped = checked.skipped, "history normalized");
    Ok(History {
        provider: ctx.provider,
        symbol: ctx.symbol.clone(),
        interval,
        currency,
        timezone,
        bars: checked.bars,
        events,
        rejected: checked.rejected,
        skipped: checked.skipped,
    })
}

/// Refuses a daily answer carrying two different bar starts on one date.
/// The same start twice is left to validation (Yahoo repeats the live bar),
/// and rows without a close (skipped anyway) do not count.
fn check_one_bar_per_date(
    ctx: &ErrorContext,
    rows: &[RawBar],
    tz: Tz,
) -> Result<(), ProviderError> {
    let mut starts: Vec<(NaiveDate, DateTime<Utc>)> = rows
        .iter()
        .filter(|r| r.close.is_some() || r.unreadable.is_some())
        .map(|r| (r.ts.with_timezone(&tz).date_naive(), r.ts))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let crowded: Vec<&[(NaiveDate, DateTime<Utc>)]> = starts
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|same_date| same_date.len() > 1)
        .collect();
    let Some(first) = crowded.first() else {
        return Ok(());
    };
    Err(ctx.bad_data(format!(
        "not a daily series: {} dates carry several bars (first: {} with {} bars, at {} and {}); \
         nothing stored",
        crowded.len(),
        first[0].0,
        first.len(),
        first[0].1.format("%H:%M:%SZ"),
        first[1].1.format("%H:%M:%SZ"),
    )))
}
