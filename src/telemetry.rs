//! Logging with `tracing`: human-readable or JSON lines on stderr (stdout is
//! kept for command output such as `fetch`), filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx::postgres::notice=warn,tokio_cron_scheduler=warn")
    });
    // Colour only for a person at a terminal: escape codes in a pipe or a
    // log file are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // try_init: tests and embedders may have installed a subscriber already.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}
