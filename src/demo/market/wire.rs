//! The providers' answers in their real shapes (the ones `tests/fixtures`
//! hold, as captured from the live APIs), built from simulated numbers.
//! Yahoo sends prices as f32s widened to f64, Binance as decimal strings,
//! CoinGecko as f64s with times in milliseconds.

use serde_json::{Value, json};

use crate::local_http::Response;

/// One daily bar: session open (unix seconds), OHLC, volume.
#[derive(Debug, Clone, Copy)]
pub struct Bar {
    pub open_time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub adj_close: f64,
    pub volume: f64,
}

/// What a Yahoo chart's `meta` says about the instrument.
#[derive(Debug, Clone, Copy)]
pub struct Listing<'a> {
    pub symbol: &'a str,
    /// As Yahoo writes it: `USD`, `GBp` (pence) for London.
    pub currency: &'a str,
    pub exchange_name: &'a str,
    pub instrument_type: &'a str,
    pub timezone: &'a str,
}

/// Yahoo's consent front page: a 404 whose only use is its cookie.
pub fn yahoo_cookie() -> Response {
    Response::json(404, "<html>404</html>")
        .header("set-cookie", "A3=d=AQABBK; Domain=.yahoo.com; Secure")
}

pub fn yahoo_crumb() -> Response {
    Response::json(200, "SimCrumb.1")
}

/// `v7/finance/quote`: `(symbol, currency, price, unix time)`.
pub fn yahoo_quotes(quotes: &[(String, &str, f64, i64)]) -> Response {
    let result: Vec<Value> = quotes
        .iter()
        .map(|(symbol, currency, price, at)| {
            json!({"symbol": symbol, "quoteType": "EQUITY", "currency": currency,
                   "regularMarketPrice": price, "regularMarketTime": at})
        })
        .collect();
    Response::json(
        200,
        json!({"quoteResponse": {"result": result, "error": null}}).to_string(),
    )
}

/// `v8/finance/chart/{symbol}` with daily bars, splits `(time, numerator,
/// denominator)` and dividends `(time, amount)`.
pub fn yahoo_chart(
    listing: Listing,
    bars: &[Bar],
    splits: &[(i64, u32, u32)],
    dividends: &[(i64, f64)],
) -> Response {
    let col =
        |f: fn(&Bar) -> f64| -> Vec<Value> { bars.iter().map(|b| yahoo_number(f(b))).collect() };
    let last = bars.last();
    let mut events = serde_json::Map::new();
    if !dividends.is_empty() {
        let map: serde_json::Map<String, Value> = dividends
            .iter()
            .map(|(at, amount)| (at.to_string(), json!({"amount": amount, "date": at})))
            .collect();
        events.insert("dividends".into(), Value::Object(map));
    }
    if !splits.is_empty() {
        let map: serde_json::Map<String, Value> = splits
            .iter()
            .map(|(at, num, den)| {
                (
                    at.to_string(),
                    json!({"date": at, "numerator": f64::from(*num),
                    "denominator": f64::from(*den), "splitRatio": format!("{num}:{den}")}),
                )
            })
            .collect();
        events.insert("splits".into(), Value::Object(map));
    }
    let mut result = json!({
        "meta": {
            "currency": listing.currency, "symbol": listing.symbol,
            "exchangeName": listing.exchange_name, "instrumentType": listing.instrument_type,
            "exchangeTimezoneName": listing.timezone,
            "regularMarketPrice": last.map_or(Value::Null, |b| yahoo_number(b.close)),
            "regularMarketTime": last.map(|b| b.open_time),
            "dataGranularity": "1d", "range": ""
        },
        "timestamp": bars.iter().map(|b| b.open_time).collect::<Vec<_>>(),
        "indicators": {
            "quote": [{"open": col(|b| b.open), "high": col(|b| b.high), "low": col(|b| b.low),
                       "close": col(|b| b.close), "volume": bars.iter().map(|b| b.volume.round()).collect::<Vec<_>>()}],
            "adjclose": [{"adjclose": col(|b| b.adj_close)}]
        }
    });
    if !events.is_empty() {
        result["events"] = Value::Object(events);
    }
    Response::json(
        200,
        json!({"chart": {"result": [result], "error": null}}).to_string(),
    )
}

pub fn yahoo_not_found() -> Response {
    Response::json(
        404,
        json!({"chart": {"result": null, "error": {"code": "Not Found",
            "description": "No data found, symbol may be delisted"}}})
        .to_string(),
    )
}

pub fn yahoo_rate_limited() -> Response {
    // Yahoo's 429 is plain text from its edge, without a Retry-After.
    Response::json(429, "Edge: Too Many Requests")
}

/// `api/v3/ticker/price` for every listed pair.
pub fn binance_tickers(prices: &[(String, f64)]) -> Response {
    let all: Vec<Value> = prices
        .iter()
        .map(|(symbol, price)| json!({"symbol": symbol, "price": format!("{price:.8}")}))
        .collect();
    Response::json(200, Value::Array(all).to_string())
}

/// `api/v3/klines` rows: open time, OHLCV as strings, close time, …
pub fn binance_klines(bars: &[Bar]) -> Response {
    let rows: Vec<Value> = bars
        .iter()
        .map(|b| {
            let open_ms = b.open_time * 1000;
            json!([
                open_ms,
                format!("{:.8}", b.open),
                format!("{:.8}", b.high),
                format!("{:.8}", b.low),
                format!("{:.8}", b.close),
                format!("{:.8}", b.volume),
                open_ms + 86_400_000 - 1,
                format!("{:.8}", b.volume * b.close),
                1000,
                format!("{:.8}", b.volume / 2.0),
                format!("{:.8}", b.volume * b.close / 2.0),
                "0"
            ])
        })
        .collect();
    Response::json(200, Value::Array(rows).to_string()).header("x-mbx-used-weight-1m", "2")
}

pub fn binance_invalid_symbol() -> Response {
    Response::json(400, r#"{"code":-1121,"msg":"Invalid symbol."}"#)
}

pub fn binance_rate_limited() -> Response {
    Response::json(
        429,
        r#"{"code":-1003,"msg":"Too much request weight used; current limit is 6000 request weight per 1 MINUTE."}"#,
    )
}

/// `simple/price`: `(id, price, unix time)` in `vs`.
pub fn coingecko_prices(prices: &[(String, f64, i64)], vs: &str) -> Response {
    let body: serde_json::Map<String, Value> = prices
        .iter()
        .map(|(id, price, at)| (id.clone(), json!({vs: price, "last_updated_at": at})))
        .collect();
    Response::json(200, Value::Object(body).to_string())
}

/// `coins/{id}/market_chart/range`: one point a day at 00:00 UTC.
pub fn coingecko_range(bars: &[Bar]) -> Response {
    let points = |f: fn(&Bar) -> f64| -> Vec<Value> {
        bars.iter()
            .map(|b| json!([b.open_time * 1000, f(b)]))
            .collect()
    };
    Response::json(
        200,
        json!({"prices": points(|b| b.close), "market_caps": points(|b| b.close * 1.9e7),
               "total_volumes": points(|b| b.volume * b.close)})
        .to_string(),
    )
}

pub fn coingecko_not_found() -> Response {
    Response::json(404, r#"{"error":"coin not found"}"#)
}

pub fn coingecko_rate_limited() -> Response {
    Response::json(
        429,
        r#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits."}}"#,
    )
}

pub fn server_error(status: u16) -> Response {
    Response::json(
        status,
        "<html><body><h1>Service Unavailable</h1></body></html>",
    )
}

/// A price as Yahoo sends it: an f32 widened to f64.
fn yahoo_number(x: f64) -> Value {
    json!(f64::from(x as f32))
}
