//! Cryptocurrencies: the top N by market cap from CoinGecko `coins/markets`
//! (pages of 250), with `binance_symbol` where Binance's `exchangeInfo`
//! has a `<BASE>USDT` pair that is `TRADING`, and Yahoo's `<SYMBOL>-USD`.
//!
//! Requests go through the providers (their rate limiters) and the shared
//! cooldowns of `provider_state`: a 429 pauses CoinGecko for every process,
//! and this source waits the pause out and asks again. Everything is
//! fetched before anything is written, so a run stopped mid-way (or a page
//! that never comes) changes nothing.
//!
//! Tickers are not unique among coins: of two coins with one symbol the
//! larger keeps it, the other is left out (and reported).

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use super::{CatalogError, Listing, Parsed};
use crate::db::assets::AssetType;

pub const PER_PAGE: u32 = 250;
/// `--from-dir` names: page N of `coins/markets`, and Binance's `exchangeInfo`.
pub fn markets_file(page: u32) -> String {
    format!("coingecko_markets_{page}.json")
}
pub const EXCHANGE_INFO_FILE: &str = "binance_exchange_info.json";

/// Pages of 250 needed for the top `top` coins.
pub fn pages(top: u32) -> u32 {
    top.div_ceil(PER_PAGE).max(1)
}

/// One entry of `coins/markets` (only what the catalog keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    pub id: String,
    pub symbol: String,
    pub name: String,
}

/// A page of `coins/markets`: a JSON array of objects with string `id`,
/// `symbol` and `name`. Anything else (an HTML page, a status object, a
/// body cut short) is refused whole.
pub fn parse_markets(file: &str, body: &[u8]) -> Result<Vec<Coin>, CatalogError> {
    let malformed = |reason: String| CatalogError::Malformed {
        file: file.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        malformed(format!(
            "not JSON ({e}): {}",
            crate::providers::http::snippet(body)
        ))
    })?;
    let Value::Array(entries) = value else {
        return Err(malformed(format!(
            "not an array of coins: {}",
            crate::providers::http::snippet(body)
        )));
    };
    let mut coins = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_owned);
        match (text("id"), text("symbol"), text("name")) {
            (Some(id), Some(symbol), Some(name)) => coins.push(Coin { id, symbol, name }),
            _ => {
                return Err(malformed(format!(
                    "entry {i} has no string id, symbol and name"
                )));
            }
        }
    }
    Ok(coins)
}

#[derive(Deserialize)]
struct ExchangeInfo {
    symbols: Vec<Pair>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pair {
    symbol: String,
    status: String,
    base_asset: String,
    quote_asset: String,
}

/// Base assets with a `TRADING` pair against USDT, by Binance symbol
/// (`BTC` → `BTCUSDT`).
pub fn parse_exchange_info(body: &[u8]) -> Result<HashSet<String>, CatalogError> {
    let info: ExchangeInfo = serde_json::from_slice(body).map_err(|e| CatalogError::Malformed {
        file: EXCHANGE_INFO_FILE.to_owned(),
        reason: format!(
            "not Binance's exchangeInfo ({e}): {}",
            crate::providers::http::snippet(body)
        ),
    })?;
    Ok(info
        .symbols
        .into_iter()
        .filter(|p| p.status == "TRADING" && p.quote_asset == "USDT")
        .filter(|p| p.symbol == format!("{}USDT", p.base_asset))
        .map(|p| p.base_asset.to_ascii_uppercase())
        .collect())
}

/// The catalog rows for `coins` (largest first), at most `top` of them.
/// `usdt_bases` is `None` when Binance could not be asked: then no
/// `binance_symbol` is set (and none already stored is taken away).
pub fn listings(coins: &[Coin], usdt_bases: Option<&HashSet<String>>, top: usize) -> Parsed {
    let mut parsed = Parsed::default();
    let mut seen = HashSet::new();
    let mut ids = HashSet::new();
    for coin in coins.iter().take(top) {
        if !ids.insert(coin.id.clone()) {
            // Pages shift while they are read: a coin may appear twice.
            continue;
        }
        let symbol = coin.symbol.trim().to_ascii_uppercase();
        let binance_symbol = usdt_bases
            .filter(|bases| bases.contains(&symbol))
            .map(|_| format!("{symbol}USDT"));
        let listing = Listing {
            symbol: symbol.clone(),
            asset_type: AssetType::Crypto,
            exchange: "CRYPTO".to_owned(),
            currency: "USD".to_owned(),
            name: coin.name.clone(),
            yahoo_symbol: Some(format!("{symbol}-USD")),
            binance_symbol,
            coingecko_id: Some(coin.id.clone()),
        };
        parsed.push(listing, &mut seen);
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"[
      {"id":"bitcoin","symbol":"btc","name":"Bitcoin","image":"https://x/btc.png","current_price":97000,
       "market_cap":1920000000000,"market_cap_rank":1,"fully_diluted_valuation":null,"roi":null},
      {"id":"ethereum","symbol":"eth","name":"Ethereum","market_cap_rank":2,
       "roi":{"times":40.1,"currency":"btc","percentage":4010.0}},
      {"id":"bridged-btc","symbol":"btc","name":"Bridged BTC","market_cap_rank":3},
      {"id":"odd","symbol":"a b","name":"Spaced","market_cap_rank":4},
      {"id":"pepe","symbol":"pepe","name":"Pepe","market_cap_rank":5}
    ]"#;

    const INFO: &str = r#"{"timezone":"UTC","serverTime":1700000000000,"rateLimits":[],"exchangeFilters":[],
      "symbols":[
        {"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT","filters":[]},
        {"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","quoteAsset":"BTC"},
        {"symbol":"ETHUSDT","status":"BREAK","baseAsset":"ETH","quoteAsset":"USDT"},
        {"symbol":"PEPEUSDT","status":"TRADING","baseAsset":"PEPE","quoteAsset":"USDT"}
      ]}"#;

    #[test]
    fn the_largest_coin_keeps_a_shared_ticker() {
        let coins = parse_markets("page", PAGE.as_bytes()).unwrap();
        let bases = parse_exchange_info(INFO.as_bytes()).unwrap();
        let parsed = listings(&coins, Some(&bases), 500);
        let rows: Vec<_> = parsed
            .listings
            .iter()
            .map(|l| {
                (
                    l.symbol.as_str(),
                    l.coingecko_id.as_deref().unwrap(),
                    l.binance_symbol.as_deref(),
                    l.yahoo_symbol.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("BTC", "bitcoin", Some("BTCUSDT"), "BTC-USD"),
                ("ETH", "ethereum", None, "ETH-USD"),
                ("PEPE", "pepe", Some("PEPEUSDT"), "PEPE-USD"),
            ]
        );
        assert_eq!(parsed.skipped.counts["duplicate symbol"], 1);
        assert_eq!(parsed.skipped.counts["invalid symbol"], 1);
        assert_eq!(listings(&coins, None, 2).listings.len(), 2);
    }

    #[test]
    fn what_is_not_a_page_of_coins_is_refused() {
        for (body, want) in [
            ("<html><title>Just a moment...</title></html>", "HTML page"),
            (r#"{"status":{"error_code":429}}"#, "not an array"),
            (
                r#"[{"id":"bitcoin","symbol":"btc","name":"Bitc"#,
                "not JSON",
            ),
            (r#"[{"id":"bitcoin","symbol":null,"name":"x"}]"#, "entry 0"),
        ] {
            let err = parse_markets("coins/markets page 1", body.as_bytes()).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
        assert!(parse_exchange_info(b"{}").is_err());
        assert_eq!(pages(500), 2);
        assert_eq!(pages(1), 1);
        assert_eq!(pages(251), 2);
    }
}
