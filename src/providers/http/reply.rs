//! What comes back from a provider: the reply read to its end (capped),
//! network failures in words without the URL (it may carry a key), and the
//! status classification and message excerpts every provider shares.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};

use super::MAX_REDIRECTS;
use crate::providers::error::{ErrorContext, ProviderError};

/// A response read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Error answers are tiny: a larger body is not read for one, so a
/// history is never parsed twice.
const ERROR_BODY_MAX: usize = 64 * 1024;

impl Reply {
    /// The error fields `T` of a small JSON body (only they are built), or
    /// None for a large body or one of another shape. For the judges of
    /// providers that answer errors inside a 200 or beside the status.
    pub fn error_fields<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        (self.body.len() <= ERROR_BODY_MAX)
            .then(|| serde_json::from_slice(&self.body).ok())
            .flatten()
    }

    /// Parses the body as JSON of shape `T`. A body that is not JSON at all
    /// (empty, HTML, cut short) is unreadable, often a passing fault of
    /// something in between; JSON of another shape is bad data.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        ctx: &ErrorContext,
    ) -> Result<T, ProviderError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(ctx.unreadable(format!("HTTP {} with an empty body", self.status.as_u16())));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            let message = format!(
                "HTTP {}: unexpected body ({e}): {}",
                self.status.as_u16(),
                snippet(&self.body)
            );
            match e.classify() {
                serde_json::error::Category::Data => ctx.bad_data(message),
                _ => ctx.unreadable(message),
            }
        })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers, Utc::now())
    }
}

/// Sends a request and reads the whole body (at most `max_body` bytes).
/// Network failures and timeouts are transient; status codes are left to
/// the caller, which knows the provider's conventions.
pub(super) async fn read_reply(
    ctx: &ErrorContext,
    request: reqwest::RequestBuilder,
    max_body: usize,
) -> Result<Reply, ProviderError> {
    use crate::ops::metrics::{RequestOutcome, record_request};
    let started = std::time::Instant::now();
    let mut response = request.send().await.map_err(|e| {
        record_request(ctx.provider, RequestOutcome::Network, started.elapsed());
        network_error(ctx, &e)
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    if let Some(length) = response.content_length()
        && length > max_body as u64
    {
        record_request(
            ctx.provider,
            RequestOutcome::of_status(status.as_u16()),
            started.elapsed(),
        );
        return Err(too_large(ctx, status, max_body));
    }
    let body = read_capped(ctx, &mut response, max_body).await;
    let outcome = match &body {
        Ok(_) => RequestOutcome::of_status(status.as_u16()),
        Err(_) => RequestOutcome::Network,
    };
    record_request(ctx.provider, outcome, started.elapsed());
    let body = body?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

async fn read_capped(
    ctx: &ErrorContext,
    response: &mut Response,
    max_body: usize,
) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| network_error(ctx, &e))? {
        if body.len() + chunk.len() > max_body {
            return Err(too_large(ctx, response.status(), max_body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_large(ctx: &ErrorContext, status: StatusCode, max_body: usize) -> ProviderError {
    let limit = if max_body >= 1024 * 1024 {
        format!("{} MiB", max_body / (1024 * 1024))
    } else {
        format!("{} KiB", max_body / 1024)
    };
    ctx.bad_data(format!(
        "HTTP {}: body larger than {limit}",
        status.as_u16()
    ))
}

/// Body bytes an honest history answer of at most `rows` rows can need:
/// room for the envelope (Yahoo's meta, events) and a generous size per row.
pub fn history_body_cap(rows: usize) -> usize {
    const ENVELOPE: usize = 256 * 1024;
    const PER_ROW: usize = 512;
    ENVELOPE.saturating_add(rows.saturating_mul(PER_ROW))
}

fn network_error(ctx: &ErrorContext, e: &reqwest::Error) -> ProviderError {
    if e.is_redirect() {
        // A redirect loop (or a chain this long) is how the provider or a
        // proxy in front of it is set up: retrying only repeats it.
        return ctx.refused(format!("redirected more than {MAX_REDIRECTS} times"));
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the body"
    } else {
        "request failed"
    };
    // The URL is left out: it may carry a key and the message names the symbol.
    ctx.transient(format!("{what} ({})", error_text(e)))
}

/// The error and its causes on one line, without the URL (it may carry a key).
fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = cause.source();
    }
    text
}

/// The judge of a provider whose errors are all in the status: any
/// non-success status is a failure, classified by [`classify`].
pub fn status_only(ctx: &ErrorContext, reply: &Reply) -> Option<ProviderError> {
    (!reply.status.is_success()).then(|| classify(ctx, reply))
}

/// The classification every provider shares, for a non-success status:
/// 429 rate limited, 5xx and 408 transient, 404 not found, 401/403/451
/// refused. Other statuses are refused too: a request the provider rejects
/// will not succeed by repeating it.
pub fn classify(ctx: &ErrorContext, reply: &Reply) -> ProviderError {
    let status = reply.status;
    let message = format!("HTTP {}: {}", status.as_u16(), snippet(&reply.body));
    match status.as_u16() {
        429 => ctx.rate_limited(reply.retry_after(), message),
        408 | 500..=599 => ctx.transient(message),
        404 | 410 => ctx.not_found(message),
        _ => ctx.refused(message),
    }
}

/// `Retry-After` as seconds or as an HTTP date, `None` when absent or
/// unreadable. A date in the past means "now": zero.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = raw.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs.min(1e9)));
    }
    let when = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
    Some((when - now).to_std().unwrap_or(Duration::ZERO))
}

/// A short, single-line excerpt of a body for messages. HTML pages are
/// named, not quoted.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "(empty body)".to_owned();
    }
    let lower: String = trimmed.chars().take(200).collect::<String>().to_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        let title = trimmed
            .split_once("<title>")
            .and_then(|(_, rest)| rest.split_once("</title>"))
            .map(|(title, _)| title.trim().to_owned());
        return match title {
            Some(title) if !title.is_empty() => format!("HTML page \"{}\"", shorten(&title, 80)),
            _ => "HTML page".to_owned(),
        };
    }
    // Control characters escaped: a NUL cannot be stored in a text column
    // (the job's error_message), and CR/LF would forge log lines.
    let one_line = trimmed.split_whitespace().collect::<Vec<_>>().join(" ");
    shorten(&crate::providers::symbol::escaped(&one_line), 200)
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use reqwest::header::HeaderValue;

    use super::*;
    use crate::providers::kind::ProviderKind;

    fn headers(retry: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(retry).unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 26, 0).unwrap();
        let cases = [
            ("120", Some(Duration::from_secs(120))),
            (" 0 ", Some(Duration::ZERO)),
            ("1.5", Some(Duration::from_millis(1500))),
            (
                "Wed, 21 Oct 2015 07:28:00 GMT",
                Some(Duration::from_secs(120)),
            ),
            ("Wed, 21 Oct 2015 07:00:00 GMT", Some(Duration::ZERO)),
            ("soon", None),
            ("-5", None),
        ];
        for (raw, want) in cases {
            assert_eq!(retry_after(&headers(raw), now), want, "{raw}");
        }
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn snippets_are_short_and_name_html() {
        assert_eq!(
            snippet(b"  Edge: Too Many Requests\n"),
            "Edge: Too Many Requests"
        );
        assert_eq!(snippet(b""), "(empty body)");
        assert_eq!(
            snippet(b"<!DOCTYPE html><html><head><title>429 Too Many Requests</title>"),
            "HTML page \"429 Too Many Requests\""
        );
        assert_eq!(snippet(b"<html><body>x</body></html>"), "HTML page");
        assert_eq!(snippet(&[b'x'; 1000]).chars().count(), 201);
        assert_eq!(snippet(&[0xff, 0xfe, b'a']), "\u{fffd}\u{fffd}a");
        assert_eq!(snippet(&[0xff, 0x00, 0xfe, b'{']), "\u{fffd}\\0\u{fffd}{");
    }

    #[test]
    fn statuses_classify() {
        let ctx = ErrorContext::new(ProviderKind::Yahoo, "AAPL");
        let reply = |status: u16, retry: Option<&str>| Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: retry.map(headers).unwrap_or_default(),
            body: b"x".to_vec(),
        };
        use crate::providers::error::Disposition::*;
        let cases = [
            (
                429,
                Some("30"),
                RateLimited {
                    retry_after: Some(Duration::from_secs(30)),
                },
            ),
            (429, None, RateLimited { retry_after: None }),
            (500, None, Retry),
            (503, None, Retry),
            (408, None, Retry),
            (404, None, NextProvider),
            (403, None, NextProvider),
            (451, None, NextProvider),
        ];
        for (status, retry, want) in cases {
            assert_eq!(
                classify(&ctx, &reply(status, retry)).disposition(),
                want,
                "{status}"
            );
        }
    }
}
