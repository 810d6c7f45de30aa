//! When the daemon ticks. tokio-cron-scheduler is only a trigger here,
//! always with UTC expressions: each firing sends a [`Fire`] into the
//! daemon's own single-flight loop, which decides what to run. Market hours
//! come from the calendars, never from cron (cron time zones are wrong
//! across daylight-saving changes).
//!
//! Without `--cron` a minute trigger drives everything: a refresh on every
//! minute that is a multiple of `FETCH_INTERVAL_MINUTES` since the epoch
//! (so every daemon agrees on the slots, whatever the interval), and the
//! check for session closes.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use croner::parser::{CronParser, Seconds};
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};

use super::DaemonError;

/// A firing of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    /// The minute trigger, at the minute it fired for.
    Minute(DateTime<Utc>),
    /// The operator's `--cron`, at the second it fired for.
    Cron(DateTime<Utc>),
}

/// A 5-field expression (minute hour day month weekday) gets a leading `0`
/// seconds field; 6 or 7 fields are taken as they are. Checked here so a
/// bad one stops the process at start.
pub fn cron_expression(raw: &str) -> Result<String, DaemonError> {
    let fields = raw.split_whitespace().count();
    let expr = match fields {
        5 => format!("0 {}", raw.trim()),
        6 | 7 => raw.split_whitespace().collect::<Vec<_>>().join(" "),
        _ => {
            return Err(DaemonError::Cron {
                expr: raw.to_owned(),
                reason: format!("{fields} fields; expected 5 (or 6 with seconds)"),
            });
        }
    };
    Job::new(expr.as_str(), |_, _| {}).map_err(|e| DaemonError::Cron {
        expr: raw.to_owned(),
        reason: format!("{e:?}"),
    })?;
    Ok(expr)
}

/// Whether the minute `at` is a refresh slot of an `interval_minutes` grid.
pub fn on_grid(at: DateTime<Utc>, interval_minutes: u32) -> bool {
    let minute = at.timestamp().div_euclid(60);
    minute.rem_euclid(i64::from(interval_minutes.max(1))) == 0
}

/// The instant a trigger fired for: the scheduler wakes a little after (or,
/// rarely, just before) its time, so round to the nearest `unit`.
pub fn fired_for(now: DateTime<Utc>, unit: TimeDelta) -> DateTime<Utc> {
    now.duration_round(unit).unwrap_or(now)
}

/// Starts the triggers; they stop when the returned scheduler is shut down.
pub async fn start(
    cron: Option<&str>,
    fires: mpsc::Sender<Fire>,
) -> Result<JobScheduler, DaemonError> {
    let scheduler = JobScheduler::new().await.map_err(scheduler_error)?;
    let minute = fires.clone();
    // A full channel means a tick is still running: dropping the firing is
    // the single-flight rule (the next one comes soon).
    let job = Job::new("0 * * * * *", move |_, _| {
        let _ = minute.try_send(Fire::Minute(fired_for(Utc::now(), TimeDelta::minutes(1))));
    })
    .map_err(scheduler_error)?;
    scheduler.add(job).await.map_err(scheduler_error)?;
    if let Some(raw) = cron {
        let expr = cron_expression(raw)?;
        let job = Job::new(expr.as_str(), move |_, _| {
            let _ = fires.try_send(Fire::Cron(fired_for(Utc::now(), TimeDelta::seconds(1))));
        })
        .map_err(scheduler_error)?;
        scheduler.add(job).await.map_err(scheduler_error)?;
    }
    scheduler.start().await.map_err(scheduler_error)?;
    Ok(scheduler)
}

/// How far the schedule looks ahead for its longest gap: a week holds every
/// weekday pattern. Fires beyond [`GAP_FIRES`] are not looked at (an
/// every-second expression has no long gap to find).
const GAP_HORIZON: TimeDelta = TimeDelta::days(8);
const GAP_FIRES: usize = 50_000;

/// The longest wait between two refresh ticks from `from` on: the interval,
/// or the longest gap between a cron expression's firings in the next
/// week (a weekday-only cron waits over the weekend). What "no tick for
/// two intervals" is measured against.
pub fn longest_gap(cron: Option<&str>, interval_minutes: u32, from: DateTime<Utc>) -> Duration {
    let interval = Duration::from_secs(u64::from(interval_minutes.max(1)) * 60);
    let Some(expr) = cron.and_then(|raw| cron_expression(raw).ok()) else {
        return interval;
    };
    // Parsed as tokio-cron-scheduler parses it, so the gaps are its gaps.
    let parsed = CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(&expr);
    let Ok(cron) = parsed else {
        return interval;
    };
    // Gaps between firings only: the wait from `from` to the first one is
    // not a gap between two ticks. Whole seconds, as the firings are.
    // (croner's own iterator skips every other second of an every-second
    // expression, so each firing is asked for afresh.)
    let from = from.duration_trunc(TimeDelta::seconds(1)).unwrap_or(from);
    let Ok(mut last) = cron.find_next_occurrence(&from, false) else {
        // An expression that never fires (February 30th): the horizon, so
        // the alert still has a bound.
        return GAP_HORIZON.to_std().unwrap_or(interval);
    };
    let mut longest = TimeDelta::zero();
    for _ in 0..GAP_FIRES {
        let Ok(at) = cron.find_next_occurrence(&last, false) else {
            break;
        };
        longest = longest.max(at - last);
        last = at;
        if at - from > GAP_HORIZON {
            break;
        }
    }
    if longest.is_zero() {
        longest = GAP_HORIZON;
    }
    longest.to_std().unwrap_or(interval)
}

fn scheduler_error(e: tokio_cron_scheduler::JobSchedulerError) -> DaemonError {
    DaemonError::Scheduler(format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(raw: &str) -> DateTime<Utc> {
        raw.parse().unwrap()
    }

    #[test]
    fn cron_accepts_five_or_six_fields_and_refuses_the_rest() {
        assert_eq!(cron_expression("*/15 * * * *").unwrap(), "0 */15 * * * *");
        assert_eq!(cron_expression("*/5 * * * * *").unwrap(), "*/5 * * * * *");
        assert!(cron_expression("* *").is_err());
        assert!(cron_expression("61 * * * *").is_err());
    }

    #[test]
    fn the_grid_is_counted_from_the_epoch() {
        let cases = [
            ("2025-03-10T14:00:00Z", 15, true),
            ("2025-03-10T14:15:00Z", 15, true),
            ("2025-03-10T14:07:00Z", 15, false),
            ("2025-03-10T14:07:00Z", 1, true),
            ("2025-03-10T00:00:00Z", 1440, true),
            ("2025-03-10T12:00:00Z", 1440, false),
            // 7 does not divide an hour: the grid still agrees across daemons.
            ("1970-01-01T00:07:00Z", 7, true),
            ("1970-01-01T01:03:00Z", 7, true),
        ];
        for (at, interval, expected) in cases {
            assert_eq!(on_grid(t(at), interval), expected, "{at} every {interval}");
        }
    }

    #[test]
    fn the_longest_gap_is_the_interval_or_the_crons_longest_wait() {
        // A Friday noon: the weekday cron's longest wait is the weekend.
        let from = t("2025-03-07T12:00:00Z");
        let cases = [
            (None, 15, 15 * 60),
            (None, 1440, 86_400),
            (Some("*/5 * * * *"), 15, 5 * 60),
            (Some("*/10 * * * * *"), 15, 10),
            (Some("* * * * * *"), 15, 1),
            // 14:00..20:55 every 5 minutes on weekdays: Friday 20:55 to Monday 14:00.
            (
                Some("*/5 14-20 * * 1-5"),
                15,
                (2 * 86_400) + (17 * 3600) + (5 * 60),
            ),
            (Some("0 0 30 2 *"), 15, 8 * 86_400),
        ];
        for (cron, interval, secs) in cases {
            assert_eq!(
                longest_gap(cron, interval, from),
                Duration::from_secs(secs),
                "{cron:?} every {interval}"
            );
            // Mid-second, as the daemon asks at start.
            assert_eq!(
                longest_gap(cron, interval, from + TimeDelta::milliseconds(400)),
                Duration::from_secs(secs),
                "{cron:?} every {interval}"
            );
        }
    }

    #[test]
    fn firings_round_to_their_slot() {
        let minute = TimeDelta::minutes(1);
        assert_eq!(
            fired_for(t("2025-03-10T14:15:00.030Z"), minute),
            t("2025-03-10T14:15:00Z")
        );
        assert_eq!(
            fired_for(t("2025-03-10T14:14:59.990Z"), minute),
            t("2025-03-10T14:15:00Z")
        );
    }
}
