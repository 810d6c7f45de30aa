//! Crypto pairs across venues: the ISO currency a pair is priced in.

/// The ISO currency a crypto pair (`BTCUSDT`, `XBTUSD`, `BTC-EUR`) is
/// priced in, from its quote asset.
/// Dollar stablecoins count as USD: that is how portfolios value them, and
/// they trade within a fraction of a percent of it. Pairs priced in another
/// coin (ETHBTC) have no ISO currency.
pub fn quote_currency(symbol: &str) -> Option<String> {
    const QUOTES: &[(&str, &str)] = &[
        ("FDUSD", "USD"),
        ("USDT", "USD"),
        ("USDC", "USD"),
        ("BUSD", "USD"),
        ("TUSD", "USD"),
        ("USDP", "USD"),
        ("EUR", "EUR"),
        ("GBP", "GBP"),
        ("TRY", "TRY"),
        ("BRL", "BRL"),
        ("JPY", "JPY"),
        ("CAD", "CAD"),
        ("CHF", "CHF"),
        ("AUD", "AUD"),
        ("ARS", "ARS"),
        ("MXN", "MXN"),
        ("PLN", "PLN"),
        ("ZAR", "ZAR"),
        ("UAH", "UAH"),
        ("RON", "RON"),
        ("COP", "COP"),
        ("CZK", "CZK"),
        // Last: the stablecoins above end in USD too.
        ("USD", "USD"),
    ];
    let symbol = symbol.to_ascii_uppercase();
    QUOTES
        .iter()
        .find(|(suffix, _)| symbol.len() > suffix.len() && symbol.ends_with(suffix))
        .map(|(_, iso)| (*iso).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_assets_map_to_iso_currencies() {
        let cases = [
            ("BTCUSDT", Some("USD")),
            ("ETHFDUSD", Some("USD")),
            ("BTCEUR", Some("EUR")),
            ("btcusdc", Some("USD")),
            ("ETHBTC", None),
            ("USDT", None),
            ("XBTUSD", Some("USD")),
            ("BTC-USD", Some("USD")),
            ("XXBTZCAD", Some("CAD")),
        ];
        for (symbol, want) in cases {
            assert_eq!(quote_currency(symbol).as_deref(), want, "{symbol}");
        }
    }
}
