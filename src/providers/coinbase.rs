//! Coinbase Exchange public market data (no key):
//! `products/{id}/candles` for history and `products/{id}/ticker` for a
//! current price (one product per request).
//!
//! Quirks (PROVIDERS.md): a candle is `[time s, low, high, open, close,
//! volume]` as numbers, **low before high**; candles come newest first;
//! an interval without trades is left out, not sent empty; one request may
//! span at most 300 candles (a longer range is refused with 400), so a
//! range is asked window by window; the candle of the current period is
//! still open. Unknown product: 404 `{"message":"NotFound"}`; over 10
//! requests/s: 429 `{"message":"Public rate limit exceeded"}`.

use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use super::assemble::assemble;
use super::bar::{
    History, Interval, Quote, Quotes, RawBar, RowReader, decimal_from_f64, decimal_from_str,
    decimal_from_volume, from_unix_secs,
};
use super::batch::batch_failure;
use super::checks::{check_request, check_row_count};
use super::error::{ErrorContext, ProviderError};
use super::http::{Call, Endpoint, EndpointConfig, Reply, classify, history_body_cap, snippet};
use super::kind::ProviderKind;
use super::pairs::quote_currency;
use super::provider::Provider;
use super::rate_limit::RateLimiter;
use super::symbol;

const INTERVALS: &[Interval] = &[
    Interval::M1,
    Interval::M5,
    Interval::M15,
    Interval::H1,
    Interval::D1,
];

/// The most candles one request may span.
pub const MAX_CANDLES: i64 = 300;
/// A guard against a range that would need endless windows: 100 windows of
/// 300 daily candles is 82 years.
const MAX_WINDOWS: usize = 100;

#[derive(Debug)]
pub struct Coinbase {
    endpoint: Endpoint,
}

impl Coinbase {
    pub fn new(config: EndpointConfig) -> reqwest::Result<Self> {
        Ok(Self {
            endpoint: Endpoint::new(ProviderKind::Coinbase, &config)?,
        })
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.endpoint.limiter
    }

    async fn get(
        &self,
        ctx: &ErrorContext,
        path: &[&str],
        query: &[(&str, String)],
        max_body: Option<usize>,
    ) -> Result<Reply, ProviderError> {
        self.endpoint
            .call(ctx, Call::new(path, query).at_most(max_body), judge)
            .await
    }

    async fn ticker(&self, product: &str) -> Result<Quote, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Coinbase, product);
        symbol::check(product).map_err(|e| ctx.unsupported(e.to_string()))?;
        let reply = self
            .get(&ctx, &["products", product, "ticker"], &[], None)
            .await?;
        let ticker: Ticker = reply.json(&ctx)?;
        let price = ticker
            .price
            .as_deref()
            .and_then(decimal_from_str)
            .filter(|p| *p > Decimal::ZERO)
            .ok_or_else(|| ctx.bad_data("no positive price in the ticker answer"))?;
        let ts = ticker
            .time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
        Ok(Quote {
            symbol: product.to_owned(),
            price,
            currency: quote_currency(product),
            ts,
        })
    }
}

#[async_trait]
impl Provider for Coinbase {
    #[tracing::instrument(skip_all, fields(provider = "coinbase", symbol = product, %interval))]
    async fn history(
        &self,
        product: &str,
        from: NaiveDate,
        to: NaiveDate,
        interval: Interval,
    ) -> Result<History, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Coinbase, product);
        check_request(&ctx, INTERVALS, from, to, interval)?;
        let granularity = interval.length().num_seconds();
        let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc().timestamp();
        let first = midnight(from);
        let last = midnight(to.checked_add_days(Days::new(1)).unwrap_or(to)) - granularity;
        let now = Utc::now();
        let mut rows = Vec::new();
        let mut start = first;
        for _ in 0..MAX_WINDOWS {
            if start > last {
                let currency = quote_currency(product);
                return assemble(
                    &ctx,
                    interval,
                    currency,
                    Some("UTC".to_owned()),
                    rows,
                    Vec::new(),
                    now,
                );
            }
            // Both ends are candle starts: 300 candles span 299 steps.
            let end = (start + (MAX_CANDLES - 1) * granularity).min(last);
            let query = [
                ("granularity", granularity.to_string()),
                ("start", iso(start)),
                ("end", iso(end)),
            ];
            let cap = history_body_cap(MAX_CANDLES as usize);
            let reply = self
                .get(&ctx, &["products", product, "candles"], &query, Some(cap))
                .await?;
            let candles: Vec<Value> = reply.json(&ctx)?;
            if candles.len() > MAX_CANDLES as usize {
                return Err(ctx.bad_data(format!(
                    "{} candles in one answer; Coinbase sends at most {MAX_CANDLES}",
                    candles.len()
                )));
            }
            for candle in &candles {
                let bar = parse_candle(candle).ok_or_else(|| {
                    ctx.bad_data(format!(
                        "unexpected candle {}",
                        snippet(candle.to_string().as_bytes())
                    ))
                })?;
                let date = bar.ts.date_naive();
                // The current period's candle is still trading.
                if bar.ts + interval.length() > now || date < from || date > to {
                    continue;
                }
                rows.push(bar);
            }
            check_row_count(&ctx, rows.len(), from, to, interval)?;
            start = end + granularity;
        }
        Err(ctx.unsupported(format!(
            "{from}..{to} needs more than {MAX_WINDOWS} requests of {MAX_CANDLES} candles"
        )))
    }

    #[tracing::instrument(skip_all, fields(provider = "coinbase", symbols = products.len()))]
    async fn quotes(&self, products: &[String]) -> Result<Quotes, ProviderError> {
        let mut out = Quotes::default();
        for (i, product) in products.iter().enumerate() {
            match self.ticker(product).await {
                Ok(quote) => out.quotes.push(quote),
                Err(
                    e @ (ProviderError::RateLimited { .. }
                    | ProviderError::Transient { .. }
                    | ProviderError::Unreadable { .. }),
                ) => return batch_failure(out, &products[i..], e),
                Err(e) => out.missing.push(e),
            }
        }
        Ok(out)
    }
}

fn iso(secs: i64) -> String {
    from_unix_secs(secs)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Coinbase's judge: the shared status classification, with the
/// `{"message": …}` of the body as the message.
fn judge(ctx: &ErrorContext, reply: &Reply) -> Option<ProviderError> {
    if reply.status.is_success() {
        return None;
    }
    let mut error = classify(ctx, reply);
    let said = serde_json::from_slice::<Message>(&reply.body)
        .ok()
        .and_then(|m| m.message);
    if let Some(said) = said {
        let text = format!(
            "HTTP {}: {}",
            reply.status.as_u16(),
            snippet(said.as_bytes())
        );
        match &mut error {
            ProviderError::RateLimited { message, .. }
            | ProviderError::NotFound { message, .. }
            | ProviderError::Transient { message, .. }
            | ProviderError::Refused { message, .. } => *message = text,
            _ => {}
        }
    }
    Some(error)
}

/// One candle: `[time s, low, high, open, close, volume]`, numbers.
fn parse_candle(candle: &Value) -> Option<RawBar> {
    let row = candle.as_array()?;
    if row.len() < 6 || !row[1..6].iter().all(Value::is_number) {
        return None;
    }
    let ts = from_unix_secs(row[0].as_i64()?)?;
    let mut read = RowReader::default();
    let low = read.read("low", row[1].as_f64(), decimal_from_f64);
    let high = read.read("high", row[2].as_f64(), decimal_from_f64);
    let open = read.read("open", row[3].as_f64(), decimal_from_f64);
    let close = read.read("close", row[4].as_f64(), decimal_from_f64);
    let volume = read.read("volume", row[5].as_f64(), decimal_from_volume);
    Some(RawBar {
        ts,
        open,
        high,
        low,
        close,
        adj_close: None,
        volume,
        unreadable: read.unreadable,
    })
}

#[derive(Debug, Deserialize)]
struct Message {
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Ticker {
    price: Option<String>,
    time: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candles_put_low_before_high() {
        let candle: Value =
            serde_json::from_str("[1711929600, 69530.57, 71377, 69702.15, 71246.95, 18930.866]")
                .unwrap();
        let bar = parse_candle(&candle).unwrap();
        assert_eq!(bar.low.unwrap().to_string(), "69530.57");
        assert_eq!(bar.high.unwrap().to_string(), "71377");
        assert_eq!(bar.open.unwrap().to_string(), "69702.15");
        assert_eq!(bar.close.unwrap().to_string(), "71246.95");
        let strings: Value = serde_json::from_str(r#"[1711929600,"1","2","1","2","3"]"#).unwrap();
        assert!(parse_candle(&strings).is_none());
        assert!(parse_candle(&serde_json::json!([1711929600, 1, 2])).is_none());
    }
}
