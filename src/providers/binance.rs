//! Binance spot: `klines` for history (paged 1000 rows at a time, times in
//! milliseconds, prices as decimal strings, the still-open last candle left
//! out) and `ticker/price` for many symbols in one request.
//!
//! Binance meters by request weight, not request count: every reply carries
//! `X-MBX-USED-WEIGHT-1M`, and near the budget the limiter holds requests
//! until the next minute, before Binance answers 429 (and, to those who keep
//! going, 418: an IP ban whose end is in the message).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Timelike, Utc};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::assemble::assemble;
use super::bar::{History, Interval, Quote, Quotes, RawBar, decimal_from_str, from_unix_millis};
use super::batch::in_batches;
use super::checks::{check_request, check_row_count, max_rows};
use super::error::{ErrorContext, ProviderError};
use super::http::{Call, Endpoint, EndpointConfig, Reply, history_body_cap, snippet};
use super::kind::ProviderKind;
use super::pairs::quote_currency;
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

/// Binance's maximum rows per klines request.
pub const PAGE: usize = 1000;
/// A guard against a server that never stops paging: 1000 pages of 1000
/// daily rows is 2700 years.
const MAX_PAGES: usize = 1000;
/// Symbols per ticker request (the URL carries them as a JSON array).
const TICKER_BATCH: usize = 100;
/// Share of the weight budget at which requests wait for the next minute.
const WEIGHT_HOLD_PERCENT: u64 = 80;

mod errors;
mod restricted;

use errors::classify_binance;
use restricted::{After451, Restricted};

#[derive(Debug)]
pub struct Binance {
    endpoint: Endpoint,
    weight_limit: u32,
    restricted: Restricted,
}

impl Binance {
    pub fn new(config: EndpointConfig, weight_limit: u32) -> reqwest::Result<Self> {
        Ok(Self {
            endpoint: Endpoint::new(ProviderKind::Binance, &config)?,
            weight_limit,
            restricted: Restricted::new(&config.base_url, None),
        })
    }

    /// The same client, moving to `data_url` (the market-data host) after
    /// a 451 from its base URL.
    pub fn with_data_host(mut self, data_url: Url) -> Self {
        self.restricted = Restricted::new(&self.endpoint.url(&[]), Some(data_url));
        self
    }

    /// Why Binance is unavailable for this deployment, if it is (a 451
    /// from both hosts).
    pub fn unavailable(&self) -> Option<&str> {
        self.restricted.unavailable()
    }

    /// Makes Binance unavailable without asking it: the deployment's
    /// record in `provider_state`, read after a restart.
    pub fn mark_unavailable(&self, reason: &str) {
        self.restricted.mark_unavailable(reason);
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.endpoint.limiter
    }

    /// Prices of `symbols` from one `ticker/price` request without a symbol
    /// (every listed pair, weight 4): for many symbols at once it is the
    /// cheapest call, and a symbol Binance does not list cannot fail the
    /// batch; it is reported missing instead.
    pub async fn all_prices(&self, symbols: &[String]) -> Result<Quotes, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Binance, "all symbols");
        let reply = self
            .get(&ctx, &["api", "v3", "ticker", "price"], &[], None)
            .await?;
        let listed: HashMap<String, String> = match reply.json::<TickerReply>(&ctx)? {
            TickerReply::One(one) => vec![one],
            TickerReply::Many(many) => many,
        }
        .into_iter()
        .map(|p| (p.symbol, p.price))
        .collect();
        let now = Utc::now();
        let mut out = Quotes::default();
        for symbol in symbols {
            let price = listed.get(symbol).and_then(|p| decimal_from_str(p));
            match price {
                Some(price) if price > rust_decimal::Decimal::ZERO => out.quotes.push(Quote {
                    symbol: symbol.clone(),
                    price,
                    currency: quote_currency(symbol),
                    ts: now,
                }),
                Some(_) => out.missing.push(
                    ErrorContext::new(ProviderKind::Binance, symbol)
                        .bad_data("no positive price in the ticker reply"),
                ),
                None => out.missing.push(
                    ErrorContext::new(ProviderKind::Binance, symbol)
                        .not_found("not listed in Binance's ticker"),
                ),
            }
        }
        Ok(out)
    }

    /// `exchangeInfo`: every pair with its status, base and quote asset
    /// (weight 20), for the catalog to parse.
    pub async fn exchange_info(&self) -> Result<Vec<u8>, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Binance, "exchangeInfo");
        let reply = self
            .get(&ctx, &["api", "v3", "exchangeInfo"], &[], None)
            .await?;
        Ok(reply.body)
    }

    async fn get(
        &self,
        ctx: &ErrorContext,
        path: &[&str],
        query: &[(&str, String)],
        max_body: Option<usize>,
    ) -> Result<Reply, ProviderError> {
        // At most twice: the main host, then once the market-data host.
        for _ in 0..2 {
            if let Some(reason) = self.restricted.unavailable() {
                return Err(ctx.refused(reason));
            }
            let to_data_host = self.restricted.on_data_host(&self.endpoint);
            let mut restricted = false;
            let call = Call::new(path, query).at_most(max_body);
            let reply = self
                .endpoint
                .call(ctx, call, |ctx, reply| {
                    // Every reply, errors included, tells the weight used.
                    self.watch_weight(ctx, reply);
                    restricted = reply.status.as_u16() == 451;
                    (!reply.status.is_success()).then(|| classify_binance(ctx, reply, Utc::now()))
                })
                .await;
            if !restricted {
                return reply;
            }
            if let After451::Unavailable(reason) =
                self.restricted.after_451(&self.endpoint, to_data_host)
            {
                return Err(ctx.refused(reason));
            }
        }
        Err(ctx.refused("HTTP 451 from both Binance hosts"))
    }

    fn watch_weight(&self, ctx: &ErrorContext, reply: &Reply) {
        let Some(used) = reply
            .headers
            .get("x-mbx-used-weight-1m")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
        else {
            return;
        };
        if let Some(wait) = weight_pause(used, self.weight_limit, Utc::now()) {
            tracing::info!(provider = "binance", symbol = %Printable(&ctx.symbol), used, limit = self.weight_limit,
                wait_ms = wait.as_millis() as u64, "request weight near the budget; holding requests");
            self.endpoint
                .limiter
                .hold(tokio::time::Instant::now() + wait);
        }
    }

    async fn ticker(&self, batch: &[String], out: &mut Quotes) -> Result<(), ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Binance, batch.join(","));
        let query = if let [one] = batch {
            [("symbol", one.clone())]
        } else {
            let list = serde_json::to_string(batch).unwrap_or_default();
            [("symbols", list)]
        };
        let reply = match self
            .get(&ctx, &["api", "v3", "ticker", "price"], &query, None)
            .await
        {
            Ok(reply) => reply,
            // One unknown symbol fails the whole list: ask one by one to
            // tell which.
            Err(ProviderError::NotFound { .. }) if batch.len() > 1 => {
                for symbol in batch {
                    Box::pin(self.ticker(std::slice::from_ref(symbol), out)).await?;
                }
                return Ok(());
            }
            Err(ProviderError::NotFound { message, .. }) => {
                out.missing.push(ctx.not_found(message));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let prices: Vec<TickerPrice> = match reply.json::<TickerReply>(&ctx)? {
            TickerReply::One(one) => vec![one],
            TickerReply::Many(many) => many,
        };
        let now = Utc::now();
        for symbol in batch {
            let found = prices.iter().find(|p| &p.symbol == symbol);
            match found.and_then(|p| decimal_from_str(&p.price)) {
                Some(price) if price > rust_decimal::Decimal::ZERO => out.quotes.push(Quote {
                    symbol: symbol.clone(),
                    price,
                    currency: quote_currency(symbol),
                    ts: now,
                }),
                _ => out.missing.push(
                    ErrorContext::new(ProviderKind::Binance, symbol)
                        .bad_data("no positive price in the ticker reply"),
                ),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Binance {
    #[tracing::instrument(skip_all, fields(provider = "binance", symbol = symbol, %interval))]
    async fn history(
        &self,
        symbol: &str,
        from: NaiveDate,
        to: NaiveDate,
        interval: Interval,
    ) -> Result<History, ProviderError> {
        let ctx = ErrorContext::new(ProviderKind::Binance, symbol);
        check_request(&ctx, INTERVALS, from, to, interval)?;
        let millis = |date: NaiveDate| date.and_time(NaiveTime::MIN).and_utc().timestamp_millis();
        let end = millis(to.checked_add_days(Days::new(1)).unwrap_or(to)) - 1;
        let mut start = millis(from);
        let mut rows = Vec::new();
        let now = Utc::now();
        for _ in 0..MAX_PAGES {
            let query = [
                ("symbol", symbol.to_owned()),
                ("interval", binance_interval(interval).to_owned()),
                ("startTime", start.to_string()),
                ("endTime", end.to_string()),
                ("limit", PAGE.to_string()),
            ];
            let cap = history_body_cap(max_rows(from, to, interval).min(PAGE));
            let reply = self
                .get(&ctx, &["api", "v3", "klines"], &query, Some(cap))
                .await?;
            let page: Vec<Vec<Value>> = reply.json(&ctx)?;
            let count = page.len();
            check_row_count(&ctx, rows.len() + count, from, to, interval)?;
            let mut last_open = None;
            for row in page {
                let kline = Kline::parse(&row).ok_or_else(|| {
                    ctx.bad_data(format!(
                        "unexpected kline {}",
                        snippet(Value::Array(row.clone()).to_string().as_bytes())
                    ))
                })?;
                last_open = Some(kline.open_time);
                // The last row of a range that reaches now is the candle
                // still trading: not a finished bar.
                if kline.close_time >= now {
                    continue;
                }
                rows.push(kline.bar);
            }
            match last_open {
                Some(last) if count >= PAGE && last.timestamp_millis() < end => {
                    let next = last.timestamp_millis() + 1;
                    if next <= start {
                        return Err(ctx.bad_data("klines do not move forward"));
                    }
                    start = next;
                }
                _ => {
                    let currency = quote_currency(symbol);
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
            }
        }
        Err(ctx.bad_data(format!("more than {MAX_PAGES} pages of klines")))
    }

    #[tracing::instrument(skip_all, fields(provider = "binance", symbols = symbols.len()))]
    async fn quotes(&self, symbols: &[String]) -> Result<Quotes, ProviderError> {
        in_batches(self, symbols, TICKER_BATCH, |p, batch, out| {
            Box::pin(p.ticker(batch, out))
        })
        .await
    }
}

fn binance_interval(interval: Interval) -> &'static str {
    match interval {
        Interval::W1 => "1w",
        Interval::Mo1 => "1M",
        other => other.as_str(),
    }
}

/// One kline row: `[openTime ms, "open", "high", "low", "close", "volume",
/// closeTime ms, …]`. Extra trailing fields are ignored.
struct Kline {
    open_time: DateTime<Utc>,
    close_time: DateTime<Utc>,
    bar: RawBar,
}

impl Kline {
    fn parse(row: &[Value]) -> Option<Self> {
        let time = |i: usize| row.get(i)?.as_i64().and_then(from_unix_millis);
        let number = |i: usize| match row.get(i)? {
            Value::String(s) => decimal_from_str(s),
            Value::Null => None,
            _ => None,
        };
        let open_time = time(0)?;
        let close_time = time(6)?;
        // A present but unreadable price is a broken row, not a missing one.
        for i in 1..=5 {
            if !matches!(row.get(i), Some(Value::String(s)) if decimal_from_str(s).is_some()) {
                return None;
            }
        }
        Some(Self {
            open_time,
            close_time,
            bar: RawBar {
                ts: open_time,
                open: number(1),
                high: number(2),
                low: number(3),
                close: number(4),
                adj_close: None,
                volume: number(5),
                unreadable: None,
            },
        })
    }
}

/// How long to hold requests after Binance reported `used` weight of
/// `limit` this minute: from 80% on, until the minute turns (Binance's
/// window is the calendar minute), plus a second for clock differences.
pub fn weight_pause(used: u32, limit: u32, now: DateTime<Utc>) -> Option<Duration> {
    if u64::from(used) * 100 < u64::from(limit) * WEIGHT_HOLD_PERCENT {
        return None;
    }
    let into_minute = Duration::new(u64::from(now.second()), now.nanosecond().min(999_999_999));
    Some(Duration::from_secs(61).saturating_sub(into_minute))
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TickerReply {
    One(TickerPrice),
    Many(Vec<TickerPrice>),
}

#[derive(Debug, Deserialize)]
struct TickerPrice {
    symbol: String,
    price: String,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn weight_near_the_budget_holds_until_the_next_minute() {
        let at = |s| Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, s).unwrap();
        assert_eq!(weight_pause(100, 6000, at(10)), None);
        assert_eq!(weight_pause(4799, 6000, at(10)), None);
        assert_eq!(
            weight_pause(4800, 6000, at(10)),
            Some(Duration::from_secs(51))
        );
        assert_eq!(
            weight_pause(6000, 6000, at(59)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            weight_pause(9000, 6000, at(0)),
            Some(Duration::from_secs(61))
        );
    }

    #[test]
    fn klines_parse_strictly() {
        let row: Vec<Value> = serde_json::from_str(
            r#"[1711929600000,"69702.15000000","71377.00000000","69530.57000000","71246.95000000","18930.86630000",1712015999999,"1336839000.49","1234567","9400.5","668000000.1","0"]"#,
        )
        .unwrap();
        let k = Kline::parse(&row).unwrap();
        assert_eq!(k.bar.close.unwrap().to_string(), "71246.95");
        assert_eq!(k.close_time.timestamp_millis(), 1_712_015_999_999);
        let mut broken = row.clone();
        broken[4] = Value::from(71246.95);
        assert!(Kline::parse(&broken).is_none());
        assert!(Kline::parse(&row[..5]).is_none());
    }
}
