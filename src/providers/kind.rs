//! The names of the providers: what settings, chains, `provider_state` rows
//! and logs call each source.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum ProviderKind {
    /// Yahoo Finance: stocks, ETFs, futures, FX, crypto (no key; AAPL, VOD.L, EURUSD=X, BTC-USD)
    Yahoo,
    /// Binance spot: crypto (no key; BTCUSDT)
    Binance,
    /// CoinGecko: crypto, daily closes (optional key COINGECKO_API_KEY; ids such as bitcoin)
    #[value(name = "coingecko")]
    CoinGecko,
    /// Kraken: crypto (no key; Kraken's pairs such as XBTUSD)
    Kraken,
    /// Coinbase Exchange: crypto (no key; products such as BTC-USD)
    Coinbase,
    /// Frankfurter: ECB reference rates for FX (no key; pairs such as EURUSD)
    Frankfurter,
    /// Financial Modeling Prep: US stocks and ETFs (needs FMP_API_KEY; AAPL)
    Fmp,
    /// Alpha Vantage: US stocks and ETFs (needs ALPHA_VANTAGE_API_KEY; AAPL)
    #[value(name = "alphavantage")]
    AlphaVantage,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 8] = [
        Self::Yahoo,
        Self::Binance,
        Self::CoinGecko,
        Self::Kraken,
        Self::Coinbase,
        Self::Frankfurter,
        Self::Fmp,
        Self::AlphaVantage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yahoo => "yahoo",
            Self::Binance => "binance",
            Self::CoinGecko => "coingecko",
            Self::Kraken => "kraken",
            Self::Coinbase => "coinbase",
            Self::Frankfurter => "frankfurter",
            Self::Fmp => "fmp",
            Self::AlphaVantage => "alphavantage",
        }
    }

    /// The setting holding the key this provider needs, if it needs one.
    pub fn key_var(self) -> Option<&'static str> {
        match self {
            Self::Fmp => Some("FMP_API_KEY"),
            Self::AlphaVantage => Some("ALPHA_VANTAGE_API_KEY"),
            _ => None,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| format!("unknown provider {raw:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>(), Ok(kind));
        }
        assert_eq!("CoinGecko".parse(), Ok(ProviderKind::CoinGecko));
        assert!("nope".parse::<ProviderKind>().is_err());
    }
}
