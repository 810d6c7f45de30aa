//! The one error type of the providers module. Every failure of a provider
//! call is classified here, once, so the queue and the CLI decide what to do
//! from the variant alone: wait (rate limited), retry later (transient), or
//! give up on this provider and try the next one in the chain (the rest).

use std::time::Duration;

use super::kind::ProviderKind;
use super::symbol::Printable;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// HTTP 429 (any provider), Binance 418 (an IP ban), or a limit this
    /// process already knows is in force. `retry_after` is the provider's own
    /// word when it gave one (Retry-After, Binance's ban end), else `None`.
    #[error("{provider} {}: rate limited ({}): {message}", Printable(.symbol), retry_text(.retry_after))]
    RateLimited {
        provider: ProviderKind,
        symbol: String,
        retry_after: Option<Duration>,
        message: String,
    },
    /// Unknown, mistyped or delisted symbol. Permanent for this provider.
    #[error("{provider} {}: not found: {message}", Printable(.symbol))]
    NotFound {
        provider: ProviderKind,
        symbol: String,
        message: String,
    },
    /// Timeouts, connection errors, HTTP 5xx: worth retrying later.
    #[error("{provider} {}: temporary failure: {message}", Printable(.symbol))]
    Transient {
        provider: ProviderKind,
        symbol: String,
        message: String,
    },
    /// A body that cannot be read as the documented shape (garbage, empty,
    /// too large, wrong types).
    #[error("{provider} {}: bad data: {message}", Printable(.symbol))]
    BadData {
        provider: ProviderKind,
        symbol: String,
        message: String,
    },
    /// A success status whose body is not JSON at all: a consent page, a
    /// captive portal, a CDN error page, a body cut short. Usually
    /// something between us and the provider, for a while; if it persists,
    /// it is bad data.
    #[error("{provider} {}: unreadable answer: {message}", Printable(.symbol))]
    Unreadable {
        provider: ProviderKind,
        symbol: String,
        message: String,
    },
    /// The provider refuses to serve us: HTTP 401/403, Binance 451 from a
    /// restricted location, or a 4xx this code does not know. Retrying the
    /// same request will not help; another provider may.
    #[error("{provider} {}: refused: {message}", Printable(.symbol))]
    Refused {
        provider: ProviderKind,
        symbol: String,
        message: String,
    },
    /// The request asks for something the provider does not offer (an
    /// interval, or intraday history further back than it keeps). Found
    /// before any request is sent.
    #[error("{provider} {}: unsupported: {message}", Printable(.symbol))]
    Unsupported {
        provider: ProviderKind,
        symbol: String,
        message: String,
    },
}

/// What a caller should do about an error; the queue maps this to its
/// outcomes in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Snooze without using up an attempt; cool the provider down for
    /// `retry_after` when known, else apply the default backoff.
    RateLimited { retry_after: Option<Duration> },
    /// Retry the same provider later with backoff (uses an attempt).
    Retry,
    /// Permanent for this provider: try the next one in the chain, fail the
    /// job when none is left.
    NextProvider,
    /// Retry with backoff for the job's first attempts, then treat as
    /// [`Disposition::NextProvider`].
    RetryThenNextProvider,
}

impl ProviderError {
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::RateLimited { retry_after, .. } => Disposition::RateLimited {
                retry_after: *retry_after,
            },
            Self::Transient { .. } => Disposition::Retry,
            Self::Unreadable { .. } => Disposition::RetryThenNextProvider,
            Self::NotFound { .. }
            | Self::BadData { .. }
            | Self::Refused { .. }
            | Self::Unsupported { .. } => Disposition::NextProvider,
        }
    }

    pub fn provider(&self) -> ProviderKind {
        match self {
            Self::RateLimited { provider, .. }
            | Self::NotFound { provider, .. }
            | Self::Transient { provider, .. }
            | Self::BadData { provider, .. }
            | Self::Unreadable { provider, .. }
            | Self::Refused { provider, .. }
            | Self::Unsupported { provider, .. } => *provider,
        }
    }

    pub fn symbol(&self) -> &str {
        match self {
            Self::RateLimited { symbol, .. }
            | Self::NotFound { symbol, .. }
            | Self::Transient { symbol, .. }
            | Self::BadData { symbol, .. }
            | Self::Unreadable { symbol, .. }
            | Self::Refused { symbol, .. }
            | Self::Unsupported { symbol, .. } => symbol,
        }
    }

    /// The same error, about another symbol: a batch-level failure (a 429 on
    /// a batch quote request) reported for each symbol it left unanswered.
    pub fn with_symbol(&self, symbol: &str) -> ProviderError {
        let mut copy = self.clone();
        match &mut copy {
            Self::RateLimited { symbol: s, .. }
            | Self::NotFound { symbol: s, .. }
            | Self::Transient { symbol: s, .. }
            | Self::BadData { symbol: s, .. }
            | Self::Unreadable { symbol: s, .. }
            | Self::Refused { symbol: s, .. }
            | Self::Unsupported { symbol: s, .. } => symbol.clone_into(s),
        }
        copy
    }

    /// The provider's requested wait, for rate limits that carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// `retry after 2m` or `no Retry-After given`, as the CLI and logs print it.
pub fn retry_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!(
            "retry after {}",
            humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)))
        ),
        None => "no Retry-After given".to_owned(),
    }
}

/// Builds errors for one provider and one symbol, so call sites stay short.
#[derive(Debug, Clone)]
pub struct ErrorContext {
    pub provider: ProviderKind,
    pub symbol: String,
}

impl ErrorContext {
    pub fn new(provider: ProviderKind, symbol: impl Into<String>) -> Self {
        Self {
            provider,
            symbol: symbol.into(),
        }
    }

    pub fn rate_limited(
        &self,
        retry_after: Option<Duration>,
        message: impl Into<String>,
    ) -> ProviderError {
        ProviderError::RateLimited {
            provider: self.provider,
            symbol: self.symbol.clone(),
            retry_after,
            message: message.into(),
        }
    }

    pub fn not_found(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::NotFound {
            provider: self.provider,
            symbol: self.symbol.clone(),
            message: message.into(),
        }
    }

    pub fn transient(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::Transient {
            provider: self.provider,
            symbol: self.symbol.clone(),
            message: message.into(),
        }
    }

    pub fn bad_data(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::BadData {
            provider: self.provider,
            symbol: self.symbol.clone(),
            message: message.into(),
        }
    }

    pub fn unreadable(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::Unreadable {
            provider: self.provider,
            symbol: self.symbol.clone(),
            message: message.into(),
        }
    }

    pub fn refused(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::Refused {
            provider: self.provider,
            symbol: self.symbol.clone(),
            message: message.into(),
        }
    }

    pub fn unsupported(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::Unsupported {
            provider: self.provider,
            symbol: self.symbol.clone(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_provider_symbol_and_wait() {
        let ctx = ErrorContext::new(ProviderKind::Binance, "BTCUSDT");
        let e = ctx.rate_limited(Some(Duration::from_secs(120)), "HTTP 429");
        assert_eq!(
            e.to_string(),
            "binance BTCUSDT: rate limited (retry after 2m): HTTP 429"
        );
        assert_eq!(
            e.disposition(),
            Disposition::RateLimited {
                retry_after: Some(Duration::from_secs(120))
            }
        );
        let e = ctx.rate_limited(None, "HTTP 429");
        assert!(e.to_string().contains("no Retry-After given"));
        assert_eq!(ctx.transient("x").disposition(), Disposition::Retry);
        for e in [
            ctx.not_found("x"),
            ctx.bad_data("x"),
            ctx.refused("x"),
            ctx.unsupported("x"),
        ] {
            assert_eq!(e.disposition(), Disposition::NextProvider, "{e}");
            assert_eq!(e.symbol(), "BTCUSDT");
            assert_eq!(e.provider(), ProviderKind::Binance);
        }
    }
}
