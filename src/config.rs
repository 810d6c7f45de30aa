//! One `Settings`, read once from flags and environment variables at start
//! and passed down. Every value is checked here, so a bad one stops the
//! process at once with exit code 2 and a message that names the variable.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use sqlx::postgres::PgConnectOptions;

use crate::embedded_pg::{EmbeddedMode, Place};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/pricekeeper";

/// Options of every command.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Log format: `pretty` for people, `json` for log collectors. Filter with RUST_LOG.
    #[arg(long, env = "PRICEKEEPER_LOG_FORMAT", default_value = "pretty",
          value_parser = one_of("PRICEKEEPER_LOG_FORMAT", &[("pretty", LogFormat::Pretty), ("json", LogFormat::Json)]), global = true, help_heading = "Logging")]
    pub log_format: LogFormat,
}

/// Where the database is: `migrate` and everything that runs the pipeline.
#[derive(Debug, Clone, clap::Args)]
pub struct DbSettings {
    /// PostgreSQL connection URL; a missing database is created. Default:
    /// postgres://postgres@127.0.0.1:5432/pricekeeper, and for `run` and
    /// `demo` the embedded PostgreSQL when nothing answers there.
    #[arg(long, env = "DATABASE_URL",
          value_parser = Secret(database_url), hide_env_values = true,
          help_heading = "Database")]
    pub database_url: Option<String>,

    /// The schema pricekeeper's tables live in, beside the host's own
    /// (created if missing). Default: pricekeeper, or public for an
    /// installation made before pricekeeper had its own schema.
    #[arg(long, env = "PRICEKEEPER_SCHEMA", value_parser = crate::db::schema::valid_name, help_heading = "Database")]
    pub schema: Option<String>,

    /// When `run` and `demo` start their own PostgreSQL: `auto` (DATABASE_URL
    /// unset and nothing answering on the default address), `always`, `never`.
    #[arg(long, env = "PRICEKEEPER_EMBEDDED_PG", default_value = "auto",
          value_parser = one_of("PRICEKEEPER_EMBEDDED_PG",
              &[("auto", EmbeddedMode::Auto), ("always", EmbeddedMode::Always), ("never", EmbeddedMode::Never)]), help_heading = "Database")]
    pub embedded_pg: EmbeddedMode,

    /// Directory of the PostgreSQL server binaries for the embedded server.
    /// Default: `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin, PATH.
    #[arg(long, env = "PRICEKEEPER_PG_BINDIR", help_heading = "Database")]
    pub pg_bindir: Option<PathBuf>,

    /// Directory of the embedded PostgreSQL (cluster, socket, log), kept
    /// between runs. Default: $XDG_CACHE_HOME/pricekeeper/pg, else
    /// ~/.cache/pricekeeper/pg (as root: the postgres user's).
    #[arg(long, env = "PRICEKEEPER_PG_DIR", help_heading = "Database")]
    pub pg_dir: Option<PathBuf>,

    /// How long to keep retrying an unreachable database before giving up.
    #[arg(long, env = "PRICEKEEPER_DB_CONNECT_TIMEOUT", default_value = "30s",
          value_parser = duration("PRICEKEEPER_DB_CONNECT_TIMEOUT", Duration::ZERO, Duration::from_secs(3600)), help_heading = "Database")]
    pub db_connect_timeout: Duration,

    /// Size of the connection pool.
    #[arg(long, env = "PRICEKEEPER_DB_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = ranged::<u32>("PRICEKEEPER_DB_MAX_CONNECTIONS", 1, 1000), help_heading = "Database")]
    pub db_max_connections: u32,
}

/// The one-off closures laid over the calendars: `calendar` and the daemon.
#[derive(Debug, Clone, clap::Args)]
pub struct ClosureSettings {
    /// CSV of one-off exchange closures laid over the built-in list
    /// (`exchange,date,change,reason`; change is closed, regular or HH:MM).
    #[arg(long, env = "PRICEKEEPER_CALENDAR_CLOSURES", help_heading = "Daemon")]
    pub calendar_closures: Option<std::path::PathBuf>,
}

/// Everything the pipeline reads (`worker`, `daemon`, `run`, `demo`,
/// `bench`), read once at start and passed down. A command with settings
/// of its own flattens its own `clap::Args` struct beside this one.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    #[command(flatten)]
    pub db: DbSettings,

    #[command(flatten)]
    pub closures: ClosureSettings,

    /// Minutes between live price refreshes.
    #[arg(long, env = "FETCH_INTERVAL_MINUTES", default_value_t = 15,
          value_parser = ranged::<u32>("FETCH_INTERVAL_MINUTES", 1, 1440), help_heading = "Daemon")]
    pub fetch_interval_minutes: u32,

    /// Refresh an asset only while its market is open.
    #[arg(long, env = "TRADING_HOURS_ONLY", default_value = "true",
          value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set, help_heading = "Daemon")]
    pub trading_hours_only: bool,

    /// Cron schedule of the live price refresh in UTC, 5 fields (`*/15 * * * *`)
    /// or 6 with seconds; replaces FETCH_INTERVAL_MINUTES. Market hours come
    /// from the calendars, never from cron.
    #[arg(long, env = "PRICEKEEPER_CRON", value_parser = cron, help_heading = "Daemon")]
    pub cron: Option<String>,

    /// How long the active daemon's leader lease lasts without renewal; a
    /// standby takes over this long after the leader died. Renewed every third.
    #[arg(long, env = "PRICEKEEPER_DAEMON_LEASE", default_value = "15s",
          value_parser = duration("PRICEKEEPER_DAEMON_LEASE", Duration::from_secs(1), Duration::from_secs(600)), help_heading = "Daemon")]
    pub daemon_lease: Duration,

    /// Backfill jobs a worker claims at once.
    #[arg(long, env = "BACKFILL_BATCH_SIZE", default_value_t = 10,
          value_parser = ranged::<u32>("BACKFILL_BATCH_SIZE", 1, 10_000), help_heading = "Backfill")]
    pub backfill_batch_size: u32,

    /// Attempts before a backfill job is marked failed (rate limits do not count).
    #[arg(long, env = "MAX_BACKFILL_ATTEMPTS", default_value_t = 5,
          value_parser = ranged::<u32>("MAX_BACKFILL_ATTEMPTS", 1, 100), help_heading = "Backfill")]
    pub max_backfill_attempts: u32,

    /// First retry delay, doubled on each further attempt: `5` (minutes) or `5m`, `90s`.
    #[arg(long, env = "RETRY_EXPONENTIAL_BASE", default_value = "5",
          value_parser = minutes_or_duration("RETRY_EXPONENTIAL_BASE", Duration::from_secs(1), Duration::from_secs(86_400)), help_heading = "Backfill")]
    pub retry_exponential_base: Duration,

    /// How long a failed backfill job waits before it is queued again by
    /// itself; doubled each round (`6h`, `30m`). A purchase that needs its
    /// range queues it at once.
    #[arg(long, env = "PRICEKEEPER_FAILED_COOLOFF", default_value = "6h",
          value_parser = duration("PRICEKEEPER_FAILED_COOLOFF", Duration::from_secs(1), Duration::from_secs(30 * 86_400)), help_heading = "Backfill")]
    pub failed_cooloff: Duration,

    /// How many times a failed backfill job is queued again by itself before
    /// it stays failed (0: never).
    #[arg(long, env = "PRICEKEEPER_FAILED_ROUNDS", default_value_t = 4,
          value_parser = ranged::<u32>("PRICEKEEPER_FAILED_ROUNDS", 0, 100), help_heading = "Backfill")]
    pub failed_rounds: u32,

    /// How long a claimed backfill job stays reserved for its worker; renewed
    /// while the job runs, and returned to the queue by the reaper once it
    /// runs out (a crashed or frozen worker).
    #[arg(long = "lease", env = "PRICEKEEPER_JOB_LEASE", default_value = "60s",
          value_parser = duration("PRICEKEEPER_JOB_LEASE", Duration::from_secs(1), Duration::from_secs(3600)), help_heading = "Backfill")]
    pub job_lease: Duration,

    /// Backfill jobs one worker process runs at once.
    #[arg(long, env = "PRICEKEEPER_CONCURRENCY", default_value_t = 4,
          value_parser = ranged::<u32>("PRICEKEEPER_CONCURRENCY", 1, 1024), help_heading = "Backfill")]
    pub concurrency: u32,

    /// On SIGTERM/SIGINT, how long running backfill jobs may take to finish
    /// before they are handed back to the queue.
    #[arg(long, env = "PRICEKEEPER_SHUTDOWN_GRACE", default_value = "20s",
          value_parser = duration("PRICEKEEPER_SHUTDOWN_GRACE", Duration::ZERO, Duration::from_secs(3600)), help_heading = "Backfill")]
    pub shutdown_grace: Duration,

    /// Fallback poll interval for new events and due jobs, should a
    /// notification be missed (`5s`, `1m`).
    #[arg(long, env = "PRICEKEEPER_POLL_INTERVAL", default_value = "5s",
          value_parser = duration("PRICEKEEPER_POLL_INTERVAL", Duration::from_millis(10), Duration::from_secs(3600)), help_heading = "Events")]
    pub poll_interval: Duration,

    /// Outbox events the orchestrator applies per database transaction.
    #[arg(long, env = "PRICEKEEPER_EVENT_BATCH_SIZE", default_value_t = 1000,
          value_parser = ranged::<u32>("PRICEKEEPER_EVENT_BATCH_SIZE", 1, 100_000), help_heading = "Events")]
    pub event_batch_size: u32,

    /// History queued for a newly held asset: this many months before the purchase.
    #[arg(long, env = "PRICEKEEPER_BACKFILL_MONTHS", default_value_t = 12,
          value_parser = ranged::<u32>("PRICEKEEPER_BACKFILL_MONTHS", 1, 1200), help_heading = "Events")]
    pub backfill_months: u32,

    #[command(flatten)]
    pub providers: crate::providers::settings::ProviderSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Settings {
    /// The server to use: DATABASE_URL, else the default address.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.db.connect_options()
    }
}

impl DbSettings {
    /// The server to use: DATABASE_URL, else the default address.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.explicit_database().unwrap_or_else(|| {
            PgConnectOptions::from_str(DEFAULT_DATABASE_URL).expect("default URL")
        })
    }

    /// DATABASE_URL, else the default URL, as text (for a message, once
    /// the password is redacted, or for a child process).
    pub fn url(&self) -> &str {
        self.database_url.as_deref().unwrap_or(DEFAULT_DATABASE_URL)
    }

    /// DATABASE_URL (or `--database-url`), when the user set it.
    pub fn explicit_database(&self) -> Option<PgConnectOptions> {
        // Validated by the parser, so this cannot fail.
        self.database_url
            .as_deref()
            .map(|url| PgConnectOptions::from_str(url).expect("DATABASE_URL was validated"))
    }

    /// Where the embedded PostgreSQL's binaries and directory are.
    pub fn embedded_place(&self) -> Place {
        Place {
            bindir: self.pg_bindir.clone(),
            dir: self.pg_dir.clone(),
        }
    }
}

/// A cron expression the scheduler accepts, so a bad one stops at start.
fn cron(raw: &str) -> Result<String, String> {
    crate::daemon::schedule::cron_expression(raw)
        .map(|_| raw.to_owned())
        .map_err(|e| format!("PRICEKEEPER_CRON: {e}"))
}

fn database_url(raw: &str) -> Result<String, String> {
    // Every message shows the URL with its password masked: the usual
    // mistake is an unescaped `#`, `@` or `/` in the password itself.
    let shown = redact_url(raw);
    let url =
        url::Url::parse(raw).map_err(|e| format!("DATABASE_URL is not a URL ({e}): {shown}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "DATABASE_URL must start with postgres:// or postgresql://, not {}://",
            url.scheme()
        ));
    }
    PgConnectOptions::from_str(raw).map_err(|e| {
        format!(
            "DATABASE_URL is not a valid PostgreSQL URL ({}): {shown} (percent-encode \
             special characters in the password, e.g. # as %23)",
            redact_in(&e.to_string(), raw, &shown)
        )
    })?;
    Ok(raw.to_owned())
}

/// `raw` with the password of its user info (everything between the first
/// `:` after `://` and the last `@`) and any `password=` query value masked.
/// Works on malformed URLs too, erring towards masking more.
pub fn redact_url(raw: &str) -> String {
    let mut shown = raw.to_owned();
    if let Some(start) = shown.find("://").map(|i| i + 3)
        && let Some(at) = shown.rfind('@').filter(|&at| at > start)
        && let Some(colon) = shown[start..at].find(':').map(|i| start + i)
    {
        shown.replace_range(colon + 1..at, "***");
    }
    if let Some(key) = shown.to_ascii_lowercase().find("password=") {
        let from = key + "password=".len();
        let to = shown[from..].find('&').map_or(shown.len(), |i| from + i);
        shown.replace_range(from..to, "***");
    }
    shown
}

/// `message` with any copy of `raw` replaced by its masked form.
fn redact_in(message: &str, raw: &str, shown: &str) -> String {
    message.replace(raw, shown)
}

/// A parser for an API key: it travels as an HTTP header, so it must be a
/// valid header value (visible ASCII). The message never quotes the key.
pub(crate) fn api_key(var: &'static str) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |raw| {
        // Empty means unset: compose files often pass `KEY: ${KEY:-}`.
        let key = raw.trim();
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{var} must be printable ASCII without spaces (it is sent as an HTTP header); \
                 the value given ({} characters) is not",
                raw.chars().count()
            ));
        }
        Ok(key.to_owned())
    }
}

/// A clap parser for a setting that may hold a secret. clap quotes the
/// offending value in an ordinary parser's error ("invalid value '…'"),
/// password and all; this one prints only the parser's own message, which
/// masks what it must.
#[derive(Clone)]
pub(crate) struct Secret<F>(pub(crate) F);

impl<F, T> clap::builder::TypedValueParser for Secret<F>
where
    F: Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        use clap::error::ErrorKind;
        let raw = value.to_str().ok_or_else(|| {
            clap::Error::raw(ErrorKind::InvalidUtf8, "a secret setting is not UTF-8\n")
        })?;
        (self.0)(raw)
            .map_err(|message| clap::Error::raw(ErrorKind::ValueValidation, format!("{message}\n")))
    }
}

/// A parser for a number within `[min, max]` whose error names `var`.
pub fn ranged<T>(var: &'static str, min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone
where
    T: FromStr + PartialOrd + Copy + std::fmt::Display + Send + Sync + 'static,
{
    move |raw| {
        let value: T = raw
            .trim()
            .parse()
            .map_err(|_| format!("{var} must be a whole number from {min} to {max}"))?;
        if value < min || value > max {
            return Err(format!("{var} must be from {min} to {max}"));
        }
        Ok(value)
    }
}

/// A parser for a calendar date whose error names `flag` and the format.
pub fn date(flag: &'static str) -> impl Fn(&str) -> Result<chrono::NaiveDate, String> + Clone {
    move |raw| {
        chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
            .map_err(|e| format!("{flag} must be a date as YYYY-MM-DD, e.g. 2024-01-31 ({e})"))
    }
}

/// A parser for one of `names`, whose error names `var` and the choices
/// (clap's own names only the flag, even when the variable was set).
pub fn one_of<T: Copy + Send + Sync + 'static>(
    var: &'static str,
    names: &'static [(&'static str, T)],
) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |raw| {
        let wanted = raw.trim().to_ascii_lowercase();
        names
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let choices: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                format!("{var} must be one of {}", choices.join(", "))
            })
    }
}

/// A parser for a humantime duration (`60s`, `5m`, `1h 30m`) within bounds.
pub fn duration(
    var: &'static str,
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |raw| {
        let value = humantime::parse_duration(raw.trim())
            .map_err(|e| format!("{var} must be a duration such as 30s or 5m ({e})"))?;
        within(var, value, min, max)
    }
}

/// Like [`duration`], but a bare number means minutes, as the design
/// document writes `RETRY_EXPONENTIAL_BASE=5`.
pub fn minutes_or_duration(
    var: &'static str,
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    let as_duration = duration(var, min, max);
    move |raw| match raw.trim().parse::<u64>() {
        Ok(minutes) => within(
            var,
            Duration::from_secs(minutes.saturating_mul(60)),
            min,
            max,
        ),
        Err(_) => as_duration(raw),
    }
}

fn within(var: &str, value: Duration, min: Duration, max: Duration) -> Result<Duration, String> {
    if value < min || value > max {
        return Err(format!(
            "{var} must be from {} to {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_base_accepts_bare_minutes_and_humantime() {
        let parse = minutes_or_duration("X", Duration::from_secs(1), Duration::from_secs(86_400));
        let cases = [
            ("5", Ok(Duration::from_secs(300))),
            ("5m", Ok(Duration::from_secs(300))),
            ("90s", Ok(Duration::from_secs(90))),
            ("1h 30m", Ok(Duration::from_secs(5400))),
        ];
        for (raw, want) in cases {
            assert_eq!(parse(raw), want, "{raw}");
        }
        for bad in ["0", "2d", "soon", "-5", ""] {
            let err = parse(bad).unwrap_err();
            assert!(err.starts_with("X must be"), "{bad}: {err}");
        }
    }

    #[test]
    fn ranged_names_the_variable_and_bounds() {
        let parse = ranged::<u32>("FETCH_INTERVAL_MINUTES", 1, 1440);
        assert_eq!(parse("15"), Ok(15));
        assert_eq!(
            parse("0").unwrap_err(),
            "FETCH_INTERVAL_MINUTES must be from 1 to 1440"
        );
        assert!(parse("ten").unwrap_err().contains("whole number"));
    }

    #[test]
    fn no_database_url_error_shows_the_password() {
        for raw in [
            "postgres://app:s3cr#t@db.internal:5432/prices",
            "postgres://app:s3cr/t@db.internal:5432/prices",
            "postgres://app:s3cr@t@db.internal:99999/prices",
            "postgres://app@db.internal:5432/prices?password=s3cr&sslmode=bogus",
        ] {
            let err = database_url(raw).unwrap_err();
            assert!(!err.contains("s3cr"), "{raw}: {err}");
            assert!(err.contains("***"), "{raw}: {err}");
        }
        assert_eq!(
            redact_url("postgres://app:pw@db/x"),
            "postgres://app:***@db/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
    }

    #[test]
    fn api_keys_must_be_header_values() {
        let parse = api_key("COINGECKO_API_KEY");
        assert_eq!(parse(" CG-abc123 "), Ok("CG-abc123".to_owned()));
        assert_eq!(parse(""), Ok(String::new()));
        for bad in ["CG abc", "CG-\u{e9}", "CG-\u{7f}x"] {
            let err = parse(bad).unwrap_err();
            assert!(err.starts_with("COINGECKO_API_KEY"), "{err}");
            assert!(!err.contains("CG"), "{err}");
        }
    }

    #[test]
    fn database_url_rejects_what_is_not_postgres() {
        assert!(database_url(DEFAULT_DATABASE_URL).is_ok());
        assert!(database_url("postgresql://u:p@db:6543/x?sslmode=disable").is_ok());
        assert!(
            database_url("mysql://root@localhost/x")
                .unwrap_err()
                .contains("postgres://")
        );
        assert!(
            database_url("not a url")
                .unwrap_err()
                .starts_with("DATABASE_URL")
        );
        assert!(
            database_url("postgres://h:99999/x")
                .unwrap_err()
                .starts_with("DATABASE_URL")
        );
    }
}
