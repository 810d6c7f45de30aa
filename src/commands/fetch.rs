//! `pricekeeper fetch` and `pricekeeper quote`: ask one provider directly,
//! without a database, and print validated bars or prices as JSON or CSV on
//! stdout. Everything else (rejected rows, flags, events, errors) goes to
//! stderr. Exit codes: 0 ok, 2 usage, 3 not found, 4 rate limited, 1 other.

use std::io::{self, Write};
use std::process::ExitCode;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::providers::error::retry_text;
use crate::providers::settings::ProviderSettings;
use crate::providers::{
    Bar, BarFlag, CorporateEvent, History, Interval, ProviderError, ProviderKind, Providers, Quote,
    Quotes,
};

pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOT_FOUND: u8 = 3;
pub const EXIT_RATE_LIMITED: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Csv,
}

// The usage lines are written out: clap's own lists every option set in
// the environment as if it were required.
#[derive(Debug, Clone, clap::Args)]
#[command(
    override_usage = "pricekeeper fetch <SYMBOL> --provider <PROVIDER> --from <YYYY-MM-DD> [OPTIONS]"
)]
pub struct FetchArgs {
    /// The provider's symbol: AAPL, OCDO.L, GC=F, EURUSD=X, BTC-USD (Yahoo),
    /// BTCUSDT (Binance), bitcoin (a CoinGecko id), XBTUSD (Kraken), BTC-USD
    /// (Coinbase), EURUSD (Frankfurter).
    pub symbol: String,
    /// Which provider to ask.
    #[arg(long, value_enum)]
    pub provider: ProviderKind,
    /// First date, YYYY-MM-DD (the exchange's date; UTC for crypto venues).
    #[arg(long, value_parser = crate::config::date("--from"))]
    pub from: NaiveDate,
    /// Last date, YYYY-MM-DD, inclusive. Default: today (UTC).
    #[arg(long, value_parser = crate::config::date("--to"))]
    pub to: Option<NaiveDate>,
    /// Bar length: 1m, 5m, 15m, 30m, 1h, 1d, 1wk, 1mo (CoinGecko and
    /// Frankfurter: 1d only; Kraken up to 1wk; Coinbase up to 1d, no 30m).
    #[arg(long, default_value = "1d")]
    pub interval: Interval,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    #[command(flatten)]
    pub providers: ProviderSettings,
}

#[derive(Debug, Clone, clap::Args)]
#[command(override_usage = "pricekeeper quote <SYMBOLS>... --provider <PROVIDER> [OPTIONS]")]
pub struct QuoteArgs {
    /// The provider's symbols (CoinGecko: ids; Kraken: XBTUSD; Coinbase:
    /// BTC-USD; Frankfurter: EURUSD).
    #[arg(required = true, num_args = 1..)]
    pub symbols: Vec<String>,
    /// Which provider to ask.
    #[arg(long, value_enum)]
    pub provider: ProviderKind,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    #[command(flatten)]
    pub providers: ProviderSettings,
}

pub async fn fetch(args: FetchArgs) -> ExitCode {
    let to = args.to.unwrap_or_else(|| Utc::now().date_naive());
    if args.from > to {
        eprintln!("error: --from {} is after --to {to}", args.from);
        return ExitCode::from(EXIT_USAGE);
    }
    let providers = match Providers::new(&args.providers) {
        Ok(providers) => providers,
        Err(e) => return fail_setup(&e),
    };
    if let Err(code) = check_enabled(&providers, args.provider) {
        return code;
    }
    let provider = providers.get(args.provider);
    match provider
        .history(&args.symbol, args.from, to, args.interval)
        .await
    {
        Ok(history) => {
            report_history(&mut io::stderr().lock(), &history);
            finish(
                write_bars(&mut io::stdout().lock(), &history.bars, args.format),
                0,
            )
        }
        Err(e) => fail(&e),
    }
}

/// A keyed provider asked for without its key is a usage error (exit 2).
fn check_enabled(providers: &Providers, kind: ProviderKind) -> Result<(), ExitCode> {
    // Only keyed providers can be disabled, and each has its variable.
    let Some(var) = kind.key_var().filter(|_| !providers.enabled(kind)) else {
        return Ok(());
    };
    eprintln!(
        "error: --provider {kind} needs {var}; set it (environment or --{})",
        var.to_ascii_lowercase().replace('_', "-")
    );
    Err(ExitCode::from(EXIT_USAGE))
}

pub async fn quote(args: QuoteArgs) -> ExitCode {
    let mut symbols: Vec<String> = Vec::new();
    for symbol in args.symbols {
        if !symbols.contains(&symbol) {
            symbols.push(symbol);
        }
    }
    let providers = match Providers::new(&args.providers) {
        Ok(providers) => providers,
        Err(e) => return fail_setup(&e),
    };
    if let Err(code) = check_enabled(&providers, args.provider) {
        return code;
    }
    match providers.get(args.provider).quotes(&symbols).await {
        Ok(quotes) => {
            let code = report_missing(&mut io::stderr().lock(), &quotes);
            finish(
                write_quotes(&mut io::stdout().lock(), &quotes.quotes, args.format),
                code,
            )
        }
        Err(e) => fail(&e),
    }
}

/// The exit code for an error: 3 not found, 4 rate limited, 2 for a
/// request the provider cannot serve (a usage error), 1 otherwise.
pub fn exit_code(error: &ProviderError) -> u8 {
    match error {
        ProviderError::NotFound { .. } => EXIT_NOT_FOUND,
        ProviderError::RateLimited { .. } => EXIT_RATE_LIMITED,
        ProviderError::Unsupported { .. } => EXIT_USAGE,
        _ => 1,
    }
}

fn fail(error: &ProviderError) -> ExitCode {
    eprintln!("error: {error}");
    if let ProviderError::RateLimited { retry_after, .. } = error {
        eprintln!("{}", retry_text(retry_after));
    }
    ExitCode::from(exit_code(error))
}

fn fail_setup(error: &reqwest::Error) -> ExitCode {
    eprintln!("error: cannot build an HTTP client: {error}");
    ExitCode::FAILURE
}

pub(crate) fn finish(written: io::Result<()>, code: u8) -> ExitCode {
    match written {
        Ok(()) => ExitCode::from(code),
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Rejected rows, flagged bars, events and a summary, for people.
fn report_history(err: &mut impl Write, history: &History) {
    for rejected in &history.rejected {
        let _ = writeln!(
            err,
            "rejected {}: {}",
            rfc3339(rejected.ts),
            rejected.reason
        );
    }
    for bar in history
        .bars
        .iter()
        .filter(|b| b.flags.contains(&BarFlag::Spike))
    {
        let _ = writeln!(
            err,
            "flagged {}: close moved more than 50% (spike)",
            rfc3339(bar.ts)
        );
    }
    for event in &history.events {
        let _ = match event {
            CorporateEvent::Split { ts, ratio, .. } => {
                writeln!(err, "split {}: {ratio}", rfc3339(*ts))
            }
            CorporateEvent::Dividend {
                ts,
                amount,
                currency,
            } => writeln!(
                err,
                "dividend {}: {amount} {}",
                rfc3339(*ts),
                currency.as_deref().unwrap_or("")
            ),
        };
    }
    let _ = writeln!(
        err,
        "{} {}: {} bars, {} rejected, {} skipped without data",
        history.provider,
        history.symbol,
        history.bars.len(),
        history.rejected.len(),
        history.skipped
    );
}

/// Prints why each missing symbol is missing; returns the exit code the
/// worst of them calls for (rate limited, then other failures, then not found).
fn report_missing(err: &mut impl Write, quotes: &Quotes) -> u8 {
    let mut code = 0;
    for error in &quotes.missing {
        let _ = writeln!(err, "error: {error}");
        code = match (code, exit_code(error)) {
            (EXIT_RATE_LIMITED, _) | (_, EXIT_RATE_LIMITED) => EXIT_RATE_LIMITED,
            (1, _) | (_, 1) => 1,
            (_, other) => other,
        };
    }
    if let Some(wait) = quotes.missing.iter().find_map(|e| match e {
        ProviderError::RateLimited { retry_after, .. } => Some(retry_after),
        _ => None,
    }) {
        let _ = writeln!(err, "{}", retry_text(wait));
    }
    code
}

pub const BAR_COLUMNS: [&str; 8] = [
    "ts",
    "open",
    "high",
    "low",
    "close",
    "adj_close",
    "volume",
    "currency",
];
pub const QUOTE_COLUMNS: [&str; 4] = ["symbol", "ts", "price", "currency"];

pub fn write_bars(out: &mut impl Write, bars: &[Bar], format: Format) -> io::Result<()> {
    let rows = bars.iter().map(|b| {
        vec![
            Cell::Text(Some(rfc3339(b.ts))),
            Cell::Number(b.open),
            Cell::Number(b.high),
            Cell::Number(b.low),
            Cell::Number(Some(b.close)),
            Cell::Number(b.adj_close),
            Cell::Number(b.volume),
            Cell::Text(b.currency.clone()),
        ]
    });
    write_table(out, &BAR_COLUMNS, rows, format)
}

pub fn write_quotes(out: &mut impl Write, quotes: &[Quote], format: Format) -> io::Result<()> {
    let rows = quotes.iter().map(|q| {
        vec![
            Cell::Text(Some(q.symbol.clone())),
            Cell::Text(Some(rfc3339(q.ts))),
            Cell::Number(Some(q.price)),
            Cell::Text(q.currency.clone()),
        ]
    });
    write_table(out, &QUOTE_COLUMNS, rows, format)
}

enum Cell {
    Text(Option<String>),
    Number(Option<Decimal>),
}

impl Cell {
    fn json(&self) -> Value {
        match self {
            Self::Text(text) => text.clone().map_or(Value::Null, Value::String),
            Self::Number(number) => number.map_or(Value::Null, json_number),
        }
    }

    fn csv(&self) -> String {
        match self {
            Self::Text(text) => text.clone().unwrap_or_default(),
            Self::Number(number) => number.map(|d| d.to_string()).unwrap_or_default(),
        }
    }
}

fn write_table(
    out: &mut impl Write,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<Cell>>,
    format: Format,
) -> io::Result<()> {
    match format {
        Format::Json => {
            let rows: Vec<Vec<Cell>> = rows.collect();
            let array: Vec<JsonRow<'_>> = rows
                .iter()
                .map(|cells| JsonRow { columns, cells })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &array)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(&mut *out);
            writer.write_record(columns)?;
            for row in rows {
                writer.write_record(row.iter().map(Cell::csv))?;
            }
            writer.flush()?;
        }
    }
    out.flush()
}

/// One object, its keys in the documented column order.
struct JsonRow<'a> {
    columns: &'a [&'a str],
    cells: &'a [Cell],
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.columns.len()))?;
        for (name, cell) in self.columns.iter().zip(self.cells) {
            map.serialize_entry(name, &cell.json())?;
        }
        map.end()
    }
}

/// A decimal as a JSON number: the f64 nearest its exact decimal text, so
/// `129.04` prints as `129.04`; whole numbers print without a fraction
/// (numbers, never strings, as the contract says).
fn json_number(value: Decimal) -> Value {
    if value.fract().is_zero()
        && let Ok(whole) = i64::try_from(value)
    {
        return Value::from(whole);
    }
    f64::from_str(&value.to_string())
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

pub(crate) fn rfc3339(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn bar() -> Bar {
        Bar {
            ts: Utc.with_ymd_and_hms(2024, 1, 2, 14, 30, 0).unwrap(),
            open: Some(Decimal::from_str("187.15").unwrap()),
            high: Some(Decimal::from_str("188.44").unwrap()),
            low: Some(Decimal::from_str("183.885").unwrap()),
            close: Decimal::from_str("185.64").unwrap(),
            adj_close: None,
            volume: Some(Decimal::from(82_488_700)),
            currency: Some("USD".to_owned()),
            flags: Vec::new(),
        }
    }

    #[test]
    fn json_has_numbers_and_nulls() {
        let mut out = Vec::new();
        write_bars(&mut out, &[bar()], Format::Json).unwrap();
        let parsed: Value = serde_json::from_slice(&out).unwrap();
        let row = &parsed[0];
        assert_eq!(row["ts"], "2024-01-02T14:30:00Z");
        assert_eq!(row["close"].to_string(), "185.64");
        assert_eq!(row["low"].to_string(), "183.885");
        assert_eq!(row["volume"].to_string(), "82488700");
        assert_eq!(row["adj_close"], Value::Null);
        assert_eq!(row["currency"], "USD");
        let text = String::from_utf8(out).unwrap();
        let order: Vec<usize> = BAR_COLUMNS
            .iter()
            .map(|c| text.find(&format!("\"{c}\"")).unwrap())
            .collect();
        assert!(order.is_sorted(), "keys in the documented order: {text}");
    }

    #[test]
    fn csv_has_a_header_and_empty_cells_for_nulls() {
        let mut out = Vec::new();
        write_bars(&mut out, &[bar()], Format::Csv).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "ts,open,high,low,close,adj_close,volume,currency\n\
             2024-01-02T14:30:00Z,187.15,188.44,183.885,185.64,,82488700,USD\n"
        );
    }

    #[test]
    fn missing_quotes_pick_the_worst_exit_code() {
        use crate::providers::error::ErrorContext;
        let ctx = ErrorContext::new(ProviderKind::Yahoo, "X");
        let code = |errors: Vec<ProviderError>| {
            report_missing(
                &mut Vec::new(),
                &Quotes {
                    quotes: Vec::new(),
                    missing: errors,
                },
            )
        };
        assert_eq!(code(vec![]), 0);
        assert_eq!(code(vec![ctx.not_found("x")]), 3);
        assert_eq!(code(vec![ctx.not_found("x"), ctx.transient("x")]), 1);
        assert_eq!(
            code(vec![ctx.rate_limited(None, "x"), ctx.not_found("x")]),
            4
        );
    }
}
