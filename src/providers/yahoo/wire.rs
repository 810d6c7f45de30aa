//! Yahoo's JSON, as sent. Everything is optional or defaulted: Yahoo leaves
//! out what it lacks (no `timestamp` at all when there is no data,
//! `quote: [{}]`, `adjclose` missing, `meta.currency` null).

use std::collections::HashMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct ChartEnvelope {
    pub(super) chart: Chart,
}

#[derive(Debug, Deserialize)]
pub(super) struct Chart {
    #[serde(default)]
    pub(super) result: Option<Vec<ChartResult>>,
    #[serde(default)]
    pub(super) error: Option<ChartError>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChartError {
    pub(super) code: Option<String>,
    pub(super) description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChartResult {
    #[serde(default)]
    pub(super) meta: Meta,
    #[serde(default)]
    pub(super) timestamp: Vec<i64>,
    #[serde(default)]
    pub(super) indicators: Indicators,
    #[serde(default)]
    pub(super) events: Option<Events>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Meta {
    pub(super) currency: Option<String>,
    pub(super) exchange_timezone_name: Option<String>,
    pub(super) regular_market_price: Option<f64>,
    pub(super) regular_market_time: Option<i64>,
    pub(super) current_trading_period: Option<TradingPeriods>,
}

#[derive(Debug, Deserialize)]
pub(super) struct TradingPeriods {
    pub(super) regular: Option<Period>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Period {
    pub(super) start: Option<i64>,
    pub(super) end: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Indicators {
    #[serde(default)]
    pub(super) quote: Vec<QuoteArrays>,
    #[serde(default)]
    pub(super) adjclose: Vec<AdjCloseArray>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct QuoteArrays {
    #[serde(default)]
    pub(super) open: Vec<Option<f64>>,
    #[serde(default)]
    pub(super) high: Vec<Option<f64>>,
    #[serde(default)]
    pub(super) low: Vec<Option<f64>>,
    #[serde(default)]
    pub(super) close: Vec<Option<f64>>,
    #[serde(default)]
    pub(super) volume: Vec<Option<f64>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AdjCloseArray {
    #[serde(default)]
    pub(super) adjclose: Vec<Option<f64>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Events {
    #[serde(default)]
    pub(super) dividends: HashMap<String, Dividend>,
    #[serde(default)]
    pub(super) splits: HashMap<String, Split>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Dividend {
    pub(super) amount: Option<f64>,
    pub(super) date: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Split {
    pub(super) date: Option<i64>,
    pub(super) numerator: Option<f64>,
    pub(super) denominator: Option<f64>,
    pub(super) split_ratio: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SparkEnvelope {
    pub(super) spark: Option<SparkBody>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SparkBody {
    pub(super) result: Option<Vec<SparkEntry>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SparkEntry {
    pub(super) symbol: Option<String>,
    #[serde(default)]
    pub(super) response: Vec<ChartResult>,
}
