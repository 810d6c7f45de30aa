//! The asset catalog: what a user can pick from `assets`, filled from free
//! sources by `pricekeeper seed-catalog` and refreshed weekly by the daemon.
//!
//! - [`nasdaq`]: US stocks and ETFs from Nasdaq Trader's symbol directory;
//! - [`coingecko`]: the top cryptocurrencies by market cap, with Binance's
//!   `USDT` pairs, through the providers' rate limits and shared cooldowns;
//! - [`builtin`]: commodity futures, FX pairs and bond ETFs, data files
//!   compiled in;
//! - [`store`]: one transaction per source that upserts its listings in a
//!   few bulk statements and deactivates what vanished from it;
//! - [`seed`]: a run over the sources, its terminal output;
//! - [`refresh`]: the daemon's weekly hook, under its leader lease.
//!
//! Invariants: a source whose files are malformed changes nothing; a
//! source deactivates only what it listed itself, never an asset some
//! portfolio holds, and never changes how a held asset is fetched.

pub mod builtin;
pub mod coingecko;
pub mod download;
pub mod nasdaq;
pub mod refresh;
pub mod seed;
pub mod settings;
pub mod store;

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::db::assets::AssetType;
use crate::providers::ProviderError;

/// Where a listing came from; `catalog_listings.source` in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Builtin,
    Nasdaq,
    #[value(name = "coingecko")]
    #[serde(rename = "coingecko")]
    CoinGecko,
}

impl Source {
    /// In the order `--source all` runs them: the built-in lists first, so
    /// a bond ETF that Nasdaq also lists is first written as a bond fund.
    pub const ALL: [Source; 3] = [Self::Builtin, Self::Nasdaq, Self::CoinGecko];

    /// The source called `name` (case-insensitive, spaces ignored).
    pub fn named(name: &str) -> Option<Source> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name.trim()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Builtin => "builtin",
            Self::Nasdaq => "nasdaq",
            Self::CoinGecko => "coingecko",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A source file that is not what it should be: nothing was changed.
    #[error("{file}: {reason}; nothing changed")]
    Malformed { file: String, reason: String },
    #[error("{what}: {reason}")]
    Download { what: String, reason: String },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(
        "would deactivate {gone} assets while the source lists {listed}: refused as a \
         probably partial file, nothing changed (--allow-mass-deactivation if it is right)"
    )]
    MassDeactivation { gone: usize, listed: usize },
    #[error("the daemon lost its leader lease; nothing written")]
    NotLeader,
    #[error("stopped before the source was written; nothing changed")]
    Cancelled,
}

/// One asset as a source lists it, normalized the way `assets` stores it
/// (upper-case symbols and MIC, lower-case CoinGecko id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub symbol: String,
    pub asset_type: AssetType,
    pub exchange: String,
    pub currency: String,
    pub name: String,
    pub yahoo_symbol: Option<String>,
    pub binance_symbol: Option<String>,
    pub coingecko_id: Option<String>,
}

impl Listing {
    /// The listing as `assets` would store it, or why the database would
    /// refuse it (the same rules as `symbol_is_valid`, migration 0020).
    pub fn normalized(mut self) -> Result<Listing, String> {
        self.symbol = self.symbol.trim().to_ascii_uppercase();
        self.exchange = self.exchange.trim().to_ascii_uppercase();
        self.currency = self.currency.trim().to_ascii_uppercase();
        let upper = |s: Option<String>| {
            s.map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
        };
        self.yahoo_symbol = upper(self.yahoo_symbol);
        self.binance_symbol = upper(self.binance_symbol);
        self.coingecko_id = self
            .coingecko_id
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty());
        for (what, value) in [
            ("symbol", Some(&self.symbol)),
            ("yahoo symbol", self.yahoo_symbol.as_ref()),
            ("binance symbol", self.binance_symbol.as_ref()),
            ("coingecko id", self.coingecko_id.as_ref()),
        ] {
            if let Some(value) = value
                && !symbol_is_valid(value)
            {
                return Err(format!(
                    "{what} {} is not 1-64 printable ASCII characters without space, ',' or '%'",
                    crate::providers::symbol::Printable(value)
                ));
            }
        }
        self.name = clean_name(&self.name);
        Ok(self)
    }
}

/// The Rust twin of SQL `symbol_is_valid`: 1 to 64 printable ASCII
/// characters without space, `,` or `%`, and not `.` or `..`.
pub fn symbol_is_valid(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b'%')
        && s != "."
        && s != ".."
}

/// A display name without control characters (a NUL cannot be stored in
/// `text`) or runs of spaces, at most 200 characters.
fn clean_name(raw: &str) -> String {
    let words: Vec<&str> = raw
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    words.join(" ").chars().take(200).collect()
}

/// What a source's files yielded: the listings to store, and what was
/// left out and why (counts per reason, a few examples each).
#[derive(Debug, Default)]
pub struct Parsed {
    pub listings: Vec<Listing>,
    pub skipped: Skipped,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Skipped {
    /// Rows left out, per reason.
    pub counts: BTreeMap<String, usize>,
    /// The first few symbols per reason, for the log.
    #[serde(skip)]
    pub examples: BTreeMap<String, Vec<String>>,
}

impl Skipped {
    pub fn add(&mut self, reason: &str, example: impl Into<String>) {
        *self.counts.entry(reason.to_owned()).or_default() += 1;
        let examples = self.examples.entry(reason.to_owned()).or_default();
        if examples.len() < 5 {
            examples.push(example.into());
        }
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

impl Parsed {
    /// Adds `listing` once normalized; a repeat of a (symbol, exchange)
    /// already listed is left out (the first one wins), as is a listing
    /// the database would refuse.
    pub fn push(&mut self, listing: Listing, seen: &mut HashSet<(String, String)>) {
        let shown = listing.symbol.clone();
        match listing.normalized() {
            Ok(listing) => {
                let key = (listing.symbol.clone(), listing.exchange.clone());
                if seen.insert(key) {
                    self.listings.push(listing);
                } else {
                    self.skipped.add("duplicate symbol", shown);
                }
            }
            Err(reason) => {
                tracing::debug!(symbol = %crate::providers::symbol::Printable(&shown), %reason, "listing left out");
                self.skipped
                    .add("invalid symbol", crate::providers::symbol::escaped(&shown));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(symbol: &str) -> Listing {
        Listing {
            symbol: symbol.to_owned(),
            asset_type: AssetType::Stock,
            exchange: " xnas".to_owned(),
            currency: "usd".to_owned(),
            name: "  Apple\tInc.\u{0}  Common ".to_owned(),
            yahoo_symbol: Some(" ".to_owned()),
            binance_symbol: None,
            coingecko_id: Some("Bitcoin".to_owned()),
        }
    }

    #[test]
    fn listings_are_stored_as_the_database_normalizes_them() {
        let l = listing(" aapl ").normalized().unwrap();
        assert_eq!(
            (l.symbol.as_str(), l.exchange.as_str(), l.currency.as_str()),
            ("AAPL", "XNAS", "USD")
        );
        assert_eq!(l.name, "Apple Inc. Common");
        assert_eq!(l.yahoo_symbol, None, "blank means derive it");
        assert_eq!(l.coingecko_id.as_deref(), Some("bitcoin"));
    }

    #[test]
    fn symbols_the_database_refuses_are_left_out() {
        for bad in [
            "A\tB",
            "A B",
            "A,B",
            "50%",
            ".",
            "..",
            "",
            "ÄBC",
            &"X".repeat(65),
        ] {
            assert!(listing(bad).normalized().is_err(), "{bad:?}");
        }
        for good in ["BRK.B", "ABR$D", "GC=F", "EURUSD=X", "A"] {
            assert!(listing(good).normalized().is_ok(), "{good}");
        }
    }

    #[test]
    fn the_first_of_a_repeated_symbol_wins() {
        let mut parsed = Parsed::default();
        let mut seen = HashSet::new();
        let mut first = listing("AAPL");
        first.name = "first".to_owned();
        parsed.push(first, &mut seen);
        parsed.push(listing("aapl"), &mut seen);
        parsed.push(listing("BAD\u{7}"), &mut seen);
        assert_eq!(parsed.listings.len(), 1);
        assert_eq!(parsed.listings[0].name, "first");
        assert_eq!(parsed.skipped.counts["duplicate symbol"], 1);
        assert_eq!(parsed.skipped.counts["invalid symbol"], 1);
    }
}
