//! Market-data providers behind one trait: Yahoo Finance (everything with a
//! ticker), Binance and CoinGecko (crypto).
//!
//! Each provider owns its HTTP client (timeout, browser-like User-Agent), a
//! token-bucket rate limiter and a base URL that settings can point at a
//! local server. Whatever a provider answers is normalized into [`Bar`]s and
//! [`Quote`]s (UTC instants, exact decimals, ISO currencies) and validated
//! ([`validate`]); every failure is one [`ProviderError`] whose
//! [`Disposition`] tells the caller to wait, retry or move down the chain.
//! Invariant: no body, however broken, makes a provider panic.

pub mod bar;
pub mod binance;
pub mod coingecko;
pub mod error;
pub mod http;
pub mod rate_limit;
pub mod settings;
pub mod symbol;
pub mod validate;
pub mod yahoo;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use url::Url;

pub use bar::{Bar, BarFlag, CorporateEvent, History, Interval, Quote, Quotes, RawBar, Rejected};
pub use binance::Binance;
pub use coingecko::CoinGecko;
pub use error::{Disposition, ProviderError};
pub use rate_limit::{Rate, RateLimiter};
pub use yahoo::Yahoo;

use crate::config::Settings;
use crate::db::assets::{Asset, AssetType};
use crate::exchanges;
use error::ErrorContext;
use symbol::Printable;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum ProviderKind {
    Yahoo,
    Binance,
    #[value(name = "coingecko")]
    CoinGecko,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [Self::Yahoo, Self::Binance, Self::CoinGecko];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yahoo => "yahoo",
            Self::Binance => "binance",
            Self::CoinGecko => "coingecko",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| format!("unknown provider {raw:?}"))
    }
}

/// One market-data source. Implementations are cheap to share
/// (`Arc<dyn Provider>`) and safe to call from many tasks at once; the rate
/// limiter paces them all.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    fn kind(&self) -> ProviderKind;

    /// The bar lengths [`Provider::history`] accepts.
    fn intervals(&self) -> &'static [Interval];

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

/// Where and how fast to call one provider.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub base_url: Url,
    pub rate: Rate,
    pub timeout: Duration,
    /// Bodies larger than this are bad data, not read to the end.
    pub max_body: usize,
}

impl EndpointConfig {
    /// A 10 s timeout and a 32 MiB body cap.
    pub fn new(base_url: Url, rate: Rate) -> Self {
        Self {
            base_url,
            rate,
            timeout: Duration::from_secs(10),
            max_body: http::DEFAULT_MAX_BODY,
        }
    }
}

/// The three providers built from settings, and the fallback chains.
#[derive(Debug, Clone)]
pub struct Providers {
    yahoo: Arc<Yahoo>,
    binance: Arc<Binance>,
    coingecko: Arc<CoinGecko>,
    crypto_chain: Vec<ProviderKind>,
    market_chain: Vec<ProviderKind>,
}

impl Providers {
    /// Fails only if an HTTP client cannot be built (no TLS backend).
    pub fn from_settings(settings: &Settings) -> reqwest::Result<Self> {
        Self::new(&settings.providers)
    }

    /// From the provider settings alone (`fetch`, `quote`).
    pub fn new(p: &settings::ProviderSettings) -> reqwest::Result<Self> {
        let config = |url: &Url, rate: Rate| {
            let rate = match p.max_requests_per_minute {
                Some(ceiling) => rate.min(Rate::per_minute(ceiling)),
                None => rate,
            };
            EndpointConfig {
                timeout: p.http_timeout,
                ..EndpointConfig::new(url.clone(), rate)
            }
        };
        let providers = Self {
            yahoo: Arc::new(Yahoo::new(config(&p.yahoo_url, p.yahoo_rate))?),
            binance: Arc::new(Binance::new(
                config(&p.binance_url, p.binance_rate),
                p.binance_weight_limit,
            )?),
            coingecko: Arc::new(CoinGecko::new(
                config(
                    &p.coingecko_url,
                    p.coingecko_rate.unwrap_or(match p.coingecko_key() {
                        Some(_) => settings::COINGECKO_DEMO_RATE,
                        None => settings::COINGECKO_KEYLESS_RATE,
                    }),
                ),
                p.coingecko_key().map(str::to_owned),
                p.coingecko_vs_currency.clone(),
            )?),
            crypto_chain: p.crypto_chain.0.clone(),
            market_chain: p.market_chain.0.clone(),
        };
        for kind in ProviderKind::ALL {
            tracing::debug!(provider = %kind, rate = %providers.rate(kind), "provider ready");
        }
        Ok(providers)
    }

    pub fn get(&self, kind: ProviderKind) -> Arc<dyn Provider> {
        match kind {
            ProviderKind::Yahoo => self.yahoo.clone(),
            ProviderKind::Binance => self.binance.clone(),
            ProviderKind::CoinGecko => self.coingecko.clone(),
        }
    }

    /// Makes `shared` the cooldown authority of every provider's limiter
    /// (the worker's view of `provider_state`).
    pub fn share_cooldowns(&self, shared: Arc<dyn rate_limit::SharedCooldown>) {
        for kind in ProviderKind::ALL {
            self.limiter(kind).share(kind, shared.clone());
        }
    }

    /// Makes every provider's requests also take tokens from `budget`,
    /// shared with every process using the same database.
    pub fn share_budget(&self, budget: Arc<dyn rate_limit::SharedBudget>) {
        for kind in ProviderKind::ALL {
            self.limiter(kind).share_budget(kind, budget.clone());
        }
    }

    /// Requests `kind` was sent and refused since the last call.
    pub fn take_tally(&self, kind: ProviderKind) -> rate_limit::Tally {
        self.limiter(kind).take_tally()
    }

    /// How long `kind` has left to cool down, as this process knows it.
    pub fn cooldown_left(&self, kind: ProviderKind) -> Option<Duration> {
        self.limiter(kind).cooldown_left()
    }

    fn limiter(&self, kind: ProviderKind) -> &RateLimiter {
        match kind {
            ProviderKind::Yahoo => self.yahoo.limiter(),
            ProviderKind::Binance => self.binance.limiter(),
            ProviderKind::CoinGecko => self.coingecko.limiter(),
        }
    }

    /// Binance itself, for its all-symbols ticker.
    pub fn binance(&self) -> &Arc<Binance> {
        &self.binance
    }

    /// CoinGecko itself, for the catalog's `coins/markets` pages.
    pub fn coingecko(&self) -> &Arc<CoinGecko> {
        &self.coingecko
    }

    /// The request budget `kind` runs at (its own rate, capped by
    /// `MAX_REQUESTS_PER_MINUTE`).
    pub fn rate(&self, kind: ProviderKind) -> Rate {
        self.limiter(kind).rate()
    }

    /// Providers to try for an asset type, in order.
    pub fn chain(&self, asset_type: AssetType) -> &[ProviderKind] {
        match asset_type {
            AssetType::Crypto => &self.crypto_chain,
            AssetType::Stock
            | AssetType::Etf
            | AssetType::Commodity
            | AssetType::Forex
            | AssetType::Bond => &self.market_chain,
        }
    }

    /// The chain for `asset` with the symbol each provider knows it by,
    /// leaving out providers that have no symbol for it.
    pub fn candidates(&self, asset: &Asset) -> Vec<(ProviderKind, String)> {
        self.chain(asset.asset_type)
            .iter()
            .filter_map(|&kind| symbol_for(asset, kind).map(|symbol| (kind, symbol)))
            .collect()
    }
}

/// The symbol `kind` knows `asset` by: the catalog's own column when set,
/// else a derivation that holds for the usual cases (Yahoo: the ticker with
/// its exchange's suffix, `VOD.L` for VOD on XLON, none for an unknown
/// exchange; `BTC-USD` for crypto, `EURUSD=X` for FX; Binance: `BTCUSDT` for crypto
/// priced in USD or USDT). CoinGecko ids cannot be derived from tickers.
pub fn symbol_for(asset: &Asset, kind: ProviderKind) -> Option<String> {
    let own = match kind {
        ProviderKind::Yahoo => &asset.yahoo_symbol,
        ProviderKind::Binance => &asset.binance_symbol,
        ProviderKind::CoinGecko => &asset.coingecko_id,
    };
    if let Some(own) = own.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        return Some(own.to_owned());
    }
    let ticker = asset.symbol.trim();
    if ticker.is_empty() {
        return None;
    }
    let currency = asset
        .currency
        .as_deref()
        .unwrap_or("USD")
        .to_ascii_uppercase();
    match (kind, asset.asset_type) {
        (ProviderKind::Yahoo, AssetType::Crypto) if !ticker.contains('-') => {
            Some(format!("{}-{currency}", ticker.to_ascii_uppercase()))
        }
        (ProviderKind::Yahoo, AssetType::Forex) => {
            let pair: String = ticker.chars().filter(char::is_ascii_alphabetic).collect();
            (pair.len() == 6).then(|| format!("{}=X", pair.to_ascii_uppercase()))
        }
        // The listing's own symbol: VOD on XLON is VOD.L, not the US VOD.
        (ProviderKind::Yahoo, _) => exchanges::yahoo_symbol(ticker, &asset.exchange),
        (ProviderKind::Binance, AssetType::Crypto)
            if matches!(currency.as_str(), "USD" | "USDT") =>
        {
            Some(format!("{}USDT", ticker.to_ascii_uppercase()))
        }
        _ => None,
    }
}

/// Validates provider rows into a [`History`] and logs what was left out.
/// A daily answer with two bars on one trading date (in `timezone`, the
/// exchange's zone) is refused whole: it is not a daily series, and
/// storing it would key "daily" bars on raw timestamps.
pub(crate) fn assemble(
    ctx: &ErrorContext,
    interval: Interval,
    currency: Option<String>,
    timezone: Option<String>,
    rows: Vec<RawBar>,
    events: Vec<CorporateEvent>,
    now: DateTime<Utc>,
) -> Result<History, ProviderError> {
    if interval == Interval::D1 {
        let tz = timezone
            .as_deref()
            .and_then(|z| z.parse::<Tz>().ok())
            .unwrap_or(Tz::UTC);
        check_one_bar_per_date(ctx, &rows, tz)?;
    }
    let checked = validate::validate(rows, currency.as_deref(), now);
    for rejected in &checked.rejected {
        tracing::debug!(provider = %ctx.provider, symbol = %Printable(&ctx.symbol), ts = %rejected.ts,
            reason = %rejected.reason, "row rejected");
    }
    if !checked.rejected.is_empty() {
        tracing::warn!(provider = %ctx.provider, symbol = %Printable(&ctx.symbol),
            rejected = checked.rejected.len(), first = %checked.rejected[0].reason,
            "rows rejected by validation");
    }
    let spikes = checked
        .bars
        .iter()
        .filter(|b| b.flags.contains(&BarFlag::Spike))
        .count();
    if spikes > 0 {
        tracing::warn!(provider = %ctx.provider, symbol = %Printable(&ctx.symbol), spikes,
            "close moved more than 50% in one bar; kept and flagged");
    }
    tracing::debug!(provider = %ctx.provider, symbol = %Printable(&ctx.symbol), bars = checked.bars.len(),
        skipped = checked.skipped, "history normalized");
    Ok(History {
        provider: ctx.provider,
        symbol: ctx.symbol.clone(),
        interval,
        currency,
        timezone,
        bars: checked.bars,
        events,
        rejected: checked.rejected,
        skipped: checked.skipped,
    })
}

/// Refuses a daily answer carrying two different bar starts on one date.
/// The same start twice is left to validation (Yahoo repeats the live bar),
/// and rows without a close (skipped anyway) do not count.
fn check_one_bar_per_date(
    ctx: &ErrorContext,
    rows: &[RawBar],
    tz: Tz,
) -> Result<(), ProviderError> {
    let mut starts: Vec<(NaiveDate, DateTime<Utc>)> = rows
        .iter()
        .filter(|r| r.close.is_some() || r.unreadable.is_some())
        .map(|r| (r.ts.with_timezone(&tz).date_naive(), r.ts))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let crowded: Vec<&[(NaiveDate, DateTime<Utc>)]> = starts
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|same_date| same_date.len() > 1)
        .collect();
    let Some(first) = crowded.first() else {
        return Ok(());
    };
    Err(ctx.bad_data(format!(
        "not a daily series: {} dates carry several bars (first: {} with {} bars, at {} and {}); \
         nothing stored",
        crowded.len(),
        first[0].0,
        first.len(),
        first[0].1.format("%H:%M:%SZ"),
        first[1].1.format("%H:%M:%SZ"),
    )))
}

/// Refuses an answer with more rows than `[from, to]` can hold at this
/// interval (a provider's padding of a few days allowed), before anything
/// is built from it: a "daily" body of 189,048 points is bad data, and
/// reading it row by row would cost hundreds of megabytes.
pub(crate) fn check_row_count(
    ctx: &ErrorContext,
    rows: usize,
    from: NaiveDate,
    to: NaiveDate,
    interval: Interval,
) -> Result<(), ProviderError> {
    let limit = max_rows(from, to, interval);
    if rows > limit {
        return Err(ctx.bad_data(format!(
            "{rows} rows for {from}..{to} at {interval}, which holds at most {limit}; \
             refusing the answer"
        )));
    }
    Ok(())
}

/// Most rows an answer for `[from, to]` may carry: twice one per bar
/// length, over the range plus four days of padding, and a few more. Twice,
/// because providers answer a little more than asked (and two bars on one
/// date are caught by [`assemble`]); beyond that, it is another granularity.
pub(crate) fn max_rows(from: NaiveDate, to: NaiveDate, interval: Interval) -> usize {
    let days = (to - from).num_days().max(0) + 1 + ROW_PADDING_DAYS;
    let per_day = (86_400 / interval.length().num_seconds().max(1)).max(1);
    usize::try_from(days.saturating_mul(per_day).saturating_mul(2)).unwrap_or(usize::MAX) + 10
}

/// Days a provider's answer may reach beyond the range asked (Yahoo is
/// asked a day early and two late; crypto venues date in UTC).
const ROW_PADDING_DAYS: i64 = 4;

/// Ends a batch quote request after a failure that stopped a whole batch
/// (a 429, a timeout): `Err` when nothing was answered yet, so the caller
/// sees one clear error; otherwise the quotes in hand are kept and every
/// symbol left unanswered is listed as missing with that error.
pub(crate) fn batch_failure(
    mut out: Quotes,
    unanswered: &[String],
    error: ProviderError,
) -> Result<Quotes, ProviderError> {
    if out.quotes.is_empty() && out.missing.is_empty() {
        return Err(error);
    }
    out.missing
        .extend(unanswered.iter().map(|symbol| error.with_symbol(symbol)));
    Ok(out)
}

/// Refuses, before any request, a symbol a URL would change, an interval
/// the provider does not serve or an inverted range.
pub(crate) fn check_request(
    ctx: &ErrorContext,
    supported: &[Interval],
    from: NaiveDate,
    to: NaiveDate,
    interval: Interval,
) -> Result<(), ProviderError> {
    symbol::check(&ctx.symbol).map_err(|e| ctx.unsupported(e.to_string()))?;
    if !supported.contains(&interval) {
        let names: Vec<&str> = supported.iter().map(|i| i.as_str()).collect();
        return Err(ctx.unsupported(format!(
            "interval {interval} is not offered; use {}",
            names.join(", ")
        )));
    }
    if from > to {
        return Err(ctx.unsupported(format!("the range starts ({from}) after it ends ({to})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(symbol: &str, asset_type: AssetType, currency: Option<&str>) -> Asset {
        Asset {
            id: 1,
            symbol: symbol.to_owned(),
            asset_type,
            exchange: "XNAS".to_owned(),
            currency: currency.map(str::to_owned),
            yahoo_symbol: None,
            binance_symbol: None,
            coingecko_id: None,
            active: true,
        }
    }

    #[test]
    fn symbols_fall_back_sensibly() {
        use AssetType::*;
        use ProviderKind::*;
        let cases = [
            (asset("AAPL", Stock, Some("USD")), Yahoo, Some("AAPL")),
            (asset("AAPL", Stock, Some("USD")), Binance, None),
            (asset("AAPL", Stock, Some("USD")), CoinGecko, None),
            (asset("btc", Crypto, None), Yahoo, Some("BTC-USD")),
            (asset("BTC", Crypto, Some("EUR")), Yahoo, Some("BTC-EUR")),
            (asset("BTC", Crypto, Some("USD")), Binance, Some("BTCUSDT")),
            (asset("BTC", Crypto, Some("EUR")), Binance, None),
            (asset("BTC", Crypto, None), CoinGecko, None),
            (asset("EUR/USD", Forex, None), Yahoo, Some("EURUSD=X")),
            (asset("GC=F", Commodity, None), Yahoo, Some("GC=F")),
        ];
        for (asset, kind, want) in cases {
            assert_eq!(
                symbol_for(&asset, kind).as_deref(),
                want,
                "{} {kind}",
                asset.symbol
            );
        }
        let mut vod = asset("VOD", Stock, Some("GBP"));
        vod.exchange = "XLON".to_owned();
        assert_eq!(symbol_for(&vod, Yahoo).as_deref(), Some("VOD.L"));
        vod.exchange = "NOPE".to_owned();
        assert_eq!(
            symbol_for(&vod, Yahoo),
            None,
            "an unknown MIC is never guessed"
        );
        let mut own = asset("Ocado", Stock, Some("GBP"));
        own.yahoo_symbol = Some("OCDO.L".to_owned());
        own.coingecko_id = Some("  ".to_owned());
        assert_eq!(symbol_for(&own, Yahoo).as_deref(), Some("OCDO.L"));
        assert_eq!(symbol_for(&own, CoinGecko), None);
    }

    fn providers(args: &[&str]) -> Providers {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            settings: Settings,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(
            std::iter::once("pricekeeper").chain(args.iter().copied()),
        )
        .unwrap();
        Providers::from_settings(&cli.settings).unwrap()
    }

    #[test]
    fn rates_default_to_the_design_and_obey_the_ceiling() {
        let p = providers(&[]);
        assert_eq!(p.rate(ProviderKind::Yahoo), Rate::per_hour(2000));
        assert_eq!(p.rate(ProviderKind::Binance), Rate::per_minute(1200));
        // Keyless CoinGecko allows about 10/min (30/min with a Demo key).
        assert_eq!(p.rate(ProviderKind::CoinGecko), Rate::per_minute(10));

        let p = providers(&[
            "--max-requests-per-minute",
            "40",
            "--yahoo-rate",
            "10/min",
            "--coingecko-rate",
            "50/min",
        ]);
        assert_eq!(
            p.rate(ProviderKind::Yahoo),
            Rate::per_minute(10),
            "already below the ceiling"
        );
        assert_eq!(p.rate(ProviderKind::Binance), Rate::per_minute(40));
        assert_eq!(p.rate(ProviderKind::CoinGecko), Rate::per_minute(40));
    }

    #[test]
    fn chains_follow_the_asset_type() {
        let p = providers(&[]);
        use ProviderKind::*;
        assert_eq!(p.chain(AssetType::Crypto), [Binance, CoinGecko, Yahoo]);
        for t in [
            AssetType::Stock,
            AssetType::Etf,
            AssetType::Commodity,
            AssetType::Forex,
            AssetType::Bond,
        ] {
            assert_eq!(p.chain(t), [Yahoo], "{t:?}");
        }
        let p = providers(&["--crypto-chain", "coingecko,yahoo"]);
        assert_eq!(p.chain(AssetType::Crypto), [CoinGecko, Yahoo]);

        let mut btc = asset("BTC", AssetType::Crypto, Some("USD"));
        btc.coingecko_id = Some("bitcoin".to_owned());
        let p = providers(&[]);
        assert_eq!(
            p.candidates(&btc),
            [
                (Binance, "BTCUSDT".to_owned()),
                (CoinGecko, "bitcoin".to_owned()),
                (Yahoo, "BTC-USD".to_owned())
            ]
        );
    }

    #[test]
    fn providers_can_be_shared_with_spawned_tasks() {
        fn shareable<T: Send + Sync + 'static>(_: &T) {}
        let p = providers(&[]);
        shareable(&p);
        let provider: Arc<dyn Provider> = p.get(ProviderKind::Binance);
        let from = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        // async_trait futures are Send: a worker can tokio::spawn them.
        fn send<F: std::future::Future + Send>(_: F) {}
        send(provider.history("BTCUSDT", from, from, Interval::D1));
        send(provider.quotes(&[]));
    }

    #[test]
    fn kinds_round_trip() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>(), Ok(kind));
        }
        assert_eq!("CoinGecko".parse(), Ok(ProviderKind::CoinGecko));
        assert!("kraken".parse::<ProviderKind>().is_err());
    }
}
