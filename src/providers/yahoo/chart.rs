//! Reading a chart answer into a [`History`]: the exchange's time zone,
//! minor currency units, rows paired by index only when the arrays line up,
//! splits and dividends, and the bar still trading left out.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::wire::{ChartResult, Events, Meta, Period, QuoteArrays};
use crate::providers::assemble::assemble;
use crate::providers::bar::{
    CorporateEvent, History, Interval, RawBar, RowReader, decimal_from_volume, decimal_from_yahoo,
    from_unix_secs,
};
use crate::providers::checks::check_row_count;
use crate::providers::error::{ErrorContext, ProviderError};
use crate::providers::symbol::Printable;

/// Yahoo's currency, as an ISO code and the divisor from its unit: `GBp`
/// (pence), `ZAc` (South African cents), `ILA` (agorot) and `USX` (US cents,
/// grain futures) are hundredths of GBP, ZAR, ILS and USD.
pub fn currency(raw: Option<&str>) -> (Option<String>, Decimal) {
    let hundred = Decimal::ONE_HUNDRED;
    match raw.map(str::trim) {
        Some("GBp" | "GBX") => (Some("GBP".to_owned()), hundred),
        Some("ZAc") => (Some("ZAR".to_owned()), hundred),
        Some("ILA") => (Some("ILS".to_owned()), hundred),
        Some("USX") => (Some("USD".to_owned()), hundred),
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) => {
            (Some(code.to_ascii_uppercase()), Decimal::ONE)
        }
        _ => (None, Decimal::ONE),
    }
}

fn zone(ctx: &ErrorContext, meta: &Meta) -> Tz {
    match meta.exchange_timezone_name.as_deref().map(str::parse::<Tz>) {
        Some(Ok(tz)) => tz,
        other => {
            // Never from gmtoffset: that is the offset now, not at the bar.
            tracing::warn!(provider = "yahoo", symbol = %Printable(&ctx.symbol),
                zone = ?meta.exchange_timezone_name, ok = other.is_some(),
                "no usable exchangeTimezoneName; dating bars in UTC");
            Tz::UTC
        }
    }
}

pub(super) fn history_from_chart(
    ctx: &ErrorContext,
    result: ChartResult,
    from: NaiveDate,
    to: NaiveDate,
    interval: Interval,
    now: DateTime<Utc>,
) -> Result<History, ProviderError> {
    let (currency, unit) = currency(result.meta.currency.as_deref());
    let tz = zone(ctx, &result.meta);
    let in_range = |ts: DateTime<Utc>| {
        let date = ts.with_timezone(&tz).date_naive();
        from <= date && date <= to
    };
    let session = result
        .meta
        .current_trading_period
        .as_ref()
        .and_then(|p| p.regular.as_ref())
        .and_then(Session::from_period);
    let quote = result
        .indicators
        .quote
        .into_iter()
        .next()
        .unwrap_or_default();
    let adjclose = result
        .indicators
        .adjclose
        .into_iter()
        .next()
        .map(|a| a.adjclose)
        .unwrap_or_default();
    check_aligned(ctx, &result.timestamp, &quote, &adjclose)?;
    check_row_count(ctx, result.timestamp.len(), from, to, interval)?;
    let at = |values: &[Option<f64>], i: usize| values.get(i).copied().flatten();
    let to_major = |d: Decimal| (d / unit).normalize();

    let mut rows = Vec::new();
    for (i, &secs) in result.timestamp.iter().enumerate() {
        let ts = from_unix_secs(secs)
            .ok_or_else(|| ctx.bad_data(format!("timestamp {secs} is out of range")))?;
        let ts = session.map_or(ts, |s| s.bar_start(ts, interval, tz));
        if !in_range(ts) {
            continue;
        }
        if still_open(ts, interval, session, now) {
            tracing::debug!(provider = "yahoo", symbol = %Printable(&ctx.symbol), %ts, "open bar left out");
            continue;
        }
        let mut read = RowReader::default();
        let mut price = |name, values: &[Option<f64>]| {
            read.read(name, at(values, i), decimal_from_yahoo)
                .map(to_major)
        };
        let (open, high, low) = (
            price("open", &quote.open),
            price("high", &quote.high),
            price("low", &quote.low),
        );
        let (close, adj_close) = (price("close", &quote.close), price("adj_close", &adjclose));
        let volume = read.read("volume", at(&quote.volume, i), decimal_from_volume);
        rows.push(RawBar {
            ts,
            open,
            high,
            low,
            close,
            adj_close,
            volume,
            unreadable: read.unreadable,
        });
    }
    let events = events(result.events, &currency, unit)
        .into_iter()
        .filter(|e| in_range(e.ts()))
        .collect();
    let timezone = Some(tz.name().to_owned());
    assemble(ctx, interval, currency, timezone, rows, events, now)
}

/// Yahoo's arrays run parallel to `timestamp`. Arrays of other lengths
/// cannot be paired by index (a row would get another day's high): the
/// answer is refused. An empty array is a column Yahoo left out.
fn check_aligned(
    ctx: &ErrorContext,
    timestamps: &[i64],
    quote: &QuoteArrays,
    adjclose: &[Option<f64>],
) -> Result<(), ProviderError> {
    let columns = [
        ("open", quote.open.len()),
        ("high", quote.high.len()),
        ("low", quote.low.len()),
        ("close", quote.close.len()),
        ("volume", quote.volume.len()),
        ("adjclose", adjclose.len()),
    ];
    let n = timestamps.len();
    let misaligned: Vec<String> = columns
        .iter()
        .filter(|(_, len)| *len != 0 && *len != n)
        .map(|(name, len)| format!("{name} has {len}"))
        .collect();
    if misaligned.is_empty() {
        return Ok(());
    }
    Err(ctx.bad_data(format!(
        "misaligned arrays: {n} timestamps but {}; rows cannot be paired",
        misaligned.join(", ")
    )))
}

/// Splits and dividends, oldest first. Dividends are in the chart's unit
/// (pence for `GBp`) like prices.
fn events(events: Option<Events>, currency: &Option<String>, unit: Decimal) -> Vec<CorporateEvent> {
    let Some(events) = events else {
        return Vec::new();
    };
    let when =
        |date: Option<i64>, key: &str| date.or_else(|| key.parse().ok()).and_then(from_unix_secs);
    let mut out = Vec::new();
    for (key, d) in events.dividends {
        if let (Some(ts), Some(amount)) =
            (when(d.date, &key), d.amount.and_then(decimal_from_yahoo))
        {
            out.push(CorporateEvent::Dividend {
                ts,
                amount: (amount / unit).normalize(),
                currency: currency.clone(),
            });
        }
    }
    for (key, s) in events.splits {
        let numerator = s.numerator.and_then(decimal_from_yahoo);
        let denominator = s.denominator.and_then(decimal_from_yahoo);
        if let (Some(ts), Some(numerator), Some(denominator)) =
            (when(s.date, &key), numerator, denominator)
            && !numerator.is_zero()
            && !denominator.is_zero()
        {
            let ratio = s
                .split_ratio
                .unwrap_or_else(|| format!("{numerator}:{denominator}"));
            out.push(CorporateEvent::Split {
                ts,
                numerator,
                denominator,
                ratio,
            });
        }
    }
    out.sort_by_key(CorporateEvent::ts);
    out
}

/// The current regular session, from `meta.currentTradingPeriod.regular`.
#[derive(Debug, Clone, Copy)]
struct Session {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Session {
    fn from_period(period: &Period) -> Option<Self> {
        Some(Self {
            start: from_unix_secs(period.start?)?,
            end: from_unix_secs(period.end?)?,
        })
    }

    /// A daily bar starts at its session's open. Yahoo stamps the current
    /// session's bar with its last trade time instead; that bar is moved to
    /// the session's open so it meets the finished bar of the same day.
    fn bar_start(self, ts: DateTime<Utc>, interval: Interval, tz: Tz) -> DateTime<Utc> {
        let same_day =
            ts.with_timezone(&tz).date_naive() == self.start.with_timezone(&tz).date_naive();
        if interval == Interval::D1 && same_day && ts > self.start {
            self.start
        } else {
            ts
        }
    }
}

/// A bar is finished when its nominal length has passed, or, for a daily
/// bar, when it belongs to an earlier session or today's session is over.
fn still_open(
    ts: DateTime<Utc>,
    interval: Interval,
    session: Option<Session>,
    now: DateTime<Utc>,
) -> bool {
    if ts + interval.length() <= now {
        return false;
    }
    match (interval, session) {
        (Interval::D1, Some(s)) => ts >= s.start && now < s.end,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn minor_units_become_major_currencies() {
        let hundred = Decimal::ONE_HUNDRED;
        assert_eq!(currency(Some("GBp")), (Some("GBP".into()), hundred));
        assert_eq!(currency(Some("GBP")), (Some("GBP".into()), Decimal::ONE));
        assert_eq!(currency(Some("ZAc")), (Some("ZAR".into()), hundred));
        assert_eq!(currency(Some("usd")), (Some("USD".into()), Decimal::ONE));
        assert_eq!(currency(None), (None, Decimal::ONE));
        assert_eq!(currency(Some("US Dollar")), (None, Decimal::ONE));
    }

    #[test]
    fn open_bars_are_told_from_finished_ones() {
        // NASDAQ session 2024-03-01 14:30Z–21:00Z.
        let s = Session {
            start: utc(2024, 3, 1, 14, 30),
            end: utc(2024, 3, 1, 21, 0),
        };
        let d1 = Interval::D1;
        let today = utc(2024, 3, 1, 14, 30);
        let yesterday = utc(2024, 2, 29, 14, 30);
        let cases = [
            (today, Some(s), utc(2024, 3, 1, 18, 0), true), // in session
            (today, Some(s), utc(2024, 3, 1, 21, 30), false), // after the close
            (yesterday, Some(s), utc(2024, 3, 1, 10, 0), false), // earlier session
            (today, None, utc(2024, 3, 1, 22, 0), true),    // no session info: a day
            (today, None, utc(2024, 3, 2, 14, 30), false),
        ];
        for (ts, session, now, want) in cases {
            assert_eq!(still_open(ts, d1, session, now), want, "{ts} at {now}");
        }
        let m5 = utc(2024, 3, 1, 18, 0);
        assert!(still_open(
            m5,
            Interval::M5,
            Some(s),
            utc(2024, 3, 1, 18, 4)
        ));
        assert!(!still_open(
            m5,
            Interval::M5,
            Some(s),
            utc(2024, 3, 1, 18, 5)
        ));
    }

    #[test]
    fn live_daily_bar_moves_to_the_session_open() {
        let s = Session {
            start: utc(2024, 3, 1, 14, 30),
            end: utc(2024, 3, 1, 21, 0),
        };
        let ny: Tz = "America/New_York".parse().unwrap();
        let live = utc(2024, 3, 1, 20, 59);
        assert_eq!(s.bar_start(live, Interval::D1, ny), s.start);
        assert_eq!(s.bar_start(live, Interval::M5, ny), live);
        let earlier = utc(2024, 2, 29, 14, 30);
        assert_eq!(s.bar_start(earlier, Interval::D1, ny), earlier);
    }
}
