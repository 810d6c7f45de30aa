//! Which symbol each provider knows an asset by. The queue's SQL function
//! `provider_has_symbol` (migrations) is the twin of [`symbol_for`]: a test
//! keeps the two in agreement.

use super::kind::ProviderKind;
use super::kraken;
use crate::db::assets::{Asset, AssetType};
use crate::exchanges;

/// The symbol `kind` knows `asset` by: the catalog's own column when set,
/// else a derivation that holds for the usual cases (Yahoo: the ticker with
/// its exchange's suffix, `VOD.L` for VOD on XLON, none for an unknown
/// exchange; `BTC-USD` for crypto, `EURUSD=X` for FX; Binance: `BTCUSDT` for crypto
/// priced in USD or USDT; Kraken: `XBTUSD`, its own coin codes; Coinbase:
/// `BTC-USD`; Frankfurter: `EURUSD` for FX). CoinGecko ids cannot be
/// derived from tickers.
pub fn symbol_for(asset: &Asset, kind: ProviderKind) -> Option<String> {
    let own = match kind {
        ProviderKind::Yahoo => &asset.yahoo_symbol,
        ProviderKind::Binance => &asset.binance_symbol,
        ProviderKind::CoinGecko => &asset.coingecko_id,
        // No catalog column: always derived.
        // US listings by their Yahoo symbol (own column or derived).
        ProviderKind::Fmp | ProviderKind::AlphaVantage => {
            return us_listing(asset);
        }
        ProviderKind::Kraken | ProviderKind::Coinbase | ProviderKind::Frankfurter => &None,
    };
    if let Some(own) = own.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        return Some(own.to_owned());
    }
    let ticker = asset.symbol.trim();
    if ticker.is_empty() {
        return None;
    }
    let currency = asset
        .currency
        .as_deref()
        .unwrap_or("USD")
        .to_ascii_uppercase();
    match (kind, asset.asset_type) {
        (ProviderKind::Yahoo, AssetType::Crypto) if !ticker.contains('-') => {
            Some(format!("{}-{currency}", ticker.to_ascii_uppercase()))
        }
        (ProviderKind::Yahoo, AssetType::Forex) => fx_pair(ticker).map(|pair| format!("{pair}=X")),
        (ProviderKind::Frankfurter, AssetType::Forex) => fx_pair(ticker),
        // The listing's own symbol: VOD on XLON is VOD.L, not the US VOD.
        (ProviderKind::Yahoo, _) => exchanges::yahoo_symbol(ticker, &asset.exchange),
        (ProviderKind::Binance, AssetType::Crypto)
            if matches!(currency.as_str(), "USD" | "USDT") =>
        {
            Some(format!("{}USDT", ticker.to_ascii_uppercase()))
        }
        (ProviderKind::Kraken, AssetType::Crypto) if KRAKEN_QUOTES.contains(&currency.as_str()) => {
            let base = ticker.to_ascii_uppercase();
            Some(format!("{}{currency}", kraken::asset_code(&base)))
        }
        (ProviderKind::Coinbase, AssetType::Crypto)
            if COINBASE_QUOTES.contains(&currency.as_str()) =>
        {
            Some(format!("{}-{currency}", ticker.to_ascii_uppercase()))
        }
        _ => None,
    }
}

/// Quote currencies Kraken lists crypto pairs in (its legacy pair names
/// know them); the SQL twin lists the same.
const KRAKEN_QUOTES: &[&str] = &[
    "USD", "EUR", "GBP", "CAD", "JPY", "CHF", "AUD", "USDT", "USDC",
];
/// Quote currencies of Coinbase Exchange's crypto products.
const COINBASE_QUOTES: &[&str] = &["USD", "EUR", "GBP", "USDT", "USDC"];

/// A US stock's or ETF's symbol (FMP, Alpha Vantage): Yahoo's, when it
/// carries no exchange suffix. `BRK-B` stays `BRK-B`.
fn us_listing(asset: &Asset) -> Option<String> {
    if !matches!(asset.asset_type, AssetType::Stock | AssetType::Etf) {
        return None;
    }
    let yahoo = symbol_for(asset, ProviderKind::Yahoo)?;
    (!yahoo.contains('.')).then_some(yahoo)
}

/// An FX ticker's six letters (`EUR/USD` → `EURUSD`), if it has six.
fn fx_pair(ticker: &str) -> Option<String> {
    let pair: String = ticker.chars().filter(char::is_ascii_alphabetic).collect();
    (pair.len() == 6).then(|| pair.to_ascii_uppercase())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn asset(symbol: &str, asset_type: AssetType, currency: Option<&str>) -> Asset {
        Asset {
            id: 1,
            symbol: symbol.to_owned(),
            asset_type,
            exchange: "XNAS".to_owned(),
            currency: currency.map(str::to_owned),
            yahoo_symbol: None,
            binance_symbol: None,
            coingecko_id: None,
            active: true,
        }
    }

    #[test]
    fn symbols_fall_back_sensibly() {
        use AssetType::*;
        use ProviderKind::*;
        let cases = [
            (asset("AAPL", Stock, Some("USD")), Yahoo, Some("AAPL")),
            (asset("AAPL", Stock, Some("USD")), Binance, None),
            (asset("AAPL", Stock, Some("USD")), CoinGecko, None),
            (asset("btc", Crypto, None), Yahoo, Some("BTC-USD")),
            (asset("BTC", Crypto, Some("EUR")), Yahoo, Some("BTC-EUR")),
            (asset("BTC", Crypto, Some("USD")), Binance, Some("BTCUSDT")),
            (asset("BTC", Crypto, Some("EUR")), Binance, None),
            (asset("BTC", Crypto, None), CoinGecko, None),
            (asset("EUR/USD", Forex, None), Yahoo, Some("EURUSD=X")),
            (asset("GC=F", Commodity, None), Yahoo, Some("GC=F")),
            (asset("BTC", Crypto, None), Kraken, Some("XBTUSD")),
            (asset("doge", Crypto, Some("eur")), Kraken, Some("XDGEUR")),
            (asset("ETH", Crypto, Some("USDT")), Kraken, Some("ETHUSDT")),
            (asset("ETH", Crypto, Some("TRY")), Kraken, None),
            (asset("BTC", Crypto, Some("GBP")), Coinbase, Some("BTC-GBP")),
            (asset("BTC", Crypto, Some("JPY")), Coinbase, None),
            (asset("AAPL", Stock, Some("USD")), Kraken, None),
            (asset("EUR/USD", Forex, None), Frankfurter, Some("EURUSD")),
            (asset("EURO", Forex, None), Frankfurter, None),
            (asset("BTC", Crypto, None), Frankfurter, None),
            (asset("AAPL", Stock, Some("USD")), Fmp, Some("AAPL")),
            (asset("SPY", Etf, Some("USD")), AlphaVantage, Some("SPY")),
            (asset("GC=F", Commodity, None), Fmp, None),
            (asset("BTC", Crypto, None), AlphaVantage, None),
        ];
        for (asset, kind, want) in cases {
            assert_eq!(
                symbol_for(&asset, kind).as_deref(),
                want,
                "{} {kind}",
                asset.symbol
            );
        }
        let mut vod = asset("VOD", Stock, Some("GBP"));
        vod.exchange = "XLON".to_owned();
        assert_eq!(symbol_for(&vod, Yahoo).as_deref(), Some("VOD.L"));
        vod.exchange = "NOPE".to_owned();
        assert_eq!(
            symbol_for(&vod, Yahoo),
            None,
            "an unknown MIC is never guessed"
        );
        let mut own = asset("Ocado", Stock, Some("GBP"));
        own.yahoo_symbol = Some("OCDO.L".to_owned());
        own.coingecko_id = Some("  ".to_owned());
        assert_eq!(symbol_for(&own, Yahoo).as_deref(), Some("OCDO.L"));
        assert_eq!(symbol_for(&own, CoinGecko), None);
        assert_eq!(symbol_for(&own, Fmp), None, "not a US listing");
        assert_eq!(symbol_for(&vod, Fmp), None);
    }
}
