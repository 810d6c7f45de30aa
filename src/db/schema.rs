//! pricekeeper's own schema (`PRICEKEEPER_SCHEMA`, default `pricekeeper`),
//! so it installs beside a host application's tables, even one that has an
//! `assets` table of its own. Our SQL stays unqualified: every connection
//! gets `search_path` set to the schema, and the schema (with sqlx's
//! `_sqlx_migrations`) is created before migrating.
//!
//! An installation from before schemas has its tables in `public`. When the
//! schema was not chosen explicitly and `public` holds such an installation
//! (and the schema none), it is used where it is, with a warning: nothing
//! moves under a running deployment. README "Adopting" says how to move it.

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

use super::{DbError, quote_ident};

pub const DEFAULT_SCHEMA: &str = "pricekeeper";

/// The schema to use on the server of `options`: `wanted`, or `public`
/// for a legacy installation when `wanted` is only the default. Creates it.
pub async fn prepare(options: &PgConnectOptions, wanted: Option<&str>) -> Result<String, DbError> {
    let schema = wanted.unwrap_or(DEFAULT_SCHEMA);
    let mut conn = options
        .clone()
        .log_statements(tracing::log::LevelFilter::Off)
        .connect()
        .await
        .map_err(DbError::Schema)?;
    if wanted.is_none() {
        let legacy: bool = sqlx::query_scalar(include_str!("../../sql/schema_legacy_public.sql"))
            .bind(schema)
            .fetch_one(&mut conn)
            .await
            .map_err(DbError::Schema)?;
        if legacy {
            tracing::warn!(
                "pricekeeper's tables are in schema public (installed before it had its own \
                 schema); using them there. Set PRICEKEEPER_SCHEMA=public to say so, or move \
                 them (README, Adopting pricekeeper)"
            );
            let _ = conn.close().await;
            return Ok("public".to_owned());
        }
    }
    let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
    match conn.execute(AssertSqlSafe(sql)).await {
        Ok(_) => {}
        // Two processes creating it at once: one wins, which is what we wanted.
        Err(e) if super::db_code(&e).as_deref() == Some("23505") => {}
        Err(e) => return Err(DbError::Schema(e)),
    }
    let _ = conn.close().await;
    Ok(schema.to_owned())
}

/// `options` with every connection's `search_path` set to `schema` (a
/// name [`valid_name`] accepts, or public: no quoting needed, and quotes
/// would travel inside the startup packet's value).
pub fn in_schema(options: &PgConnectOptions, schema: &str) -> PgConnectOptions {
    options.clone().options([("search_path", schema)])
}

/// Pins `search_path` on the schema's functions (see the SQL file).
pub async fn pin_functions(pool: &sqlx::PgPool) -> Result<(), DbError> {
    sqlx::raw_sql(include_str!("../../sql/schema_pin_functions.sql"))
        .execute(pool)
        .await
        .map_err(DbError::Schema)?;
    Ok(())
}

/// A schema name as the setting accepts it: a plain lower-case identifier.
pub fn valid_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("pg_");
    if ok {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "PRICEKEEPER_SCHEMA must be a lower-case identifier (letters, digits, _; not pg_…), not {raw:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert_eq!(valid_name(" pricekeeper "), Ok("pricekeeper".into()));
        assert_eq!(valid_name("pk_2"), Ok("pk_2".into()));
        for bad in ["", "Price", "2pk", "a-b", "pg_catalog", "a\"b"] {
            assert!(
                valid_name(bad).unwrap_err().contains("PRICEKEEPER_SCHEMA"),
                "{bad}"
            );
        }
    }
}
