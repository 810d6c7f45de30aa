//! Financial Modeling Prep (needs `FMP_API_KEY`): US stocks and ETFs.
//!
//! `GET /api/v3/historical-price-full/{symbol}?from=&to=&apikey=` answers
//! `{"symbol":"AAPL","historical":[{"date":"2024-01-02","open":…,"high":…,
//! "low":…,"close":…,"adjClose":…,"volume":…,…}]}`, newest first; an
//! unknown symbol is `{}`. The newer `/stable/historical-price-eod/full`
//! answers the same rows as a flat array; both shapes are read.
//! `GET /api/v3/quote/AAPL,MSFT?apikey=` answers many symbols at once
//! (an unknown one is simply left out). A bad key is 401 `{"Error
//! Message":"Invalid API KEY…"}`; the free plan's 250 calls a day end in
//! 429 or `{"Error Message":"Limit Reach …"}`.
//!
//! Daily bars start at the US session open (09:30 New York), as Yahoo's do,
//! so the two agree on which trading date a bar is.

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::bar::{
    History, Interval, Quote, Quotes, RawBar, RowReader, decimal_from_f64, decimal_from_volume,
    from_unix_secs,
};
use super::batch::in_batches;
use super::checks::{check_request, check_row_count, max_rows};
use super::error::{ErrorContext, ProviderError};
use super::http::{Call, Endpoint, EndpointConfig, Reply, classify, history_body_cap, snippet};
use super::keyed::{ApiKey, assemble_us, call_with_key, session_open};
use super::kind::ProviderKind;
use super::provider::Provider;
use super::rate_limit::RateLimiter;
use super::symbol;

const INTERVALS: &[Interval] = &[Interval::D1];
/// Symbols per quote request (they travel in the path).
const QUOTE_BATCH: usize = 100;

#[derive(Debug)]
pub struct Fmp {
    endpoint: Endpoint,
    key: Option<ApiKey>,
}

impl Fmp {
    /// Without a key every call is refused without a request.
    pub fn new(config: EndpointConfig, key: Option<ApiKey>) -> reqwest::Result<Self> {
        Ok(Self {
            endpoint: Endpoint::new(ProviderKind::Fmp, &config)?,
            key,
        })
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.endpoint.limiter
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    async fn get(
        &self,
        ctx: &ErrorContext,
        path: &[&str],
        query: &[(&str, String)],
        max_body: Option<usize>,
    ) -> Result<Reply, ProviderError> {
        let call = Call::new(path, query).at_most(max_body);
        call_with_key(&self.endpoint, &self.key, ctx, call, judge).await
    }

    async fn quote_batch(&self, batch: &[String], out: &mut Quotes) -> Result<(), ProviderError> {
        // The symbols travel in the path: one a URL would change is refused
        // alone, before the request.
        let mut asked = Vec::with_capacity(batch.len());
        for symbol in batch {
            match symbol::check(symbol) {
                Ok(()) => asked.push(symbol.clone()),
                Err(e) => out
                    .missing
                    .push(ErrorContext::new(ProviderKind::Fmp, symbol).unsupported(e.to_string())),
            }
        }
        if asked.is_empty() {
            return Ok(());
        }
        let batch = &asked[..];
        let ctx = ErrorContext::new(ProviderKind::Fmp, batch.join(","));
        let joined = batch.join(",");
        let reply = self
            .get(&ctx, &["api", "v3", "quote", &joined], &[], None)
            .await?;
        let rows: Vec<FmpQuote> = reply.json(&ctx)?;
        for symbol in batch {
            let ctx = ErrorContext::new(ProviderKind::Fmp, symbol);
            let Some(row) = rows.iter().find(|q| q.symbol.as_deref() == Some(symbol)) else {
                out.missing.push(ctx.not_found("not in FMP's quote answer"));
                continue;
            };
            let price = row.price.and_then(decimal_from_f64);
            match price {
                Some(price) if price > Decimal::ZERO => out.quotes.push(Quote {
                    symbol: symbol.clone(),
                    price,
                    currency: Some("USD".to_owned()),
                    ts: row
                        .timestamp
                        .and_then(from_unix_secs)
                        .unwrap_or_else(Utc::now),
                }),
                _ => out.missing.push(ctx.bad_data("no positive price")),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Fmp {
    #[tracing::instrument(skip_all, fields(provider = "fmp", symbol = symbol, %interval))]
    async fn history(
        &self,
        symbol: &str,
        from: NaiveDate,
        to: NaiveDate,
        interval: Interval,
    ) -> Result<History, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Fmp, symbol);
        check_request(&ctx, INTERVALS, from, to, interval)?;
        let query = [("from", from.to_string()), ("to", to.to_string())];
        let cap = history_body_cap(max_rows(from, to, interval));
        let reply = self
            .get(
                &ctx,
                &["api", "v3", "historical-price-full", symbol],
                &query,
                Some(cap),
            )
            .await?;
        let rows = match reply.json::<Historical>(&ctx)? {
            Historical::Legacy(Legacy {
                historical: Some(rows),
                ..
            })
            | Historical::Stable(rows) => rows,
            Historical::Legacy(Legacy {
                historical: None, ..
            }) => {
                return Err(ctx.not_found("FMP has no history for this symbol (an empty answer)"));
            }
        };
        check_row_count(&ctx, rows.len(), from, to, interval)?;
        let mut bars = Vec::with_capacity(rows.len());
        for row in &rows {
            let date = row
                .date
                .as_deref()
                .and_then(|d| d.get(..10))
                .and_then(|d| d.parse::<NaiveDate>().ok())
                .ok_or_else(|| ctx.bad_data(format!("a row without a date: {:?}", row.date)))?;
            if date < from || date > to {
                continue;
            }
            bars.push(row.to_raw(session_open(date)));
        }
        assemble_us(&ctx, interval, bars)
    }

    #[tracing::instrument(skip_all, fields(provider = "fmp", symbols = symbols.len()))]
    async fn quotes(&self, symbols: &[String]) -> Result<Quotes, ProviderError> {
        in_batches(self, symbols, QUOTE_BATCH, |p, batch, out| {
            Box::pin(p.quote_batch(batch, out))
        })
        .await
    }
}

/// What FMP says went wrong, when it says it.
#[derive(Debug, Deserialize)]
struct ErrorMessage {
    #[serde(rename = "Error Message")]
    message: Option<String>,
}

/// FMP's judge: `{"Error Message": …}` says what went wrong, whatever the
/// status: "Limit Reach" is the daily quota, "Invalid API KEY" a refusal.
fn judge(ctx: &ErrorContext, reply: &Reply) -> Option<ProviderError> {
    let said = reply.error_fields::<ErrorMessage>().and_then(|e| e.message);
    let status = reply.status.as_u16();
    match said {
        Some(message) => {
            let text = format!("HTTP {status}: {}", snippet(message.as_bytes()));
            Some(if message.starts_with("Limit Reach") || status == 429 {
                ctx.rate_limited(reply.retry_after(), text)
            } else if status == 401 || status == 403 || message.contains("API KEY") {
                ctx.refused(format!(
                    "{text}; check {}",
                    ctx.provider.key_var().unwrap_or_default()
                ))
            } else if reply.status.is_success() {
                ctx.not_found(text)
            } else {
                classify(ctx, reply)
            })
        }
        None if reply.status.is_success() => None,
        None => Some(classify(ctx, reply)),
    }
}

/// `{}` (unknown symbol) and `{"symbol", "historical"}` are the legacy
/// shapes; any other key means another shape, which is bad data.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Historical {
    Stable(Vec<Row>),
    Legacy(Legacy),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Legacy {
    #[serde(rename = "symbol")]
    _symbol: Option<String>,
    historical: Option<Vec<Row>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    date: Option<String>,
    open: Option<f64>,
    high: Option<f64>,
    low: Option<f64>,
    close: Option<f64>,
    adj_close: Option<f64>,
    volume: Option<f64>,
}

impl Row {
    fn to_raw(&self, ts: chrono::DateTime<Utc>) -> RawBar {
        let mut read = RowReader::default();
        RawBar {
            ts,
            open: read.read("open", self.open, decimal_from_f64),
            high: read.read("high", self.high, decimal_from_f64),
            low: read.read("low", self.low, decimal_from_f64),
            close: read.read("close", self.close, decimal_from_f64),
            adj_close: read.read("adjClose", self.adj_close, decimal_from_f64),
            volume: read.read("volume", self.volume, decimal_from_volume),
            unreadable: read.unreadable,
        }
    }
}

#[derive(Debug, Deserialize)]
struct FmpQuote {
    symbol: Option<String>,
    price: Option<f64>,
    timestamp: Option<i64>,
}
