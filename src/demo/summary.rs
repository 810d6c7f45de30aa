//! The demo's closing summary, read back from the tables (so it shows what
//! was stored, not what the demo meant to store), and where to look next.

use chrono::NaiveDate;
use sqlx::PgPool;

use super::market::MarketStats;
use super::progress::Snapshot;
use super::script::PORTFOLIOS;

#[derive(Debug, sqlx::FromRow)]
pub struct AssetRow {
    pub symbol: String,
    pub exchange: String,
    pub holders: i32,
    pub bars: i64,
    pub first_bar: Option<NaiveDate>,
    pub last_bar: Option<NaiveDate>,
    pub sources: String,
    pub quote: Option<String>,
    pub quote_currency: Option<String>,
    pub actions: i64,
}

#[derive(Debug, sqlx::FromRow)]
pub struct ValuationRow {
    pub portfolio_id: String,
    pub currency: String,
    pub market_value: String,
    pub cost_basis: String,
}

pub struct Summary {
    pub assets: Vec<AssetRow>,
    pub valuations: Vec<ValuationRow>,
    pub queue: Snapshot,
    pub market: MarketStats,
    pub quotes_written: u64,
}

impl Summary {
    pub async fn read(
        pool: &PgPool,
        market: MarketStats,
        quotes_written: u64,
    ) -> Result<Self, sqlx::Error> {
        Ok(Self {
            assets: sqlx::query_as(include_str!("../../sql/demo_summary_assets.sql"))
                .fetch_all(pool)
                .await?,
            valuations: sqlx::query_as(include_str!("../../sql/demo_summary_valuations.sql"))
                .fetch_all(pool)
                .await?,
            queue: Snapshot::read(pool).await?,
            market,
            quotes_written,
        })
    }

    /// The summary as printed.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line("Tracked assets (holders = portfolios holding it; daily bars stored):".into());
        line(format!(
            "  {:<6} {:<7} {:>7} {:>5}  {:<23}  {:<17} {:>7}  {}",
            "symbol", "exch", "holders", "bars", "history", "served by", "actions", "latest quote"
        ));
        for a in &self.assets {
            let span = match (a.first_bar, a.last_bar) {
                (Some(f), Some(l)) => format!("{f}..{l}"),
                _ => "-".into(),
            };
            let quote = match (&a.quote, &a.quote_currency) {
                (Some(p), c) => format!("{p} {}", c.as_deref().unwrap_or("")),
                _ => "-".into(),
            };
            let sources = if a.sources.is_empty() {
                "-"
            } else {
                &a.sources
            };
            line(format!(
                "  {:<6} {:<7} {:>7} {:>5}  {:<23}  {:<17} {:>7}  {}",
                a.symbol, a.exchange, a.holders, a.bars, span, sources, a.actions, quote
            ));
        }
        let q = &self.queue;
        line(String::new());
        line(format!(
            "Backfill jobs: {} completed, {} failed; {} retries, {} rate limits taken.",
            q.completed, q.failed, q.retries, q.rate_limits
        ));
        let m = &self.market;
        line(format!(
            "Simulated market: {} requests (Yahoo {}, Binance {}, CoinGecko {}); it answered {} with 429 and {} with a 5xx.",
            m.yahoo_requests + m.binance_requests + m.coingecko_requests,
            m.yahoo_requests,
            m.binance_requests,
            m.coingecko_requests,
            m.rate_limited,
            m.server_errors
        ));
        line(format!(
            "Daemon tick: {} live quotes written.",
            self.quotes_written
        ));
        line(String::new());
        line("Valuations (holdings at the latest quotes, cost at the average buy price):".into());
        for v in &self.valuations {
            let name = PORTFOLIOS
                .iter()
                .find(|(_, id)| *id == v.portfolio_id)
                .map_or("?", |(name, _)| name);
            line(format!(
                "  {:<6} {}  {:<4} value {:>12}  cost {:>12}",
                name, v.portfolio_id, v.currency, v.market_value, v.cost_basis
            ));
        }
        out
    }
}
