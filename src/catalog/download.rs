//! Getting a source's files: the Nasdaq directory over HTTP, CoinGecko and
//! Binance through their providers (rate limits, shared cooldowns), or all
//! of them from `--from-dir`. Every file is read whole, with a size cap,
//! before anything is parsed or written.

use std::collections::HashSet;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::coingecko::{self as crypto, Coin};
use super::settings::CatalogSettings;
use super::{CatalogError, nasdaq};
use crate::db::budget::PgBudget;
use crate::providers::http::{not_sent, snippet};
use crate::providers::{ProviderError, ProviderKind, Providers};
use crate::queue::cooldown::{self, Cooldowns};
use crate::queue::ledger::Ledger;

/// The Nasdaq files are about 1 MB and Binance's exchangeInfo a few; a
/// source file larger than this is not one.
pub const MAX_FILE: usize = 32 * 1024 * 1024;

/// Rate limits waited out per request before the source gives up.
const MAX_RATE_LIMITS: u32 = 8;

#[derive(Debug, Clone)]
pub struct Fetcher {
    pub settings: CatalogSettings,
    http: reqwest::Client,
    providers: Providers,
    cooldowns: Arc<Cooldowns>,
    /// What the providers did, for `provider_state`, written after each call.
    ledger: Arc<Ledger>,
    pool: PgPool,
    retry_base: Duration,
    cancel: CancellationToken,
}

impl Fetcher {
    /// `retry_base` is `RETRY_EXPONENTIAL_BASE`, the first pause after a
    /// rate limit, as the workers use it.
    pub fn new(
        pool: PgPool,
        settings: CatalogSettings,
        providers: Providers,
        retry_base: Duration,
        cancel: CancellationToken,
    ) -> Result<Self, CatalogError> {
        let cooldowns = Arc::new(Cooldowns::new(retry_base));
        providers.share_cooldowns(cooldowns.clone());
        providers.share_budget(Arc::new(PgBudget::new(pool.clone())));
        let http = crate::providers::http::client(settings.timeout).map_err(|e| {
            CatalogError::Download {
                what: "HTTP client".to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            settings,
            http,
            providers,
            cooldowns,
            ledger: Arc::default(),
            pool,
            retry_base,
            cancel,
        })
    }

    /// `nasdaqlisted.txt` and `otherlisted.txt`.
    pub async fn nasdaq(&self) -> Result<(Vec<u8>, Vec<u8>), CatalogError> {
        let listed = self.file(nasdaq::LISTED_FILE).await?;
        let other = self.file(nasdaq::OTHER_FILE).await?;
        Ok((listed, other))
    }

    /// The top coins, largest first, and Binance's USDT bases (`None` when
    /// Binance could not be asked: it is only a provider symbol).
    pub async fn crypto(&self) -> Result<(Vec<Coin>, Option<HashSet<String>>), CatalogError> {
        let top = self.settings.crypto_top;
        let mut coins = Vec::new();
        for page in 1..=crypto::pages(top) {
            let name = crypto::markets_file(page);
            let body = match &self.settings.from_dir {
                Some(dir) => read_file(dir, &name)?,
                None => {
                    let gecko = self.providers.coingecko().clone();
                    self.provider_call(ProviderKind::CoinGecko, || {
                        let gecko = gecko.clone();
                        async move { gecko.markets_page(page, crypto::PER_PAGE).await }
                    })
                    .await?
                }
            };
            let page_coins = crypto::parse_markets(&name, &body)?;
            let last = page_coins.len() < crypto::PER_PAGE as usize;
            coins.extend(page_coins);
            if last {
                break;
            }
        }
        if coins.is_empty() {
            return Err(CatalogError::Malformed {
                file: crypto::markets_file(1),
                reason: "no coins listed".to_owned(),
            });
        }
        let info = match &self.settings.from_dir {
            Some(dir) => read_file(dir, crypto::EXCHANGE_INFO_FILE),
            None => {
                let binance = self.providers.binance().clone();
                self.provider_call(ProviderKind::Binance, || {
                    let binance = binance.clone();
                    async move { binance.exchange_info().await }
                })
                .await
            }
        };
        let bases = match info.and_then(|body| crypto::parse_exchange_info(&body)) {
            Ok(bases) => Some(bases),
            Err(CatalogError::Cancelled) => return Err(CatalogError::Cancelled),
            Err(e) => {
                tracing::warn!(error = %e, "no Binance pairs; binance_symbol is left as it is");
                None
            }
        };
        Ok((coins, bases))
    }

    async fn file(&self, name: &str) -> Result<Vec<u8>, CatalogError> {
        match &self.settings.from_dir {
            Some(dir) => read_file(dir, name),
            None => {
                let url =
                    self.settings
                        .nasdaq_url
                        .join(name)
                        .map_err(|e| CatalogError::Download {
                            what: name.to_owned(),
                            reason: e.to_string(),
                        })?;
                tokio::select! {
                    () = self.cancel.cancelled() => Err(CatalogError::Cancelled),
                    body = get(&self.http, url.as_str(), name) => body,
                }
            }
        }
    }

    /// Calls a provider until it answers, waiting out its cooldowns: the
    /// shared one in `provider_state` (another process's 429 counts too)
    /// and the one a 429 here starts, which is recorded there for everyone.
    async fn provider_call<F, Fut>(
        &self,
        kind: ProviderKind,
        call: F,
    ) -> Result<Vec<u8>, CatalogError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, ProviderError>>,
    {
        let mut refusals = 0;
        loop {
            self.cooldowns
                .merge(cooldown::cooling_providers(&self.pool, None).await?);
            if let Some(left) = self.providers.cooldown_left(kind) {
                tracing::info!(provider = %kind, wait_s = left.as_secs_f64().ceil() as u64,
                    "provider cooling down after a rate limit; catalog waits");
                tokio::select! {
                    () = self.cancel.cancelled() => return Err(CatalogError::Cancelled),
                    () = tokio::time::sleep(left + Duration::from_millis(50)) => continue,
                }
            }
            let answer = tokio::select! {
                () = self.cancel.cancelled() => return Err(CatalogError::Cancelled),
                answer = call() => answer,
            };
            let now = chrono::Utc::now();
            match &answer {
                Ok(_) => self.ledger.success(kind, now),
                Err(e) => self.ledger.failed(kind, now, e),
            }
            self.ledger.flush(&self.pool, &self.providers, None).await?;
            match answer {
                Ok(body) => return Ok(body),
                // Refused here, before sending: the loop waits it out.
                Err(e) if not_sent(&e) => continue,
                Err(ProviderError::RateLimited { retry_after, .. })
                    if refusals < MAX_RATE_LIMITS =>
                {
                    refusals += 1;
                    let recorded = cooldown::record_rate_limit(
                        &self.pool,
                        kind,
                        None,
                        retry_after,
                        self.retry_base,
                    )
                    .await?;
                    self.cooldowns.set(kind, recorded.until);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A whole file over HTTP: a status other than 200 or a body past
/// [`MAX_FILE`] is an error naming the file.
async fn get(http: &reqwest::Client, url: &str, name: &str) -> Result<Vec<u8>, CatalogError> {
    let failed = |reason: String| CatalogError::Download {
        what: name.to_owned(),
        reason,
    };
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| failed(format!("request failed ({e})")))?;
    let status = response.status();
    if response
        .content_length()
        .is_some_and(|n| n > MAX_FILE as u64)
    {
        return Err(failed(format!("larger than {} MiB", MAX_FILE >> 20)));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| failed(format!("download broke off ({e})")))?
    {
        if body.len() + chunk.len() > MAX_FILE {
            return Err(failed(format!("larger than {} MiB", MAX_FILE >> 20)));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(failed(format!(
            "HTTP {}: {}",
            status.as_u16(),
            snippet(&body)
        )));
    }
    Ok(body)
}

fn read_file(dir: &Path, name: &str) -> Result<Vec<u8>, CatalogError> {
    let path = dir.join(name);
    let failed = |reason: String| CatalogError::Download {
        what: path.display().to_string(),
        reason,
    };
    let size = std::fs::metadata(&path)
        .map_err(|e| failed(e.to_string()))?
        .len();
    if size > MAX_FILE as u64 {
        return Err(failed(format!("larger than {} MiB", MAX_FILE >> 20)));
    }
    std::fs::read(&path).map_err(|e| failed(e.to_string()))
}
