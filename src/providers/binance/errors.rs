//! Binance's error answers: `{"code": <negative int>, "msg": "…"}` with
//! the status; 418 is an IP ban whose end is in the message.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::providers::bar::from_unix_millis;
use crate::providers::error::{ErrorContext, ProviderError};
use crate::providers::http::{Reply, classify, snippet};

/// Binance's error shapes: `{"code": -1121, "msg": "Invalid symbol."}`
/// (400) is a not-found; 418 is an IP ban (rate limited until the epoch-ms
/// time in `msg` when no Retry-After is given); the rest is shared.
pub(super) fn classify_binance(
    ctx: &ErrorContext,
    reply: &Reply,
    now: DateTime<Utc>,
) -> ProviderError {
    let error: Option<BinanceError> = serde_json::from_slice(&reply.body).ok();
    let msg = error
        .as_ref()
        .and_then(|e| e.msg.clone())
        .unwrap_or_else(|| snippet(&reply.body));
    let code = error.as_ref().and_then(|e| e.code);
    let status = reply.status.as_u16();
    let message = match code {
        Some(code) => format!("HTTP {status} ({code}): {msg}"),
        None => format!("HTTP {status}: {msg}"),
    };
    match (status, code) {
        (418, _) => {
            let wait = reply.retry_after().or_else(|| ban_end(&msg, now));
            ctx.rate_limited(
                wait,
                format!("IP banned for ignoring rate limits; {message}"),
            )
        }
        (429, _) => ctx.rate_limited(reply.retry_after(), message),
        (451, _) => ctx.refused(format!("service unavailable from this location; {message}")),
        (400, Some(-1121 | -1100)) => ctx.not_found(message),
        (400, Some(-1120)) => ctx.unsupported(message),
        _ => {
            let mut e = classify(ctx, reply);
            if let ProviderError::Refused { message: m, .. }
            | ProviderError::NotFound { message: m, .. } = &mut e
            {
                m.clone_from(&message);
            }
            e
        }
    }
}

/// The end of a ban from its message, "IP banned until 1700000000000.".
fn ban_end(msg: &str, now: DateTime<Utc>) -> Option<Duration> {
    let digits: String = msg
        .split("until")
        .nth(1)?
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let until = from_unix_millis(digits.parse().ok()?)?;
    Some((until - now).to_std().unwrap_or(Duration::ZERO))
}

#[derive(Debug, Deserialize)]
struct BinanceError {
    code: Option<i64>,
    msg: Option<String>,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ban_end_is_read_from_the_message() {
        let now = Utc.timestamp_millis_opt(1_700_000_000_000).unwrap();
        let msg = "Way too much request weight used; IP banned until 1700000120000. Please use WebSocket Streams.";
        assert_eq!(ban_end(msg, now), Some(Duration::from_secs(120)));
        assert_eq!(ban_end("banned", now), None);
    }
}
