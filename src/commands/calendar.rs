//! `pricekeeper calendar`: the sessions the daemon will act on, one row per
//! session (`date,open,close`, instants in RFC 3339 UTC), as CSV or JSON.

use std::io::{self, Write};
use std::process::ExitCode;

use chrono::{Days, NaiveDate, Utc};

use super::fetch::{EXIT_USAGE, Format, finish, rfc3339};
use crate::calendar::{CalendarId, Calendars, Closures, Session};
use crate::config::ClosureSettings;

#[derive(Debug, Clone, clap::Args)]
#[command(
    override_usage = "pricekeeper calendar <EXCHANGE> [--from YYYY-MM-DD] [--to YYYY-MM-DD] [OPTIONS]",
    after_help = "Holidays and early closes come from each exchange's rules, so years \
    beyond the published calendars are computed by rule; one-off closures come from the \
    built-in list plus the file in PRICEKEEPER_CALENDAR_CLOSURES."
)]
pub struct CalendarArgs {
    /// Exchange MIC (XNYS, XNAS, XLON, XETR, XCME, …) or FX / CRYPTO.
    pub exchange: String,
    /// First session date, YYYY-MM-DD. Default: today (UTC).
    #[arg(long, value_parser = crate::config::date("--from"))]
    pub from: Option<NaiveDate>,
    /// Last session date, YYYY-MM-DD, inclusive. Default: four weeks after --from.
    #[arg(long, value_parser = crate::config::date("--to"))]
    pub to: Option<NaiveDate>,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    #[command(flatten)]
    pub closures: ClosureSettings,
}

pub fn calendar(args: CalendarArgs) -> ExitCode {
    let Some(id) = CalendarId::for_exchange(&args.exchange) else {
        eprintln!(
            "error: no calendar for exchange {:?} (known: {})",
            args.exchange,
            CalendarId::KNOWN_EXCHANGES.join(", ")
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let from = args.from.unwrap_or_else(|| Utc::now().date_naive());
    let to = args
        .to
        .unwrap_or_else(|| from.checked_add_days(Days::new(28)).unwrap_or(from));
    if from > to {
        eprintln!("error: --from {from} is after --to {to}");
        return ExitCode::from(EXIT_USAGE);
    }
    if (to - from).num_days() > 366 * 50 {
        eprintln!("error: at most 50 years at a time");
        return ExitCode::from(EXIT_USAGE);
    }
    let closures = match Closures::builtin_and_file(args.closures.calendar_closures.as_deref()) {
        Ok(closures) => closures,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let sessions = Calendars::new(closures).sessions(id, from, to);
    finish(
        write_sessions(&mut io::stdout().lock(), &sessions, args.format),
        0,
    )
}

fn write_sessions(out: &mut impl Write, sessions: &[Session], format: Format) -> io::Result<()> {
    match format {
        Format::Csv => {
            writeln!(out, "date,open,close")?;
            for s in sessions {
                writeln!(out, "{},{},{}", s.date, rfc3339(s.open), rfc3339(s.close))?;
            }
        }
        Format::Json => {
            // Session serializes as {date, open, close}, instants in RFC 3339 UTC.
            serde_json::to_writer_pretty(&mut *out, sessions)?;
            writeln!(out)?;
        }
    }
    out.flush()
}
