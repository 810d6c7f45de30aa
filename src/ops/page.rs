//! The status page at `/`: one server-rendered HTML page, no script and
//! no external asset, that refreshes itself every 30 seconds. Everything
//! on it is escaped: symbols, provider errors and job messages come from
//! outside.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::actions::{self, JobRow};
use super::health::{QueueReport, queue_report};
use super::server::{DB_WAIT, Shared};
use super::sources::{Source, SourceStatus};

const THROUGHPUT: &str = include_str!("../../sql/ops_throughput.sql");
const CHART_HOURS: i32 = 12;
const RECENT_FAILURES: i64 = 10;
const REFRESH_SECONDS: u32 = 30;

/// An hour of the chart: completed and failed backfills.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hour {
    pub hour: DateTime<Utc>,
    pub completed: i64,
    pub failed: i64,
}

pub struct PageData {
    pub queue: QueueReport,
    pub sources: Vec<Source>,
    pub hours: Vec<Hour>,
    pub failures: Vec<JobRow>,
    pub role: &'static str,
}

async fn gather(state: &Shared) -> Result<PageData, sqlx::Error> {
    let snapshot = super::snapshot::fetch(&state.pool, None).await?;
    let sources = super::sources::fetch(
        &state.pool,
        snapshot.now,
        &state.rates,
        state.thresholds.source_failing_after,
    )
    .await?;
    let hours = sqlx::query_as(THROUGHPUT)
        .bind(CHART_HOURS)
        .fetch_all(&state.pool)
        .await?;
    let failures = actions::list_jobs(&state.pool, &["failed"], None, RECENT_FAILURES)
        .await
        .map_err(|e| match e {
            actions::ActionError::Db(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })?;
    Ok(PageData {
        queue: queue_report(&snapshot, &state.thresholds),
        sources,
        hours,
        failures,
        role: state.role,
    })
}

pub async fn page(State(state): State<Shared>) -> Response {
    let (code, body) = match tokio::time::timeout(DB_WAIT * 2, gather(&state)).await {
        Ok(Ok(data)) => (StatusCode::OK, render(&data)),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "status page: database read failed");
            (StatusCode::SERVICE_UNAVAILABLE, unavailable())
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, unavailable()),
    };
    (
        code,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Text made safe for HTML content and attribute values.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}\
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f0f0f0}.num{text-align:right}.muted{color:#777}\
.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;color:#fff;font-weight:600}\
.ok{background:#2e7d32}.degraded{background:#ef6c00}.failing{background:#c62828}.cooling{background:#1565c0}.unused{background:#888}.unhealthy{background:#ef6c00}.unavailable{background:#6a1b1b}\
.msg{max-width:50em;word-break:break-word}";

pub fn render(d: &PageData) -> String {
    let q = &d.queue;
    let mut h = String::new();
    let status = q.verdict.status.as_str();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>pricekeeper: {status}</title><style>{STYLE}</style></head><body>\
         <h1>pricekeeper <span class=\"badge {status}\" id=\"queue-status\">queue {status}</span></h1>\
         <p class=\"muted\">Checked {} by this {} process; refreshes every {REFRESH_SECONDS} s.</p>",
        q.checked_at.format("%Y-%m-%d %H:%M:%S UTC"),
        escape(d.role),
    );
    if !q.verdict.reasons.is_empty() {
        h.push_str("<ul id=\"reasons\">");
        for r in &q.verdict.reasons {
            let _ = write!(h, "<li>{}</li>", escape(r));
        }
        h.push_str("</ul>");
    }
    queue_section(&mut h, q);
    h.push_str("<h2>Throughput, last 12 hours</h2>");
    h.push_str(&chart(&d.hours));
    sources_section(&mut h, &d.sources);
    daemon_section(&mut h, q);
    failures_section(&mut h, &d.failures);
    h.push_str("</body></html>");
    h
}

fn queue_section(h: &mut String, q: &QueueReport) {
    h.push_str("<h2>Backfill queue</h2><table id=\"queue\"><tr><th>Status</th><th>Jobs</th></tr>");
    for (status, jobs) in &q.jobs {
        let estimated = if q.estimated.contains(status) {
            " (estimate)"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{jobs}{estimated}</td></tr>",
            escape(&status.replace('_', " "))
        );
    }
    let age = |s: Option<f64>| s.map_or("none".to_owned(), seconds);
    let _ = write!(
        h,
        "</table><p>Due now: <b>{}</b>; oldest due waited {}; next retry {}. \
         Last hour: <b>{}</b> completed, <b>{}</b> failed, backfill time avg {} / p95 {}. \
         Outbox: {} unapplied events (oldest {}). Tracked assets: {}.</p>",
        q.due_now,
        age(q.oldest_due_age_seconds),
        q.next_retry_after
            .map_or("none".to_owned(), |t| t.format("%H:%M:%S UTC").to_string()),
        q.last_hour.completed,
        q.last_hour.failed,
        age(q.last_hour.backfill_avg_seconds),
        age(q.last_hour.backfill_p95_seconds),
        q.outbox.unprocessed,
        age(q.outbox.oldest_age_seconds),
        q.tracked_assets,
    );
}

fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1} s")
    } else {
        super::snapshot::seconds_text(std::time::Duration::from_secs_f64(s))
    }
}

/// Completed (green) and failed (red) backfills per hour as bars.
pub fn chart(hours: &[Hour]) -> String {
    const W: usize = 600;
    const H: usize = 140;
    const BASE: usize = 120;
    let max = hours
        .iter()
        .map(|x| x.completed.max(x.failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = W / hours.len().max(1);
    let bar = (slot / 2).saturating_sub(1).max(1);
    let scale = |n: i64| (n as f64 / max as f64 * 100.0).round() as usize;
    let mut s = format!(
        "<svg id=\"throughput\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         role=\"img\" aria-label=\"completed and failed backfills per hour\">\
         <line x1=\"0\" y1=\"{BASE}\" x2=\"{W}\" y2=\"{BASE}\" stroke=\"#999\"/>\
         <text x=\"2\" y=\"12\" font-size=\"11\" fill=\"#555\">max {max}/h</text>"
    );
    for (i, x) in hours.iter().enumerate() {
        let left = i * slot;
        let (c, f) = (scale(x.completed), scale(x.failed));
        let _ = write!(
            s,
            "<rect x=\"{left}\" y=\"{}\" width=\"{bar}\" height=\"{c}\" fill=\"#2e7d32\">\
             <title>{} completed</title></rect>\
             <rect x=\"{}\" y=\"{}\" width=\"{bar}\" height=\"{f}\" fill=\"#c62828\">\
             <title>{} failed</title></rect>\
             <text x=\"{left}\" y=\"{}\" font-size=\"10\" fill=\"#555\">{}</text>",
            BASE - c,
            x.completed,
            left + bar + 1,
            BASE - f,
            x.failed,
            BASE + 14,
            x.hour.format("%H"),
        );
    }
    s.push_str("</svg><p class=\"muted\">Green: completed, red: failed; hours in UTC.</p>");
    s
}

fn sources_section(h: &mut String, sources: &[Source]) {
    h.push_str(
        "<h2>Providers</h2><table id=\"providers\"><tr><th>Provider</th><th>State</th>\
         <th>Cooling until</th><th>Last success</th><th>Last error</th><th>Budget</th></tr>",
    );
    for s in sources {
        let class = s.status.as_str();
        let mut error = match (&s.last_error_at, &s.last_error) {
            (Some(at), Some(m)) if s.status != SourceStatus::Unused => {
                format!("{}: {}", time(at), escape(m))
            }
            _ => "none".to_owned(),
        };
        if let Some(problem) = &s.problem {
            error = format!("<strong>{}</strong><br>{error}", escape(problem));
        }
        let _ = write!(
            h,
            "<tr><td>{}</td><td><span class=\"badge {class}\">{class}</span></td><td>{}</td>\
             <td>{}</td><td class=\"msg\">{error}</td><td>{}</td></tr>",
            escape(&s.provider),
            s.cooling_until
                .as_ref()
                .map_or("not cooling".to_owned(), time),
            s.last_success_at.as_ref().map_or("never".to_owned(), time),
            escape(&s.budget.rate),
        );
    }
    h.push_str("</table>");
}

fn daemon_section(h: &mut String, q: &QueueReport) {
    h.push_str("<h2>Daemon</h2><p id=\"daemon\">");
    match q.daemon.leader {
        Some(leader) => {
            let _ = write!(h, "Leader <code>{leader}</code>");
            if let Some(term) = q.daemon.term {
                let _ = write!(h, " (term {term})");
            }
        }
        None => h.push_str("No daemon holds the leader lease: live prices are not refreshed"),
    }
    match (&q.daemon.last_tick_at, q.daemon.last_tick_age_seconds) {
        (Some(at), Some(age)) => {
            let _ = write!(h, "; last tick {} ({} ago).", time(at), seconds(age));
        }
        _ => h.push_str("; no tick yet."),
    }
    h.push_str("</p>");
}

fn failures_section(h: &mut String, failures: &[JobRow]) {
    h.push_str("<h2>Recent failed jobs</h2>");
    if failures.is_empty() {
        h.push_str("<p id=\"failures\">No failed jobs.</p>");
        return;
    }
    h.push_str(
        "<table id=\"failures\"><tr><th>Job</th><th>Asset</th><th>Range</th><th>Provider</th>\
         <th>When</th><th>Reason</th></tr>",
    );
    for j in failures {
        let _ = write!(
            h,
            "<tr><td class=\"num\">{}</td><td>{} <span class=\"muted\">{}</span></td>\
             <td>{} to {}</td><td>{}</td><td>{}</td><td class=\"msg\">{}</td></tr>",
            j.id,
            escape(&j.symbol),
            escape(&j.exchange),
            j.start_date,
            j.end_date,
            escape(j.provider.as_deref().unwrap_or("none")),
            time(&j.updated_at),
            escape(j.error_message.as_deref().unwrap_or("no reason recorded")),
        );
    }
    h.push_str("</table>");
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn unavailable() -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\"><title>pricekeeper: database unavailable</title>\
         <style>{STYLE}</style></head><body><h1>pricekeeper <span class=\"badge failing\">database unavailable</span></h1>\
         <p>The database did not answer; this page retries every {REFRESH_SECONDS} s.</p></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_control_characters() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>\u{7}"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;\u{fffd}"
        );
    }

    #[test]
    fn chart_draws_a_bar_pair_per_hour_scaled_to_the_busiest() {
        let at = |h: u32| format!("2026-01-05T{h:02}:00:00Z").parse().unwrap();
        let hours = vec![
            Hour {
                hour: at(10),
                completed: 10,
                failed: 0,
            },
            Hour {
                hour: at(11),
                completed: 5,
                failed: 5,
            },
        ];
        let svg = chart(&hours);
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(svg.contains("height=\"100\""), "{svg}");
        assert!(svg.contains("height=\"50\""), "{svg}");
        assert!(svg.contains("max 10/h"));
    }
}
