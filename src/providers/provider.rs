//! The one trait every market-data source implements.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::bar::{History, Interval, Quotes};
use super::error::ProviderError;

/// One market-data source. Implementations are cheap to share
/// (`Arc<dyn Provider>`) and safe to call from many tasks at once; the rate
/// limiter paces them all.
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Finished bars whose start falls on a date in `[from, to]` (in the
    /// symbol's exchange time zone; UTC for crypto venues), oldest first.
    /// A still-open bar is left out.
    async fn history(
        &self,
        symbol: &str,
        from: NaiveDate,
        to: NaiveDate,
        interval: Interval,
    ) -> Result<History, ProviderError>;

    /// Current prices for `symbols`, in as few requests as the provider
    /// allows. A symbol that fails alone is listed in [`Quotes::missing`];
    /// an error that stops the whole batch is returned as `Err`.
    async fn quotes(&self, symbols: &[String]) -> Result<Quotes, ProviderError>;
}
