//! One-off changes to an exchange's rules, kept as data: the built-in list
//! (`closures.csv`, compiled in) and an operator's file in the same format
//! (`PRICEKEEPER_CALENDAR_CLOSURES`), so a newly announced closure needs no
//! release. A row of the operator's file replaces a built-in row of the same
//! exchange and date.
//!
//! Format (CSV with a header): `exchange,date,change,reason`, where change is
//! `closed`, `regular` (a day the rules close trades full hours after all)
//! or an early close as `HH:MM` in the exchange's own time.

use std::collections::HashMap;
use std::path::Path;

use chrono::{NaiveDate, NaiveTime};

use super::{CalendarError, CalendarId};

const BUILTIN: &str = include_str!("closures.csv");

/// What a one-off row does to its day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Closed,
    Regular,
    EarlyClose(NaiveTime),
}

#[derive(Debug, Clone, Default)]
pub struct Closures {
    by_day: HashMap<(CalendarId, NaiveDate), Change>,
}

#[derive(Debug, serde::Deserialize)]
struct Row {
    exchange: String,
    date: NaiveDate,
    change: String,
    #[allow(dead_code)] // For people reading the file.
    reason: Option<String>,
}

impl Closures {
    pub fn builtin() -> Self {
        let mut closures = Self::default();
        closures
            .add_csv(BUILTIN, "built-in closures")
            .expect("the built-in closures parse (tested)");
        closures
    }

    /// The built-in list with the operator's file laid over it.
    pub fn builtin_and_file(path: Option<&Path>) -> Result<Self, CalendarError> {
        let mut closures = Self::builtin();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|e| CalendarError::ClosuresFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            closures.add_csv(&text, &path.display().to_string())?;
        }
        Ok(closures)
    }

    pub fn get(&self, calendar: CalendarId, date: NaiveDate) -> Option<Change> {
        self.by_day.get(&(calendar, date)).copied()
    }

    pub fn len(&self) -> usize {
        self.by_day.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_day.is_empty()
    }

    fn add_csv(&mut self, text: &str, source: &str) -> Result<(), CalendarError> {
        let bad = |line: u64, reason: String| CalendarError::ClosuresFile {
            path: source.to_owned(),
            reason: format!("line {line}: {reason}"),
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        for record in reader.records() {
            let record =
                record.map_err(|e| bad(e.position().map_or(0, |p| p.line()), e.to_string()))?;
            let line = record.position().map_or(0, |p| p.line());
            let row: Row = record
                .deserialize(None)
                .map_err(|e| bad(line, e.to_string()))?;
            let calendar = CalendarId::for_exchange(&row.exchange)
                .ok_or_else(|| bad(line, format!("no calendar for exchange {:?}", row.exchange)))?;
            let change = parse_change(&row.change).ok_or_else(|| {
                bad(
                    line,
                    format!("change {:?} is not closed, regular or HH:MM", row.change),
                )
            })?;
            self.by_day.insert((calendar, row.date), change);
        }
        Ok(())
    }
}

fn parse_change(raw: &str) -> Option<Change> {
    match raw.to_ascii_lowercase().as_str() {
        "closed" => Some(Change::Closed),
        "regular" => Some(Change::Regular),
        time => NaiveTime::parse_from_str(time, "%H:%M")
            .ok()
            .map(Change::EarlyClose),
    }
}
