//! Provider settings: rates, base URLs, timeout and fallback chains, each a
//! flag and an environment variable, checked at start like every setting
//! (a bad value exits 2 naming the variable). `COINGECKO_API_KEY` and
//! `MAX_REQUESTS_PER_MINUTE` keep their design-document names. `fetch` and
//! `quote` take these and nothing else.

use std::time::Duration;

use url::Url;

use super::ProviderKind;
use super::rate_limit::{Rate, rate};
use crate::config::{duration, ranged};

pub const DEFAULT_YAHOO_URL: &str = "https://query1.finance.yahoo.com";
pub const DEFAULT_BINANCE_URL: &str = "https://api.binance.com";
pub const DEFAULT_BINANCE_DATA_URL: &str = "https://data-api.binance.vision";
pub const DEFAULT_COINGECKO_URL: &str = "https://api.coingecko.com/api/v3";
pub const DEFAULT_KRAKEN_URL: &str = "https://api.kraken.com";
pub const DEFAULT_COINBASE_URL: &str = "https://api.exchange.coinbase.com";
pub const DEFAULT_FRANKFURTER_URL: &str = "https://api.frankfurter.dev";
pub const DEFAULT_FMP_URL: &str = "https://financialmodelingprep.com";
pub const DEFAULT_ALPHA_VANTAGE_URL: &str = "https://www.alphavantage.co";
/// CoinGecko without a key allows about 5–10 calls a minute.
pub const COINGECKO_KEYLESS_RATE: Rate = Rate::per_minute(10);
/// The Demo plan's limit.
pub const COINGECKO_DEMO_RATE: Rate = Rate::per_minute(30);

#[derive(Debug, Clone, clap::Args)]
pub struct ProviderSettings {
    /// Ceiling on requests per minute for every provider (each also has its own rate).
    #[arg(long, env = "MAX_REQUESTS_PER_MINUTE",
          value_parser = ranged::<u32>("MAX_REQUESTS_PER_MINUTE", 1, 1_000_000), help_heading = "Providers")]
    pub max_requests_per_minute: Option<u32>,

    /// CoinGecko demo API key (sent as x-cg-demo-api-key); optional.
    #[arg(
        long,
        env = "COINGECKO_API_KEY",
        value_parser = crate::config::Secret(crate::config::api_key("COINGECKO_API_KEY")),
        hide_env_values = true,
        help_heading = "Providers"
    )]
    pub coingecko_api_key: Option<String>,

    /// Financial Modeling Prep API key; enables the `fmp` provider (US
    /// stocks and ETFs) wherever a chain names it. Never logged.
    #[arg(
        long,
        env = "FMP_API_KEY",
        value_parser = crate::config::Secret(crate::config::api_key("FMP_API_KEY")),
        hide_env_values = true,
        help_heading = "Providers"
    )]
    pub fmp_api_key: Option<String>,

    /// Alpha Vantage API key; enables the `alphavantage` provider (US
    /// stocks and ETFs) wherever a chain names it. Never logged.
    #[arg(
        long,
        env = "ALPHA_VANTAGE_API_KEY",
        value_parser = crate::config::Secret(crate::config::api_key("ALPHA_VANTAGE_API_KEY")),
        hide_env_values = true,
        help_heading = "Providers"
    )]
    pub alpha_vantage_api_key: Option<String>,

    /// Yahoo Finance request budget, a count per duration (`2000/h`, `30/min`).
    #[arg(long, env = "PRICEKEEPER_YAHOO_RATE", default_value = "2000/h",
          value_parser = rate("PRICEKEEPER_YAHOO_RATE"), help_heading = "Providers")]
    pub yahoo_rate: Rate,

    /// Binance request budget, a count per duration.
    #[arg(long, env = "PRICEKEEPER_BINANCE_RATE", default_value = "1200/min",
          value_parser = rate("PRICEKEEPER_BINANCE_RATE"), help_heading = "Providers")]
    pub binance_rate: Rate,

    /// CoinGecko request budget, a count per duration. Default: 10/min
    /// without a key (what keyless use is allowed), 30/min with
    /// COINGECKO_API_KEY (the Demo plan).
    #[arg(long, env = "PRICEKEEPER_COINGECKO_RATE",
          value_parser = rate("PRICEKEEPER_COINGECKO_RATE"), help_heading = "Providers")]
    pub coingecko_rate: Option<Rate>,

    /// Kraken request budget, a count per duration (its public endpoints
    /// allow about one call a second).
    #[arg(long, env = "PRICEKEEPER_KRAKEN_RATE", default_value = "60/min",
          value_parser = rate("PRICEKEEPER_KRAKEN_RATE"), help_heading = "Providers")]
    pub kraken_rate: Rate,

    /// Coinbase Exchange request budget, a count per duration (public limit: 10/s).
    #[arg(long, env = "PRICEKEEPER_COINBASE_RATE", default_value = "10/s",
          value_parser = rate("PRICEKEEPER_COINBASE_RATE"), help_heading = "Providers")]
    pub coinbase_rate: Rate,

    /// Frankfurter (ECB reference rates) request budget, a count per duration.
    #[arg(long, env = "PRICEKEEPER_FRANKFURTER_RATE", default_value = "120/min",
          value_parser = rate("PRICEKEEPER_FRANKFURTER_RATE"), help_heading = "Providers")]
    pub frankfurter_rate: Rate,

    /// Financial Modeling Prep request budget (free plan: 250 a day).
    #[arg(long, env = "PRICEKEEPER_FMP_RATE", default_value = "250/d",
          value_parser = rate("PRICEKEEPER_FMP_RATE"), help_heading = "Providers")]
    pub fmp_rate: Rate,

    /// Alpha Vantage request budget (free plan: 25 a day). A request whose
    /// turn is more than a minute off is not sent; its job waits.
    #[arg(long, env = "PRICEKEEPER_ALPHA_VANTAGE_RATE", default_value = "25/d",
          value_parser = rate("PRICEKEEPER_ALPHA_VANTAGE_RATE"), help_heading = "Providers")]
    pub alpha_vantage_rate: Rate,

    /// Binance request-weight budget per minute; requests slow down at 80% of it.
    #[arg(long, env = "PRICEKEEPER_BINANCE_WEIGHT_LIMIT", default_value_t = 6000,
          value_parser = ranged::<u32>("PRICEKEEPER_BINANCE_WEIGHT_LIMIT", 10, 1_000_000), help_heading = "Providers")]
    pub binance_weight_limit: u32,

    /// Yahoo Finance base URL (`query1` or `query2`, or a local server in tests).
    #[arg(long, env = "PRICEKEEPER_YAHOO_URL", default_value = DEFAULT_YAHOO_URL,
          value_parser = base_url("PRICEKEEPER_YAHOO_URL"), help_heading = "Providers")]
    pub yahoo_url: Url,

    /// Binance base URL (or the market-data-only https://data-api.binance.vision).
    #[arg(long, env = "PRICEKEEPER_BINANCE_URL", default_value = DEFAULT_BINANCE_URL,
          value_parser = base_url("PRICEKEEPER_BINANCE_URL"), help_heading = "Providers")]
    pub binance_url: Url,

    /// Binance market-data host, asked once the base URL answers 451
    /// (restricted location); a 451 there too makes Binance unavailable
    /// for this deployment.
    #[arg(long, env = "PRICEKEEPER_BINANCE_DATA_URL", default_value = DEFAULT_BINANCE_DATA_URL,
          value_parser = base_url("PRICEKEEPER_BINANCE_DATA_URL"), help_heading = "Providers")]
    pub binance_data_url: Url,

    /// CoinGecko base URL; a `pro-api.coingecko.com` URL sends the key as a Pro key.
    #[arg(long, env = "PRICEKEEPER_COINGECKO_URL", default_value = DEFAULT_COINGECKO_URL,
          value_parser = base_url("PRICEKEEPER_COINGECKO_URL"), help_heading = "Providers")]
    pub coingecko_url: Url,

    /// Kraken base URL (public market data, no key).
    #[arg(long, env = "PRICEKEEPER_KRAKEN_URL", default_value = DEFAULT_KRAKEN_URL,
          value_parser = base_url("PRICEKEEPER_KRAKEN_URL"), help_heading = "Providers")]
    pub kraken_url: Url,

    /// Coinbase Exchange base URL (public market data, no key).
    #[arg(long, env = "PRICEKEEPER_COINBASE_URL", default_value = DEFAULT_COINBASE_URL,
          value_parser = base_url("PRICEKEEPER_COINBASE_URL"), help_heading = "Providers")]
    pub coinbase_url: Url,

    /// Frankfurter base URL (ECB reference rates for FX, no key).
    #[arg(long, env = "PRICEKEEPER_FRANKFURTER_URL", default_value = DEFAULT_FRANKFURTER_URL,
          value_parser = base_url("PRICEKEEPER_FRANKFURTER_URL"), help_heading = "Providers")]
    pub frankfurter_url: Url,

    /// Financial Modeling Prep base URL.
    #[arg(long, env = "PRICEKEEPER_FMP_URL", default_value = DEFAULT_FMP_URL,
          value_parser = base_url("PRICEKEEPER_FMP_URL"), help_heading = "Providers")]
    pub fmp_url: Url,

    /// Alpha Vantage base URL.
    #[arg(long, env = "PRICEKEEPER_ALPHA_VANTAGE_URL", default_value = DEFAULT_ALPHA_VANTAGE_URL,
          value_parser = base_url("PRICEKEEPER_ALPHA_VANTAGE_URL"), help_heading = "Providers")]
    pub alpha_vantage_url: Url,

    /// Currency CoinGecko prices are asked in (an ISO code CoinGecko knows).
    #[arg(long, env = "PRICEKEEPER_COINGECKO_VS_CURRENCY", default_value = "usd",
          value_parser = currency_code("PRICEKEEPER_COINGECKO_VS_CURRENCY"), help_heading = "Providers")]
    pub coingecko_vs_currency: String,

    /// Time limit for one provider request, body included.
    #[arg(long, env = "PRICEKEEPER_HTTP_TIMEOUT", default_value = "10s",
          value_parser = duration("PRICEKEEPER_HTTP_TIMEOUT", Duration::from_millis(10), Duration::from_secs(300)), help_heading = "Providers")]
    pub http_timeout: Duration,

    /// Providers tried in turn for crypto assets.
    #[arg(long, env = "PRICEKEEPER_CRYPTO_CHAIN", default_value = "binance,kraken,coinbase,coingecko,yahoo",
          value_parser = chain("PRICEKEEPER_CRYPTO_CHAIN"), help_heading = "Providers")]
    pub crypto_chain: Chain,

    /// Providers tried in turn for stocks, ETFs, commodities and bonds
    /// (add fmp or alphavantage where wanted: used only with their key).
    #[arg(long, env = "PRICEKEEPER_MARKET_CHAIN", default_value = "yahoo",
          value_parser = chain("PRICEKEEPER_MARKET_CHAIN"), help_heading = "Providers")]
    pub market_chain: Chain,

    /// Providers tried in turn for FX pairs (Frankfurter: ECB reference rates).
    #[arg(long, env = "PRICEKEEPER_FX_CHAIN", default_value = "yahoo,frankfurter",
          value_parser = chain("PRICEKEEPER_FX_CHAIN"), help_heading = "Providers")]
    pub fx_chain: Chain,
}

impl ProviderSettings {
    /// The CoinGecko key, when one is set (an empty value means none).
    pub fn coingecko_key(&self) -> Option<&str> {
        self.coingecko_api_key.as_deref().filter(|k| !k.is_empty())
    }
}

/// An ordered list of providers without repeats, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain(pub Vec<ProviderKind>);

fn chain(var: &'static str) -> impl Fn(&str) -> Result<Chain, String> + Clone {
    move |raw| {
        let mut kinds = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let kind: ProviderKind = name.parse().map_err(|_| {
                let names: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "{var}: unknown provider {name:?}; use {}, comma-separated",
                    names.join(", ")
                )
            })?;
            if kinds.contains(&kind) {
                return Err(format!("{var} names {name} twice"));
            }
            kinds.push(kind);
        }
        if kinds.is_empty() {
            return Err(format!("{var} must name at least one provider"));
        }
        Ok(Chain(kinds))
    }
}

fn base_url(var: &'static str) -> impl Fn(&str) -> Result<Url, String> + Clone {
    move |raw| {
        let url = Url::parse(raw.trim()).map_err(|e| format!("{var} is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(format!("{var} must be an http:// or https:// URL"));
        }
        Ok(url)
    }
}

fn currency_code(var: &'static str) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |raw| {
        let code = raw.trim().to_ascii_lowercase();
        if code.len() < 3 || code.len() > 5 || !code.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(format!("{var} must be a currency code such as usd or eur"));
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_parse_in_order_without_repeats() {
        let parse = chain("PRICEKEEPER_CRYPTO_CHAIN");
        assert_eq!(
            parse("binance, coingecko,yahoo"),
            Ok(Chain(vec![
                ProviderKind::Binance,
                ProviderKind::CoinGecko,
                ProviderKind::Yahoo
            ]))
        );
        assert_eq!(parse("yahoo"), Ok(Chain(vec![ProviderKind::Yahoo])));
        for bad in ["", " , ", "binance,binance", "bitstamp"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("PRICEKEEPER_CRYPTO_CHAIN"), "{bad}: {err}");
        }
    }

    #[test]
    fn base_urls_must_be_http() {
        let parse = base_url("PRICEKEEPER_YAHOO_URL");
        assert!(parse("http://127.0.0.1:8080").is_ok());
        assert!(parse("https://api.coingecko.com/api/v3").is_ok());
        for bad in ["ftp://x", "not a url", "mailto:a@b"] {
            assert!(
                parse(bad).unwrap_err().starts_with("PRICEKEEPER_YAHOO_URL"),
                "{bad}"
            );
        }
    }

    #[test]
    fn currency_codes_are_lowercased() {
        let parse = currency_code("X");
        assert_eq!(parse("EUR"), Ok("eur".to_owned()));
        assert!(parse("e1").is_err());
    }
}
