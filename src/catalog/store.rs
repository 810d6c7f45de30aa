//! Applies one source's listings to `assets` inside the caller's
//! transaction, in eight statements whatever the number of listings: lock
//! out other catalog writers, stage the listings (a temporary table filled
//! from one array per column), add the new ones, update the known ones,
//! record what the source lists, deactivate what vanished from it, drop
//! the stage. The caller commits, or rolls back for a dry run.

use serde::Serialize;
use sqlx::PgConnection;

use super::{Listing, Source};
use crate::db::assets::{Asset, AssetType};
use crate::providers::{ProviderKind, symbol_for};

/// What applying a source did (or would do, in a dry run).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub added: u64,
    /// Known assets whose name changed, that got a provider symbol filled
    /// in, or that were listed again.
    pub updated: u64,
    /// Of `updated`: assets the catalog had deactivated, active again.
    pub reactivated: u64,
    pub deactivated: Vec<String>,
    /// Vanished from the source but held by a portfolio: left active.
    pub kept_held: Vec<String>,
    /// Vanished from this source, still listed by another: left active.
    pub kept_listed_elsewhere: u64,
    /// Statements sent to the database.
    pub statements: u32,
}

/// Applies `listings` as everything `source` lists now.
pub async fn apply(
    tx: &mut PgConnection,
    source: Source,
    listings: &[Listing],
) -> Result<Applied, sqlx::Error> {
    let mut applied = Applied::default();
    // One catalog writer at a time (seed-catalog and the daemon's refresh,
    // or two sources): their vanish decisions read each other's listings,
    // and updating the same assets in two orders could deadlock. The host's
    // reads and writes of `assets` are not blocked.
    sqlx::query("LOCK TABLE catalog_listings IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::query(include_str!("../../sql/catalog_stage.sql"))
        .execute(&mut *tx)
        .await?;
    let column =
        |f: fn(&Listing) -> Option<&str>| -> Vec<Option<&str>> { listings.iter().map(f).collect() };
    let types: Vec<&str> = listings.iter().map(|l| type_name(l.asset_type)).collect();
    sqlx::query(include_str!("../../sql/catalog_stage_fill.sql"))
        .bind(column(|l| Some(l.symbol.as_str())))
        .bind(types)
        .bind(column(|l| Some(l.exchange.as_str())))
        .bind(column(|l| Some(l.currency.as_str())))
        .bind(column(|l| Some(l.name.as_str())))
        .bind(column(|l| l.yahoo_symbol.as_deref()))
        .bind(column(|l| l.binance_symbol.as_deref()))
        .bind(column(|l| l.coingecko_id.as_deref()))
        .bind(fill(listings, ProviderKind::Yahoo))
        .bind(fill(listings, ProviderKind::Binance))
        .execute(&mut *tx)
        .await?;
    let added: i64 = sqlx::query_scalar(include_str!("../../sql/catalog_add_assets.sql"))
        .fetch_one(&mut *tx)
        .await?;
    let (updated, reactivated): (i64, i64) =
        sqlx::query_as(include_str!("../../sql/catalog_update_assets.sql"))
            .bind(source.as_str())
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(include_str!("../../sql/catalog_record_listings.sql"))
        .bind(source.as_str())
        .execute(&mut *tx)
        .await?;
    let gone: Vec<(String, String, bool, bool, bool, bool)> =
        sqlx::query_as(include_str!("../../sql/catalog_vanished.sql"))
            .bind(source.as_str())
            .fetch_all(&mut *tx)
            .await?;
    // ON COMMIT DROP does not fire at the release of a savepoint (a dry
    // run's sources share one transaction): the next source stages anew.
    sqlx::query("DROP TABLE catalog_stage")
        .execute(&mut *tx)
        .await?;
    applied.statements = 8;
    applied.added = added as u64;
    applied.updated = updated as u64;
    applied.reactivated = reactivated as u64;
    for (symbol, exchange, held, active, listed_elsewhere, deactivated) in gone {
        let name = format!("{symbol} ({exchange})");
        if deactivated {
            applied.deactivated.push(name);
        } else if held && active {
            applied.kept_held.push(name);
        } else if listed_elsewhere && active {
            applied.kept_listed_elsewhere += 1;
        }
    }
    Ok(applied)
}

/// `asset_type` in SQL.
fn type_name(t: AssetType) -> &'static str {
    match t {
        AssetType::Stock => "stock",
        AssetType::Etf => "etf",
        AssetType::Crypto => "crypto",
        AssetType::Commodity => "commodity",
        AssetType::Forex => "forex",
        AssetType::Bond => "bond",
    }
}

/// Each listing's `kind` symbol when it is not what pricekeeper would
/// derive without it (`BRK-B` for `BRK.B`), else `None`.
fn fill(listings: &[Listing], kind: ProviderKind) -> Vec<Option<String>> {
    listings
        .iter()
        .map(|l| {
            let own = match kind {
                ProviderKind::Yahoo => l.yahoo_symbol.clone(),
                ProviderKind::Binance => l.binance_symbol.clone(),
                ProviderKind::CoinGecko => l.coingecko_id.clone(),
                // The catalog has no column for these: always derived.
                ProviderKind::Kraken
                | ProviderKind::Coinbase
                | ProviderKind::Frankfurter
                | ProviderKind::Fmp
                | ProviderKind::AlphaVantage => None,
            }?;
            let bare = Asset {
                id: 0,
                symbol: l.symbol.clone(),
                asset_type: l.asset_type,
                exchange: l.exchange.clone(),
                currency: Some(l.currency.clone()),
                yahoo_symbol: None,
                binance_symbol: None,
                coingecko_id: None,
                active: true,
            };
            (symbol_for(&bare, kind).as_deref() != Some(own.as_str())).then_some(own)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_symbols_that_differ_from_the_derived_ones_are_filled_in() {
        let listing =
            |symbol: &str, asset_type, exchange: &str, yahoo: &str, binance: Option<&str>| {
                Listing {
                    symbol: symbol.to_owned(),
                    asset_type,
                    exchange: exchange.to_owned(),
                    currency: "USD".to_owned(),
                    name: String::new(),
                    yahoo_symbol: Some(yahoo.to_owned()),
                    binance_symbol: binance.map(str::to_owned),
                    coingecko_id: None,
                }
            };
        let listings = [
            listing("AAPL", AssetType::Stock, "XNAS", "AAPL", None),
            listing("BRK.B", AssetType::Stock, "XNYS", "BRK-B", None),
            listing(
                "BTC",
                AssetType::Crypto,
                "CRYPTO",
                "BTC-USD",
                Some("BTCUSDT"),
            ),
            listing("GC", AssetType::Commodity, "XCEC", "GC=F", None),
        ];
        assert_eq!(
            fill(&listings, ProviderKind::Yahoo),
            [
                None,
                Some("BRK-B".to_owned()),
                None,
                Some("GC=F".to_owned())
            ]
        );
        assert_eq!(
            fill(&listings, ProviderKind::Binance),
            [None, None, None, None]
        );
    }
}
