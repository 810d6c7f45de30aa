//! Yahoo Finance v8 chart: history for anything with a Yahoo ticker
//! (stocks, ETFs, funds, futures `GC=F`, FX `EURUSD=X`, crypto `BTC-USD`),
//! and quotes batched through v7 `finance/quote` (cookie and crumb, see
//! [`crumb`]), then `spark` and `chart?range=1d` as the fallbacks.
//!
//! Quirks handled here (PROVIDERS.md): prices are f32s widened to f64
//! ([`decimal_from_yahoo`]); a missing bar is a timestamp with nulls; "no
//! data" has no `timestamp` and `quote: [{}]`; `GBp` (and other minor units)
//! become the major currency; dates are taken in `exchangeTimezoneName`,
//! never from `gmtoffset`; splits and dividends are objects keyed by the
//! timestamp as a string; an unknown symbol is a 404 with `chart.error`.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

mod crumb;
mod wire;

use wire::{Chart, ChartEnvelope, ChartResult, Events, Meta, Period, QuoteArrays, SparkEnvelope};

use super::assemble::assemble;
use super::bar::{
    CorporateEvent, History, Interval, Quote, Quotes, RawBar, RowReader, decimal_from_volume,
    decimal_from_yahoo, from_unix_secs,
};
use super::batch::batch_failure;
use super::checks::{check_request, check_row_count, max_rows};
use super::error::{ErrorContext, ProviderError};
use super::http::{Call, Endpoint, EndpointConfig, Reply, classify, history_body_cap};
use super::kind::ProviderKind;
use super::provider::Provider;
use super::rate_limit::RateLimiter;
use super::symbol::Printable;

const INTERVALS: &[Interval] = &[
    Interval::M1,
    Interval::M5,
    Interval::M15,
    Interval::M30,
    Interval::H1,
    Interval::D1,
    Interval::W1,
    Interval::Mo1,
];

/// Symbols per spark request; Yahoo answers larger lists with errors.
const SPARK_BATCH: usize = 20;

#[derive(Debug)]
pub struct Yahoo {
    endpoint: Endpoint,
    crumbs: crumb::CrumbCache,
}

impl Yahoo {
    pub fn new(config: EndpointConfig) -> reqwest::Result<Self> {
        Ok(Self {
            endpoint: Endpoint::new(ProviderKind::Yahoo, &config)?,
            crumbs: crumb::CrumbCache::default(),
        })
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.endpoint.limiter
    }

    async fn chart(
        &self,
        ctx: &ErrorContext,
        query: &[(&str, String)],
        max_body: Option<usize>,
    ) -> Result<ChartResult, ProviderError> {
        let path = ["v8", "finance", "chart", &ctx.symbol];
        let call = Call::new(&path, query).at_most(max_body);
        let reply = self.endpoint.call(ctx, call, judge_chart).await?;
        let envelope: ChartEnvelope = reply.json(ctx)?;
        first_result(ctx, envelope.chart)
    }

    /// One spark request; symbols it does not answer with a usable price
    /// and currency are left for the chart fallback.
    async fn spark(
        &self,
        ctx: &ErrorContext,
        symbols: &[String],
    ) -> Result<HashMap<String, Quote>, ProviderError> {
        let query = [
            ("symbols", symbols.join(",")),
            ("range", "1d".to_owned()),
            ("interval", "1d".to_owned()),
        ];
        let call = Call::new(&["v8", "finance", "spark"], &query);
        let reply = self.endpoint.call(ctx, call, judge_chart).await?;
        let envelope: SparkEnvelope = reply.json(ctx)?;
        let mut found = HashMap::new();
        for entry in envelope.spark.and_then(|s| s.result).unwrap_or_default() {
            let Some(symbol) = entry.symbol else { continue };
            let Some(result) = entry.response.into_iter().next() else {
                continue;
            };
            if let Some(quote) = quote_from_chart(&symbol, &result, true) {
                found.insert(symbol, quote);
            }
        }
        Ok(found)
    }

    /// Quotes for one spark batch, falling back to the chart endpoint.
    async fn quote_batch(&self, symbols: &[String], out: &mut Quotes) -> Result<(), ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Yahoo, symbols.join(","));
        let mut found = match self.spark(&ctx, symbols).await {
            Ok(found) => found,
            Err(e @ ProviderError::RateLimited { .. }) => return Err(e),
            Err(e) => {
                tracing::debug!(provider = "yahoo", error = %e, "spark failed; using chart per symbol");
                HashMap::new()
            }
        };
        for symbol in symbols {
            if let Some(quote) = found.remove(symbol) {
                out.quotes.push(quote);
                continue;
            }
            let ctx = ErrorContext::new(ProviderKind::Yahoo, symbol);
            let query = [("range", "1d".to_owned()), ("interval", "1d".to_owned())];
            match self.chart(&ctx, &query, None).await {
                Ok(result) => match quote_from_chart(symbol, &result, false) {
                    Some(quote) => out.quotes.push(quote),
                    None => out
                        .missing
                        .push(ctx.bad_data("the chart carries no current price")),
                },
                Err(e @ ProviderError::RateLimited { .. }) => return Err(e),
                Err(e) => out.missing.push(e),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Yahoo {
    #[tracing::instrument(skip_all, fields(provider = "yahoo", symbol = symbol, %interval))]
    async fn history(
        &self,
        symbol: &str,
        from: NaiveDate,
        to: NaiveDate,
        interval: Interval,
    ) -> Result<History, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Yahoo, symbol);
        check_request(&ctx, INTERVALS, from, to, interval)?;
        let now = Utc::now();
        check_intraday_reach(&ctx, from, interval, now.date_naive())?;
        // Dates are the exchange's, which is only known from the answer: ask
        // a day more on each side and keep the bars whose local date fits.
        let period = |date: NaiveDate| date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp();
        let period1 = period(from.checked_sub_days(Days::new(1)).unwrap_or(from));
        let period2 = period(to.checked_add_days(Days::new(2)).unwrap_or(to));
        let query = [
            ("period1", period1.to_string()),
            ("period2", period2.to_string()),
            ("interval", yahoo_interval(interval).to_owned()),
            ("events", "div|split".to_owned()),
            ("includeAdjustedClose", "true".to_owned()),
        ];
        let cap = history_body_cap(max_rows(from, to, interval));
        let result = self.chart(&ctx, &query, Some(cap)).await?;
        history_from_chart(&ctx, result, from, to, interval, now)
    }

    #[tracing::instrument(skip_all, fields(provider = "yahoo", symbols = symbols.len()))]
    async fn quotes(&self, symbols: &[String]) -> Result<Quotes, ProviderError> {
        let mut out = Quotes::default();
        let symbols = &self.quotes_v7(symbols, &mut out).await?;
        for (i, batch) in symbols.chunks(SPARK_BATCH).enumerate() {
            if let Err(e) = self.quote_batch(batch, &mut out).await {
                return batch_failure(out, &symbols[i * SPARK_BATCH..], e);
            }
        }
        Ok(out)
    }
}

fn yahoo_interval(interval: Interval) -> &'static str {
    match interval {
        Interval::H1 => "60m",
        other => other.as_str(),
    }
}

/// Yahoo serves intraday bars only so far back (5m: 60 days, 1h: 730 days).
fn check_intraday_reach(
    ctx: &ErrorContext,
    from: NaiveDate,
    interval: Interval,
    today: NaiveDate,
) -> Result<(), ProviderError> {
    let days = match interval {
        Interval::M1 => 7,
        Interval::M5 | Interval::M15 | Interval::M30 => 60,
        Interval::H1 => 730,
        _ => return Ok(()),
    };
    let earliest = today.checked_sub_days(Days::new(days)).unwrap_or(today);
    if from < earliest {
        return Err(ctx.unsupported(format!(
            "Yahoo keeps {interval} bars for {days} days; start on {earliest} or later"
        )));
    }
    Ok(())
}

/// The judge of chart and spark replies: any non-success status is a
/// failure, read by [`classify_chart`].
fn judge_chart(ctx: &ErrorContext, reply: &Reply) -> Option<ProviderError> {
    (!reply.status.is_success()).then(|| classify_chart(ctx, reply))
}

/// A non-success chart or spark reply: `chart.error` "Not Found" is a
/// delisted or unknown symbol whatever the status; the rest is shared.
fn classify_chart(ctx: &ErrorContext, reply: &Reply) -> ProviderError {
    if let Ok(envelope) = serde_json::from_slice::<ChartEnvelope>(&reply.body)
        && let Some(error) = envelope.chart.error
        && reply.status.as_u16() != 429
        && !reply.status.is_server_error()
    {
        let text = error.description.or(error.code.clone()).unwrap_or_default();
        let message = format!("HTTP {}: {text}", reply.status.as_u16());
        return match error.code.as_deref() {
            Some("Not Found") => ctx.not_found(message),
            _ if reply.status.as_u16() == 404 => ctx.not_found(message),
            _ => ctx.refused(message),
        };
    }
    classify(ctx, reply)
}

fn first_result(ctx: &ErrorContext, chart: Chart) -> Result<ChartResult, ProviderError> {
    if let Some(error) = chart.error {
        let text = error.description.or(error.code.clone()).unwrap_or_default();
        return Err(match error.code.as_deref() {
            Some("Not Found") => ctx.not_found(text),
            _ => ctx.refused(text),
        });
    }
    chart
        .result
        .and_then(|results| results.into_iter().next())
        .ok_or_else(|| ctx.not_found("chart.result is empty"))
}

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

fn history_from_chart(
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

/// A quote from a chart or spark result's `meta` (live price and time),
/// else from its last non-null close. Spark results without a currency are
/// refused (`require_currency`): a pence price must not pass for pounds.
fn quote_from_chart(symbol: &str, result: &ChartResult, require_currency: bool) -> Option<Quote> {
    if require_currency && result.meta.currency.is_none() {
        return None;
    }
    let (currency, unit) = currency(result.meta.currency.as_deref());
    let from_meta = result
        .meta
        .regular_market_price
        .zip(result.meta.regular_market_time.and_then(from_unix_secs));
    let (raw, ts) = from_meta.or_else(|| {
        let closes = &result.indicators.quote.first()?.close;
        result
            .timestamp
            .iter()
            .zip(closes)
            .rev()
            .find_map(|(&secs, close)| Some(((*close)?, from_unix_secs(secs)?)))
    })?;
    let price = (decimal_from_yahoo(raw)? / unit).normalize();
    (price > Decimal::ZERO).then(|| Quote {
        symbol: symbol.to_owned(),
        price,
        currency,
        ts,
    })
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

    #[test]
    fn intraday_reach_is_checked_before_asking() {
        let ctx = ErrorContext::new(ProviderKind::Yahoo, "AAPL");
        let today = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
        let days_ago = |n| today - Days::new(n);
        assert!(check_intraday_reach(&ctx, days_ago(59), Interval::M5, today).is_ok());
        assert!(check_intraday_reach(&ctx, days_ago(61), Interval::M5, today).is_err());
        assert!(check_intraday_reach(&ctx, days_ago(700), Interval::H1, today).is_ok());
        assert!(check_intraday_reach(&ctx, days_ago(9000), Interval::D1, today).is_ok());
    }
}
