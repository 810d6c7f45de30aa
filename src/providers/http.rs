//! The HTTP edge shared by the providers: one client per provider (timeout,
//! User-Agent, gzip), its rate limiter and base URL, and the one request
//! path every provider uses ([`Endpoint::call`]): build the URL, wait for
//! the budget, send, read capped ([`reply`]), let the provider's judge read
//! statuses and error bodies, note a rate limit. Provider modules only add
//! what is theirs (Binance's 418 and error codes, Yahoo's `chart.error`,
//! Kraken's errors in 200 bodies, …).

use std::time::Duration;

use reqwest::header::HeaderMap;

use url::Url;

use super::error::{ErrorContext, ProviderError};
use super::kind::ProviderKind;
use super::rate_limit::{Rate, RateLimiter};
use super::symbol::Printable;

mod reply;

use reply::read_reply;
pub use reply::{Reply, classify, history_body_cap, retry_after, snippet, status_only};

/// What every provider but Yahoo is told: who is asking, plainly (Kraken
/// and Coinbase refuse requests without a User-Agent).
pub const OWN_USER_AGENT: &str = concat!(
    "pricekeeper/",
    env!("CARGO_PKG_VERSION"),
    " (price history service; reqwest)"
);

/// Yahoo answers scripts with 429s sooner than browsers.
pub const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// The message of a rate limit this process enforced itself: no request
/// reached the provider, so nothing about the provider is to be recorded.
pub const NOT_SENT: &str = "cooling down after the provider's last rate limit; no request sent";

/// The message of a request not sent because the provider's budget has no
/// token for a long while (a budget counted per day, spent).
pub const BUDGET_SPENT: &str = "the request budget is spent for now; no request sent";

/// Tokens further off than this are not waited for when the budget is
/// counted per day or longer: the job snoozes instead of holding a worker.
const LONG_BUDGET_PATIENCE: Duration = Duration::from_secs(60);

/// Whether `error` is a refusal of ours (a cooldown in force, a spent
/// budget), not the provider's answer.
pub fn not_sent(error: &ProviderError) -> bool {
    matches!(error, ProviderError::RateLimited { message, .. }
        if message == NOT_SENT || message == BUDGET_SPENT)
}

/// A real history body is a few hundred kilobytes; beyond this something is wrong.
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

/// Redirects followed at most; the APIs answer without any.
pub(crate) const MAX_REDIRECTS: usize = 3;

/// A client with the browser-like User-Agent (Yahoo, the catalog's downloads).
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    client_as(timeout, USER_AGENT)
}

/// A client sending `user_agent`, and `Accept-Encoding: gzip` (bodies the
/// server compresses are decoded before the size cap counts them).
pub fn client_as(timeout: Duration, user_agent: &str) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .gzip(true)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .build()
}

/// The User-Agent `kind` is sent: Yahoo's fingerprinting throttles
/// scripts, so it gets a browser's; every other provider is told plainly.
pub fn user_agent(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Yahoo => USER_AGENT,
        _ => OWN_USER_AGENT,
    }
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
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// One request under a provider's base URL: path segments (each
/// percent-encoded), query pairs, extra headers, and a body cap tighter
/// than the endpoint's (`None`: the endpoint's own).
#[derive(Debug, Default)]
pub struct Call<'a> {
    pub path: &'a [&'a str],
    pub query: &'a [(&'a str, String)],
    pub headers: HeaderMap,
    pub max_body: Option<usize>,
}

impl<'a> Call<'a> {
    pub fn new(path: &'a [&'a str], query: &'a [(&'a str, String)]) -> Self {
        Self {
            path,
            query,
            ..Self::default()
        }
    }

    /// The same call with a tighter body cap (`None`: the endpoint's own).
    pub fn at_most(self, max_body: Option<usize>) -> Self {
        Self { max_body, ..self }
    }

    /// The same call with extra headers.
    pub fn with_headers(self, headers: HeaderMap) -> Self {
        Self { headers, ..self }
    }
}

/// One provider's way out: its client, its rate limiter and its base URL.
/// Every request of every provider goes through [`Endpoint::call`] (or,
/// for an answer read whatever its status, [`Endpoint::send`] then
/// [`Endpoint::judged`]).
#[derive(Debug)]
pub struct Endpoint {
    pub kind: ProviderKind,
    client: reqwest::Client,
    pub limiter: RateLimiter,
    /// Behind a lock only so Binance can move to its market-data host
    /// after a 451 ([`Endpoint::rebase`]).
    base_url: std::sync::RwLock<Url>,
    max_body: usize,
    /// How long a request may wait for a token (`None`: as long as it takes).
    patience: Option<Duration>,
}

impl Endpoint {
    pub fn new(kind: ProviderKind, config: &EndpointConfig) -> reqwest::Result<Self> {
        Ok(Self {
            kind,
            client: client_as(config.timeout, user_agent(kind))?,
            limiter: RateLimiter::new(config.rate),
            base_url: std::sync::RwLock::new(config.base_url.clone()),
            max_body: config.max_body,
            patience: (config.rate.per >= Duration::from_secs(86_400))
                .then_some(LONG_BUDGET_PATIENCE),
        })
    }

    fn base(&self) -> std::sync::RwLockReadGuard<'_, Url> {
        self.base_url.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether requests go to `url` now.
    pub fn is_based_at(&self, url: &Url) -> bool {
        *self.base() == *url
    }

    /// Sends later requests to `url` instead of the configured base.
    pub fn rebase(&self, url: Url) {
        *self.base_url.write().unwrap_or_else(|p| p.into_inner()) = url;
    }

    /// The base URL with `segments` appended, each percent-encoded (`^GSPC`,
    /// `GC=F` and ids with slashes stay one segment).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base().clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// The request path every provider uses: builds the URL, sends a GET
    /// once the rate limiter allows it, reads the reply, and lets `judge`
    /// (the provider's reading of statuses and error bodies) say whether
    /// it is a failure; a failure is noted ([`Endpoint::note`]) and
    /// returned. [`status_only`] is the judge of providers whose errors
    /// are all in the status.
    pub async fn call(
        &self,
        ctx: &ErrorContext,
        call: Call<'_>,
        judge: impl FnOnce(&ErrorContext, &Reply) -> Option<ProviderError>,
    ) -> Result<Reply, ProviderError> {
        let mut url = self.url(call.path);
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query);
        }
        let reply = self.send(ctx, url, call.headers, call.max_body).await?;
        self.judged(ctx, reply, judge)
    }

    /// `reply`, or the failure `judge` finds in it, noted.
    pub fn judged(
        &self,
        ctx: &ErrorContext,
        reply: Reply,
        judge: impl FnOnce(&ErrorContext, &Reply) -> Option<ProviderError>,
    ) -> Result<Reply, ProviderError> {
        match judge(ctx, &reply) {
            None => Ok(reply),
            Some(error) => Err(self.note(error)),
        }
    }

    /// Sends a GET to `url` once the rate limiter allows it and reads the
    /// reply, whatever its status. While a provider-ordered cooldown is in
    /// force, nothing is sent. `max_body` may tighten the endpoint's cap: a
    /// history answer is refused once it is larger than its range could
    /// need, before it is parsed.
    pub async fn send(
        &self,
        ctx: &ErrorContext,
        url: Url,
        headers: HeaderMap,
        max_body: Option<usize>,
    ) -> Result<Reply, ProviderError> {
        let max_body = max_body.map_or(self.max_body, |cap| cap.min(self.max_body));
        self.refuse_while_cooling(ctx)?;
        if let Err(wait) = self.limiter.acquire_within(self.patience).await {
            return Err(ctx.rate_limited(Some(wait), BUDGET_SPENT));
        }
        // A 429 may have arrived while this request waited for a token:
        // sending now is what turns Binance's 429 into a 418 ban.
        self.refuse_while_cooling(ctx)?;
        self.limiter.sent();
        tracing::trace!(provider = %self.kind, symbol = %Printable(&ctx.symbol), path = url.path(), "request");
        read_reply(ctx, self.client.get(url).headers(headers), max_body).await
    }

    fn refuse_while_cooling(&self, ctx: &ErrorContext) -> Result<(), ProviderError> {
        match self.limiter.cooldown_left() {
            Some(left) => Err(ctx.rate_limited(Some(left), NOT_SENT)),
            None => Ok(()),
        }
    }

    /// Records what an error tells about the provider (any rate limit
    /// pauses it at once, Retry-After or not) and hands it back.
    fn note(&self, error: ProviderError) -> ProviderError {
        if let ProviderError::RateLimited { retry_after, .. } = &error {
            self.limiter.refused(*retry_after);
        }
        error
    }
}
