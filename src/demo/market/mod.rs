//! The demo's simulated market: one local HTTP server answering as Yahoo
//! Finance (cookie, crumb, v7 quote, v8 chart), Binance (klines, ticker
//! price) and CoinGecko (market_chart/range, simple/price) do, in their
//! real formats, so the real provider clients are what talk to it. Prices
//! come from [`prices`]: deterministic, with a split and a dividend. Each
//! answer waits a realistic latency, and a fixed few are refused with a
//! 429 or a 5xx, as the real APIs do now and then.

pub mod prices;
pub mod wire;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;

use crate::calendar::{CalendarId, Calendars};
use crate::local_http::{Handler, Response};
use prices::Series;
use wire::Listing;

/// An instrument the market lists, under each provider's symbol.
#[derive(Debug, Clone)]
pub struct Instrument {
    /// Seeds the walk; the catalog symbol.
    pub name: &'static str,
    pub yahoo: Option<YahooListing>,
    pub binance: Option<&'static str>,
    pub coingecko: Option<&'static str>,
    pub calendar: CalendarId,
    /// Where the walk ends today (in the currency Yahoo quotes, pence for London).
    pub price_now: f64,
    /// Daily volatility (0.02 = 2%).
    pub vol: f64,
    /// A split this many days ago: (days, numerator, denominator).
    pub split: Option<(i64, u32, u32)>,
    /// A dividend this many days ago: (days, amount).
    pub dividend: Option<(i64, f64)>,
}

#[derive(Debug, Clone, Copy)]
pub struct YahooListing {
    pub symbol: &'static str,
    /// As Yahoo writes it (`GBp` for pence).
    pub currency: &'static str,
    pub exchange_name: &'static str,
    pub instrument_type: &'static str,
    pub timezone: &'static str,
}

/// Which answers are refused: the `n`th request (from 1) to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Endpoint {
    YahooChart,
    BinanceKlines,
    CoinGeckoRange,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    RateLimited { retry_after_secs: u64 },
    ServerError(u16),
}

/// The refusals every demo sees: two rate limits and two server errors.
const FAULTS: &[(Endpoint, u64, Fault)] = &[
    (
        Endpoint::YahooChart,
        2,
        Fault::RateLimited {
            retry_after_secs: 2,
        },
    ),
    (Endpoint::YahooChart, 4, Fault::ServerError(503)),
    (Endpoint::BinanceKlines, 1, Fault::ServerError(502)),
    (
        Endpoint::CoinGeckoRange,
        1,
        Fault::RateLimited {
            retry_after_secs: 2,
        },
    ),
];

/// What the market served, for the progress line and the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MarketStats {
    pub yahoo_requests: u64,
    pub binance_requests: u64,
    pub coingecko_requests: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
}

struct Listed {
    instrument: Instrument,
    series: Series,
    split_at: Option<DateTime<Utc>>,
    dividend_at: Option<DateTime<Utc>>,
}

pub struct SimMarket {
    listed: Vec<Listed>,
    calendars: Calendars,
    latency: bool,
    stats: Mutex<MarketStats>,
    calls: Mutex<HashMap<Endpoint, u64>>,
}

impl SimMarket {
    /// A market listing `instruments`, priced through `today` (UTC).
    /// `latency`: wait 30–120 ms per answer, as a real API over the internet.
    pub fn new(instruments: &[Instrument], today: NaiveDate, latency: bool) -> Self {
        let calendars = Calendars::default();
        let session_on_or_after = |calendar, days_ago: i64| {
            (0..10)
                .filter_map(|extra| {
                    calendars.session(calendar, today - TimeDelta::days(days_ago - extra))
                })
                .next()
                .map(|s| s.open)
        };
        let listed = instruments
            .iter()
            .map(|i| {
                let mut series = Series::walk(
                    i.name,
                    i.calendar,
                    i.price_now,
                    i.vol,
                    today + TimeDelta::days(1),
                );
                let dividend_at = i
                    .dividend
                    .and_then(|(days, _)| session_on_or_after(i.calendar, days));
                if let (Some(ex), Some((_, amount))) = (dividend_at, i.dividend) {
                    series = series.with_dividend(ex, amount);
                }
                Listed {
                    instrument: i.clone(),
                    series,
                    split_at: i
                        .split
                        .and_then(|(days, _, _)| session_on_or_after(i.calendar, days)),
                    dividend_at,
                }
            })
            .collect();
        Self {
            listed,
            calendars,
            latency,
            stats: Mutex::new(MarketStats::default()),
            calls: Mutex::new(HashMap::new()),
        }
    }

    pub fn stats(&self) -> MarketStats {
        self.stats.lock().expect("stats").clone()
    }

    fn count(&self, path: &str) {
        let mut stats = self.stats.lock().expect("stats");
        if path.starts_with("/api/") {
            stats.binance_requests += 1;
        } else if path.starts_with("/coins/") || path.starts_with("/simple/") {
            stats.coingecko_requests += 1;
        } else {
            stats.yahoo_requests += 1;
        }
    }

    /// The refusal planned for this call of `endpoint`, if any.
    fn fault(&self, endpoint: Endpoint, provider: &str) -> Option<Response> {
        let n = {
            let mut calls = self.calls.lock().expect("calls");
            let n = calls.entry(endpoint).or_default();
            *n += 1;
            *n
        };
        let (_, _, fault) = FAULTS
            .iter()
            .find(|(e, at, _)| *e == endpoint && *at == n)?;
        let mut stats = self.stats.lock().expect("stats");
        Some(match *fault {
            Fault::RateLimited { retry_after_secs } => {
                stats.rate_limited += 1;
                // Binance and CoinGecko say how long to wait; Yahoo never does.
                match provider {
                    "binance" => wire::binance_rate_limited()
                        .header("retry-after", retry_after_secs.to_string()),
                    "coingecko" => wire::coingecko_rate_limited()
                        .header("retry-after", retry_after_secs.to_string()),
                    _ => wire::yahoo_rate_limited(),
                }
            }
            Fault::ServerError(status) => {
                stats.server_errors += 1;
                wire::server_error(status)
            }
        })
    }

    fn find(&self, pick: impl Fn(&Instrument) -> bool) -> Option<&Listed> {
        self.listed.iter().find(|l| pick(&l.instrument))
    }

    fn route(&self, path: &str, query: &Query, now: DateTime<Utc>) -> Response {
        let secs = |name: &str| query.get(name).and_then(|v| v.parse::<i64>().ok());
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap_or(now);
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            [""] => wire::yahoo_cookie(),
            ["v1", "test", "getcrumb"] => wire::yahoo_crumb(),
            ["v7", "finance", "quote"] => {
                let quotes: Vec<_> = query
                    .list("symbols")
                    .filter_map(|s| {
                        let listed = self.find(|i| i.yahoo.is_some_and(|y| y.symbol == s))?;
                        let y = listed.instrument.yahoo?;
                        let (price, at) = listed.series.price_at(&self.calendars, now)?;
                        Some((s.to_owned(), y.currency, price, at))
                    })
                    .collect();
                wire::yahoo_quotes(&quotes)
            }
            ["v8", "finance", "chart", symbol] => {
                let symbol = decode(symbol);
                if let Some(refused) = self.fault(Endpoint::YahooChart, "yahoo") {
                    return refused;
                }
                let Some(listed) = self.find(|i| i.yahoo.is_some_and(|y| y.symbol == symbol))
                else {
                    return wire::yahoo_not_found();
                };
                let y = listed.instrument.yahoo.expect("listed on Yahoo");
                let (from, to) = match (secs("period1"), secs("period2")) {
                    (Some(from), Some(to)) => (at(from), at(to)),
                    // `range=1d`: the latest session.
                    _ => (now - TimeDelta::days(5), now + TimeDelta::seconds(1)),
                };
                let mut bars = listed.series.bars(&self.calendars, from, to, now);
                if secs("period1").is_none() {
                    bars = bars.split_off(bars.len().saturating_sub(1));
                }
                let in_range = |t: &DateTime<Utc>| *t >= from && *t < to;
                let splits: Vec<_> = listed
                    .split_at
                    .filter(in_range)
                    .zip(listed.instrument.split)
                    .map(|(t, (_, num, den))| (t.timestamp(), num, den))
                    .into_iter()
                    .collect();
                let dividends: Vec<_> = listed
                    .dividend_at
                    .filter(in_range)
                    .zip(listed.instrument.dividend)
                    .map(|(t, (_, amount))| (t.timestamp(), amount))
                    .into_iter()
                    .collect();
                let listing = Listing {
                    symbol: &symbol,
                    currency: y.currency,
                    exchange_name: y.exchange_name,
                    instrument_type: y.instrument_type,
                    timezone: y.timezone,
                };
                wire::yahoo_chart(listing, &bars, &splits, &dividends)
            }
            ["api", "v3", "klines"] => {
                if let Some(refused) = self.fault(Endpoint::BinanceKlines, "binance") {
                    return refused;
                }
                let symbol = query.get("symbol").unwrap_or_default();
                let Some(listed) = self.find(|i| i.binance == Some(symbol)) else {
                    return wire::binance_invalid_symbol();
                };
                let from = secs("startTime").map_or(now - TimeDelta::days(500), |ms| at(ms / 1000));
                let to = secs("endTime").map_or(now, |ms| at(ms / 1000 + 1));
                let limit = query
                    .get("limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(500usize);
                let mut bars = listed.series.bars(&self.calendars, from, to, now);
                bars.truncate(limit.min(1000));
                wire::binance_klines(&bars)
            }
            ["api", "v3", "ticker", "price"] => {
                let wanted: Vec<String> = match (query.get("symbol"), query.get("symbols")) {
                    (Some(one), _) => vec![one.to_owned()],
                    (None, Some(list)) => serde_json::from_str(list).unwrap_or_default(),
                    (None, None) => self
                        .listed
                        .iter()
                        .filter_map(|l| l.instrument.binance.map(str::to_owned))
                        .collect(),
                };
                let mut prices = Vec::new();
                for symbol in wanted {
                    let Some(listed) = self.find(|i| i.binance == Some(symbol.as_str())) else {
                        return wire::binance_invalid_symbol();
                    };
                    if let Some((price, _)) = listed.series.price_at(&self.calendars, now) {
                        prices.push((symbol, price));
                    }
                }
                wire::binance_tickers(&prices)
            }
            ["coins", id, "market_chart", "range"] => {
                if let Some(refused) = self.fault(Endpoint::CoinGeckoRange, "coingecko") {
                    return refused;
                }
                let id = decode(id);
                let Some(listed) = self.find(|i| i.coingecko == Some(id.as_str())) else {
                    return wire::coingecko_not_found();
                };
                let (from, to) = (
                    at(secs("from").unwrap_or(0)),
                    at(secs("to").unwrap_or(now.timestamp()) + 1),
                );
                wire::coingecko_range(&listed.series.bars(&self.calendars, from, to, now))
            }
            ["simple", "price"] => {
                let vs = query.get("vs_currencies").unwrap_or("usd");
                let prices: Vec<_> = query
                    .list("ids")
                    .filter_map(|id| {
                        let listed = self.find(|i| i.coingecko == Some(id))?;
                        let (price, at) = listed.series.price_at(&self.calendars, now)?;
                        Some((id.to_owned(), price, at))
                    })
                    .collect();
                wire::coingecko_prices(&prices, vs)
            }
            _ => Response::json(404, r#"{"error":"not found"}"#),
        }
    }
}

impl Handler for SimMarket {
    fn answer(&self, path: &str, query: &str) -> Response {
        self.count(path);
        let response = self.route(path, &Query::parse(query), Utc::now());
        if !self.latency {
            return response;
        }
        // The same request always waits the same: 30–120 ms.
        let spread = path
            .bytes()
            .chain(query.bytes())
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        response.after(Duration::from_millis(30 + spread % 90))
    }
}

/// A request's query parameters, decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Self {
        Self(
            url::form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A comma-separated parameter's items.
    fn list(&self, name: &str) -> impl Iterator<Item = &str> {
        self.get(name)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
    }
}

/// A percent-encoded path segment (`BTC-USD`, `GC%3DF`).
fn decode(segment: &str) -> String {
    // form_urlencoded reads `+` as a space; a path does not.
    let segment = segment.replace('+', "%2B");
    url::form_urlencoded::parse(format!("x={segment}").as_bytes())
        .next()
        .map_or_else(|| segment.to_owned(), |(_, v)| v.into_owned())
}
