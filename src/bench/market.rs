//! The market of `bench daemon`: answers Yahoo's cookie, crumb and v7
//! quote, Binance's all-symbols ticker and CoinGecko's simple/price in
//! their real shapes (see `demo::market::wire`), for symbols named by a
//! pattern, and counts requests per path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use super::BenchError;
use crate::demo::market::wire;
use crate::local_http::{self, Handler, Response};

#[derive(Debug, Default)]
pub struct Market {
    /// Requests per path.
    pub requests: Mutex<BTreeMap<String, usize>>,
    /// regularMarketTime and last_updated_at of every quote (unix seconds).
    pub quote_time: AtomicI64,
    /// How many Binance pairs `B<i>USDT` are listed.
    pub binance_pairs: usize,
}

impl Market {
    pub fn total_requests(&self) -> usize {
        self.requests.lock().expect("requests").values().sum()
    }
}

impl Handler for Market {
    fn answer(&self, path: &str, query: &str) -> Response {
        *self
            .requests
            .lock()
            .expect("requests")
            .entry(path.to_owned())
            .or_default() += 1;
        let param = |name: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let at = self.quote_time.load(Ordering::Relaxed);
        match path {
            "/" => wire::yahoo_cookie(),
            "/v1/test/getcrumb" => wire::yahoo_crumb(),
            "/v7/finance/quote" => {
                let quotes: Vec<_> = param("symbols")
                    .split(',')
                    .map(|s| {
                        let pence = s.ends_with(".L");
                        let (currency, price) = if pence {
                            ("GBp", 123.4)
                        } else {
                            ("USD", 187.25)
                        };
                        (s.to_owned(), currency, price, at)
                    })
                    .collect();
                wire::yahoo_quotes(&quotes)
            }
            "/api/v3/ticker/price" => {
                let all: Vec<_> = (0..self.binance_pairs)
                    .map(|i| (format!("B{i}USDT"), 1.2345))
                    .collect();
                wire::binance_tickers(&all)
            }
            "/simple/price" => {
                let prices: Vec<_> = param("ids")
                    .split(',')
                    .map(|id| (id.to_owned(), 2.5, at))
                    .collect();
                wire::coingecko_prices(&prices, "usd")
            }
            _ => Response::json(404, "{}"),
        }
    }
}

/// Serves `market` on a local port; returns its base URL.
pub async fn serve(market: Arc<Market>) -> Result<url::Url, BenchError> {
    local_http::serve(market)
        .await
        .map_err(|e| BenchError::Stalled(format!("cannot start the local server: {e}")))
}
