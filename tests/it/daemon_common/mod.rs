//! Helpers for the daemon tests: held assets as rows, and a market that
//! answers quote requests in the providers' real shapes (Yahoo spark,
//! Binance ticker/price, CoinGecko simple/price) from prices a test sets.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// An asset in the catalog: (symbol, type, exchange, currency, yahoo, binance, coingecko).
pub async fn asset(
    pool: &PgPool,
    symbol: &str,
    asset_type: &str,
    exchange: &str,
    currency: &str,
    ids: (Option<&str>, Option<&str>, Option<&str>),
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO assets (symbol, asset_type, exchange, currency, yahoo_symbol, binance_symbol, coingecko_id)
         VALUES ($1, $2::asset_type, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(symbol)
    .bind(asset_type)
    .bind(exchange)
    .bind(currency)
    .bind(ids.0)
    .bind(ids.1)
    .bind(ids.2)
    .fetch_one(pool)
    .await
    .expect("insert asset")
}

/// `portfolio` holds `quantity` of `asset` bought at `price`: the rows the
/// orchestrator would have made from the purchase.
pub async fn hold(pool: &PgPool, portfolio: Uuid, asset: i64, quantity: &str, price: &str) {
    sqlx::query(
        "INSERT INTO portfolio_transactions (portfolio_id, asset_id, side, quantity, price, executed_at)
         VALUES ($1, $2, 'buy', $3::numeric, $4::numeric, now() - interval '30 days')",
    )
    .bind(portfolio)
    .bind(asset)
    .bind(quantity)
    .bind(price)
    .execute(pool)
    .await
    .expect("insert transaction");
    sqlx::query(
        "INSERT INTO holdings (portfolio_id, asset_id, quantity) VALUES ($1, $2, $3::numeric)
         ON CONFLICT (portfolio_id, asset_id) DO UPDATE SET quantity = holdings.quantity + excluded.quantity",
    )
    .bind(portfolio)
    .bind(asset)
    .bind(quantity)
    .execute(pool)
    .await
    .expect("insert holding");
    sqlx::query(
        "INSERT INTO tracked_assets (asset_id, tracking_users) VALUES ($1, 1)
         ON CONFLICT (asset_id) DO UPDATE SET tracking_users = tracked_assets.tracking_users + 1",
    )
    .bind(asset)
    .execute(pool)
    .await
    .expect("track asset");
}

/// A price and the time it was made.
type Priced = (f64, DateTime<Utc>);

/// Prices by provider symbol.
#[derive(Clone, Default)]
pub struct Market {
    prices: Arc<Mutex<HashMap<String, Priced>>>,
}

impl Market {
    pub fn set(&self, symbol: &str, price: f64, at: DateTime<Utc>) {
        self.prices
            .lock()
            .unwrap()
            .insert(symbol.to_owned(), (price, at));
    }

    fn get(&self, symbol: &str) -> Option<Priced> {
        self.prices.lock().unwrap().get(symbol).copied()
    }

    /// Mounts the three quote endpoints on `server`.
    pub async fn mount(&self, server: &MockServer) {
        Mock::given(method("GET"))
            .and(path("/v8/finance/spark"))
            .respond_with(Spark(self.clone()))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v3/ticker/price"))
            .respond_with(Ticker(self.clone()))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/simple/price"))
            .respond_with(SimplePrice(self.clone()))
            .mount(server)
            .await;
    }
}

fn param(req: &Request, name: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

struct Spark(Market);

impl Respond for Spark {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let symbols = param(req, "symbols").unwrap_or_default();
        let result: Vec<Value> = symbols
            .split(',')
            .filter_map(|s| {
                let (price, at) = self.0.get(s)?;
                let (currency, zone) = if s.ends_with(".L") {
                    ("GBp", "Europe/London")
                } else {
                    ("USD", "America/New_York")
                };
                Some(json!({
                    "symbol": s,
                    "response": [{
                        "meta": {
                            "currency": currency, "symbol": s, "exchangeName": "X",
                            "instrumentType": "EQUITY", "regularMarketTime": at.timestamp(),
                            "gmtoffset": 0, "timezone": "GMT", "exchangeTimezoneName": zone,
                            "regularMarketPrice": price, "chartPreviousClose": price,
                            "priceHint": 2, "dataGranularity": "1d", "range": "1d"
                        },
                        "timestamp": [at.timestamp()],
                        "indicators": {"quote": [{"close": [price]}]}
                    }]
                }))
            })
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({"spark": {"result": result, "error": null}}))
    }
}

struct Ticker(Market);

impl Respond for Ticker {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let one = |s: &str| {
            self.0
                .get(s)
                .map(|(price, _)| json!({"symbol": s, "price": format!("{price:.8}")}))
        };
        if let Some(symbol) = param(req, "symbol") {
            return match one(&symbol) {
                Some(body) => ResponseTemplate::new(200).set_body_json(body),
                None => ResponseTemplate::new(400)
                    .set_body_json(json!({"code": -1121, "msg": "Invalid symbol."})),
            };
        }
        let list: Vec<String> = match param(req, "symbols") {
            Some(raw) => serde_json::from_str(&raw).unwrap_or_default(),
            // No symbol at all: every listed pair.
            None => self.0.prices.lock().unwrap().keys().cloned().collect(),
        };
        let found: Option<Vec<Value>> = list.iter().map(|s| one(s)).collect();
        match found {
            Some(rows) => ResponseTemplate::new(200).set_body_json(rows),
            None => ResponseTemplate::new(400)
                .set_body_json(json!({"code": -1121, "msg": "Invalid symbol."})),
        }
    }
}

struct SimplePrice(Market);

impl Respond for SimplePrice {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let ids = param(req, "ids").unwrap_or_default();
        let mut body = serde_json::Map::new();
        for id in ids.split(',') {
            if let Some((price, at)) = self.0.get(id) {
                body.insert(
                    id.to_owned(),
                    json!({"usd": price, "last_updated_at": at.timestamp()}),
                );
            }
        }
        ResponseTemplate::new(200).set_body_json(Value::Object(body))
    }
}

/// Requests `server` received on `path`.
pub async fn requests_to(server: &MockServer, on: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == on)
        .count()
}
