//! US stocks and ETFs from Nasdaq Trader's symbol directory.
//!
//! `nasdaqlisted.txt` (`Symbol|Security Name|Market Category|Test Issue|
//! Financial Status|Round Lot Size|ETF|NextShares`) lists Nasdaq's own
//! securities; `otherlisted.txt` (`ACT Symbol|Security Name|Exchange|CQS
//! Symbol|ETF|Round Lot Size|Test Issue|NASDAQ Symbol`) those of the other
//! US venues. Both are pipe-delimited with a header row and end with a
//! `File Creation Time: …` line: a file without that footer was cut short,
//! and is refused whole, as is one without the header (an HTML error page
//! served with 200, another file). Test issues are left out.
//!
//! The symbol kept is the ACT symbol (`BRK.B`, `ABR$D`); Yahoo writes
//! share classes with `-` (`BRK-B`) and preferreds as `-P` (`ABR-PD`).

use std::collections::HashSet;

use super::{Listing, Parsed};
use crate::db::assets::AssetType;

pub const LISTED_FILE: &str = "nasdaqlisted.txt";
pub const OTHER_FILE: &str = "otherlisted.txt";

const FOOTER: &str = "File Creation Time:";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NasdaqError {
    #[error("an HTML page, not the symbol directory")]
    Html,
    #[error("empty")]
    Empty,
    #[error("no header row with the columns {expected} (first line: {found:?})")]
    MissingHeader { expected: String, found: String },
    #[error("no `File Creation Time` footer: the download was cut short")]
    MissingFooter,
    #[error("line {line}: {reason}")]
    BadRow { line: u64, reason: String },
    #[error("no securities listed")]
    NoRows,
}

/// The columns one file must carry, by name.
struct Layout {
    symbol: &'static str,
    exchange: Option<&'static str>,
    test_issue: &'static str,
    etf: &'static str,
}

const LISTED: Layout = Layout {
    symbol: "Symbol",
    exchange: None,
    test_issue: "Test Issue",
    etf: "ETF",
};

const OTHER: Layout = Layout {
    symbol: "ACT Symbol",
    exchange: Some("Exchange"),
    test_issue: "Test Issue",
    etf: "ETF",
};

/// Both files, Nasdaq's first: a symbol in both (a listing moving between
/// venues on the day the files were made) is kept once, as Nasdaq's.
pub fn parse(listed: &[u8], other: &[u8]) -> Result<Parsed, super::CatalogError> {
    let malformed = |file: &str, e: NasdaqError| super::CatalogError::Malformed {
        file: file.to_owned(),
        reason: e.to_string(),
    };
    let mut parsed = Parsed::default();
    let mut seen = HashSet::new();
    let mut tickers = HashSet::new();
    for (body, layout, file) in [(listed, &LISTED, LISTED_FILE), (other, &OTHER, OTHER_FILE)] {
        read(body, layout, &mut parsed, &mut seen, &mut tickers).map_err(|e| malformed(file, e))?;
    }
    Ok(parsed)
}

fn read(
    body: &[u8],
    layout: &Layout,
    parsed: &mut Parsed,
    seen: &mut HashSet<(String, String)>,
    tickers: &mut HashSet<String>,
) -> Result<(), NasdaqError> {
    let text = String::from_utf8_lossy(body);
    let table = without_footer(&text)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'|')
        .quoting(false)
        .has_headers(true)
        .from_reader(table.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| NasdaqError::BadRow {
            line: 1,
            reason: e.to_string(),
        })?
        .clone();
    let column = |name: &str| header.iter().position(|h| h.trim() == name);
    let missing = || NasdaqError::MissingHeader {
        expected: [
            Some(layout.symbol),
            Some("Security Name"),
            layout.exchange,
            Some(layout.test_issue),
            Some(layout.etf),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("|"),
        found: header
            .iter()
            .collect::<Vec<_>>()
            .join("|")
            .chars()
            .take(80)
            .collect(),
    };
    let symbol_at = column(layout.symbol).ok_or_else(missing)?;
    let name_at = column("Security Name").ok_or_else(missing)?;
    let test_at = column(layout.test_issue).ok_or_else(missing)?;
    let etf_at = column(layout.etf).ok_or_else(missing)?;
    let exchange_at = match layout.exchange {
        Some(name) => Some(column(name).ok_or_else(missing)?),
        None => None,
    };
    let before = parsed.listings.len() + parsed.skipped.total();
    for row in reader.records() {
        // A row with another number of fields than the header is a broken
        // file, not one bad security: refuse it whole.
        let row = row.map_err(|e| NasdaqError::BadRow {
            line: e.position().map_or(0, |p| p.line()),
            reason: e.to_string(),
        })?;
        let field = |at: usize| row.get(at).unwrap_or("").trim();
        let symbol = field(symbol_at);
        if field(test_at) == "Y" {
            parsed.skipped.add("test issue", symbol);
            continue;
        }
        let exchange = match exchange_at {
            None => "XNAS",
            Some(at) => match mic(field(at)) {
                Some(mic) => mic,
                None => {
                    parsed
                        .skipped
                        .add(&format!("exchange code {:?}", field(at)), symbol);
                    continue;
                }
            },
        };
        // A US ticker names one security whatever the venue.
        if !tickers.insert(symbol.to_ascii_uppercase()) {
            parsed.skipped.add("duplicate symbol", symbol);
            continue;
        }
        let asset_type = if field(etf_at) == "Y" {
            AssetType::Etf
        } else {
            AssetType::Stock
        };
        let listing = Listing {
            symbol: symbol.to_owned(),
            asset_type,
            exchange: exchange.to_owned(),
            currency: "USD".to_owned(),
            name: field(name_at).to_owned(),
            yahoo_symbol: Some(yahoo_symbol(symbol)),
            binance_symbol: None,
            coingecko_id: None,
        };
        parsed.push(listing, seen);
    }
    if parsed.listings.len() + parsed.skipped.total() == before {
        return Err(NasdaqError::NoRows);
    }
    Ok(())
}

/// The table part of a file: everything before the `File Creation Time`
/// line, which must be the last line that is not blank.
fn without_footer(text: &str) -> Result<&str, NasdaqError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(NasdaqError::Empty);
    }
    let head: String = trimmed.chars().take(200).collect::<String>().to_lowercase();
    if head.starts_with("<!doctype") || head.starts_with("<html") || head.starts_with('<') {
        return Err(NasdaqError::Html);
    }
    let (table, last) = match trimmed.rfind('\n') {
        Some(at) => (&trimmed[..at], &trimmed[at + 1..]),
        None => ("", trimmed),
    };
    if !last.trim_start().starts_with(FOOTER) {
        return Err(NasdaqError::MissingFooter);
    }
    if table.trim().is_empty() {
        return Err(NasdaqError::MissingHeader {
            expected: "a header row".to_owned(),
            found: String::new(),
        });
    }
    Ok(table)
}

/// Nasdaq Trader's listing exchange codes (otherlisted.txt) as MICs.
pub fn mic(code: &str) -> Option<&'static str> {
    Some(match code {
        "Q" => "XNAS",
        "N" => "XNYS",
        "A" => "XASE",
        "P" => "ARCX",
        "Z" => "BATS",
        "V" => "IEXG",
        _ => return None,
    })
}

/// Yahoo's symbol for an ACT symbol: `.` between root and class becomes
/// `-` (`BRK.B` → `BRK-B`), a preferred `$` becomes `-P` (`ABR$D` →
/// `ABR-PD`), and the warrant and unit suffixes are Yahoo's (`.WS` →
/// `-WT`, `.U` → `-UN`).
pub fn yahoo_symbol(act: &str) -> String {
    let act = act.trim().to_ascii_uppercase();
    let (root, suffix) = match act.find(['.', '$']) {
        Some(at) => act.split_at(at),
        None => return act,
    };
    let suffix = match suffix {
        ".WS" => "-WT".to_owned(),
        ".U" => "-UN".to_owned(),
        _ => suffix.replace('.', "-").replacen('$', "-P", 1),
    };
    format!("{root}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const LISTED_OK: &str = "Symbol|Security Name|Market Category|Test Issue|Financial Status|Round Lot Size|ETF|NextShares\n\
        AAPL|Apple Inc. - Common Stock|Q|N|N|100|N|N\n\
        QQQ|Invesco QQQ Trust, Series 1|G|N|N|100|Y|N\n\
        ZAZZT|Tick Pilot Test Stock Class A Common Stock|G|Y|N|100|N|N\n\
        File Creation Time: 1121202622:01|||||||\n";

    pub const OTHER_OK: &str = "ACT Symbol|Security Name|Exchange|CQS Symbol|ETF|Round Lot Size|Test Issue|NASDAQ Symbol\n\
        A|Agilent Technologies, Inc. Common Stock|N|A|N|100|N|A\n\
        ABR$D|Arbor Realty Trust 6.375% Series D Preferred|N|ABRpD|N|100|N|ABR-D\n\
        BRK.B|Berkshire Hathaway Inc. Class B|N|BRK.B|N|100|N|BRK.B\n\
        SPY|SPDR S&P 500 ETF Trust|P|SPY|Y|100|N|SPY\n\
        IEXT|IEX Test|V|IEXT|N|100|Y|IEXT\n\
        AAPL|Apple listed twice|Z|AAPL|N|100|N|AAPL\n\
        File Creation Time: 1121202622:01|||||||\n";

    fn symbols(parsed: &Parsed) -> Vec<(String, String, String)> {
        parsed
            .listings
            .iter()
            .map(|l| {
                (
                    l.symbol.clone(),
                    l.exchange.clone(),
                    l.yahoo_symbol.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn both_files_parse_into_listings() {
        let parsed = parse(LISTED_OK.as_bytes(), OTHER_OK.as_bytes()).unwrap();
        let got = symbols(&parsed);
        let want = [
            ("AAPL", "XNAS", "AAPL"),
            ("QQQ", "XNAS", "QQQ"),
            ("A", "XNYS", "A"),
            ("ABR$D", "XNYS", "ABR-PD"),
            ("BRK.B", "XNYS", "BRK-B"),
            ("SPY", "ARCX", "SPY"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(parsed.listings[1].asset_type, AssetType::Etf);
        assert_eq!(parsed.listings[0].asset_type, AssetType::Stock);
        assert_eq!(parsed.skipped.counts["test issue"], 2);
        assert_eq!(
            parsed.skipped.counts["duplicate symbol"], 1,
            "AAPL in both files"
        );
    }

    #[test]
    fn crlf_files_and_quotes_in_names_read_the_same() {
        let crlf = OTHER_OK
            .replace('\n', "\r\n")
            .replace("Trust|P", "Trust \"SPY\"|P");
        let parsed = parse(LISTED_OK.as_bytes(), crlf.as_bytes()).unwrap();
        let spy = parsed.listings.iter().find(|l| l.symbol == "SPY").unwrap();
        assert_eq!(spy.name, "SPDR S&P 500 ETF Trust \"SPY\"");
        assert_eq!(spy.yahoo_symbol.as_deref(), Some("SPY"));
        assert_eq!(parsed.listings.len(), 6);
    }

    #[test]
    fn broken_files_are_refused_whole() {
        let cut = &LISTED_OK[..LISTED_OK.find("ZAZZT").unwrap() + 3];
        let no_header = LISTED_OK.split_once('\n').unwrap().1;
        let cases = [
            ("<!DOCTYPE html><html><title>Error</title></html>", "HTML"),
            ("", "empty"),
            (cut, "cut short"),
            (no_header, "no header row"),
            (
                "Symbol|Security Name|Market Category|Test Issue|Financial Status|Round Lot Size|ETF|NextShares\nAAPL|Apple|Q|N\nFile Creation Time: 1|||\n",
                "line",
            ),
            (
                "Symbol|Security Name|Market Category|Test Issue|Financial Status|Round Lot Size|ETF|NextShares\nFile Creation Time: 1|||\n",
                "no securities",
            ),
        ];
        for (body, want) in cases {
            let err = parse(body.as_bytes(), OTHER_OK.as_bytes()).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with(LISTED_FILE), "{text}");
            assert!(text.contains(want), "{want}: {text}");
            assert!(text.ends_with("nothing changed"), "{text}");
        }
    }

    #[test]
    fn odd_rows_are_left_out_not_stored() {
        let other = "ACT Symbol|Security Name|Exchange|CQS Symbol|ETF|Round Lot Size|Test Issue|NASDAQ Symbol\n\
            BAD\u{1}X|Control|N|X|N|100|N|X\n\
            low|Lowercase|N|low|N|100|N|low\n\
            NEWX|New venue|X|NEWX|N|100|N|NEWX\n\
            File Creation Time: 1121202622:01|||||||\n";
        let parsed = parse(LISTED_OK.as_bytes(), other.as_bytes()).unwrap();
        assert!(parsed.listings.iter().any(|l| l.symbol == "LOW"));
        assert_eq!(parsed.skipped.counts["invalid symbol"], 1);
        assert_eq!(parsed.skipped.counts["exchange code \"X\""], 1);
    }

    #[test]
    fn yahoo_symbols_follow_yahoo_conventions() {
        for (act, want) in [
            ("BRK.B", "BRK-B"),
            ("ABR$D", "ABR-PD"),
            ("PSA$", "PSA-P"),
            ("ACHR.WS", "ACHR-WT"),
            ("CCIX.U", "CCIX-UN"),
            ("AAPL", "AAPL"),
        ] {
            assert_eq!(yahoo_symbol(act), want, "{act}");
        }
    }

    #[test]
    fn exchange_codes_map_to_known_mics() {
        for code in ["Q", "N", "A", "P", "Z", "V"] {
            let mic = mic(code).unwrap();
            assert!(crate::exchanges::lookup(mic).is_some(), "{mic}");
        }
        assert_eq!(mic("X"), None);
    }
}
