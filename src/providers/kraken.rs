//! Kraken public market data (no key): `0/public/OHLC` for history and
//! `0/public/Ticker` for many pairs per request.
//!
//! Quirks (PROVIDERS.md): the result is keyed by Kraken's own pair name
//! (`XBTUSD` is answered as `XXBTZUSD`), next to a `last` cursor; prices
//! are decimal strings; OHLC answers at most the 720 most recent candles
//! whatever `since` says (an older start is answered from later on, and the
//! queue asks the rest of the chain for the head); the last candle is still
//! open; and errors arrive as HTTP 200 with `"error": ["EQuery:Unknown
//! asset pair"]` or `["EAPI:Rate limit exceeded"]`. Bitcoin is `XBT` and
//! Dogecoin `XDG` at Kraken.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::assemble::assemble;
use super::bar::{History, Interval, Quote, Quotes, RawBar, decimal_from_str, from_unix_secs};
use super::batch::in_batches;
use super::checks::{check_request, check_row_count, max_rows};
use super::error::{ErrorContext, ProviderError};
use super::http::{Call, Endpoint, EndpointConfig, Reply, classify, history_body_cap, snippet};
use super::kind::ProviderKind;
use super::pairs::quote_currency;
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
];

/// The most candles one OHLC answer carries.
pub const MAX_CANDLES: usize = 720;
/// Pairs per Ticker request (they travel comma-separated in the URL).
const TICKER_BATCH: usize = 50;
/// Fiat quote assets Kraken names with a `Z` prefix in its own pair names.
const Z_FIATS: &[&str] = &["USD", "EUR", "GBP", "CAD", "JPY", "CHF", "AUD"];

#[derive(Debug)]
pub struct Kraken {
    endpoint: Endpoint,
}

impl Kraken {
    pub fn new(config: EndpointConfig) -> reqwest::Result<Self> {
        Ok(Self {
            endpoint: Endpoint::new(ProviderKind::Kraken, &config)?,
        })
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.endpoint.limiter
    }

    /// One public call; the `result` object of a reply whose `error` list
    /// is empty.
    async fn public(
        &self,
        ctx: &ErrorContext,
        method: &str,
        query: &[(&str, String)],
        max_body: Option<usize>,
    ) -> Result<Map<String, Value>, ProviderError> {
        let reply = self
            .endpoint
            .call(
                ctx,
                Call::new(&["0", "public", method], query).at_most(max_body),
                judge,
            )
            .await?;
        let envelope: Envelope = reply.json(ctx)?;
        envelope
            .result
            .ok_or_else(|| ctx.bad_data("no result and no error in the answer"))
    }

    async fn ticker(&self, batch: &[String], out: &mut Quotes) -> Result<(), ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Kraken, batch.join(","));
        let result = match self
            .public(&ctx, "Ticker", &[("pair", batch.join(","))], None)
            .await
        {
            Ok(result) => result,
            // One unknown pair fails the whole list: ask one by one to tell which.
            Err(ProviderError::NotFound { .. }) if batch.len() > 1 => {
                for symbol in batch {
                    Box::pin(self.ticker(std::slice::from_ref(symbol), out)).await?;
                }
                return Ok(());
            }
            Err(e @ ProviderError::NotFound { .. }) => {
                out.missing.push(e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let now = Utc::now();
        for symbol in batch {
            let ctx = ErrorContext::new(ProviderKind::Kraken, symbol);
            let entry = result
                .iter()
                .find(|(name, _)| names_match(symbol, name))
                .map(|(_, v)| v);
            // `c` is the last trade: [price, lot volume].
            let price = entry
                .and_then(|e| e.pointer("/c/0"))
                .and_then(Value::as_str)
                .and_then(decimal_from_str);
            match price {
                Some(price) if price > rust_decimal::Decimal::ZERO => out.quotes.push(Quote {
                    symbol: symbol.clone(),
                    price,
                    currency: quote_currency(symbol),
                    ts: now,
                }),
                _ if entry.is_none() => out
                    .missing
                    .push(ctx.not_found("not in Kraken's ticker answer")),
                _ => out
                    .missing
                    .push(ctx.bad_data("no positive last price in the ticker answer")),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Kraken {
    #[tracing::instrument(skip_all, fields(provider = "kraken", symbol = symbol, %interval))]
    async fn history(
        &self,
        symbol: &str,
        from: NaiveDate,
        to: NaiveDate,
        interval: Interval,
    ) -> Result<History, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Kraken, symbol);
        check_request(&ctx, INTERVALS, from, to, interval)?;
        // Candles whose start is after `since`: one second before the range.
        let since = from.and_time(NaiveTime::MIN).and_utc().timestamp() - 1;
        let minutes = interval.length().num_minutes();
        let query = [
            ("pair", symbol.to_owned()),
            ("interval", minutes.to_string()),
            ("since", since.to_string()),
        ];
        let cap = history_body_cap(max_rows(from, to, interval).min(MAX_CANDLES));
        let result = self.public(&ctx, "OHLC", &query, Some(cap)).await?;
        let mut series = result.into_iter().filter(|(name, _)| name != "last");
        let (Some((_, candles)), None) = (series.next(), series.next()) else {
            return Err(ctx.bad_data("the answer does not carry exactly one pair"));
        };
        let Value::Array(candles) = candles else {
            return Err(ctx.bad_data("the pair's candles are not a list"));
        };
        if candles.len() > MAX_CANDLES {
            return Err(ctx.bad_data(format!(
                "{} candles; Kraken answers at most {MAX_CANDLES}",
                candles.len()
            )));
        }
        let now = Utc::now();
        let mut rows = Vec::new();
        for candle in &candles {
            let (ts, bar) = parse_candle(candle).ok_or_else(|| {
                ctx.bad_data(format!(
                    "unexpected candle {}",
                    snippet(candle.to_string().as_bytes())
                ))
            })?;
            // The last candle is still trading: not a finished bar.
            if ts + interval.length() > now {
                continue;
            }
            let date = ts.date_naive();
            if date >= from && date <= to {
                rows.push(bar);
            }
        }
        check_row_count(&ctx, rows.len(), from, to, interval)?;
        assemble(
            &ctx,
            interval,
            quote_currency(symbol),
            Some("UTC".to_owned()),
            rows,
            Vec::new(),
            now,
        )
    }

    #[tracing::instrument(skip_all, fields(provider = "kraken", symbols = symbols.len()))]
    async fn quotes(&self, symbols: &[String]) -> Result<Quotes, ProviderError> {
        in_batches(self, symbols, TICKER_BATCH, |p, batch, out| {
            Box::pin(p.ticker(batch, out))
        })
        .await
    }
}

/// Kraken's judge: a non-success status is classified as usual; a 200 with
/// a non-empty `error` list is read by [`classify_errors`].
fn judge(ctx: &ErrorContext, reply: &Reply) -> Option<ProviderError> {
    if !reply.status.is_success() {
        let mut error = classify(ctx, reply);
        if let Some(errors) = error_list(reply) {
            let message = format!("HTTP {}: {}", reply.status.as_u16(), errors.join("; "));
            error = match error {
                ProviderError::RateLimited { retry_after, .. } => {
                    ctx.rate_limited(retry_after, message)
                }
                _ => classify_errors(ctx, &errors).unwrap_or(error),
            };
        }
        return Some(error);
    }
    error_list(reply).and_then(|errors| classify_errors(ctx, &errors))
}

/// The `error` list of a small JSON reply, if it has one that is not empty.
fn error_list(reply: &Reply) -> Option<Vec<String>> {
    let envelope: ErrorsOnly = reply.error_fields()?;
    let errors: Vec<String> = envelope
        .error
        .iter()
        .map(|e| match e {
            Value::String(s) => snippet(s.as_bytes()),
            other => snippet(other.to_string().as_bytes()),
        })
        .collect();
    (!errors.is_empty()).then_some(errors)
}

/// Kraken's error codes: `EQuery:Unknown asset pair` is a not-found,
/// `EAPI:Rate limit exceeded` and `EGeneral:Too many requests` a rate
/// limit (Kraken names no wait), `EService:Unavailable`/`Busy` and
/// `EGeneral:Internal error` transient; anything else is refused.
pub fn classify_errors(ctx: &ErrorContext, errors: &[String]) -> Option<ProviderError> {
    let first = errors.first()?;
    let message = errors.join("; ");
    let code = first.split(':').next().unwrap_or_default();
    Some(match code {
        "EQuery" if first.contains("Unknown asset pair") => ctx.not_found(message),
        "EAPI" if first.contains("Rate limit") => ctx.rate_limited(None, message),
        "EGeneral" if first.contains("Too many requests") => ctx.rate_limited(None, message),
        "EService" => ctx.transient(message),
        "EGeneral" if first.contains("Internal error") => ctx.transient(message),
        "EGeneral" if first.contains("Invalid arguments") => ctx.unsupported(message),
        _ => ctx.refused(message),
    })
}

/// One OHLC row: `[time s, "open", "high", "low", "close", "vwap",
/// "volume", count]`. Every price must be a readable decimal string.
fn parse_candle(candle: &Value) -> Option<(DateTime<Utc>, RawBar)> {
    let row = candle.as_array()?;
    if row.len() < 7 {
        return None;
    }
    let ts = from_unix_secs(row[0].as_i64()?)?;
    let number = |i: usize| row[i].as_str().and_then(decimal_from_str);
    let (open, high, low, close, volume) =
        (number(1)?, number(2)?, number(3)?, number(4)?, number(6)?);
    Some((
        ts,
        RawBar {
            ts,
            open: Some(open),
            high: Some(high),
            low: Some(low),
            close: Some(close),
            adj_close: None,
            volume: Some(volume),
            unreadable: None,
        },
    ))
}

/// Whether Kraken's own pair name `name` answers the pair asked as
/// `symbol`: the same name, or the legacy `X<base>Z<fiat>` form
/// (`XBTUSD` → `XXBTZUSD`).
pub fn names_match(symbol: &str, name: &str) -> bool {
    let symbol = symbol.to_ascii_uppercase();
    if symbol == name {
        return true;
    }
    Z_FIATS.iter().any(|fiat| {
        symbol
            .strip_suffix(fiat)
            .is_some_and(|base| base.len() == 3 && name == format!("X{base}Z{fiat}"))
    })
}

/// Kraken's code for a coin where it differs from the usual ticker.
pub fn asset_code(ticker: &str) -> &str {
    match ticker {
        "BTC" => "XBT",
        "DOGE" => "XDG",
        other => other,
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    result: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct ErrorsOnly {
    #[serde(default)]
    error: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_pair_names_answer_their_altnames() {
        assert!(names_match("XBTUSD", "XXBTZUSD"));
        assert!(names_match("xbteur", "XXBTZEUR"));
        assert!(names_match("SOLUSD", "SOLUSD"));
        assert!(names_match("XBTUSDT", "XBTUSDT"));
        assert!(!names_match("ETHUSD", "XXBTZUSD"));
        assert!(!names_match("XBTUSDT", "XXBTZUSD"));
    }

    #[test]
    fn error_codes_classify() {
        use super::super::error::Disposition::*;
        let ctx = ErrorContext::new(ProviderKind::Kraken, "XBTUSD");
        let cases = [
            ("EQuery:Unknown asset pair", NextProvider),
            (
                "EAPI:Rate limit exceeded",
                RateLimited { retry_after: None },
            ),
            (
                "EGeneral:Too many requests",
                RateLimited { retry_after: None },
            ),
            ("EService:Unavailable", Retry),
            ("EGeneral:Invalid arguments", NextProvider),
            ("EGeneral:Permission denied", NextProvider),
        ];
        for (raw, want) in cases {
            let e = classify_errors(&ctx, &[raw.to_owned()]).unwrap();
            assert_eq!(e.disposition(), want, "{raw}");
        }
        assert!(classify_errors(&ctx, &[]).is_none());
    }
}
