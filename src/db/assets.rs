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
    /// change of any of these makes stored bars another series (see
    /// migration 0012, `assets_identity_event`).
    pub fn same_identity(&self, other: &Asset) -> bool {
        (
            &self.symbol,
            self.asset_type,
            &self.exchange,
            &self.currency,
            &self.yahoo_symbol,
            &self.binance_symbol,
            &self.coingecko_id,
        ) == (
            &other.symbol,
            other.asset_type,
            &other.exchange,
            &other.currency,
            &other.yahoo_symbol,
            &other.binance_symbol,
            &other.coingecko_id,
        )
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
