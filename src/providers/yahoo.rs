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
//! Reading a chart answer into bars is [`chart`]'s job; this file asks.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{Days, NaiveDate, Utc};
use rust_decimal::Decimal;

mod chart;
mod crumb;
mod wire;

pub use chart::currency;
use chart::history_from_chart;

use wire::{Chart, ChartEnvelope, ChartResult, SparkEnvelope};

use super::bar::{History, Interval, Quote, Quotes, decimal_from_yahoo, from_unix_secs};
use super::batch::batch_failure;
use super::checks::{check_request, max_rows};
use super::error::{ErrorContext, ProviderError};
use super::http::{Call, Endpoint, EndpointConfig, Reply, classify, history_body_cap};
use super::kind::ProviderKind;
use super::provider::Provider;
use super::rate_limit::RateLimiter;

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
    use super::*;

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
