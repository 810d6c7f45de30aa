//! Checks made around a request: before it (a symbol a URL would change,
//! an interval the provider does not serve, an inverted range) and on the
//! answer's size (more rows than the range can hold).

use chrono::NaiveDate;

use super::bar::Interval;
use super::error::{ErrorContext, ProviderError};
use super::symbol;

/// Refuses, before any request, a symbol a URL would change, an interval
/// the provider does not serve or an inverted range.
pub(crate) fn check_request(
    ctx: &ErrorContext,
    supported: &[Interval],
    from: NaiveDate,
    to: NaiveDate,
    interval: Interval,
) -> Result<(), ProviderError> {
    symbol::check(&ctx.symbol).map_err(|e| ctx.unsupported(e.to_string()))?;
    if !supported.contains(&interval) {
        let names: Vec<&str> = supported.iter().map(|i| i.as_str()).collect();
        return Err(ctx.unsupported(format!(
            "interval {interval} is not offered; use {}",
            names.join(", ")
        )));
    }
    if from > to {
        return Err(ctx.unsupported(format!("the range starts ({from}) after it ends ({to})")));
    }
    Ok(())
}

/// Refuses an answer with more rows than `[from, to]` can hold at this
/// interval (a provider's padding of a few days allowed), before anything
/// is built from it: a "daily" body of 189,048 points is bad data, and
/// reading it row by row would cost hundreds of megabytes.
pub(crate) fn check_row_count(
    ctx: &ErrorContext,
    rows: usize,
    from: NaiveDate,
    to: NaiveDate,
    interval: Interval,
) -> Result<(), ProviderError> {
    let limit = max_rows(from, to, interval);
    if rows > limit {
        return Err(ctx.bad_data(format!(
            "{rows} rows for {from}..{to} at {interval}, which holds at most {limit}; \
             refusing the answer"
        )));
    }
    Ok(())
}

/// Most rows an answer for `[from, to]` may carry: twice one per bar
/// length, over the range plus four days of padding, and a few more. Twice,
/// because providers answer a little more than asked (and two bars on one
/// date are caught by [`super::assemble::assemble`]); beyond that, it is another granularity.
pub(crate) fn max_rows(from: NaiveDate, to: NaiveDate, interval: Interval) -> usize {
    let days = (to - from).num_days().max(0) + 1 + ROW_PADDING_DAYS;
    let per_day = (86_400 / interval.length().num_seconds().max(1)).max(1);
    usize::try_from(days.saturating_mul(per_day).saturating_mul(2)).unwrap_or(usize::MAX) + 10
}

/// Days a provider's answer may reach beyond the range asked (Yahoo is
/// asked a day early and two late; crypto venues date in UTC).
const ROW_PADDING_DAYS: i64 = 4;
