//! The built-in lists, data files compiled in: commodity futures as Yahoo's
//! continuous contracts (`GC=F`) on their exchanges, the major FX pairs
//! (`EURUSD=X`) and bond ETFs. Each file is CSV with the header
//! `symbol,name,exchange,currency,yahoo_symbol`; a test checks every row
//! passes the `assets` rules and names a known exchange.

use std::collections::HashSet;

use serde::Deserialize;

use super::{CatalogError, Listing, Parsed};
use crate::db::assets::AssetType;

const LISTS: [(&str, &str, AssetType); 3] = [
    (
        "data/catalog/commodities.csv",
        include_str!("../../data/catalog/commodities.csv"),
        AssetType::Commodity,
    ),
    (
        "data/catalog/fx.csv",
        include_str!("../../data/catalog/fx.csv"),
        AssetType::Forex,
    ),
    (
        "data/catalog/bond_etfs.csv",
        include_str!("../../data/catalog/bond_etfs.csv"),
        AssetType::Bond,
    ),
];

#[derive(Deserialize)]
struct Row {
    symbol: String,
    name: String,
    exchange: String,
    currency: String,
    yahoo_symbol: String,
}

/// Every built-in listing.
pub fn parse() -> Result<Parsed, CatalogError> {
    let mut parsed = Parsed::default();
    let mut seen = HashSet::new();
    for (file, text, asset_type) in LISTS {
        let malformed = |reason: String| CatalogError::Malformed {
            file: file.to_owned(),
            reason,
        };
        for row in csv::Reader::from_reader(text.as_bytes()).deserialize::<Row>() {
            let row = row.map_err(|e| malformed(e.to_string()))?;
            if crate::exchanges::lookup(&row.exchange).is_none() {
                return Err(malformed(format!("unknown exchange {:?}", row.exchange)));
            }
            parsed.push(
                Listing {
                    symbol: row.symbol,
                    asset_type,
                    exchange: row.exchange,
                    currency: row.currency,
                    name: row.name,
                    yahoo_symbol: Some(row.yahoo_symbol),
                    binance_symbol: None,
                    coingecko_id: None,
                },
                &mut seen,
            );
        }
    }
    if parsed.skipped.total() > 0 {
        return Err(CatalogError::Malformed {
            file: "data/catalog".to_owned(),
            reason: format!("rows left out: {:?}", parsed.skipped.examples),
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_row_is_storable() {
        let parsed = parse().unwrap();
        let count = |t: AssetType| parsed.listings.iter().filter(|l| l.asset_type == t).count();
        assert_eq!(count(AssetType::Commodity), 11);
        assert!(count(AssetType::Forex) >= 7);
        assert!(count(AssetType::Bond) >= 10);
        for l in &parsed.listings {
            assert_eq!(l.currency.len(), 3, "{}", l.symbol);
            assert!(!l.name.is_empty(), "{}", l.symbol);
            let yahoo = l.yahoo_symbol.as_deref().unwrap();
            match l.asset_type {
                AssetType::Commodity => {
                    assert_eq!(yahoo, format!("{}=F", l.symbol));
                    assert!(["XCEC", "XNYM", "XCBT", "XCME"].contains(&l.exchange.as_str()));
                }
                AssetType::Forex => {
                    assert_eq!(yahoo, format!("{}=X", l.symbol));
                    assert_eq!(l.exchange, "FX");
                    assert_eq!(l.currency, l.symbol[3..], "priced in the quote currency");
                }
                _ => assert_eq!(yahoo, l.symbol),
            }
            // The calendar that decides when it is refreshed.
            assert!(crate::calendar::CalendarId::for_exchange(&l.exchange).is_some());
        }
    }
}
