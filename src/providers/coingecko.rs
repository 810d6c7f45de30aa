//! CoinGecko: `coins/{id}/market_chart/range` for daily closes and
//! `simple/price` for many ids at once; an optional key goes in
//! `x-cg-demo-api-key` (`x-cg-pro-api-key` when the base URL is the Pro one).
//!
//! The range endpoint takes unix seconds and answers in milliseconds, with a
//! granularity it picks from the span (daily only beyond 90 days), so a
//! daily request always asks for more than 90 days and keeps the midnight
//! points. CoinGecko's 00:00Z point of day D is the price at the end of UTC
//! day D-1: it becomes the close of the bar that starts D-1 00:00Z, the same
//! bar Binance and Yahoo call D-1. A trailing point that is not at midnight
//! is the live price, not a daily bar. There is no open, high or low.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Timelike, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use super::assemble::assemble;
use super::bar::{
    History, Interval, Quote, Quotes, RawBar, RowReader, decimal_from_f64, from_unix_millis,
    from_unix_secs,
};
use super::batch::in_batches;
use super::checks::{check_request, check_row_count, max_rows};
use super::error::{ErrorContext, ProviderError};
use super::http::{Call, Endpoint, EndpointConfig, Reply, classify, history_body_cap, snippet};
use super::kind::ProviderKind;
use super::provider::Provider;
use super::rate_limit::RateLimiter;

const INTERVALS: &[Interval] = &[Interval::D1];
/// Ids per `simple/price` request (they travel in the URL).
const PRICE_BATCH: usize = 100;
/// Beyond this many days CoinGecko answers with daily points.
const DAILY_SPAN_DAYS: u64 = 91;
/// Daily points sit at 00:00:00Z; allow a little jitter.
const MIDNIGHT_TOLERANCE_SECS: u32 = 60;

#[derive(Debug)]
pub struct CoinGecko {
    endpoint: Endpoint,
    headers: HeaderMap,
    vs_currency: String,
    /// Set once CoinGecko refused the key (or its absence): a configuration
    /// error, logged once; later calls fail with it without a request.
    key_refused: std::sync::OnceLock<String>,
}

impl CoinGecko {
    /// `vs_currency` is what prices are asked in (`usd`); `api_key` is the
    /// optional demo (or Pro) key.
    pub fn new(
        config: EndpointConfig,
        api_key: Option<String>,
        vs_currency: String,
    ) -> reqwest::Result<Self> {
        let pro = config
            .base_url
            .host_str()
            .is_some_and(|h| h.starts_with("pro-api."));
        let mut headers = HeaderMap::new();
        if let Some(key) = api_key.as_deref().map(str::trim).filter(|k| !k.is_empty())
            && let Ok(mut value) = HeaderValue::from_str(key)
        {
            value.set_sensitive(true);
            let name = if pro {
                "x-cg-pro-api-key"
            } else {
                "x-cg-demo-api-key"
            };
            headers.insert(HeaderName::from_static(name), value);
        }
        Ok(Self {
            endpoint: Endpoint::new(ProviderKind::CoinGecko, &config)?,
            headers,
            vs_currency: vs_currency.to_ascii_lowercase(),
            key_refused: std::sync::OnceLock::new(),
        })
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.endpoint.limiter
    }

    fn currency(&self) -> Option<String> {
        Some(self.vs_currency.to_ascii_uppercase()).filter(|c| c.len() == 3)
    }

    async fn get(
        &self,
        ctx: &ErrorContext,
        path: &[&str],
        query: &[(&str, String)],
        max_body: Option<usize>,
    ) -> Result<Reply, ProviderError> {
        if let Some(message) = self.key_refused.get() {
            return Err(ctx.refused(message.clone()));
        }
        let call = Call::new(path, query)
            .at_most(max_body)
            .with_headers(self.headers.clone());
        let mut refused_key = false;
        let judged = self
            .endpoint
            .call(ctx, call, |ctx, reply| {
                if reply.status.is_success() && !throttled_in_body(reply) {
                    return None;
                }
                refused_key = key_refused(reply);
                Some(classify_coingecko(ctx, reply))
            })
            .await;
        let error = match judged {
            Ok(reply) => return Ok(reply),
            Err(error) => error,
        };
        if refused_key {
            let message = format!(
                "CoinGecko refused the API key ({error}); check COINGECKO_API_KEY \
                 (a Demo key needs the api.coingecko.com URL, a Pro key pro-api.coingecko.com); \
                 CoinGecko is skipped until restart"
            );
            if self.key_refused.set(message.clone()).is_ok() {
                tracing::error!(provider = %ProviderKind::CoinGecko, "{message}");
            }
            return Err(ctx.refused(message));
        }
        Err(error)
    }

    /// Page `page` of `coins/markets` in USD, largest market cap first:
    /// the catalog's crypto source, which parses the body itself.
    pub async fn markets_page(&self, page: u32, per_page: u32) -> Result<Vec<u8>, ProviderError> {
        let ctx = ErrorContext::new(
            ProviderKind::CoinGecko,
            format!("coins/markets page {page}"),
        );
        let query = [
            ("vs_currency", "usd".to_owned()),
            ("order", "market_cap_desc".to_owned()),
            ("per_page", per_page.to_string()),
            ("page", page.to_string()),
        ];
        let reply = self.get(&ctx, &["coins", "markets"], &query, None).await?;
        Ok(reply.body)
    }

    async fn prices(&self, batch: &[String], out: &mut Quotes) -> Result<(), ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::CoinGecko, batch.join(","));
        let query = [
            ("ids", batch.join(",")),
            ("vs_currencies", self.vs_currency.clone()),
            ("include_last_updated_at", "true".to_owned()),
        ];
        let reply = self.get(&ctx, &["simple", "price"], &query, None).await?;
        let prices: HashMap<String, HashMap<String, Value>> = reply.json(&ctx)?;
        for id in batch {
            let ctx = ErrorContext::new(ProviderKind::CoinGecko, id);
            let Some(fields) = prices.get(id) else {
                out.missing
                    .push(ctx.not_found("simple/price does not know this id"));
                continue;
            };
            let price = fields
                .get(&self.vs_currency)
                .and_then(Value::as_f64)
                .and_then(decimal_from_f64);
            let ts = fields
                .get("last_updated_at")
                .and_then(Value::as_i64)
                .and_then(from_unix_secs)
                .unwrap_or_else(Utc::now);
            match price {
                Some(price) if price > Decimal::ZERO => out.quotes.push(Quote {
                    symbol: id.clone(),
                    price,
                    currency: self.currency(),
                    ts,
                }),
                _ => out
                    .missing
                    .push(ctx.bad_data(format!("no positive {} price", self.vs_currency))),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for CoinGecko {
    #[tracing::instrument(skip_all, fields(provider = "coingecko", symbol = id, %interval))]
    async fn history(
        &self,
        id: &str,
        from: NaiveDate,
        to: NaiveDate,
        interval: Interval,
    ) -> Result<History, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::CoinGecko, id);
        check_request(&ctx, INTERVALS, from, to, interval)?;
        let (from_secs, to_secs) = request_window(from, to);
        let query = [
            ("vs_currency", self.vs_currency.clone()),
            ("from", from_secs.to_string()),
            ("to", to_secs.to_string()),
        ];
        let window = |secs: i64| from_unix_secs(secs).map_or(from, |t| t.date_naive());
        let (first, last) = (window(from_secs), window(to_secs));
        let cap = history_body_cap(max_rows(first, last, interval));
        let reply = self
            .get(
                &ctx,
                &["coins", id, "market_chart", "range"],
                &query,
                Some(cap),
            )
            .await?;
        let chart: MarketChart = reply.json(&ctx)?;
        check_row_count(&ctx, chart.prices.len(), first, last, interval)?;
        let volumes: HashMap<i64, f64> = chart
            .total_volumes
            .iter()
            .filter_map(|p| Some((p.first()?.as_f64()? as i64, p.get(1)?.as_f64()?)))
            .collect();
        let mut rows = Vec::new();
        let mut live = 0;
        for point in &chart.prices {
            let (Some(millis), Some(price)) = (
                point.first().and_then(Value::as_f64).map(|ms| ms as i64),
                point.get(1),
            ) else {
                return Err(ctx.bad_data(format!(
                    "unexpected price point {}",
                    snippet(Value::Array(point.clone()).to_string().as_bytes())
                )));
            };
            let at = from_unix_millis(millis)
                .ok_or_else(|| ctx.bad_data(format!("time {millis} is out of range")))?;
            let Some(bar_start) = daily_bar_start(at) else {
                live += 1;
                continue;
            };
            let date = bar_start.date_naive();
            if date < from || date > to {
                continue;
            }
            let mut read = RowReader::default();
            let close = match price {
                Value::Null => None,
                Value::Number(n) => read.read("close", n.as_f64(), decimal_from_f64),
                other => {
                    read.unreadable = Some(format!(
                        "close {} is not a number",
                        snippet(other.to_string().as_bytes())
                    ));
                    None
                }
            };
            // 24-hour volume at the point, in the vs currency.
            let volume = read.read("volume", volumes.get(&millis).copied(), decimal_from_f64);
            rows.push(RawBar {
                ts: bar_start,
                close,
                volume,
                unreadable: read.unreadable,
                ..RawBar::default()
            });
        }
        if live > 0 {
            tracing::debug!(
                provider = "coingecko",
                symbol = id,
                points = live,
                "non-midnight points left out"
            );
        }
        let now = Utc::now();
        assemble(
            &ctx,
            interval,
            self.currency(),
            Some("UTC".to_owned()),
            rows,
            Vec::new(),
            now,
        )
    }

    #[tracing::instrument(skip_all, fields(provider = "coingecko", symbols = ids.len()))]
    async fn quotes(&self, ids: &[String]) -> Result<Quotes, ProviderError> {
        in_batches(self, ids, PRICE_BATCH, |p, batch, out| {
            Box::pin(p.prices(batch, out))
        })
        .await
    }
}

/// The unix-second window to ask for bars `[from, to]`: through the end of
/// `to + 1` (its midnight point closes `to`), and at least 91 days long so
/// CoinGecko answers with daily points.
pub fn request_window(from: NaiveDate, to: NaiveDate) -> (i64, i64) {
    let midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc().timestamp();
    let end_date = to.checked_add_days(Days::new(1)).unwrap_or(to);
    let end = midnight(end_date) + 3600;
    let span_start = end_date
        .checked_sub_days(Days::new(DAILY_SPAN_DAYS))
        .unwrap_or(from);
    let start = midnight(from.min(span_start));
    (start, end)
}

/// The bar a point closes, if it is a daily (midnight) point.
pub fn daily_bar_start(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let secs = at.num_seconds_from_midnight();
    if secs >= MIDNIGHT_TOLERANCE_SECS {
        return None;
    }
    let day = at.date_naive().checked_sub_days(Days::new(1))?;
    Some(day.and_time(NaiveTime::MIN).and_utc())
}

/// CoinGecko has answered throttling with HTTP 200 and a status object.
fn throttled_in_body(reply: &Reply) -> bool {
    reply.body.len() < 4096
        && serde_json::from_slice::<StatusReply>(&reply.body)
            .is_ok_and(|s| s.status.error_code == Some(429))
}

/// HTTP 401, or error 10002 (key missing) / 10010, 10011 (key invalid for
/// this URL): no request will succeed until the configuration changes.
fn key_refused(reply: &Reply) -> bool {
    reply.status.as_u16() == 401
        || (reply.body.len() < 4096
            && serde_json::from_slice::<StatusReply>(&reply.body)
                .is_ok_and(|s| matches!(s.status.error_code, Some(10002 | 10010 | 10011))))
}

/// 429 with a JSON status object or an HTML page (Retry-After honored
/// either way); 404 `{"error":"coin not found"}`; 401 for a bad key.
fn classify_coingecko(ctx: &ErrorContext, reply: &Reply) -> ProviderError {
    let status = reply.status.as_u16();
    let text = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| {
            v.pointer("/status/error_message")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let message = format!(
        "HTTP {status}: {}",
        text.unwrap_or_else(|| snippet(&reply.body))
    );
    if status == 429 || throttled_in_body(reply) {
        return ctx.rate_limited(reply.retry_after(), message);
    }
    let mut e = classify(ctx, reply);
    match &mut e {
        ProviderError::NotFound { message: m, .. }
        | ProviderError::Refused { message: m, .. }
        | ProviderError::Transient { message: m, .. } => m.clone_from(&message),
        _ => {}
    }
    e
}

#[derive(Debug, Deserialize)]
struct MarketChart {
    #[serde(default)]
    prices: Vec<Vec<Value>>,
    #[serde(default)]
    total_volumes: Vec<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct StatusReply {
    status: StatusBody,
}

#[derive(Debug, Deserialize)]
struct StatusBody {
    error_code: Option<i64>,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn midnight_points_close_the_previous_day() {
        let at = |h, m, s| Utc.with_ymd_and_hms(2024, 4, 2, h, m, s).unwrap();
        let bar = Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap();
        assert_eq!(daily_bar_start(at(0, 0, 0)), Some(bar));
        assert_eq!(daily_bar_start(at(0, 0, 59)), Some(bar));
        assert_eq!(daily_bar_start(at(0, 1, 0)), None);
        assert_eq!(daily_bar_start(at(14, 23, 7)), None);
    }

    #[test]
    fn windows_reach_past_ninety_days_and_into_the_next_midnight() {
        let (from, to) = request_window(date(2024, 3, 1), date(2024, 3, 10));
        assert_eq!(
            to,
            Utc.with_ymd_and_hms(2024, 3, 11, 1, 0, 0)
                .unwrap()
                .timestamp()
        );
        assert_eq!(
            from,
            Utc.with_ymd_and_hms(2023, 12, 11, 0, 0, 0)
                .unwrap()
                .timestamp()
        );
        let (from, _) = request_window(date(2023, 1, 1), date(2024, 3, 10));
        assert_eq!(
            from,
            Utc.with_ymd_and_hms(2023, 1, 1, 0, 0, 0)
                .unwrap()
                .timestamp()
        );
    }
}
