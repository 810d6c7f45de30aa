//! Exchange calendars: when each market trades, as pure functions of
//! (exchange, instant). No clock lives here; callers pass the instant.
//!
//! A session is labelled by its trading date and runs `[open, close)` in UTC,
//! computed from the exchange's own wall-clock hours and IANA time zone, so
//! daylight-saving changes (which differ between the US and Europe for a few
//! weeks a year) come out right. Holidays follow each exchange's rules for
//! any year; one-off closures and moved holidays are data ([`closures`]).
//! Assets map to a calendar by their `exchange` MIC; an exchange with no
//! calendar is `None`, never "always open".

pub mod closures;
mod dates;
mod xetr;
mod xlon;
pub(crate) mod xnys;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

pub use closures::{Change, Closures};
use dates::{is_weekend, plus_days};

#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("calendar closures {path}: {reason}")]
    ClosuresFile { path: String, reason: String },
    #[error("no calendar for exchange {0:?} (known: {known})", known = CalendarId::KNOWN_EXCHANGES.join(", "))]
    UnknownExchange(String),
}

/// One trading calendar; several MICs may share one (Nasdaq keeps NYSE days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum CalendarId {
    /// NYSE and Nasdaq: 09:30–16:00 New York.
    Xnys,
    /// London Stock Exchange: 08:00–16:30 London.
    Xlon,
    /// Xetra: 09:00–17:30 Berlin.
    Xetr,
    /// CME Globex commodities: Sunday 17:00 to Friday 16:00 Chicago, with a
    /// daily break 16:00–17:00. Exchange holidays are not modelled.
    Cme,
    /// Spot FX: 24/5, Sunday 17:00 to Friday 17:00 New York.
    Fx,
    /// Crypto: 24/7, one session per UTC day.
    Crypto,
}

impl CalendarId {
    /// Every exchange code with a calendar, and the calendar it uses.
    const EXCHANGES: [(&'static str, CalendarId); 13] = [
        ("XNYS", Self::Xnys),
        ("XNAS", Self::Xnys),
        ("XASE", Self::Xnys),
        ("ARCX", Self::Xnys),
        ("BATS", Self::Xnys),
        ("IEXG", Self::Xnys),
        ("XLON", Self::Xlon),
        ("XETR", Self::Xetr),
        ("XCME", Self::Cme),
        ("XCBT", Self::Cme),
        ("XNYM", Self::Cme),
        ("FX", Self::Fx),
        ("CRYPTO", Self::Crypto),
    ];
    pub const KNOWN_EXCHANGES: [&'static str; 14] = [
        "XNYS", "XNAS", "XASE", "ARCX", "BATS", "IEXG", "XLON", "XETR", "XCME", "XCBT", "XNYM",
        "XCEC", "FX", "CRYPTO",
    ];

    pub fn for_exchange(exchange: &str) -> Option<Self> {
        let exchange = exchange.trim().to_ascii_uppercase();
        if exchange == "XCEC" {
            return Some(Self::Cme); // COMEX, on Globex hours like the rest of CME Group.
        }
        Self::EXCHANGES
            .iter()
            .find(|(mic, _)| *mic == exchange)
            .map(|(_, id)| *id)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Xnys => "XNYS",
            Self::Xlon => "XLON",
            Self::Xetr => "XETR",
            Self::Cme => "XCME",
            Self::Fx => "FX",
            Self::Crypto => "CRYPTO",
        }
    }

    pub fn time_zone(self) -> Tz {
        match self {
            Self::Xnys | Self::Fx => chrono_tz::America::New_York,
            Self::Xlon => chrono_tz::Europe::London,
            Self::Xetr => chrono_tz::Europe::Berlin,
            Self::Cme => chrono_tz::America::Chicago,
            Self::Crypto => chrono_tz::UTC,
        }
    }
}

impl fmt::Display for CalendarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CalendarId {
    type Err = CalendarError;

    fn from_str(raw: &str) -> Result<Self, CalendarError> {
        Self::for_exchange(raw).ok_or_else(|| CalendarError::UnknownExchange(raw.to_owned()))
    }
}

/// What an exchange's rules make of one weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayRule {
    Regular,
    Holiday,
    EarlyClose(NaiveTime),
}

/// One trading session: `[open, close)`, labelled by its trading date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Session {
    pub date: NaiveDate,
    pub open: DateTime<Utc>,
    pub close: DateTime<Utc>,
}

/// The calendars with their one-off closures. Cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Calendars {
    closures: Closures,
}

impl Default for Calendars {
    fn default() -> Self {
        Self::new(Closures::builtin())
    }
}

impl Calendars {
    pub fn new(closures: Closures) -> Self {
        Self { closures }
    }

    /// The session labelled `date`, or `None` when the market does not trade.
    pub fn session(&self, calendar: CalendarId, date: NaiveDate) -> Option<Session> {
        let tz = calendar.time_zone();
        let local = |day: NaiveDate, h: u32, m: u32| at(tz, day, hm(h, m));
        let (open, close) = match calendar {
            CalendarId::Crypto => (local(date, 0, 0), local(plus_days(date, 1), 0, 0)),
            CalendarId::Fx if !is_weekend(date) => {
                (local(plus_days(date, -1), 17, 0), local(date, 17, 0))
            }
            CalendarId::Cme if !is_weekend(date) => {
                (local(plus_days(date, -1), 17, 0), local(date, 16, 0))
            }
            CalendarId::Xnys | CalendarId::Xlon | CalendarId::Xetr if !is_weekend(date) => {
                let (open, close, rule) = match calendar {
                    CalendarId::Xnys => (xnys::OPEN, xnys::CLOSE, xnys::day(date)),
                    CalendarId::Xlon => (xlon::OPEN, xlon::CLOSE, xlon::day(date)),
                    _ => (xetr::OPEN, xetr::CLOSE, xetr::day(date)),
                };
                let close = match rule {
                    DayRule::Regular => close,
                    DayRule::EarlyClose(early) => early,
                    DayRule::Holiday => NaiveTime::MIN, // Undone below if the data says so.
                };
                (at(tz, date, open), at(tz, date, close))
            }
            _ => return None,
        };
        let session = Session { date, open, close };
        match self.closures.get(calendar, date) {
            Some(Change::Closed) => None,
            Some(Change::EarlyClose(time)) => Some(Session {
                close: at(tz, date, time),
                ..session
            }),
            Some(Change::Regular) => Some(self.regular_session(calendar, date, session)),
            None => (session.close > session.open).then_some(session),
        }
    }

    /// `session` with the exchange's regular closing time, whatever the rule said.
    fn regular_session(&self, calendar: CalendarId, date: NaiveDate, session: Session) -> Session {
        let close = match calendar {
            CalendarId::Xnys => xnys::CLOSE,
            CalendarId::Xlon => xlon::CLOSE,
            CalendarId::Xetr => xetr::CLOSE,
            _ => return session,
        };
        Session {
            close: at(calendar.time_zone(), date, close),
            ..session
        }
    }

    /// Sessions labelled `from..=to`, oldest first.
    pub fn sessions(&self, calendar: CalendarId, from: NaiveDate, to: NaiveDate) -> Vec<Session> {
        from.iter_days()
            .take_while(|d| *d <= to)
            .filter_map(|d| self.session(calendar, d))
            .collect()
    }

    /// The session trading at `instant`, if any.
    pub fn session_at(&self, calendar: CalendarId, instant: DateTime<Utc>) -> Option<Session> {
        let local = instant.with_timezone(&calendar.time_zone()).date_naive();
        // A session opens at most a day before its date (FX, CME) and closes
        // on its date or the next midnight (crypto).
        self.sessions(calendar, plus_days(local, -1), plus_days(local, 1))
            .into_iter()
            .find(|s| s.open <= instant && instant < s.close)
    }

    pub fn is_open(&self, calendar: CalendarId, instant: DateTime<Utc>) -> bool {
        self.session_at(calendar, instant).is_some()
    }

    /// Sessions whose close falls in `(after, until]`, oldest first.
    pub fn closes_between(
        &self,
        calendar: CalendarId,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<Session> {
        let tz = calendar.time_zone();
        let first = after.with_timezone(&tz).date_naive();
        let last = until.with_timezone(&tz).date_naive();
        self.sessions(calendar, plus_days(first, -1), plus_days(last, 1))
            .into_iter()
            .filter(|s| after < s.close && s.close <= until)
            .collect()
    }

    /// The most recent session that has closed by `instant`. Looks back a
    /// month at most (longer closures do not happen on these markets).
    pub fn last_closed_session(
        &self,
        calendar: CalendarId,
        instant: DateTime<Utc>,
    ) -> Option<Session> {
        let today = instant.with_timezone(&calendar.time_zone()).date_naive();
        self.sessions(calendar, plus_days(today, -31), plus_days(today, 1))
            .into_iter()
            .rev()
            .find(|s| s.close <= instant)
    }
}

fn hm(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).expect("a valid wall-clock time")
}

/// A wall-clock time of a day in `tz` as a UTC instant. Exchange hours never
/// fall in a DST gap or fold; should one ever, the earlier reading wins and
/// a gap is crossed forward.
pub(crate) fn at(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + chrono::TimeDelta::hours(1)))
                .earliest()
        })
        .expect("a local time an hour after a gap exists")
        .with_timezone(&Utc)
}
