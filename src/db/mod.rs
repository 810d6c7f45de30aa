//! The connection pool and the schema. `connect` waits (bounded) for an
//! unreachable server, creates a missing database, and `migrate` applies the
//! embedded migrations; both are safe to run from many processes at once.

use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};

pub mod assets;
pub mod budget;
pub mod nodelay;
pub mod schema;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database server {host}:{port} unreachable after {waited}: {source}")]
    Unreachable {
        host: String,
        port: u16,
        waited: humantime::FormattedDuration,
        source: sqlx::Error,
    },
    #[error("database server {host}:{port} refused the connection: {source}")]
    Refused {
        host: String,
        port: u16,
        source: sqlx::Error,
    },
    #[error("could not create database {name:?}: {source}")]
    CreateDatabase { name: String, source: sqlx::Error },
    #[error("could not prepare pricekeeper's schema: {0}")]
    Schema(#[source] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Connects a pool, retrying with backoff while the server is unreachable
/// (for at most `wait`), and creating the database when it does not exist.
pub async fn connect(
    options: &PgConnectOptions,
    max_connections: u32,
    wait: Duration,
) -> Result<PgPool, DbError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match PgConnection::connect_with(options).await {
            Ok(conn) => {
                // The first connection only proved the server is up.
                let _ = conn.close().await;
                break;
            }
            Err(e) if is_missing_database(&e) => create_database(options).await?,
            Err(e) if is_transient(&e) && started.elapsed() + delay <= wait => {
                tracing::warn!(
                    host = options.get_host(),
                    port = options.get_port(),
                    error = %e,
                    retry_in = %humantime::format_duration(delay),
                    "database not reachable yet"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) if is_transient(&e) => {
                return Err(DbError::Unreachable {
                    host: options.get_host().to_owned(),
                    port: options.get_port(),
                    waited: humantime::format_duration(round_to_ms(started.elapsed())),
                    source: e,
                });
            }
            Err(e) => {
                return Err(DbError::Refused {
                    host: options.get_host().to_owned(),
                    port: options.get_port(),
                    source: e,
                });
            }
        }
    }
    nodelay::pool_options()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await
        .map_err(|e| DbError::Refused {
            host: options.get_host().to_owned(),
            port: options.get_port(),
            source: e,
        })
}

/// [`connect`] into pricekeeper's schema (`wanted`, or the default; see
/// [`schema`]), creating the schema first. Returns the schema used.
pub async fn connect_in_schema(
    options: &PgConnectOptions,
    wanted: Option<&str>,
    max_connections: u32,
    wait: Duration,
) -> Result<(PgPool, String), DbError> {
    // The first connect waits for the server and creates the database.
    let probe = connect(options, 1, wait).await?;
    probe.close().await;
    let schema = schema::prepare(options, wanted).await?;
    let pool = connect(&schema::in_schema(options, &schema), max_connections, wait).await?;
    Ok((pool, schema))
}

/// Applies pending migrations into the connection's schema, then pins the
/// schema's functions to it. sqlx holds an advisory lock while it
/// migrates, so several processes starting together do not race.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    schema::pin_functions(pool).await
}

async fn create_database(options: &PgConnectOptions) -> Result<(), DbError> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let create_err = |source| DbError::CreateDatabase {
        name: name.clone(),
        source,
    };
    let mut admin = options
        .clone()
        .database("postgres")
        .log_statements(tracing::log::LevelFilter::Off)
        .connect()
        .await
        .map_err(create_err)?;
    let sql = format!("CREATE DATABASE {}", quote_ident(&name));
    match admin.execute(sqlx::AssertSqlSafe(sql)).await {
        Ok(_) => tracing::info!(database = %name, "database did not exist; created it"),
        // Another process created it first: that is what we wanted.
        Err(e) if db_code(&e).is_some_and(|c| c == "42P04" || c == "23505") => {}
        Err(e) => return Err(create_err(e)),
    }
    let _ = admin.close().await;
    Ok(())
}

/// Quotes an identifier for PostgreSQL (`"a""b"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQLSTATE of a database error, if it is one.
pub fn db_code(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

fn is_missing_database(e: &sqlx::Error) -> bool {
    db_code(e).as_deref() == Some("3D000")
}

/// Whose fault a database error is, which decides what becomes of the
/// event or job whose write it interrupted. The one place that decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Serialization failure or deadlock (class 40): run the transaction
    /// again at once.
    Conflict,
    /// The data itself (class 22, data exception; class 23, integrity
    /// violation; a value that does not decode): the event or job is at
    /// fault, and running it again would fail the same way.
    Data,
    /// Anything else: a lost connection (08), a lock or statement timeout
    /// (55P03, 57014), an administrator's shutdown (57P01), no memory or
    /// disk (53), I/O (58), a pool timeout. Not the work's fault: retry it
    /// with backoff and never lose it.
    Transient,
}

/// Classifies a database error by its SQLSTATE class.
pub fn fault(e: &sqlx::Error) -> Fault {
    match e {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => return Fault::Data,
        _ => {}
    }
    match db_code(e).as_deref().map(|c| c.get(..2).unwrap_or(c)) {
        Some("40") => Fault::Conflict,
        Some("22" | "23") => Fault::Data,
        _ => Fault::Transient,
    }
}

/// Errors worth waiting out: the server is down, starting or full.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        // cannot_connect_now (starting up / shutting down), too_many_connections
        _ => matches!(db_code(e).as_deref(), Some("57P03" | "53300")),
    }
}

/// `text` without the ` at line NNN` sqlx appends to a server's message:
/// that is a line of PostgreSQL's own C source, not of anything the user
/// wrote, and reads as if it were.
pub fn without_server_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" at line ") {
        let digits = rest[at + 9..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        out.push_str(&rest[..at]);
        if digits == 0 {
            out.push_str(" at line ");
        }
        rest = &rest[at + 9 + digits..];
    }
    out.push_str(rest);
    out
}

fn round_to_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_source_line_is_dropped_from_messages() {
        assert_eq!(
            without_server_line(
                "migrations failed: no schema has been selected to create in at line 499: more"
            ),
            "migrations failed: no schema has been selected to create in: more"
        );
        assert_eq!(without_server_line("look at line one"), "look at line one");
        assert_eq!(without_server_line("plain"), "plain");
    }
}
