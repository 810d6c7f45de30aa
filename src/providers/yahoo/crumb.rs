//! Yahoo's v7 `finance/quote`: hundreds of symbols per request, but only
//! with a session cookie and a crumb. The cookie comes from any answer of
//! `fc.yahoo.com` (its Set-Cookie is what matters, whatever the status),
//! the crumb from `v1/test/getcrumb` with that cookie. Both are cached; a
//! 401 "Invalid Crumb" refreshes them once. A crumb is accepted only from a
//! 200 whose body is a short token: the body can be "Too Many Requests" or
//! an HTML page. When no crumb can be had, callers fall back to `spark`.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, HeaderValue, SET_COOKIE};
use rust_decimal::Decimal;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::Yahoo;
use crate::providers::bar::Quotes;
use crate::providers::bar::{Quote, decimal_from_f64, from_unix_secs};
use crate::providers::error::{ErrorContext, ProviderError};
use crate::providers::http::{Reply, status_only};
use crate::providers::kind::ProviderKind;

/// Symbols per v7 request (Yahoo answers far longer lists; URLs stay short).
pub const V7_BATCH: usize = 250;

/// After failing to get a crumb, how long to use spark before trying again.
const RETRY_CRUMB_AFTER: Duration = Duration::from_secs(15 * 60);

/// A session: the cookie header to send and the crumb that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crumb {
    pub cookie: HeaderValue,
    pub crumb: String,
}

#[derive(Debug, Default)]
pub struct CrumbCache {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    crumb: Option<Crumb>,
    failed_at: Option<Instant>,
}

impl CrumbCache {
    /// The cached crumb; `None` while a recent attempt to get one failed.
    pub async fn get<F, Fut>(&self, refresh: bool, fetch: F) -> Option<Crumb>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<Crumb>>,
    {
        // Held across the fetch: concurrent callers wait for one attempt.
        let mut state = self.state.lock().await;
        if !refresh {
            if let Some(crumb) = &state.crumb {
                return Some(crumb.clone());
            }
            if state
                .failed_at
                .is_some_and(|at| at.elapsed() < RETRY_CRUMB_AFTER)
            {
                return None;
            }
        }
        state.crumb = fetch().await;
        state.failed_at = state.crumb.is_none().then(Instant::now);
        state.crumb.clone()
    }
}

/// The cookie header for the `Set-Cookie`s of a reply, if it set any.
pub fn cookie_from(headers: &HeaderMap) -> Option<HeaderValue> {
    let pairs: Vec<&str> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|pair| pair.contains('='))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    HeaderValue::from_str(&pairs.join("; ")).ok()
}

/// A crumb from a getcrumb reply: only a 200 with a short token (no
/// spaces, no markup). "Too Many Requests" and HTML pages are not crumbs.
pub fn crumb_from(status: StatusCode, body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let token = status == StatusCode::OK
        && (1..=64).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '{' | '}'));
    token.then(|| text.to_owned())
}

pub fn cookie_headers(crumb: &Crumb) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, crumb.cookie.clone());
    headers
}

/// Where the session cookie comes from: Yahoo's own cookie host for the
/// real API, the configured base itself otherwise (a local test server).
pub fn cookie_url(base: &Url) -> Url {
    match base.host_str() {
        Some(host) if host.ends_with("yahoo.com") => {
            Url::parse("https://fc.yahoo.com/").expect("a valid URL")
        }
        _ => base.clone(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteEnvelope {
    pub quote_response: Option<QuoteResponse>,
}

#[derive(Debug, Deserialize)]
pub struct QuoteResponse {
    #[serde(default)]
    pub result: Option<Vec<V7Quote>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V7Quote {
    pub symbol: Option<String>,
    pub currency: Option<String>,
    pub regular_market_price: Option<f64>,
    pub regular_market_time: Option<i64>,
}

impl V7Quote {
    /// A quote in the major currency unit (`GBp` → GBP), if it has a price and time.
    pub fn to_quote(&self) -> Option<Quote> {
        let (currency, unit) = super::currency(self.currency.as_deref());
        let price = (decimal_from_f64(self.regular_market_price?)? / unit).normalize();
        let symbol = self.symbol.clone()?;
        let ts = from_unix_secs(self.regular_market_time?)?;
        (price > Decimal::ZERO).then_some(Quote {
            symbol,
            price,
            currency,
            ts,
        })
    }
}

impl Yahoo {
    /// Asks v7 for as many of `symbols` as a crumb allows; returns the
    /// symbols left for spark (all of them when no crumb can be had).
    pub(super) async fn quotes_v7(
        &self,
        symbols: &[String],
        out: &mut Quotes,
    ) -> Result<Vec<String>, ProviderError> {
        let mut left = Vec::new();
        let mut crumb = self.crumbs.get(false, || self.fetch_crumb()).await;
        for batch in symbols.chunks(V7_BATCH) {
            let Some(session) = crumb.clone() else {
                left.extend_from_slice(batch);
                continue;
            };
            let ctx = ErrorContext::new(ProviderKind::Yahoo, batch.join(","));
            let mut reply = self.v7(&ctx, &session, batch).await?;
            if reply.status == StatusCode::UNAUTHORIZED {
                // "Invalid Crumb": the session expired. Refresh once.
                crumb = self.crumbs.get(true, || self.fetch_crumb()).await;
                match &crumb {
                    Some(fresh) => reply = self.v7(&ctx, fresh, batch).await?,
                    None => {
                        left.extend_from_slice(batch);
                        continue;
                    }
                }
            }
            let status = reply.status;
            let reply = match self.endpoint.judged(&ctx, reply, status_only) {
                Ok(reply) => reply,
                Err(error @ ProviderError::RateLimited { .. }) => return Err(error),
                Err(error) => {
                    tracing::debug!(provider = "yahoo", error = %error, "v7 quote failed; using spark");
                    if status == StatusCode::UNAUTHORIZED {
                        crumb = None; // Refreshed and still refused: spark for the rest.
                    }
                    left.extend_from_slice(batch);
                    continue;
                }
            };
            let found: Vec<Quote> = match reply.json::<QuoteEnvelope>(&ctx) {
                Ok(envelope) => envelope
                    .quote_response
                    .and_then(|r| r.result)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(V7Quote::to_quote)
                    .collect(),
                Err(e) => {
                    tracing::debug!(provider = "yahoo", error = %e, "v7 quote unreadable; using spark");
                    left.extend_from_slice(batch);
                    continue;
                }
            };
            // A symbol v7 leaves out gets its chance on spark and the chart.
            left.extend(
                batch
                    .iter()
                    .filter(|s| !found.iter().any(|q| &q.symbol == *s))
                    .cloned(),
            );
            out.quotes.extend(found);
        }
        Ok(left)
    }

    async fn v7(
        &self,
        ctx: &ErrorContext,
        session: &Crumb,
        batch: &[String],
    ) -> Result<Reply, ProviderError> {
        let mut url = self.endpoint.url(&["v7", "finance", "quote"]);
        url.query_pairs_mut()
            .append_pair("symbols", &batch.join(","))
            .append_pair("crumb", &session.crumb);
        self.endpoint
            .send(ctx, url, cookie_headers(session), None)
            .await
    }

    /// A fresh cookie and crumb, or `None` (logged) when Yahoo will not give one.
    async fn fetch_crumb(&self) -> Option<Crumb> {
        let ctx = ErrorContext::new(ProviderKind::Yahoo, "crumb");
        let cookie_reply = self
            .endpoint
            .send(
                &ctx,
                cookie_url(&self.endpoint.url(&[])),
                HeaderMap::new(),
                None,
            )
            .await;
        let Some(cookie) = cookie_reply.ok().and_then(|r| cookie_from(&r.headers)) else {
            tracing::info!(
                provider = "yahoo",
                "no session cookie for v7 quotes; using spark"
            );
            return None;
        };
        let mut session = Crumb {
            cookie,
            crumb: String::new(),
        };
        let url = self.endpoint.url(&["v1", "test", "getcrumb"]);
        let reply = self
            .endpoint
            .send(&ctx, url, cookie_headers(&session), None)
            .await
            .ok()?;
        match crumb_from(reply.status, &reply.body) {
            Some(crumb) => {
                session.crumb = crumb;
                Some(session)
            }
            None => {
                tracing::info!(
                    provider = "yahoo",
                    status = reply.status.as_u16(),
                    "Yahoo gave no crumb; using spark for quotes"
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_short_token_from_a_200_is_a_crumb() {
        let cases: [(u16, &str, Option<&str>); 6] = [
            (200, "AbC.dEf/123", Some("AbC.dEf/123")),
            (200, "  q1W2e3R4t5y\n", Some("q1W2e3R4t5y")),
            (200, "Too Many Requests", None),
            (429, "Too Many Requests", None),
            (200, "<html><body>consent</body></html>", None),
            (200, "", None),
        ];
        for (status, body, expected) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                crumb_from(status, body.as_bytes()).as_deref(),
                expected,
                "{status} {body:?}"
            );
        }
    }

    #[test]
    fn cookies_are_taken_from_every_set_cookie() {
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("A3=d=AQAB; Expires=Mon; Domain=.yahoo.com; Secure"),
        );
        headers.append(SET_COOKIE, HeaderValue::from_static("A1=xyz; Path=/"));
        assert_eq!(cookie_from(&headers).unwrap(), "A3=d=AQAB; A1=xyz");
        assert_eq!(cookie_from(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cookie_host_is_yahoos_for_the_real_api() {
        let real = Url::parse("https://query1.finance.yahoo.com").unwrap();
        assert_eq!(cookie_url(&real).as_str(), "https://fc.yahoo.com/");
        let local = Url::parse("http://127.0.0.1:4000").unwrap();
        assert_eq!(cookie_url(&local), local);
    }
}
