//! The exchanges pricekeeper knows, by ISO 10383 MIC: their name, the
//! suffix Yahoo appends to a ticker listed there (`VOD` on XLON is Yahoo's
//! `VOD.L`; US venues have none), country and usual trading currency.
//!
//! This is identity, not hours (trading calendars live elsewhere). The same
//! list is the `exchanges` table (migration 0020), which `assets.exchange`
//! references, so an unknown MIC is refused when the host writes it; a test
//! keeps the two in agreement. `CRYPTO` and `FX` are pricekeeper's own
//! pseudo-MICs for venues without one.

/// One known exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    pub mic: &'static str,
    pub name: &'static str,
    /// Appended to the ticker to form Yahoo's symbol (`.L`); empty for US
    /// venues, futures exchanges (Yahoo's `GC=F` carries no suffix) and the
    /// pseudo-MICs.
    pub yahoo_suffix: &'static str,
    /// ISO 3166-1 alpha-2; empty for `CRYPTO` and `FX`.
    pub country: &'static str,
    /// ISO 4217 currency most listings there trade in; empty when there is
    /// no single one.
    pub currency: &'static str,
}

const fn x(
    mic: &'static str,
    name: &'static str,
    yahoo_suffix: &'static str,
    country: &'static str,
    currency: &'static str,
) -> Exchange {
    Exchange {
        mic,
        name,
        yahoo_suffix,
        country,
        currency,
    }
}

/// Every exchange pricekeeper knows, in MIC order within each region.
pub const EXCHANGES: &[Exchange] = &[
    // United States: Yahoo uses the bare ticker.
    x("XNYS", "New York Stock Exchange", "", "US", "USD"),
    x("XNAS", "Nasdaq", "", "US", "USD"),
    x("XASE", "NYSE American", "", "US", "USD"),
    x("ARCX", "NYSE Arca", "", "US", "USD"),
    x("BATS", "Cboe BZX", "", "US", "USD"),
    x("IEXG", "Investors Exchange", "", "US", "USD"),
    x("OTCM", "OTC Markets", "", "US", "USD"),
    // US futures: Yahoo's continuous contracts are `GC=F`, `CL=F`.
    x("XCME", "Chicago Mercantile Exchange", "", "US", "USD"),
    x("XCBT", "Chicago Board of Trade", "", "US", "USD"),
    x("XNYM", "New York Mercantile Exchange", "", "US", "USD"),
    x("XCEC", "COMEX", "", "US", "USD"),
    // Americas
    x("XTSE", "Toronto Stock Exchange", ".TO", "CA", "CAD"),
    x("XTSX", "TSX Venture Exchange", ".V", "CA", "CAD"),
    x("BVMF", "B3 (São Paulo)", ".SA", "BR", "BRL"),
    x("XMEX", "Bolsa Mexicana de Valores", ".MX", "MX", "MXN"),
    // Europe
    x("XLON", "London Stock Exchange", ".L", "GB", "GBP"),
    x("XETR", "Xetra", ".DE", "DE", "EUR"),
    x("XFRA", "Frankfurt Stock Exchange", ".F", "DE", "EUR"),
    x("XPAR", "Euronext Paris", ".PA", "FR", "EUR"),
    x("XAMS", "Euronext Amsterdam", ".AS", "NL", "EUR"),
    x("XBRU", "Euronext Brussels", ".BR", "BE", "EUR"),
    x("XLIS", "Euronext Lisbon", ".LS", "PT", "EUR"),
    x("XDUB", "Euronext Dublin", ".IR", "IE", "EUR"),
    x("XMIL", "Borsa Italiana", ".MI", "IT", "EUR"),
    x("XMAD", "Bolsa de Madrid", ".MC", "ES", "EUR"),
    x("XSWX", "SIX Swiss Exchange", ".SW", "CH", "CHF"),
    x("XWBO", "Wiener Börse", ".VI", "AT", "EUR"),
    x("XSTO", "Nasdaq Stockholm", ".ST", "SE", "SEK"),
    x("XHEL", "Nasdaq Helsinki", ".HE", "FI", "EUR"),
    x("XCSE", "Nasdaq Copenhagen", ".CO", "DK", "DKK"),
    x("XOSL", "Oslo Børs", ".OL", "NO", "NOK"),
    x("XWAR", "Warsaw Stock Exchange", ".WA", "PL", "PLN"),
    x("XIST", "Borsa Istanbul", ".IS", "TR", "TRY"),
    // Asia-Pacific, Middle East, Africa
    x("XHKG", "Hong Kong Stock Exchange", ".HK", "HK", "HKD"),
    x("XTKS", "Tokyo Stock Exchange", ".T", "JP", "JPY"),
    x("XASX", "Australian Securities Exchange", ".AX", "AU", "AUD"),
    x("XNZE", "New Zealand Exchange", ".NZ", "NZ", "NZD"),
    x("XSES", "Singapore Exchange", ".SI", "SG", "SGD"),
    x("XKRX", "Korea Exchange", ".KS", "KR", "KRW"),
    x("XTAI", "Taiwan Stock Exchange", ".TW", "TW", "TWD"),
    x("XSHG", "Shanghai Stock Exchange", ".SS", "CN", "CNY"),
    x("XSHE", "Shenzhen Stock Exchange", ".SZ", "CN", "CNY"),
    x("XBOM", "BSE (Bombay)", ".BO", "IN", "INR"),
    x(
        "XNSE",
        "National Stock Exchange of India",
        ".NS",
        "IN",
        "INR",
    ),
    x("XTAE", "Tel Aviv Stock Exchange", ".TA", "IL", "ILS"),
    x("XJSE", "Johannesburg Stock Exchange", ".JO", "ZA", "ZAR"),
    // pricekeeper's pseudo-MICs
    x("CRYPTO", "Crypto venues (Binance, CoinGecko)", "", "", ""),
    x("FX", "Foreign exchange", "", "", ""),
];

/// The exchange with this MIC (case-insensitive, surrounding spaces ignored).
pub fn lookup(mic: &str) -> Option<&'static Exchange> {
    let mic = mic.trim();
    EXCHANGES.iter().find(|e| e.mic.eq_ignore_ascii_case(mic))
}

/// Yahoo's symbol for `ticker` listed on `exchange`: the ticker plus the
/// exchange's suffix, unless the ticker already carries it (`OCDO.L`).
/// `None` for an unknown exchange: guessing would fetch another listing.
pub fn yahoo_symbol(ticker: &str, exchange: &str) -> Option<String> {
    let suffix = lookup(exchange)?.yahoo_suffix;
    let ticker = ticker.trim().to_ascii_uppercase();
    if suffix.is_empty() || ticker.ends_with(suffix) {
        return Some(ticker);
    }
    Some(format!("{ticker}{suffix}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn suffixes_follow_the_listing() {
        let cases = [
            ("VOD", "XLON", Some("VOD.L")),
            ("vod", "xlon", Some("VOD.L")),
            ("OCDO.L", "XLON", Some("OCDO.L")),
            ("SAP", "XETR", Some("SAP.DE")),
            ("RY", "XTSE", Some("RY.TO")),
            ("MC", "XPAR", Some("MC.PA")),
            ("ASML", "XAMS", Some("ASML.AS")),
            ("NESN", "XSWX", Some("NESN.SW")),
            ("0700", "XHKG", Some("0700.HK")),
            ("7203", "XTKS", Some("7203.T")),
            ("BHP", "XASX", Some("BHP.AX")),
            ("AAPL", "XNAS", Some("AAPL")),
            ("BRK.B", "XNYS", Some("BRK.B")),
            ("GC=F", "XCME", Some("GC=F")),
            ("VOD", "XXXX", None),
        ];
        for (ticker, mic, want) in cases {
            assert_eq!(yahoo_symbol(ticker, mic).as_deref(), want, "{ticker} {mic}");
        }
    }

    #[test]
    fn the_table_is_well_formed() {
        let mut seen = HashSet::new();
        for e in EXCHANGES {
            assert!(seen.insert(e.mic), "{} twice", e.mic);
            assert_eq!(e.mic, e.mic.to_ascii_uppercase());
            assert!(e.mic.len() == 4 || ["CRYPTO", "FX"].contains(&e.mic));
            assert!(e.yahoo_suffix.is_empty() || e.yahoo_suffix.starts_with('.'));
            assert!(e.currency.is_empty() || e.currency.len() == 3);
        }
        assert_eq!(lookup(" xlon ").map(|e| e.currency), Some("GBP"));
        assert!(lookup("LSE").is_none());
    }
}
