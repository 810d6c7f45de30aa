//! Xetra (Deutsche Börse): 09:00–17:30 Berlin. Closed on the listed days
//! when they fall on a weekday, never on a substitute; Whit Monday and
//! German Unity Day were holidays only in 2015–2021 and 2014–2021 (trading
//! since 2022). The last trading day before New Year's Eve closes at 14:00.
//! One-offs (Whit Monday 2007, Reformation Day 2017) are data.

use chrono::{Datelike, NaiveDate, NaiveTime};

use super::DayRule;
use super::dates::{easter_sunday, last_trading_day_before, plus_days, ymd};

pub const OPEN: NaiveTime = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
pub const CLOSE: NaiveTime = NaiveTime::from_hms_opt(17, 30, 0).unwrap();
pub const EARLY_CLOSE: NaiveTime = NaiveTime::from_hms_opt(14, 0, 0).unwrap();

pub fn day(date: NaiveDate) -> DayRule {
    if is_holiday(date) {
        DayRule::Holiday
    } else if date.year() >= 2010
        && date == last_trading_day_before(is_holiday, ymd(date.year(), 12, 31))
    {
        DayRule::EarlyClose(EARLY_CLOSE)
    } else {
        DayRule::Regular
    }
}

fn is_holiday(date: NaiveDate) -> bool {
    let year = date.year();
    let easter = easter_sunday(year);
    let whit_monday = (2015..=2021).contains(&year).then(|| plus_days(easter, 50));
    let unity_day = (2014..=2021).contains(&year).then(|| ymd(year, 10, 3));
    let fixed = [
        ymd(year, 1, 1),
        plus_days(easter, -2), // Good Friday
        plus_days(easter, 1),  // Easter Monday
        ymd(year, 5, 1),       // Labour Day
        ymd(year, 12, 24),
        ymd(year, 12, 25),
        ymd(year, 12, 26),
        ymd(year, 12, 31),
    ];
    fixed.contains(&date) || whit_monday == Some(date) || unity_day == Some(date)
}
