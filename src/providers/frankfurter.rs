//! Frankfurter (no key): the European Central Bank's reference rates, for
//! FX pairs. A pair is asked as `EURUSD` (base then quote, six letters).
//!
//! `GET /v1/{from}..{to}?base=EUR&symbols=USD` answers
//! `{"amount":1.0,"base":"EUR","start_date":…,"end_date":…,"rates":
//! {"2024-01-02":{"USD":1.0956},…}}`: one value per ECB working day (set
//! around 16:00 CET), none on weekends and ECB holidays, and a range that
//! starts on a closed day starts at the working day before. These are
//! reference rates, not trades: a bar carries the rate as its close only,
//! flagged [`BarFlag::Reference`], at 00:00Z of its date. `GET
//! /v1/latest?base=EUR&symbols=USD,GBP` answers many quotes of one base.
//! An unknown currency is a 404 `{"message":"not found"}`.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Europe::Berlin;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use crate::calendar;

use super::assemble::assemble;
use super::bar::{BarFlag, History, Interval, Quote, Quotes, RawBar, RowReader, decimal_from_f64};
use super::batch::batch_failure;
use super::checks::{check_request, check_row_count, max_rows};
use super::error::{ErrorContext, ProviderError};
use super::http::{Call, Endpoint, EndpointConfig, Reply, classify, history_body_cap, snippet};
use super::kind::ProviderKind;
use super::provider::Provider;
use super::rate_limit::RateLimiter;

const INTERVALS: &[Interval] = &[Interval::D1];

#[derive(Debug)]
pub struct Frankfurter {
    endpoint: Endpoint,
}

impl Frankfurter {
    pub fn new(config: EndpointConfig) -> reqwest::Result<Self> {
        Ok(Self {
            endpoint: Endpoint::new(ProviderKind::Frankfurter, &config)?,
        })
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.endpoint.limiter
    }

    async fn get(
        &self,
        ctx: &ErrorContext,
        path: &str,
        query: &[(&str, String)],
        max_body: Option<usize>,
    ) -> Result<Reply, ProviderError> {
        self.endpoint
            .call(
                ctx,
                Call::new(&["v1", path], query).at_most(max_body),
                judge,
            )
            .await
    }

    /// Quotes of pairs sharing one base, from one `latest` request.
    async fn latest(
        &self,
        base: &str,
        pairs: &[(String, String)],
        out: &mut Quotes,
    ) -> Result<(), ProviderError> {
        let names: Vec<&str> = pairs.iter().map(|(symbol, _)| symbol.as_str()).collect();
        let ctx = ErrorContext::new(ProviderKind::Frankfurter, names.join(","));
        let quotes: Vec<&str> = pairs.iter().map(|(_, quote)| quote.as_str()).collect();
        let query = [("base", base.to_owned()), ("symbols", quotes.join(","))];
        let latest: Latest = match self.get(&ctx, "latest", &query, None).await {
            Ok(reply) => reply.json(&ctx)?,
            // One unknown currency fails the request: ask one by one to tell which.
            Err(ProviderError::NotFound { .. }) if pairs.len() > 1 => {
                for pair in pairs {
                    Box::pin(self.latest(base, std::slice::from_ref(pair), out)).await?;
                }
                return Ok(());
            }
            Err(e @ ProviderError::NotFound { .. }) => {
                out.missing.push(e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let ts = fixing_time(latest.date);
        for (symbol, quote) in pairs {
            let ctx = ErrorContext::new(ProviderKind::Frankfurter, symbol);
            let rate = latest
                .rates
                .get(quote)
                .and_then(Value::as_f64)
                .and_then(decimal_from_f64);
            match rate {
                Some(price) if price > Decimal::ZERO => out.quotes.push(Quote {
                    symbol: symbol.clone(),
                    price,
                    currency: Some(quote.clone()),
                    ts,
                }),
                _ => out
                    .missing
                    .push(ctx.not_found(format!("no {quote} rate for base {base}"))),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Frankfurter {
    #[tracing::instrument(skip_all, fields(provider = "frankfurter", symbol = symbol, %interval))]
    async fn history(
        &self,
        symbol: &str,
        from: NaiveDate,
        to: NaiveDate,
        interval: Interval,
    ) -> Result<History, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Frankfurter, symbol);
        check_request(&ctx, INTERVALS, from, to, interval)?;
        let (base, quote) = split_pair(&ctx, symbol)?;
        let query = [("base", base.clone()), ("symbols", quote.clone())];
        let cap = history_body_cap(max_rows(from, to, interval));
        let reply = self
            .get(&ctx, &format!("{from}..{to}"), &query, Some(cap))
            .await?;
        let series: Series = reply.json(&ctx)?;
        check_row_count(&ctx, series.rates.len(), from, to, interval)?;
        let mut rows = Vec::new();
        for (date, rates) in &series.rates {
            let Ok(date) = date.parse::<NaiveDate>() else {
                return Err(ctx.bad_data(format!("{} is not a date", snippet(date.as_bytes()))));
            };
            // A range starting on a closed day starts at the day before.
            if date < from || date > to {
                continue;
            }
            let mut read = RowReader::default();
            let close = match rates.get(&quote) {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => read.read("rate", n.as_f64(), decimal_from_f64),
                Some(other) => {
                    read.unreadable = Some(format!(
                        "rate {} is not a number",
                        snippet(other.to_string().as_bytes())
                    ));
                    None
                }
            };
            rows.push(RawBar {
                ts: date.and_time(NaiveTime::MIN).and_utc(),
                close,
                unreadable: read.unreadable,
                ..RawBar::default()
            });
        }
        let mut history = assemble(
            &ctx,
            interval,
            Some(quote),
            Some("UTC".to_owned()),
            rows,
            Vec::new(),
            Utc::now(),
        )?;
        for bar in &mut history.bars {
            bar.flags.push(BarFlag::Reference);
        }
        Ok(history)
    }

    #[tracing::instrument(skip_all, fields(provider = "frankfurter", symbols = symbols.len()))]
    async fn quotes(&self, symbols: &[String]) -> Result<Quotes, ProviderError> {
        let mut out = Quotes::default();
        let mut by_base: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for symbol in symbols {
            let ctx = ErrorContext::new(ProviderKind::Frankfurter, symbol);
            match split_pair(&ctx, symbol) {
                Ok((base, quote)) => by_base
                    .entry(base)
                    .or_default()
                    .push((symbol.clone(), quote)),
                Err(e) => out.missing.push(e),
            }
        }
        for (base, pairs) in &by_base {
            if let Err(e) = self.latest(base, pairs, &mut out).await {
                return batch_failure(out, symbols, e);
            }
        }
        Ok(out)
    }
}

/// `EURUSD` (or `EUR/USD`, `eur-usd`) as base and quote ISO codes.
pub fn split_pair(ctx: &ErrorContext, symbol: &str) -> Result<(String, String), ProviderError> {
    let letters: String = symbol
        .chars()
        .filter(|c| !matches!(c, '/' | '-' | '_'))
        .collect::<String>()
        .to_ascii_uppercase();
    if letters.len() != 6 || !letters.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ctx.unsupported(
            "a Frankfurter pair is two ISO currency codes, base then quote (EURUSD)",
        ));
    }
    let (base, quote) = letters.split_at(3);
    Ok((base.to_owned(), quote.to_owned()))
}

/// When the ECB sets the rates of `date`: about 16:00 in Frankfurt.
fn fixing_time(date: NaiveDate) -> DateTime<Utc> {
    const FIXING: NaiveTime = NaiveTime::from_hms_opt(16, 0, 0).unwrap();
    calendar::at(Berlin, date, FIXING)
}

/// The shared status classification, with Frankfurter's `{"message": …}`.
fn judge(ctx: &ErrorContext, reply: &Reply) -> Option<ProviderError> {
    if reply.status.is_success() {
        return None;
    }
    let mut error = classify(ctx, reply);
    // Frankfurter answers an unknown currency with 404 (v1) or 422 (older).
    if reply.status.as_u16() == 422 {
        error = ctx.not_found(format!("HTTP 422: {}", snippet(&reply.body)));
    }
    Some(error)
}

#[derive(Debug, Deserialize)]
struct Series {
    rates: BTreeMap<String, HashMap<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct Latest {
    date: NaiveDate,
    rates: HashMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_into_base_and_quote() {
        let ctx = ErrorContext::new(ProviderKind::Frankfurter, "x");
        let ok = |s: &str| split_pair(&ctx, s).unwrap();
        assert_eq!(ok("EURUSD"), ("EUR".to_owned(), "USD".to_owned()));
        assert_eq!(ok("gbp/chf"), ("GBP".to_owned(), "CHF".to_owned()));
        for bad in ["EURUSD=X", "EUR", "EU1USD", "EURUSDX"] {
            assert!(split_pair(&ctx, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fixings_are_at_four_in_frankfurt() {
        let winter = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        assert_eq!(
            fixing_time(winter).to_rfc3339(),
            "2024-01-02T15:00:00+00:00"
        );
        let summer = NaiveDate::from_ymd_opt(2024, 7, 2).unwrap();
        assert_eq!(
            fixing_time(summer).to_rfc3339(),
            "2024-07-02T14:00:00+00:00"
        );
    }
}
