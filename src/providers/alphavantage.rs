//! Alpha Vantage (needs `ALPHA_VANTAGE_API_KEY`): US stocks and ETFs.
//!
//! `GET /query?function=TIME_SERIES_DAILY&symbol=IBM&outputsize=…&apikey=`
//! answers `{"Meta Data":{…},"Time Series (Daily)":{"2024-01-02":{"1. open":
//! "…","2. high":"…","3. low":"…","4. close":"…","5. volume":"…"}}}`, every
//! value a string; `compact` is the last 100 trading days, `full` (a
//! premium option now) everything. `GLOBAL_QUOTE` gives one price per call.
//! Everything else arrives as HTTP **200**: an unknown symbol or a bad call
//! as `{"Error Message":"Invalid API call…"}`, throttling as `{"Note":…}`
//! (per minute) or `{"Information":…}` (the daily quota, 25 calls on the
//! free plan, or a premium-only option). The daily quota is budgeted with
//! a per-day rate (`25/d`): a request whose token is far off is not sent,
//! and its job snoozes (see `http::BUDGET_SPENT`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{Days, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::bar::{History, Interval, Quote, Quotes, RawBar, decimal_from_str};
use super::batch::batch_failure;
use super::checks::{check_request, max_rows};
use super::error::{ErrorContext, ProviderError};
use super::http::{Call, Endpoint, EndpointConfig, Reply, classify, history_body_cap, snippet};
use super::keyed::{ApiKey, assemble_us, call_with_key, session_open};
use super::kind::ProviderKind;
use super::provider::Provider;
use super::rate_limit::RateLimiter;

const INTERVALS: &[Interval] = &[Interval::D1];
/// `compact` holds 100 trading days: about 140 calendar days.
const COMPACT_DAYS: u64 = 140;

#[derive(Debug)]
pub struct AlphaVantage {
    endpoint: Endpoint,
    key: Option<ApiKey>,
}

impl AlphaVantage {
    /// Without a key every call is refused without a request.
    pub fn new(config: EndpointConfig, key: Option<ApiKey>) -> reqwest::Result<Self> {
        Ok(Self {
            endpoint: Endpoint::new(ProviderKind::AlphaVantage, &config)?,
            key,
        })
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.endpoint.limiter
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    async fn query(
        &self,
        ctx: &ErrorContext,
        query: &[(&str, String)],
        max_body: Option<usize>,
    ) -> Result<Map<String, Value>, ProviderError> {
        let call = Call::new(&["query"], query).at_most(max_body);
        call_with_key(&self.endpoint, &self.key, ctx, call, judge)
            .await?
            .json(ctx)
    }

    async fn quote(&self, symbol: &str) -> Result<Quote, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::AlphaVantage, symbol);
        let query = [
            ("function", "GLOBAL_QUOTE".to_owned()),
            ("symbol", symbol.to_owned()),
        ];
        let body = self.query(&ctx, &query, None).await?;
        let fields = body
            .get("Global Quote")
            .and_then(Value::as_object)
            .ok_or_else(|| ctx.bad_data("no \"Global Quote\" in the answer"))?;
        if fields.is_empty() {
            return Err(ctx.not_found("Alpha Vantage has no quote for this symbol"));
        }
        let text = |name: &str| fields.get(name).and_then(Value::as_str);
        let price = text("05. price")
            .and_then(decimal_from_str)
            .filter(|p| *p > Decimal::ZERO)
            .ok_or_else(|| ctx.bad_data("no positive price in the quote"))?;
        let day = text("07. latest trading day").and_then(|d| d.parse::<NaiveDate>().ok());
        Ok(Quote {
            symbol: symbol.to_owned(),
            price,
            currency: Some("USD".to_owned()),
            ts: day.map_or_else(Utc::now, session_open),
        })
    }
}

#[async_trait]
impl Provider for AlphaVantage {
    #[tracing::instrument(skip_all, fields(provider = "alphavantage", symbol = symbol, %interval))]
    async fn history(
        &self,
        symbol: &str,
        from: NaiveDate,
        to: NaiveDate,
        interval: Interval,
    ) -> Result<History, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::AlphaVantage, symbol);
        check_request(&ctx, INTERVALS, from, to, interval)?;
        let today = Utc::now().date_naive();
        let compact_from = today
            .checked_sub_days(Days::new(COMPACT_DAYS))
            .unwrap_or(today);
        let size = if from >= compact_from {
            "compact"
        } else {
            "full"
        };
        let query = [
            ("function", "TIME_SERIES_DAILY".to_owned()),
            ("symbol", symbol.to_owned()),
            ("outputsize", size.to_owned()),
        ];
        // A full answer holds decades whatever range was asked.
        let cap = history_body_cap(max_rows(from, to, interval).max(12_000));
        let mut body = self.query(&ctx, &query, Some(cap)).await?;
        let series: BTreeMap<String, Day> = body
            .remove("Time Series (Daily)")
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| ctx.bad_data(format!("unexpected time series ({e})")))?
            .ok_or_else(|| ctx.bad_data("no \"Time Series (Daily)\" in the answer"))?;
        let mut rows = Vec::new();
        for (date, day) in &series {
            let date = date
                .parse::<NaiveDate>()
                .map_err(|_| ctx.bad_data(format!("{} is not a date", snippet(date.as_bytes()))))?;
            if date >= from && date <= to {
                rows.push(day.to_raw(&ctx, session_open(date))?);
            }
        }
        // One row per date of the range at most (the dates are map keys),
        // so no row-count check is needed.
        assemble_us(&ctx, interval, rows)
    }

    #[tracing::instrument(skip_all, fields(provider = "alphavantage", symbols = symbols.len()))]
    async fn quotes(&self, symbols: &[String]) -> Result<Quotes, ProviderError> {
        let mut out = Quotes::default();
        for (i, symbol) in symbols.iter().enumerate() {
            match self.quote(symbol).await {
                Ok(quote) => out.quotes.push(quote),
                Err(e @ (ProviderError::NotFound { .. } | ProviderError::BadData { .. })) => {
                    out.missing.push(e)
                }
                Err(e) => return batch_failure(out, &symbols[i..], e),
            }
        }
        Ok(out)
    }
}

/// The fields Alpha Vantage answers with, HTTP 200, in place of data.
#[derive(Debug, Deserialize)]
struct Says {
    #[serde(rename = "Error Message")]
    error: Option<Value>,
    #[serde(rename = "Note")]
    note: Option<Value>,
    #[serde(rename = "Information")]
    information: Option<Value>,
}

/// Alpha Vantage's judge: its answers are HTTP 200 whatever happened, with
/// `Error Message` (not found), `Note` (per-minute throttling) or
/// `Information` (the daily quota; or a premium-only option, which no
/// wait cures) in place of data.
fn judge(ctx: &ErrorContext, reply: &Reply) -> Option<ProviderError> {
    if !reply.status.is_success() {
        return Some(classify(ctx, reply));
    }
    let says: Says = reply.error_fields()?;
    let said = |v: Option<Value>| v.map(|v| snippet(v.to_string().as_bytes()));
    if let Some(message) = said(says.error) {
        return Some(if message.contains("apikey") {
            ctx.refused(format!(
                "HTTP 200: {message}; check {}",
                ctx.provider.key_var().unwrap_or_default()
            ))
        } else {
            ctx.not_found(format!("HTTP 200: {message}"))
        });
    }
    if let Some(message) = said(says.note) {
        return Some(ctx.rate_limited(
            Some(Duration::from_secs(60)),
            format!("HTTP 200: {message}"),
        ));
    }
    let message = said(says.information)?;
    // The daily-limit text also names the premium plans: the quota is
    // read first.
    Some(
        if message.contains("per day") || message.contains("daily") {
            ctx.rate_limited(Some(until_next_utc_day()), format!("HTTP 200: {message}"))
        } else if message.contains("premium feature") || message.contains("premium endpoint") {
            ctx.unsupported(format!("HTTP 200: {message}"))
        } else {
            ctx.rate_limited(
                Some(Duration::from_secs(60)),
                format!("HTTP 200: {message}"),
            )
        },
    )
}

/// The daily quota renews at midnight UTC.
fn until_next_utc_day() -> Duration {
    let now = Utc::now();
    let tomorrow = now
        .date_naive()
        .checked_add_days(Days::new(1))
        .map(|d| d.and_time(NaiveTime::MIN).and_utc());
    tomorrow
        .and_then(|t| (t - now).to_std().ok())
        .unwrap_or(Duration::from_secs(86_400))
}

#[derive(Debug, Deserialize)]
struct Day {
    #[serde(rename = "1. open")]
    open: Option<String>,
    #[serde(rename = "2. high")]
    high: Option<String>,
    #[serde(rename = "3. low")]
    low: Option<String>,
    #[serde(rename = "4. close")]
    close: Option<String>,
    #[serde(rename = "5. volume")]
    volume: Option<String>,
}

impl Day {
    /// Every value present must be a decimal string: a broken one is bad data.
    fn to_raw(
        &self,
        ctx: &ErrorContext,
        ts: chrono::DateTime<Utc>,
    ) -> Result<RawBar, ProviderError> {
        let read = |name: &str, raw: &Option<String>| -> Result<Option<Decimal>, ProviderError> {
            raw.as_deref()
                .map(|r| {
                    decimal_from_str(r).ok_or_else(|| {
                        ctx.bad_data(format!("{name} {} is not a number", snippet(r.as_bytes())))
                    })
                })
                .transpose()
        };
        Ok(RawBar {
            ts,
            open: read("open", &self.open)?,
            high: read("high", &self.high)?,
            low: read("low", &self.low)?,
            close: read("close", &self.close)?,
            adj_close: None,
            volume: read("volume", &self.volume)?,
            unreadable: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::error::Disposition;

    fn reply(body: &str) -> Reply {
        Reply {
            status: reqwest::StatusCode::OK,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn two_hundreds_say_what_went_wrong() {
        let ctx = ErrorContext::new(ProviderKind::AlphaVantage, "IBM");
        let limited = |d: Disposition| {
            matches!(
                d,
                Disposition::RateLimited {
                    retry_after: Some(_)
                }
            )
        };
        let note = judge(&ctx, &reply(r#"{"Note":"Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute"}"#)).unwrap();
        assert!(limited(note.disposition()), "{note}");
        let daily = judge(&ctx, &reply(r#"{"Information":"We have detected your API key as XYZ and our standard API rate limit is 25 requests per day."}"#)).unwrap();
        assert!(daily.retry_after().unwrap() <= Duration::from_secs(86_400));
        let premium = judge(&ctx, &reply(r#"{"Information":"Thank you for using Alpha Vantage! The outputsize=full parameter value is a premium feature"}"#)).unwrap();
        assert_eq!(premium.disposition(), Disposition::NextProvider);
        let unknown = judge(&ctx, &reply(r#"{"Error Message":"Invalid API call. Please retry or visit the documentation (https://www.alphavantage.co/documentation/) for TIME_SERIES_DAILY."}"#)).unwrap();
        assert!(
            matches!(unknown, ProviderError::NotFound { .. }),
            "{unknown}"
        );
        assert!(judge(&ctx, &reply(r#"{"Meta Data":{}}"#)).is_none());
    }
}
