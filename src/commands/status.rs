//! `pricekeeper status`: the queue, the providers, the tracked assets and
//! the daemon at a glance, read straight from the database (no server),
//! as a terminal table or JSON for scripts. Also the helpers the other
//! database commands (`prices`, `jobs`) share: a read-only connection that
//! never creates a database, and plain-text tables.

use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

use crate::config::Settings;
use crate::ops::Thresholds;
use crate::ops::health::{QueueReport, queue_report};
use crate::ops::snapshot::{self, Health};
use crate::ops::sources::{self, Source};

/// Exit code when the queue is failing.
pub const EXIT_FAILING: u8 = 3;
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    #[command(flatten)]
    pub thresholds: Thresholds,
}

/// A pool on an existing database. Unlike the long-running commands it
/// never creates one: a mistyped DATABASE_URL is reported, not made.
pub async fn connect_existing(settings: &Settings) -> Result<PgPool, sqlx::Error> {
    let options = settings.connect_options();
    // pricekeeper's schema, or public for an installation from before it.
    let schema = crate::db::schema::prepare(&options, settings.db.schema.as_deref())
        .await
        .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
    crate::db::nodelay::pool_options()
        .max_connections(2)
        .acquire_timeout(settings.db.db_connect_timeout.max(Duration::from_secs(1)))
        .connect_with(crate::db::schema::in_schema(&options, &schema))
        .await
}

/// Connects, or reports why not (the URL shown without its password).
pub async fn connect_or_report(settings: &Settings) -> Option<PgPool> {
    match connect_existing(settings).await {
        Ok(pool) => Some(pool),
        Err(e) => {
            eprintln!(
                "error: cannot read the database at {}: {e}",
                crate::config::redact_url(settings.db.url())
            );
            None
        }
    }
}

pub async fn status(settings: &Settings, args: StatusArgs) -> ExitCode {
    let Some(pool) = connect_or_report(settings).await else {
        return ExitCode::FAILURE;
    };
    let read = async {
        let snap = snapshot::fetch(&pool, None).await?;
        let rates = crate::ops::server::rates(settings)
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let sources = sources::fetch(
            &pool,
            Utc::now(),
            &rates,
            args.thresholds.source_failing_after,
        )
        .await?;
        Ok::<_, sqlx::Error>((queue_report(&snap, &args.thresholds), sources))
    };
    let (queue, sources) = match read.await {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: cannot read the status (is the schema migrated?): {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "queue": queue, "sources": sources })
            )
            .expect("status serializes")
        ),
        Format::Table => print!("{}", render(&queue, &sources)),
    }
    match queue.verdict.status {
        Health::Failing => ExitCode::from(EXIT_FAILING),
        _ => ExitCode::SUCCESS,
    }
}

pub fn render(q: &QueueReport, sources: &[Source]) -> String {
    let mut out = String::new();
    let age = |s: Option<f64>| {
        s.map_or("none".to_owned(), |s| {
            snapshot::seconds_text(Duration::from_secs_f64(s))
        })
    };
    out.push_str(&format!(
        "Queue: {} (checked {})\n",
        q.verdict.status.as_str(),
        q.checked_at.format("%Y-%m-%d %H:%M:%S UTC")
    ));
    for reason in &q.verdict.reasons {
        out.push_str(&format!("  ! {}\n", clean(reason)));
    }
    let rows: Vec<Vec<String>> = q
        .jobs
        .iter()
        .map(|(status, n)| {
            let mark = if q.estimated.contains(status) {
                " (estimate)"
            } else {
                ""
            };
            vec![status.clone(), format!("{n}{mark}")]
        })
        .collect();
    out.push_str(&indent(&table(&["STATUS", "JOBS"], &rows)));
    out.push_str(&format!(
        "  due now {}, oldest due waited {}, next retry {}, expired leases {}\n",
        q.due_now,
        age(q.oldest_due_age_seconds),
        q.next_retry_after.map_or("none".to_owned(), |t| t
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string()),
        q.expired_leases
    ));
    out.push_str(&format!(
        "  last hour: {} completed, {} failed; backfill time avg {} / p95 {}\n",
        q.last_hour.completed,
        q.last_hour.failed,
        q.last_hour
            .backfill_avg_seconds
            .map_or("n/a".to_owned(), |s| format!("{s:.1} s")),
        q.last_hour
            .backfill_p95_seconds
            .map_or("n/a".to_owned(), |s| format!("{s:.1} s")),
    ));
    out.push_str(&format!(
        "Outbox: {} unapplied events, oldest {}\n",
        q.outbox.unprocessed,
        age(q.outbox.oldest_age_seconds)
    ));
    out.push_str(&format!("Tracked assets: {}\n", q.tracked_assets));
    out.push_str(&match (q.daemon.leader, q.daemon.term) {
        (Some(leader), Some(term)) => format!("Daemon: leader {leader} (term {term})"),
        _ => "Daemon: none active (live prices are not refreshed)".to_owned(),
    });
    out.push_str(&format!(
        ", last tick {}\n",
        q.daemon
            .last_tick_age_seconds
            .map_or("never".to_owned(), |s| format!("{} ago", age(Some(s))))
    ));
    out.push_str("Providers:\n");
    let rows: Vec<Vec<String>> = sources
        .iter()
        .map(|s| {
            vec![
                s.provider.clone(),
                s.status.as_str().to_owned(),
                s.cooling_until
                    .map_or("-".to_owned(), |t| t.format("%H:%M:%S UTC").to_string()),
                s.last_success_at.map_or("never".to_owned(), |t| {
                    t.format("%Y-%m-%d %H:%M").to_string()
                }),
                s.budget.rate.clone(),
                s.last_error
                    .as_deref()
                    .map_or("-".to_owned(), |e| truncate(&clean(e), 60)),
            ]
        })
        .collect();
    out.push_str(&indent(&table(
        &[
            "PROVIDER",
            "STATE",
            "COOLING UNTIL",
            "LAST SUCCESS",
            "BUDGET",
            "LAST ERROR",
        ],
        &rows,
    )));
    out
}

/// Columns padded to their widest cell, two spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Text from outside (provider errors, symbols) made safe for a terminal:
/// control characters (escape sequences among them) become `?`.
pub fn clean(raw: &str) -> String {
    raw.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub fn truncate(raw: &str, max: usize) -> String {
    if raw.chars().count() <= max {
        raw.to_owned()
    } else {
        format!("{}…", raw.chars().take(max - 1).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_and_text_loses_control_characters() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(t, "A          LONGER\nwide cell  x\ny          z\n");
        assert_eq!(clean("bad\u{1b}[31mred\n"), "bad?[31mred?");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
