//! NYSE (and Nasdaq, which keeps the same days): 09:30–16:00 New York, the
//! NYSE holidays with US observance, 13:00 early closes. One-off closures
//! (9/11, Sandy, national days of mourning) are data in `closures.csv`.

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};

use super::DayRule;
use super::dates::{easter_sunday, last_weekday, nearest_workday, nth_weekday, plus_days, ymd};

pub const OPEN: NaiveTime = NaiveTime::from_hms_opt(9, 30, 0).unwrap();
pub const CLOSE: NaiveTime = NaiveTime::from_hms_opt(16, 0, 0).unwrap();
pub const EARLY_CLOSE: NaiveTime = NaiveTime::from_hms_opt(13, 0, 0).unwrap();

/// The rule for a weekday (weekends are never sessions).
pub fn day(date: NaiveDate) -> DayRule {
    if is_holiday(date) {
        DayRule::Holiday
    } else if is_early_close(date) {
        DayRule::EarlyClose(EARLY_CLOSE)
    } else {
        DayRule::Regular
    }
}

fn is_holiday(date: NaiveDate) -> bool {
    let year = date.year();
    let jan1 = ymd(year, 1, 1);
    // New Year's Day on a Sunday moves to Monday; on a Saturday it is not
    // observed at all (the Friday before closes a fiscal year and trades).
    let new_year = (jan1.weekday() != Weekday::Sat).then(|| nearest_workday(jan1));
    let juneteenth = (year >= 2022).then(|| nearest_workday(ymd(year, 6, 19)));
    let fixed = [
        new_year,
        juneteenth,
        Some(nth_weekday(year, 1, Weekday::Mon, 3)), // Martin Luther King Jr. Day
        Some(nth_weekday(year, 2, Weekday::Mon, 3)), // Washington's Birthday
        Some(plus_days(easter_sunday(year), -2)),    // Good Friday
        Some(last_weekday(year, 5, Weekday::Mon)),   // Memorial Day
        Some(nearest_workday(ymd(year, 7, 4))),      // Independence Day
        Some(nth_weekday(year, 9, Weekday::Mon, 1)), // Labor Day
        Some(thanksgiving(year)),
        Some(nearest_workday(ymd(year, 12, 25))), // Christmas
    ];
    fixed.contains(&Some(date))
}

fn thanksgiving(year: i32) -> NaiveDate {
    nth_weekday(year, 11, Weekday::Thu, 4)
}

fn is_early_close(date: NaiveDate) -> bool {
    let year = date.year();
    let (month, day) = (date.month(), date.day());
    let weekday = date.weekday();
    if date == plus_days(thanksgiving(year), 1) {
        return true;
    }
    // Christmas Eve Monday to Thursday; on a Friday it is the observed
    // Christmas holiday.
    if (month, day) == (12, 24) && weekday != Weekday::Fri {
        return true;
    }
    match (month, day, weekday) {
        // The day before Independence Day on Monday, Tuesday or Thursday;
        // on a Wednesday only since 2013. July 3 on a Friday is the observed
        // holiday itself, and July 2 before it trades a full day.
        (7, 3, Weekday::Mon | Weekday::Tue | Weekday::Thu) => true,
        (7, 3, Weekday::Wed) => year >= 2013,
        // Until 2012 the Friday after a Thursday Independence Day closed early.
        (7, 5, Weekday::Fri) => year < 2013,
        _ => false,
    }
}
