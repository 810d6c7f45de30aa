//! London Stock Exchange: 08:00–16:30 London, UK (England and Wales) bank
//! holidays with their substitute days, 12:30 closes on the last trading
//! days before Christmas and before New Year. Moved and one-off bank
//! holidays (jubilees, royal events, VE Day 2020) are data in `closures.csv`.

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};

use super::DayRule;
use super::dates::{
    easter_sunday, last_trading_day_before, last_weekday, next_monday_if_weekend, nth_weekday,
    plus_days, ymd,
};

pub const OPEN: NaiveTime = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
pub const CLOSE: NaiveTime = NaiveTime::from_hms_opt(16, 30, 0).unwrap();
pub const EARLY_CLOSE: NaiveTime = NaiveTime::from_hms_opt(12, 30, 0).unwrap();

pub fn day(date: NaiveDate) -> DayRule {
    if is_holiday(date) {
        DayRule::Holiday
    } else if date == last_trading_day_before(is_holiday, ymd(date.year(), 12, 25))
        || date == last_trading_day_before(is_holiday, ymd(date.year() + 1, 1, 1))
    {
        DayRule::EarlyClose(EARLY_CLOSE)
    } else {
        DayRule::Regular
    }
}

fn is_holiday(date: NaiveDate) -> bool {
    let year = date.year();
    let easter = easter_sunday(year);
    let regular = [
        next_monday_if_weekend(ymd(year, 1, 1)),
        plus_days(easter, -2),                 // Good Friday
        plus_days(easter, 1),                  // Easter Monday
        nth_weekday(year, 5, Weekday::Mon, 1), // Early May bank holiday
        last_weekday(year, 5, Weekday::Mon),   // Spring bank holiday
        last_weekday(year, 8, Weekday::Mon),   // Summer bank holiday
    ];
    regular.contains(&date) || christmas_days(year).contains(&date)
}

/// Christmas Day and Boxing Day, or the weekdays that stand in for them:
/// the two holidays never share a substitute.
fn christmas_days(year: i32) -> [NaiveDate; 2] {
    let day = |d| ymd(year, 12, d);
    match ymd(year, 12, 25).weekday() {
        Weekday::Fri => [day(25), day(28)],
        Weekday::Sat => [day(27), day(28)],
        Weekday::Sun => [day(26), day(27)],
        _ => [day(25), day(26)],
    }
}
