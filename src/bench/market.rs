//! A local HTTP/1.1 market for `bench daemon`: answers Yahoo's cookie,
//! crumb and v7 quote, Binance's all-symbols ticker and CoinGecko's
//! simple/price in their real shapes, for symbols named by a pattern, and
//! counts requests per path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BenchError;

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

    fn answer(&self, path: &str, query: &str) -> (u16, Vec<(&'static str, String)>, String) {
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
            "/" => (
                404,
                vec![(
                    "set-cookie",
                    "A3=d=AQABBK; Domain=.yahoo.com; Secure".to_owned(),
                )],
                "<html>404</html>".to_owned(),
            ),
            "/v1/test/getcrumb" => (200, vec![], "BenchCrumb.1".to_owned()),
            "/v7/finance/quote" => {
                let result: Vec<Value> = param("symbols")
                    .split(',')
                    .map(|s| {
                        let pence = s.ends_with(".L");
                        json!({"symbol": s, "quoteType": "EQUITY",
                               "currency": if pence { "GBp" } else { "USD" },
                               "regularMarketPrice": if pence { 123.4 } else { 187.25 },
                               "regularMarketTime": at})
                    })
                    .collect();
                (
                    200,
                    vec![],
                    json!({"quoteResponse": {"result": result, "error": null}}).to_string(),
                )
            }
            "/api/v3/ticker/price" => {
                let all: Vec<Value> = (0..self.binance_pairs)
                    .map(|i| json!({"symbol": format!("B{i}USDT"), "price": "1.23450000"}))
                    .collect();
                (200, vec![], Value::Array(all).to_string())
            }
            "/simple/price" => {
                let body: serde_json::Map<String, Value> = param("ids")
                    .split(',')
                    .map(|id| (id.to_owned(), json!({"usd": 2.5, "last_updated_at": at})))
                    .collect();
                (200, vec![], Value::Object(body).to_string())
            }
            _ => (404, vec![], "{}".to_owned()),
        }
    }
}

/// Serves `market` on a local port; returns its base URL.
pub async fn serve(market: Arc<Market>) -> Result<url::Url, BenchError> {
    let (listener, url) = super::local_listener().await?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let market = market.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut filled = 0;
                loop {
                    match socket.read(&mut buf[filled..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => filled += n,
                    }
                    // GET requests carry no body: a blank line ends each one.
                    while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let target = head.split_whitespace().nth(1).unwrap_or("/");
                        let (path, query) = target.split_once('?').unwrap_or((target, ""));
                        let (status, headers, body) = market.answer(path, query);
                        let mut response = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                            body.len()
                        );
                        for (name, value) in headers {
                            response.push_str(&format!("{name}: {value}\r\n"));
                        }
                        response.push_str("\r\n");
                        response.push_str(&body);
                        if socket.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                        buf.copy_within(end + 4..filled, 0);
                        filled -= end + 4;
                    }
                    if filled == buf.len() {
                        return;
                    }
                }
            });
        }
    });
    Ok(url)
}
