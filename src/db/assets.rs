//! The asset catalog the host application maintains. pricekeeper only reads it.

use serde::Serialize;
use sqlx::PgExecutor;

/// `asset_type` in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, Serialize, clap::ValueEnum)]
#[sqlx(type_name = "asset_type", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum AssetType {
    Stock,
    Etf,
    Crypto,
    Commodity,
    Forex,
    Bond,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Asset {
    pub id: i64,
    pub symbol: String,
    pub asset_type: AssetType,
    pub exchange: String,
    pub currency: Option<String>,
    pub yahoo_symbol: Option<String>,
    pub binance_symbol: Option<String>,
    pub coingecko_id: Option<String>,
    pub active: bool,
}

impl Asset {
    /// Whether `other` names the same instrument to the providers: a
    /// change of any of these makes stored bars another series. Compared
    /// as the SQL twin `asset_identity` (migration 0012) does: case,
    /// surrounding spaces and '' for "none" are no change.
    pub fn same_identity(&self, other: &Asset) -> bool {
        fn norm(s: Option<&str>) -> Option<String> {
            s.map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
        }
        let key = |a: &Asset| {
            (
                norm(Some(&a.symbol)),
                a.asset_type,
                norm(Some(&a.exchange)),
                norm(a.currency.as_deref()),
                norm(a.yahoo_symbol.as_deref()),
                norm(a.binance_symbol.as_deref()),
                norm(a.coingecko_id.as_deref()),
            )
        };
        key(self) == key(other)
    }
}

pub async fn fetch_asset(db: impl PgExecutor<'_>, id: i64) -> Result<Option<Asset>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, symbol, asset_type, exchange, currency,
                yahoo_symbol, binance_symbol, coingecko_id, active
         FROM assets
         WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}
