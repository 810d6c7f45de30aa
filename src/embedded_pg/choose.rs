//! Which server `run` and `demo` use: `DATABASE_URL` when it is set, else
//! the default address when a server answers there, else the embedded one.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::{EmbeddedError, EmbeddedPg, Place};

/// How long the default address gets to answer before the embedded server
/// is used instead.
const PROBE: Duration = Duration::from_secs(3);

/// `PRICEKEEPER_EMBEDDED_PG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmbeddedMode {
    /// When DATABASE_URL is not set and nothing answers on the default address.
    Auto,
    /// Always, even when DATABASE_URL is set or a server answers.
    Always,
    /// Never: without DATABASE_URL, the default address.
    Never,
}

/// The server chosen.
#[derive(Debug, Clone)]
pub enum Choice {
    /// A server of the user's (`DATABASE_URL` or the default address).
    Server(Box<PgConnectOptions>),
    Embedded(Arc<EmbeddedPg>),
}

impl Choice {
    /// Options for `database` on the chosen server.
    pub fn options(&self, database: &str) -> PgConnectOptions {
        match self {
            Self::Server(options) => (**options).clone().database(database),
            Self::Embedded(pg) => pg.connect_options(database),
        }
    }

    /// A `psql` line for `database` that sees `schema`'s tables
    /// unqualified, as pricekeeper's connections do.
    pub fn psql(&self, database: &str, schema: &str) -> String {
        let (host, port, user) = match self {
            Self::Server(o) => (
                o.get_host().to_owned(),
                o.get_port(),
                o.get_username().to_owned(),
            ),
            Self::Embedded(pg) => (
                pg.dir().display().to_string(),
                pg.port(),
                "postgres".to_owned(),
            ),
        };
        format!(
            "psql \"host={host} port={port} user={user} dbname={database} options='-c search_path={schema}'\""
        )
    }

    /// Options for pricekeeper's own database: DATABASE_URL's (or the
    /// default's) as given, `pricekeeper` on the embedded server.
    pub fn main_options(&self) -> PgConnectOptions {
        match self {
            Self::Server(options) => (**options).clone(),
            Self::Embedded(pg) => pg.connect_options("pricekeeper"),
        }
    }

    /// Which server, for the log and the demo.
    pub fn describe(&self) -> String {
        match self {
            Self::Server(o) => format!("the server at {}:{}", o.get_host(), o.get_port()),
            Self::Embedded(pg) => format!(
                "the embedded PostgreSQL {} in {} (Unix socket only)",
                pg.version(),
                pg.dir().display()
            ),
        }
    }

    /// The embedded server, when that is the choice.
    pub fn embedded(&self) -> Option<&Arc<EmbeddedPg>> {
        match self {
            Self::Embedded(pg) => Some(pg),
            Self::Server(_) => None,
        }
    }
}

/// `explicit` is the URL the user set (flag or `DATABASE_URL`), `default`
/// the built-in address.
pub async fn choose(
    explicit: Option<PgConnectOptions>,
    default: PgConnectOptions,
    mode: EmbeddedMode,
    place: Place,
) -> Result<Choice, EmbeddedError> {
    let reason = match (mode, explicit) {
        (EmbeddedMode::Always, _) => "PRICEKEEPER_EMBEDDED_PG=always".to_owned(),
        (_, Some(options)) => return Ok(Choice::Server(Box::new(options))),
        (EmbeddedMode::Never, None) => return Ok(Choice::Server(Box::new(default))),
        (EmbeddedMode::Auto, None) => match probe(&default).await {
            Ok(()) => return Ok(Choice::Server(Box::new(default))),
            Err(e) => format!(
                "DATABASE_URL is not set and no server answers on {}:{} ({e})",
                default.get_host(),
                default.get_port()
            ),
        },
    };
    tracing::info!(%reason, "using the embedded PostgreSQL");
    let pg = tokio::task::spawn_blocking(move || EmbeddedPg::start(&place))
        .await
        .map_err(|e| {
            EmbeddedError::io("start the embedded PostgreSQL", std::io::Error::other(e))
        })??;
    Ok(Choice::Embedded(Arc::new(pg)))
}

async fn probe(default: &PgConnectOptions) -> Result<(), String> {
    let options = default
        .clone()
        .database("postgres")
        .log_statements(tracing::log::LevelFilter::Off);
    match tokio::time::timeout(PROBE, options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", PROBE.as_secs())),
    }
}
