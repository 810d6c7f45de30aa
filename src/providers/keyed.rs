//! What the keyed providers (Financial Modeling Prep, Alpha Vantage) share:
//! US daily bars starting at the session open (as Yahoo's do, so both agree
//! on a bar's trading date), a key that is never shown, a refusal without a request when it is not
//! set, and error texts scrubbed of it. Both take the key in the query
//! string, so it is in the URL: URLs are never logged (the request trace
//! names the path only) nor put in errors (see `http::error_text`); the
//! scrub covers a provider echoing it in a body.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::America::New_York;

use crate::calendar;

use super::assemble::assemble;
use super::bar::{History, Interval, RawBar};
use super::error::{ErrorContext, ProviderError};
use super::http::{Call, Endpoint, Reply};

/// An API key. Its `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl ApiKey {
    /// `None` for an absent or empty key (an empty value means unset).
    pub fn new(raw: Option<&str>) -> Option<Self> {
        raw.map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| Self(k.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The key of a client, or the refusal to send anything without one.
fn require<'a>(key: &'a Option<ApiKey>, ctx: &ErrorContext) -> Result<&'a ApiKey, ProviderError> {
    key.as_ref().ok_or_else(|| {
        ctx.refused(format!(
            "{} is not set; this provider needs a key",
            ctx.provider.key_var().unwrap_or_default()
        ))
    })
}

/// A request of a keyed provider: `call` on `endpoint` with the key as the
/// `apikey` parameter (both keyed providers name it so), refused unsent
/// without a key, and the key scrubbed out of any error.
pub async fn call_with_key(
    endpoint: &Endpoint,
    key: &Option<ApiKey>,
    ctx: &ErrorContext,
    call: Call<'_>,
    judge: impl FnOnce(&ErrorContext, &Reply) -> Option<ProviderError>,
) -> Result<Reply, ProviderError> {
    let key = require(key, ctx)?;
    let mut query = call.query.to_vec();
    query.push(("apikey", key.expose().to_owned()));
    let call = Call {
        query: &query,
        ..call
    };
    endpoint
        .call(ctx, call, judge)
        .await
        .map_err(|e| scrub(e, key))
}

/// `error` with every occurrence of the key replaced by `***`.
pub fn scrub(error: ProviderError, key: &ApiKey) -> ProviderError {
    let mut error = error;
    match &mut error {
        ProviderError::RateLimited { message, .. }
        | ProviderError::NotFound { message, .. }
        | ProviderError::Transient { message, .. }
        | ProviderError::BadData { message, .. }
        | ProviderError::Unreadable { message, .. }
        | ProviderError::Refused { message, .. }
        | ProviderError::Unsupported { message, .. } => {
            if message.contains(key.expose()) {
                *message = message.replace(key.expose(), "***");
            }
        }
    }
    error
}

/// 09:30 in New York on `date`: where US daily bars start.
pub fn session_open(date: NaiveDate) -> DateTime<Utc> {
    calendar::at(New_York, date, calendar::xnys::OPEN)
}

/// A US listing's history from its rows: priced in USD, dated in New York.
pub fn assemble_us(
    ctx: &ErrorContext,
    interval: Interval,
    rows: Vec<RawBar>,
) -> Result<History, ProviderError> {
    assemble(
        ctx,
        interval,
        Some("USD".to_owned()),
        Some("America/New_York".to_owned()),
        rows,
        Vec::new(),
        Utc::now(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::kind::ProviderKind;

    #[test]
    fn keys_are_never_shown() {
        let key = ApiKey::new(Some(" s3cret ")).unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        assert_eq!(ApiKey::new(Some("  ")), None);
        let ctx = ErrorContext::new(ProviderKind::Fmp, "AAPL");
        let e = scrub(ctx.refused("HTTP 401: key s3cret is invalid"), &key);
        assert_eq!(
            e.to_string(),
            "fmp AAPL: refused: HTTP 401: key *** is invalid"
        );
        let missing = require(&None, &ctx).unwrap_err();
        assert!(missing.to_string().contains("FMP_API_KEY is not set"));
    }

    #[test]
    fn us_bars_start_at_the_session_open() {
        let winter = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        assert_eq!(
            session_open(winter).to_rfc3339(),
            "2024-01-02T14:30:00+00:00"
        );
        let summer = NaiveDate::from_ymd_opt(2024, 7, 2).unwrap();
        assert_eq!(
            session_open(summer).to_rfc3339(),
            "2024-07-02T13:30:00+00:00"
        );
    }
}
