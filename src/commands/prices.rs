//! `pricekeeper prices SYMBOL`: the daily bars stored for one asset and
//! its latest quote, from the database, as a table, CSV or JSON. The way
//! to see what the backfills stored without writing SQL.

use std::process::ExitCode;

use chrono::{DateTime, Days, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::status::{EXIT_USAGE, clean, connect_or_report, table};
use crate::config::Settings;
use crate::ops::actions::{self, ActionError, AssetRef};

const BARS: &str = include_str!("../../sql/ops_prices.sql");
/// Exit code when the asset is not in the catalog (as `fetch`).
pub const EXIT_NOT_FOUND: u8 = 3;
/// Most bars printed at once.
const MAX_BARS: i64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct PricesArgs {
    /// The asset's symbol as in the catalog (`AAPL`, `BTC`).
    pub symbol: String,
    /// Exchange (MIC) of the asset, when several list the symbol.
    #[arg(long)]
    pub exchange: Option<String>,
    /// First date (UTC) of the bars shown; default 30 days before --to.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last date (UTC) of the bars shown; default today.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Bar {
    pub ts: DateTime<Utc>,
    pub open: Option<Decimal>,
    pub high: Option<Decimal>,
    pub low: Option<Decimal>,
    pub close: Decimal,
    pub adj_close: Option<Decimal>,
    pub volume: Option<Decimal>,
    pub currency: Option<String>,
    pub source: String,
    pub flags: Vec<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Quote {
    pub price: Decimal,
    pub currency: Option<String>,
    pub quoted_at: DateTime<Utc>,
    pub source: String,
}

pub async fn prices(settings: &Settings, args: PricesArgs) -> ExitCode {
    let to = args.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = args.from.unwrap_or_else(|| to - Days::new(30));
    if from > to {
        eprintln!("error: --from ({from}) is after --to ({to})");
        return ExitCode::from(EXIT_USAGE);
    }
    let Some(pool) = connect_or_report(settings).await else {
        return ExitCode::FAILURE;
    };
    let asset = match actions::find_asset(&pool, &args.symbol, args.exchange.as_deref()).await {
        Ok(asset) => asset,
        Err(e) => return report(e),
    };
    let start = from.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let end = (to + Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let read = async {
        let bars: Vec<Bar> = sqlx::query_as(BARS)
            .bind(asset.id)
            .bind(start)
            .bind(end)
            .bind(MAX_BARS)
            .fetch_all(&pool)
            .await?;
        let quote: Option<Quote> = sqlx::query_as(
            "SELECT price, currency, quoted_at, source FROM asset_quotes WHERE asset_id = $1",
        )
        .bind(asset.id)
        .fetch_optional(&pool)
        .await?;
        Ok::<_, sqlx::Error>((bars, quote))
    };
    let (bars, quote) = match read.await {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: cannot read prices: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "asset": asset, "from": from, "to": to, "quote": quote, "bars": bars,
            }))
            .expect("prices serialize")
        ),
        Format::Csv => print!("{}", csv(&bars)),
        Format::Table => print!("{}", render(&asset, from, to, &bars, quote.as_ref())),
    }
    ExitCode::SUCCESS
}

fn report(e: ActionError) -> ExitCode {
    eprintln!("error: {}", clean(&e.to_string()));
    match e {
        ActionError::NotFound(_) => ExitCode::from(EXIT_NOT_FOUND),
        ActionError::Invalid(_) | ActionError::Ambiguous { .. } => ExitCode::from(EXIT_USAGE),
        ActionError::Db(_) => ExitCode::FAILURE,
    }
}

fn cells(b: &Bar) -> Vec<String> {
    let opt = |d: &Option<Decimal>| d.map_or(String::new(), |d| d.normalize().to_string());
    vec![
        b.ts.date_naive().to_string(),
        opt(&b.open),
        opt(&b.high),
        opt(&b.low),
        b.close.normalize().to_string(),
        opt(&b.adj_close),
        opt(&b.volume),
        b.currency.clone().unwrap_or_default(),
        b.source.clone(),
        b.flags.join(" "),
    ]
}

const HEADERS: [&str; 10] = [
    "date",
    "open",
    "high",
    "low",
    "close",
    "adj_close",
    "volume",
    "currency",
    "source",
    "flags",
];

fn csv(bars: &[Bar]) -> String {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(HEADERS);
    for b in bars {
        let _ = w.write_record(cells(b));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn render(
    asset: &AssetRef,
    from: NaiveDate,
    to: NaiveDate,
    bars: &[Bar],
    quote: Option<&Quote>,
) -> String {
    let mut out = format!(
        "{} on {} ({}{}): {} daily bars from {from} to {to}\n",
        clean(&asset.symbol),
        clean(&asset.exchange),
        asset.asset_type,
        asset
            .currency
            .as_deref()
            .map(|c| format!(", {}", clean(c)))
            .unwrap_or_default(),
        bars.len()
    );
    match quote {
        Some(q) => out.push_str(&format!(
            "Latest quote: {} {} at {} from {}\n",
            q.price.normalize(),
            q.currency.as_deref().map(clean).unwrap_or_default(),
            q.quoted_at.format("%Y-%m-%d %H:%M:%S UTC"),
            q.source
        )),
        None => out.push_str("Latest quote: none stored (the daemon refreshes held assets while their market is open)\n"),
    }
    let headers: Vec<String> = HEADERS.iter().map(|h| h.to_uppercase()).collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = bars.iter().map(cells).collect();
    out.push_str(&table(&headers, &rows));
    out
}
