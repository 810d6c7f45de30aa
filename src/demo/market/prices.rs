//! Deterministic price series: a seeded random walk per instrument, one
//! step per calendar day, sampled on the instrument's trading sessions.
//! The same symbol gives the same prices on every run and machine (the
//! walk is seeded from the symbol, and `Cargo.lock` pins the generator).
//!
//! Prices are as Yahoo serves them, split-adjusted: a split shows only as
//! its event, and the series stays on one scale. A dividend lowers the
//! adjusted close of every bar before its ex-date by its share of the
//! price, as Yahoo's `adjclose` does.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::wire::Bar;
use crate::calendar::{CalendarId, Calendars};

/// The walk's first day: older requests get no bars, as for a listing
/// that started then.
const FIRST_DAY: NaiveDate = NaiveDate::from_ymd_opt(2015, 1, 1).expect("date");

/// A day's numbers: close and the open/high/low/volume shape around it.
#[derive(Debug, Clone, Copy)]
struct Day {
    close: f64,
    open: f64,
    high: f64,
    low: f64,
    volume: f64,
}

#[derive(Debug)]
pub struct Series {
    calendar: CalendarId,
    days: Vec<Day>,
    /// Ex-date (session open) and amount of the one dividend, if any.
    dividend: Option<(DateTime<Utc>, f64)>,
}

impl Series {
    /// A walk with daily volatility `vol` (0.02 = 2%) through `last`,
    /// scaled so that it closes at `last_price` on `last`: recent prices
    /// stay near today's real ones, whatever the walk did over the years.
    pub fn walk(
        seed_name: &str,
        calendar: CalendarId,
        last_price: f64,
        vol: f64,
        last: NaiveDate,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(fnv(seed_name));
        let start_price = 100.0;
        let mut close = start_price;
        let days = FIRST_DAY
            .iter_days()
            .take_while(|d| *d <= last)
            .map(|_| {
                // A small upward drift, steps of about `vol`.
                let step: f64 = (rng.random::<f64>() + rng.random::<f64>() + rng.random::<f64>()
                    - 1.5)
                    * vol
                    * 2.0;
                let open = close * (1.0 + (rng.random::<f64>() - 0.5) * vol * 0.5);
                close = (close * (1.0 + step + vol * 0.01)).max(start_price * 0.05);
                let spread = 1.0 + rng.random::<f64>() * vol;
                Day {
                    close,
                    open,
                    high: open.max(close) * spread,
                    low: open.min(close) / spread,
                    volume: 1e6 * (0.5 + rng.random::<f64>()),
                }
            })
            .collect::<Vec<Day>>();
        let scale = last_price / days.last().map_or(start_price, |d| d.close);
        let days = days
            .into_iter()
            .map(|d| Day {
                close: d.close * scale,
                open: d.open * scale,
                high: d.high * scale,
                low: d.low * scale,
                volume: d.volume,
            })
            .collect();
        Self {
            calendar,
            days,
            dividend: None,
        }
    }

    pub fn with_dividend(mut self, ex_date: DateTime<Utc>, amount: f64) -> Self {
        self.dividend = Some((ex_date, amount));
        self
    }

    /// Bars of the sessions that opened in `[from, to)` and by `now`.
    pub fn bars(
        &self,
        calendars: &Calendars,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<Bar> {
        let first = from.date_naive().max(FIRST_DAY) - TimeDelta::days(1);
        let last = to.min(now).date_naive() + TimeDelta::days(1);
        calendars
            .sessions(self.calendar, first, last)
            .into_iter()
            .filter(|s| s.open >= from && s.open < to && s.open <= now)
            .filter_map(|s| self.bar(s.date, s.open))
            .collect()
    }

    /// The latest price at `now`: the close of the last session opened by then.
    pub fn price_at(&self, calendars: &Calendars, now: DateTime<Utc>) -> Option<(f64, i64)> {
        let bars = self.bars(
            calendars,
            now - TimeDelta::days(10),
            now + TimeDelta::seconds(1),
            now,
        );
        bars.last().map(|b| (b.close, now.timestamp()))
    }

    fn bar(&self, date: NaiveDate, open_time: DateTime<Utc>) -> Option<Bar> {
        let index = usize::try_from((date - FIRST_DAY).num_days()).ok()?;
        let day = self.days.get(index)?;
        let previous = index
            .checked_sub(1)
            .and_then(|i| self.days.get(i))
            .unwrap_or(day);
        let adj_close = match self.dividend {
            Some((ex, amount)) if open_time < ex => day.close * (1.0 - amount / previous.close),
            _ => day.close,
        };
        Some(Bar {
            open_time: open_time.timestamp(),
            open: round(day.open),
            high: round(day.high),
            low: round(day.low),
            close: round(day.close),
            adj_close: round(adj_close),
            volume: day.volume.round(),
        })
    }
}

/// Rounded to what an exchange quotes: cents above 1, more digits below.
fn round(x: f64) -> f64 {
    let scale = if x >= 1.0 { 100.0 } else { 1e6 };
    (x * scale).round() / scale
}

/// FNV-1a: a seed that is the same on every platform and release.
fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> DateTime<Utc> {
        raw.parse().unwrap()
    }

    #[test]
    fn the_walk_is_deterministic_and_valid() {
        let calendars = Calendars::default();
        let last = "2025-06-30".parse().unwrap();
        let a = Series::walk("AAPL", CalendarId::Xnys, 180.0, 0.02, last);
        let b = Series::walk("AAPL", CalendarId::Xnys, 180.0, 0.02, last);
        let (from, to, now) = (
            at("2025-01-01T00:00:00Z"),
            at("2025-07-01T00:00:00Z"),
            at("2025-07-01T00:00:00Z"),
        );
        let bars = a.bars(&calendars, from, to, now);
        assert_eq!(
            format!("{bars:?}"),
            format!("{:?}", b.bars(&calendars, from, to, now))
        );
        // One bar per NYSE session in the first half of 2025.
        assert_eq!(
            bars.len(),
            calendars
                .sessions(CalendarId::Xnys, from.date_naive(), last)
                .len()
        );
        for bar in &bars {
            assert!(
                bar.low <= bar.open.min(bar.close) && bar.open.max(bar.close) <= bar.high,
                "{bar:?}"
            );
            assert!(bar.low > 0.0 && bar.volume >= 0.0);
        }
    }

    #[test]
    fn a_dividend_lowers_the_adjusted_close_before_its_ex_date() {
        let calendars = Calendars::default();
        let ex = at("2025-03-03T14:30:00Z");
        let series = Series::walk(
            "MSFT",
            CalendarId::Xnys,
            400.0,
            0.01,
            "2025-03-31".parse().unwrap(),
        )
        .with_dividend(ex, 0.83);
        let bars = series.bars(
            &calendars,
            at("2025-02-20T00:00:00Z"),
            at("2025-03-10T00:00:00Z"),
            at("2025-04-01T00:00:00Z"),
        );
        for bar in bars {
            assert_eq!(
                bar.adj_close < bar.close,
                bar.open_time < ex.timestamp(),
                "{bar:?}"
            );
        }
    }
}
