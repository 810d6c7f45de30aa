//! Gaps: sessions of the calendar inside an asset's held history with no
//! stored daily bar. A gap nobody has asked for yet is queued as a
//! backfill; a gap a finished backfill left empty (the provider has no bar
//! for those sessions, after the queue's own retries and cool-offs) is
//! recorded in `price_gaps` with the reason, and not queued again.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgConnection;

use crate::calendar::{CalendarId, Calendars, Session};

#[derive(Debug, Default, Serialize)]
pub struct GapReport {
    /// Runs of missing sessions found.
    pub found: usize,
    pub queued: usize,
    pub recorded: usize,
}

/// A run of consecutive missing sessions of one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub asset: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Groups missing (asset, session date) pairs, sorted by asset then date,
/// into runs of sessions that follow each other in `sessions`.
pub fn runs(missing: &[(i64, NaiveDate)], sessions: &[NaiveDate]) -> Vec<Run> {
    let index = |d: &NaiveDate| sessions.binary_search(d).ok();
    let mut runs: Vec<Run> = Vec::new();
    for &(asset, day) in missing {
        if let Some(last) = runs.last_mut()
            && last.asset == asset
            && index(&last.to)
                .zip(index(&day))
                .is_some_and(|(a, b)| b == a + 1)
        {
            last.to = day;
            continue;
        }
        runs.push(Run {
            asset,
            from: day,
            to: day,
        });
    }
    runs
}

/// Scans the assets of `calendar` for gaps up to `session` and acts on them.
pub async fn scan(
    tx: &mut PgConnection,
    calendars: &Calendars,
    calendar: CalendarId,
    session: &Session,
    assets: &[i64],
    max_attempts: i32,
) -> Result<GapReport, sqlx::Error> {
    let mut report = GapReport::default();
    let oldest: Option<NaiveDate> =
        sqlx::query_scalar("SELECT min(history_from) FROM tracked_assets WHERE asset_id = ANY($1)")
            .bind(assets)
            .fetch_one(&mut *tx)
            .await?;
    let Some(oldest) = oldest else {
        return Ok(report);
    };
    let sessions = calendars.sessions(calendar, oldest, session.date);
    let days: Vec<NaiveDate> = sessions.iter().map(|s| s.date).collect();
    let starts: Vec<_> = sessions.iter().map(|s| s.open).collect();
    let missing: Vec<(i64, NaiveDate)> =
        sqlx::query_as(include_str!("../../sql/daemon_missing_sessions.sql"))
            .bind(assets)
            .bind(&days)
            .bind(&starts)
            .bind(calendar.time_zone().name())
            .fetch_all(&mut *tx)
            .await?;
    let runs = runs(&missing, &days);
    report.found = runs.len();
    if runs.is_empty() {
        return Ok(report);
    }
    let ids: Vec<i64> = runs.iter().map(|r| r.asset).collect();
    let froms: Vec<NaiveDate> = runs.iter().map(|r| r.from).collect();
    let tos: Vec<NaiveDate> = runs.iter().map(|r| r.to).collect();
    type Known = (
        i64,
        NaiveDate,
        NaiveDate,
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
    );
    let known: Vec<Known> = sqlx::query_as(include_str!("../../sql/daemon_gap_jobs.sql"))
        .bind(&ids)
        .bind(&froms)
        .bind(&tos)
        .fetch_all(&mut *tx)
        .await?;
    let (mut queue, mut record): (Vec<Run>, Vec<(Run, String)>) = (vec![], vec![]);
    for (asset, from, to, status, error, provider, recorded) in known {
        let run = Run { asset, from, to };
        match status.as_deref() {
            None => queue.push(run),
            Some("completed" | "failed") if !recorded => {
                let by = provider.unwrap_or_else(|| "no provider".to_owned());
                let reason =
                    error.unwrap_or_else(|| format!("{by} served no bar for these sessions"));
                record.push((run, reason));
            }
            _ => {} // Being filled, or already recorded.
        }
    }
    if !queue.is_empty() {
        let q: Vec<i64> = sqlx::query_scalar(include_str!("../../sql/daemon_queue_stretches.sql"))
            .bind(queue.iter().map(|r| r.asset).collect::<Vec<_>>())
            .bind(queue.iter().map(|r| r.from).collect::<Vec<_>>())
            .bind(queue.iter().map(|r| r.to).collect::<Vec<_>>())
            .bind(Vec::<i64>::new())
            .bind(session.date)
            .bind(max_attempts)
            .fetch_all(&mut *tx)
            .await?;
        report.queued = q.len();
    }
    if !record.is_empty() {
        report.recorded = sqlx::query(include_str!("../../sql/daemon_record_gaps.sql"))
            .bind(record.iter().map(|(r, _)| r.asset).collect::<Vec<_>>())
            .bind(record.iter().map(|(r, _)| r.from).collect::<Vec<_>>())
            .bind(record.iter().map(|(r, _)| r.to).collect::<Vec<_>>())
            .bind(
                record
                    .iter()
                    .map(|(_, why)| why.as_str())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(raw: &str) -> NaiveDate {
        raw.parse().unwrap()
    }

    #[test]
    fn missing_sessions_group_into_runs_across_weekends_but_not_across_traded_days() {
        let sessions: Vec<NaiveDate> = [
            "2025-03-06",
            "2025-03-07",
            "2025-03-10",
            "2025-03-11",
            "2025-03-12",
        ]
        .iter()
        .map(|s| d(s))
        .collect();
        let missing = [
            (1, d("2025-03-07")),
            (1, d("2025-03-10")), // Friday and Monday: one run over the weekend.
            (1, d("2025-03-12")), // 03-11 was traded: a new run.
            (2, d("2025-03-06")),
        ];
        assert_eq!(
            runs(&missing, &sessions),
            vec![
                Run {
                    asset: 1,
                    from: d("2025-03-07"),
                    to: d("2025-03-10")
                },
                Run {
                    asset: 1,
                    from: d("2025-03-12"),
                    to: d("2025-03-12")
                },
                Run {
                    asset: 2,
                    from: d("2025-03-06"),
                    to: d("2025-03-06")
                },
            ]
        );
    }
}
