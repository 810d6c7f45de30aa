//! The providers built from settings, and the fallback chain of each asset
//! type.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::alphavantage::AlphaVantage;
use super::binance::Binance;
use super::coinbase::Coinbase;
use super::coingecko::CoinGecko;
use super::fmp::Fmp;
use super::frankfurter::Frankfurter;
use super::http::EndpointConfig;
use super::keyed::ApiKey;
use super::kind::ProviderKind;
use super::kraken::Kraken;
use super::mapping::symbol_for;
use super::provider::Provider;
use super::rate_limit::{self, Rate, RateLimiter};
use super::settings;
use super::yahoo::Yahoo;
use crate::config::Settings;
use crate::db::assets::{Asset, AssetType};

/// The providers built from settings, and the fallback chains.
#[derive(Debug, Clone)]
pub struct Providers {
    yahoo: Arc<Yahoo>,
    binance: Arc<Binance>,
    coingecko: Arc<CoinGecko>,
    kraken: Arc<Kraken>,
    coinbase: Arc<Coinbase>,
    frankfurter: Arc<Frankfurter>,
    fmp: Arc<Fmp>,
    alpha_vantage: Arc<AlphaVantage>,
    crypto_chain: Vec<ProviderKind>,
    market_chain: Vec<ProviderKind>,
    fx_chain: Vec<ProviderKind>,
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
            binance: Arc::new(
                Binance::new(
                    config(&p.binance_url, p.binance_rate),
                    p.binance_weight_limit,
                )?
                .with_data_host(p.binance_data_url.clone()),
            ),
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
            kraken: Arc::new(Kraken::new(config(&p.kraken_url, p.kraken_rate))?),
            coinbase: Arc::new(Coinbase::new(config(&p.coinbase_url, p.coinbase_rate))?),
            frankfurter: Arc::new(Frankfurter::new(config(
                &p.frankfurter_url,
                p.frankfurter_rate,
            ))?),
            fmp: Arc::new(Fmp::new(
                config(&p.fmp_url, p.fmp_rate),
                ApiKey::new(p.fmp_api_key.as_deref()),
            )?),
            alpha_vantage: Arc::new(AlphaVantage::new(
                config(&p.alpha_vantage_url, p.alpha_vantage_rate),
                ApiKey::new(p.alpha_vantage_api_key.as_deref()),
            )?),
            crypto_chain: Vec::new(),
            market_chain: Vec::new(),
            fx_chain: Vec::new(),
        };
        let providers = Self {
            crypto_chain: providers.usable(&p.crypto_chain.0),
            market_chain: providers.usable(&p.market_chain.0),
            fx_chain: providers.usable(&p.fx_chain.0),
            ..providers
        };
        for kind in ProviderKind::ALL {
            tracing::debug!(provider = %kind, rate = %providers.rate(kind), "provider ready");
        }
        Ok(providers)
    }

    /// Whether `kind` can be asked: a keyed provider only with its key.
    pub fn enabled(&self, kind: ProviderKind) -> bool {
        match kind {
            ProviderKind::Fmp => self.fmp.has_key(),
            ProviderKind::AlphaVantage => self.alpha_vantage.has_key(),
            _ => true,
        }
    }

    /// `chain` without the keyed providers whose key is not set (logged).
    fn usable(&self, chain: &[ProviderKind]) -> Vec<ProviderKind> {
        chain
            .iter()
            .copied()
            .filter(|&kind| {
                let enabled = self.enabled(kind);
                if !enabled {
                    tracing::warn!(provider = %kind, key = kind.key_var().unwrap_or_default(),
                        "a chain names a provider whose key is not set; it is left out");
                }
                enabled
            })
            .collect()
    }

    pub fn get(&self, kind: ProviderKind) -> Arc<dyn Provider> {
        match kind {
            ProviderKind::Yahoo => self.yahoo.clone(),
            ProviderKind::Binance => self.binance.clone(),
            ProviderKind::CoinGecko => self.coingecko.clone(),
            ProviderKind::Kraken => self.kraken.clone(),
            ProviderKind::Coinbase => self.coinbase.clone(),
            ProviderKind::Frankfurter => self.frankfurter.clone(),
            ProviderKind::Fmp => self.fmp.clone(),
            ProviderKind::AlphaVantage => self.alpha_vantage.clone(),
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
            ProviderKind::Kraken => self.kraken.limiter(),
            ProviderKind::Coinbase => self.coinbase.limiter(),
            ProviderKind::Frankfurter => self.frankfurter.limiter(),
            ProviderKind::Fmp => self.fmp.limiter(),
            ProviderKind::AlphaVantage => self.alpha_vantage.limiter(),
        }
    }

    /// Why `kind` is unavailable for this deployment, if it is (only
    /// Binance can be: HTTP 451 from both its hosts).
    pub fn unavailable(&self, kind: ProviderKind) -> Option<String> {
        match kind {
            ProviderKind::Binance => self.binance.unavailable().map(str::to_owned),
            _ => None,
        }
    }

    /// Makes `kind` unavailable without asking it, as `provider_state`
    /// recorded it (it survives restarts). Only Binance can be.
    pub fn mark_unavailable(&self, kind: ProviderKind, reason: &str) {
        if kind == ProviderKind::Binance {
            self.binance.mark_unavailable(reason);
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
            AssetType::Forex => &self.fx_chain,
            AssetType::Stock | AssetType::Etf | AssetType::Commodity | AssetType::Bond => {
                &self.market_chain
            }
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

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::providers::bar::Interval;
    use crate::providers::mapping::tests::asset;

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
        assert_eq!(
            p.chain(AssetType::Crypto),
            [Binance, Kraken, Coinbase, CoinGecko, Yahoo]
        );
        assert_eq!(p.chain(AssetType::Forex), [Yahoo, Frankfurter]);
        for t in [
            AssetType::Stock,
            AssetType::Etf,
            AssetType::Commodity,
            AssetType::Bond,
        ] {
            assert_eq!(p.chain(t), [Yahoo], "{t:?}");
        }
        let p = providers(&[
            "--crypto-chain",
            "coingecko,yahoo",
            "--fx-chain",
            "frankfurter",
        ]);
        assert_eq!(p.chain(AssetType::Crypto), [CoinGecko, Yahoo]);
        assert_eq!(p.chain(AssetType::Forex), [Frankfurter]);

        let mut btc = asset("BTC", AssetType::Crypto, Some("USD"));
        btc.coingecko_id = Some("bitcoin".to_owned());
        let p = providers(&[]);
        assert_eq!(
            p.candidates(&btc),
            [
                (Binance, "BTCUSDT".to_owned()),
                (Kraken, "XBTUSD".to_owned()),
                (Coinbase, "BTC-USD".to_owned()),
                (CoinGecko, "bitcoin".to_owned()),
                (Yahoo, "BTC-USD".to_owned())
            ]
        );
        let eurusd = asset("EUR/USD", AssetType::Forex, None);
        assert_eq!(
            p.candidates(&eurusd),
            [
                (Yahoo, "EURUSD=X".to_owned()),
                (Frankfurter, "EURUSD".to_owned())
            ]
        );
    }

    #[test]
    fn keyed_providers_join_a_chain_only_with_their_key() {
        use ProviderKind::*;
        let chain = ["--market-chain", "fmp,yahoo,alphavantage"];
        let p = providers(&chain);
        assert_eq!(p.chain(AssetType::Stock), [Yahoo]);
        assert!(!p.enabled(Fmp) && !p.enabled(AlphaVantage));
        let p = providers(
            &[
                &chain[..],
                &["--fmp-api-key", "k1", "--alpha-vantage-api-key", "k2"],
            ]
            .concat(),
        );
        assert_eq!(p.chain(AssetType::Stock), [Fmp, Yahoo, AlphaVantage]);
        assert_eq!(p.rate(Fmp), "250/d".parse().unwrap());
        assert_eq!(p.rate(AlphaVantage), "25/d".parse().unwrap());
    }

    #[test]
    fn new_sources_have_their_documented_rates() {
        let p = providers(&[]);
        assert_eq!(p.rate(ProviderKind::Kraken), Rate::per_minute(60));
        assert_eq!(
            p.rate(ProviderKind::Coinbase),
            Rate {
                count: 10,
                per: Duration::from_secs(1)
            }
        );
        assert_eq!(p.rate(ProviderKind::Frankfurter), Rate::per_minute(120));
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
}
