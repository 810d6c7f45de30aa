//! Date arithmetic the holiday rules share: Easter, "the nth Monday of",
//! weekend observance. Pure functions of the year.

use chrono::{Datelike, Days, NaiveDate, Weekday};

pub fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a valid calendar date")
}

pub fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

pub fn plus_days(date: NaiveDate, days: i64) -> NaiveDate {
    if days >= 0 {
        date.checked_add_days(Days::new(days as u64))
    } else {
        date.checked_sub_days(Days::new(days.unsigned_abs()))
    }
    .expect("dates stay far from chrono's limits")
}

/// Easter Sunday of the Gregorian calendar (the anonymous Gregorian
/// algorithm, a.k.a. Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    ymd(year, month as u32, day as u32)
}

/// The `n`th (1-based) `weekday` of a month.
pub fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n).expect("n is at most 4")
}

/// The last `weekday` of a month.
pub fn last_weekday(year: i32, month: u32, weekday: Weekday) -> NaiveDate {
    let next_month = if month == 12 {
        ymd(year + 1, 1, 1)
    } else {
        ymd(year, month + 1, 1)
    };
    let mut day = plus_days(next_month, -1);
    while day.weekday() != weekday {
        day = plus_days(day, -1);
    }
    day
}

/// US observance: a Saturday holiday is kept on Friday, a Sunday one on Monday.
pub fn nearest_workday(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => plus_days(date, -1),
        Weekday::Sun => plus_days(date, 1),
        _ => date,
    }
}

/// UK observance for a lone holiday: a weekend one moves to the Monday after.
pub fn next_monday_if_weekend(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => plus_days(date, 2),
        Weekday::Sun => plus_days(date, 1),
        _ => date,
    }
}

/// The last weekday before `date` that `is_holiday` does not close.
pub fn last_trading_day_before(
    is_holiday: impl Fn(NaiveDate) -> bool,
    date: NaiveDate,
) -> NaiveDate {
    let mut day = plus_days(date, -1);
    while is_weekend(day) || is_holiday(day) {
        day = plus_days(day, -1);
    }
    day
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easter_sunday_matches_the_published_dates() {
        for (year, month, day) in [
            (2000, 4, 23),
            (2008, 3, 23),
            (2011, 4, 24),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2038, 4, 25),
        ] {
            assert_eq!(easter_sunday(year), ymd(year, month, day), "{year}");
        }
    }

    #[test]
    fn weekday_helpers() {
        assert_eq!(nth_weekday(2025, 1, Weekday::Mon, 3), ymd(2025, 1, 20));
        assert_eq!(last_weekday(2025, 5, Weekday::Mon), ymd(2025, 5, 26));
        assert_eq!(last_weekday(2026, 12, Weekday::Thu), ymd(2026, 12, 31));
        assert_eq!(nearest_workday(ymd(2026, 7, 4)), ymd(2026, 7, 3));
        assert_eq!(nearest_workday(ymd(2022, 6, 19)), ymd(2022, 6, 20));
        assert_eq!(next_monday_if_weekend(ymd(2022, 1, 1)), ymd(2022, 1, 3));
    }
}
