//! Applies one source's listings to `assets` inside the caller's
//! transaction, in seven bulk statements whatever the number of listings:
//! stage them (a temporary table filled from one array per column), add
//! the new ones, update the known ones, record what the source lists, and
//! deactivate what vanished from it, then drop the stage. The caller commits, or rolls back for
//! a dry run.

use serde::Serialize;
use sqlx::PgConnection;

use super::{Listing, Source};
use crate::db::assets::AssetType;

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
    sqlx::query(include_str!("../../sql/catalog_stage.sql"))
        .execute(&mut *tx)
        .await?;
    let column =
        |f: fn(&Listing) -> Option<&str>| -> Vec<Option<&str>> { listings.iter().map(f).collect() };
    let types: Vec<AssetType> = listings.iter().map(|l| l.asset_type).collect();
    sqlx::query(include_str!("../../sql/catalog_stage_fill.sql"))
        .bind(column(|l| Some(l.symbol.as_str())))
        .bind(types)
        .bind(column(|l| Some(l.exchange.as_str())))
        .bind(column(|l| Some(l.currency.as_str())))
        .bind(column(|l| Some(l.name.as_str())))
        .bind(column(|l| l.yahoo_symbol.as_deref()))
        .bind(column(|l| l.binance_symbol.as_deref()))
        .bind(column(|l| l.coingecko_id.as_deref()))
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
    applied.statements = 7;
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
