//! The calendars against the exchanges' published lists (NYSE, LSE and
//! Deutsche Börse holiday calendars for 2024–2026) and each observance and
//! daylight-saving case the rules must get right.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};

use super::dates::{is_weekend, ymd};
use super::*;

fn d(raw: &str) -> NaiveDate {
    raw.parse().expect("a YYYY-MM-DD date")
}

fn t(raw: &str) -> DateTime<Utc> {
    raw.parse().expect("an RFC 3339 instant")
}

fn cal() -> Calendars {
    Calendars::default()
}

/// Every weekday of `year`: closed exactly on `holidays`, closing early
/// (at `early_close` local time) exactly on `early`, regular otherwise.
fn check_year(
    calendar: CalendarId,
    year: i32,
    holidays: &[&str],
    early: &[&str],
    regular_close: NaiveTime,
    early_close: NaiveTime,
) {
    let cals = cal();
    let holidays: Vec<NaiveDate> = holidays.iter().map(|h| d(&format!("{year}-{h}"))).collect();
    let early: Vec<NaiveDate> = early.iter().map(|e| d(&format!("{year}-{e}"))).collect();
    for date in ymd(year, 1, 1).iter_days().take_while(|x| x.year() == year) {
        let session = cals.session(calendar, date);
        if is_weekend(date) || holidays.contains(&date) {
            assert_eq!(session, None, "{calendar} {date} should be closed");
            continue;
        }
        let session = session.unwrap_or_else(|| panic!("{calendar} {date} should trade"));
        let close = session.close.with_timezone(&calendar.time_zone()).time();
        let expected = if early.contains(&date) {
            early_close
        } else {
            regular_close
        };
        assert_eq!(close, expected, "{calendar} {date} close");
    }
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

#[test]
fn xnys_matches_the_published_2024_to_2026_holidays_and_early_closes() {
    let table: [(i32, &[&str], &[&str]); 3] = [
        (
            2024,
            &[
                "01-01", "01-15", "02-19", "03-29", "05-27", "06-19", "07-04", "09-02", "11-28",
                "12-25",
            ],
            &["07-03", "11-29", "12-24"],
        ),
        (
            2025,
            &[
                "01-01", "01-09", "01-20", "02-17", "04-18", "05-26", "06-19", "07-04", "09-01",
                "11-27", "12-25",
            ],
            &["07-03", "11-28", "12-24"],
        ),
        (
            2026,
            &[
                "01-01", "01-19", "02-16", "04-03", "05-25", "06-19", "07-03", "09-07", "11-26",
                "12-25",
            ],
            &["11-27", "12-24"],
        ),
    ];
    for (year, holidays, early) in table {
        check_year(
            CalendarId::Xnys,
            year,
            holidays,
            early,
            hm(16, 0),
            hm(13, 0),
        );
    }
}

#[test]
fn xlon_matches_the_published_2024_to_2026_holidays_and_early_closes() {
    let table: [(i32, &[&str], &[&str]); 3] = [
        (
            2024,
            &[
                "01-01", "03-29", "04-01", "05-06", "05-27", "08-26", "12-25", "12-26",
            ],
            &["12-24", "12-31"],
        ),
        (
            2025,
            &[
                "01-01", "04-18", "04-21", "05-05", "05-26", "08-25", "12-25", "12-26",
            ],
            &["12-24", "12-31"],
        ),
        (
            2026,
            &[
                "01-01", "04-03", "04-06", "05-04", "05-25", "08-31", "12-25", "12-28",
            ],
            &["12-24", "12-31"],
        ),
    ];
    for (year, holidays, early) in table {
        check_year(
            CalendarId::Xlon,
            year,
            holidays,
            early,
            hm(16, 30),
            hm(12, 30),
        );
    }
}

#[test]
fn xetr_matches_the_published_2024_to_2026_holidays_and_early_closes() {
    let table: [(i32, &[&str], &[&str]); 3] = [
        (
            2024,
            &[
                "01-01", "03-29", "04-01", "05-01", "12-24", "12-25", "12-26", "12-31",
            ],
            &["12-30"],
        ),
        (
            2025,
            &[
                "01-01", "04-18", "04-21", "05-01", "12-24", "12-25", "12-26", "12-31",
            ],
            &["12-30"],
        ),
        (
            2026,
            &[
                "01-01", "04-03", "04-06", "05-01", "12-24", "12-25", "12-31",
            ],
            &["12-30"],
        ),
    ];
    for (year, holidays, early) in table {
        check_year(
            CalendarId::Xetr,
            year,
            holidays,
            early,
            hm(17, 30),
            hm(14, 0),
        );
    }
}

/// (calendar, date, expected close in local time or None for closed, why)
type DayCase = (CalendarId, &'static str, Option<(u32, u32)>, &'static str);

fn check_days(cases: &[DayCase]) {
    let cals = cal();
    for (calendar, date, close, why) in cases {
        let session = cals.session(*calendar, d(date));
        let got = session.map(|s| {
            let local = s.close.with_timezone(&calendar.time_zone()).time();
            (local.hour_min().0, local.hour_min().1)
        });
        assert_eq!(got, *close, "{calendar} {date}: {why}");
    }
}

trait HourMin {
    fn hour_min(&self) -> (u32, u32);
}

impl HourMin for NaiveTime {
    fn hour_min(&self) -> (u32, u32) {
        use chrono::Timelike;
        (self.hour(), self.minute())
    }
}

#[test]
fn xnys_observance_rules() {
    use CalendarId::Xnys as N;
    check_days(&[
        (
            N,
            "2021-12-31",
            Some((16, 0)),
            "New Year's Day on a Saturday is not observed",
        ),
        (N, "2022-01-03", Some((16, 0)), "nor moved to the Monday"),
        (
            N,
            "2023-01-02",
            None,
            "New Year's Day on a Sunday moves to Monday",
        ),
        (N, "2021-06-18", Some((16, 0)), "no Juneteenth before 2022"),
        (
            N,
            "2022-06-20",
            None,
            "Juneteenth on a Sunday moves to Monday",
        ),
        (
            N,
            "2027-06-18",
            None,
            "Juneteenth on a Saturday moves to Friday",
        ),
        (
            N,
            "2026-07-03",
            None,
            "July 4 on a Saturday moves to Friday",
        ),
        (
            N,
            "2026-07-02",
            Some((16, 0)),
            "and July 2 before it is not an early close",
        ),
        (N, "2021-07-05", None, "July 4 on a Sunday moves to Monday"),
        (
            N,
            "2021-12-24",
            None,
            "Christmas on a Saturday moves to Friday",
        ),
        (
            N,
            "2022-12-26",
            None,
            "Christmas on a Sunday moves to Monday",
        ),
        (
            N,
            "2022-12-23",
            Some((16, 0)),
            "a Friday before a weekend Christmas Eve trades full hours",
        ),
        (
            N,
            "2012-07-03",
            Some((13, 0)),
            "July 3 on a Tuesday closes early",
        ),
        (
            N,
            "2002-07-03",
            Some((16, 0)),
            "July 3 on a Wednesday traded full hours before 2013",
        ),
        (
            N,
            "2002-07-05",
            Some((13, 0)),
            "the Friday after a Thursday July 4 closed early before 2013",
        ),
        (
            N,
            "2013-07-03",
            Some((13, 0)),
            "July 3 on a Wednesday closes early since 2013",
        ),
        (
            N,
            "2013-07-05",
            Some((16, 0)),
            "and the Friday after no longer does",
        ),
        (N, "2019-07-03", Some((13, 0)), "Wednesday July 3, 2019"),
        (
            N,
            "2027-11-26",
            Some((13, 0)),
            "the day after Thanksgiving, by rule",
        ),
    ]);
}

#[test]
fn xnys_one_off_closures_since_2000() {
    let cals = cal();
    for date in [
        "2001-09-11",
        "2001-09-12",
        "2001-09-13",
        "2001-09-14",
        "2004-06-11",
        "2007-01-02",
        "2012-10-29",
        "2012-10-30",
        "2018-12-05",
        "2025-01-09",
    ] {
        assert_eq!(cals.session(CalendarId::Xnys, d(date)), None, "{date}");
    }
    assert!(cals.session(CalendarId::Xnys, d("2001-09-17")).is_some());
    assert!(cals.session(CalendarId::Xnys, d("2012-10-31")).is_some());
}

#[test]
fn xlon_substitutes_and_one_off_moves() {
    use CalendarId::Xlon as L;
    check_days(&[
        (
            L,
            "2022-01-03",
            None,
            "New Year's Day on a Saturday moves to Monday",
        ),
        (
            L,
            "2023-01-02",
            None,
            "New Year's Day on a Sunday moves to Monday",
        ),
        (L, "2021-12-27", None, "Christmas on a Saturday: Monday"),
        (
            L,
            "2021-12-28",
            None,
            "and Boxing Day on the Sunday: Tuesday",
        ),
        (
            L,
            "2022-12-26",
            None,
            "Christmas on a Sunday: Boxing Day Monday",
        ),
        (L, "2022-12-27", None, "and Christmas's substitute Tuesday"),
        (
            L,
            "2020-12-28",
            None,
            "Boxing Day on a Saturday moves to Monday",
        ),
        (
            L,
            "2022-12-23",
            Some((12, 30)),
            "the last trading day before Christmas closes early",
        ),
        (
            L,
            "2022-12-30",
            Some((12, 30)),
            "the last trading day before New Year closes early",
        ),
        (L, "2021-12-24", Some((12, 30)), "Christmas Eve on a Friday"),
        (
            L,
            "2021-12-31",
            Some((12, 30)),
            "New Year's Eve on a Friday",
        ),
        (
            L,
            "2002-05-27",
            Some((16, 30)),
            "2002: spring bank holiday moved",
        ),
        (L, "2002-06-03", None, "Golden Jubilee"),
        (L, "2002-06-04", None, "the moved spring bank holiday"),
        (L, "2011-04-29", None, "the royal wedding"),
        (
            L,
            "2012-05-28",
            Some((16, 30)),
            "2012: spring bank holiday moved",
        ),
        (L, "2012-06-04", None, "the moved spring bank holiday"),
        (L, "2012-06-05", None, "Diamond Jubilee"),
        (
            L,
            "2020-05-04",
            Some((16, 30)),
            "2020: early May bank holiday moved",
        ),
        (L, "2020-05-08", None, "to VE Day"),
        (
            L,
            "2022-05-30",
            Some((16, 30)),
            "2022: spring bank holiday moved",
        ),
        (L, "2022-06-02", None, "to June 2"),
        (L, "2022-06-03", None, "Platinum Jubilee"),
        (L, "2022-09-19", None, "the Queen's funeral"),
        (L, "2023-05-01", None, "early May bank holiday 2023"),
        (L, "2023-05-08", None, "the coronation"),
    ]);
}

#[test]
fn xetr_no_substitution_and_holidays_that_ended() {
    use CalendarId::Xetr as X;
    check_days(&[
        (
            X,
            "2022-01-03",
            Some((17, 30)),
            "New Year's Day on a Saturday is not made up",
        ),
        (X, "2021-12-24", None, "Christmas Eve on a Friday"),
        (X, "2022-12-26", None, "Boxing Day on a Monday"),
        (
            X,
            "2022-12-30",
            Some((14, 0)),
            "the last trading day of 2022",
        ),
        (
            X,
            "2021-12-30",
            Some((14, 0)),
            "the last trading day before New Year's Eve",
        ),
        (X, "2021-05-24", None, "Whit Monday until 2021"),
        (
            X,
            "2022-06-06",
            Some((17, 30)),
            "Whit Monday trades since 2022",
        ),
        (X, "2023-05-29", Some((17, 30)), "Whit Monday 2023"),
        (X, "2019-10-03", None, "German Unity Day until 2021"),
        (
            X,
            "2022-10-03",
            Some((17, 30)),
            "German Unity Day trades since 2022",
        ),
        (X, "2024-10-03", Some((17, 30)), "German Unity Day 2024"),
        (X, "2007-05-28", None, "Whit Monday 2007, a one-off"),
        (X, "2017-10-31", None, "Reformation Day 2017, a one-off"),
    ]);
}

#[test]
fn good_friday_closes_all_three_across_years() {
    let cals = cal();
    for date in [
        "2000-04-21",
        "2008-03-21",
        "2011-04-22",
        "2019-04-19",
        "2024-03-29",
        "2025-04-18",
        "2026-04-03",
        "2027-03-26",
        "2035-03-23",
    ] {
        for calendar in [CalendarId::Xnys, CalendarId::Xlon, CalendarId::Xetr] {
            assert_eq!(cals.session(calendar, d(date)), None, "{calendar} {date}");
        }
    }
}

#[test]
fn sessions_follow_each_zone_through_the_weeks_us_and_eu_clocks_differ() {
    let cals = cal();
    // (calendar, date, open UTC, close UTC)
    let cases = [
        (
            CalendarId::Xnys,
            "2025-03-07",
            "2025-03-07T14:30:00Z",
            "2025-03-07T21:00:00Z",
        ),
        (
            CalendarId::Xnys,
            "2025-03-10",
            "2025-03-10T13:30:00Z",
            "2025-03-10T20:00:00Z",
        ),
        (
            CalendarId::Xlon,
            "2025-03-10",
            "2025-03-10T08:00:00Z",
            "2025-03-10T16:30:00Z",
        ),
        (
            CalendarId::Xetr,
            "2025-03-10",
            "2025-03-10T08:00:00Z",
            "2025-03-10T16:30:00Z",
        ),
        (
            CalendarId::Xlon,
            "2025-03-28",
            "2025-03-28T08:00:00Z",
            "2025-03-28T16:30:00Z",
        ),
        (
            CalendarId::Xlon,
            "2025-03-31",
            "2025-03-31T07:00:00Z",
            "2025-03-31T15:30:00Z",
        ),
        (
            CalendarId::Xetr,
            "2025-03-31",
            "2025-03-31T07:00:00Z",
            "2025-03-31T15:30:00Z",
        ),
        (
            CalendarId::Xlon,
            "2025-10-27",
            "2025-10-27T08:00:00Z",
            "2025-10-27T16:30:00Z",
        ),
        (
            CalendarId::Xetr,
            "2025-10-27",
            "2025-10-27T08:00:00Z",
            "2025-10-27T16:30:00Z",
        ),
        (
            CalendarId::Xnys,
            "2025-10-27",
            "2025-10-27T13:30:00Z",
            "2025-10-27T20:00:00Z",
        ),
        (
            CalendarId::Xnys,
            "2025-11-03",
            "2025-11-03T14:30:00Z",
            "2025-11-03T21:00:00Z",
        ),
        (
            CalendarId::Xnys,
            "2025-07-03",
            "2025-07-03T13:30:00Z",
            "2025-07-03T17:00:00Z",
        ),
        (
            CalendarId::Xnys,
            "2025-11-28",
            "2025-11-28T14:30:00Z",
            "2025-11-28T18:00:00Z",
        ),
        (
            CalendarId::Xlon,
            "2025-12-24",
            "2025-12-24T08:00:00Z",
            "2025-12-24T12:30:00Z",
        ),
        (
            CalendarId::Xetr,
            "2025-12-30",
            "2025-12-30T08:00:00Z",
            "2025-12-30T13:00:00Z",
        ),
        // FX opens Sunday 17:00 New York: on the day US clocks change, 21:00Z.
        (
            CalendarId::Fx,
            "2025-03-10",
            "2025-03-09T21:00:00Z",
            "2025-03-10T21:00:00Z",
        ),
        (
            CalendarId::Fx,
            "2025-03-07",
            "2025-03-06T22:00:00Z",
            "2025-03-07T22:00:00Z",
        ),
        // CME Globex: 17:00 the day before to 16:00 Chicago.
        (
            CalendarId::Cme,
            "2025-03-11",
            "2025-03-10T22:00:00Z",
            "2025-03-11T21:00:00Z",
        ),
        (
            CalendarId::Cme,
            "2025-01-06",
            "2025-01-05T23:00:00Z",
            "2025-01-06T22:00:00Z",
        ),
        (
            CalendarId::Crypto,
            "2025-03-09",
            "2025-03-09T00:00:00Z",
            "2025-03-10T00:00:00Z",
        ),
    ];
    for (calendar, date, open, close) in cases {
        let s = cals
            .session(calendar, d(date))
            .unwrap_or_else(|| panic!("{calendar} {date}"));
        assert_eq!((s.open, s.close), (t(open), t(close)), "{calendar} {date}");
    }
}

#[test]
fn is_open_at_instants() {
    let cals = cal();
    let cases = [
        (
            CalendarId::Xnys,
            "2025-03-10T13:29:59Z",
            false,
            "before the open",
        ),
        (
            CalendarId::Xnys,
            "2025-03-10T13:30:00Z",
            true,
            "at the open",
        ),
        (
            CalendarId::Xnys,
            "2025-03-10T20:00:00Z",
            false,
            "at the close",
        ),
        (
            CalendarId::Xnys,
            "2025-01-09T15:00:00Z",
            false,
            "a national day of mourning",
        ),
        (
            CalendarId::Xlon,
            "2025-03-31T07:30:00Z",
            true,
            "London on summer time",
        ),
        (
            CalendarId::Xlon,
            "2025-03-28T07:30:00Z",
            false,
            "London still on GMT",
        ),
        (
            CalendarId::Fx,
            "2025-03-08T12:00:00Z",
            false,
            "FX on a Saturday",
        ),
        (
            CalendarId::Fx,
            "2025-03-07T21:59:00Z",
            true,
            "FX Friday before 17:00 New York",
        ),
        (
            CalendarId::Fx,
            "2025-03-07T22:00:00Z",
            false,
            "FX Friday at 17:00 New York",
        ),
        (
            CalendarId::Fx,
            "2025-03-09T21:00:00Z",
            true,
            "FX Sunday 17:00 New York",
        ),
        (
            CalendarId::Cme,
            "2025-03-11T21:30:00Z",
            false,
            "CME daily break",
        ),
        (
            CalendarId::Cme,
            "2025-03-11T22:00:00Z",
            true,
            "CME after the break",
        ),
        (
            CalendarId::Cme,
            "2025-03-14T21:30:00Z",
            false,
            "CME Friday after the close",
        ),
        (
            CalendarId::Cme,
            "2025-03-16T21:59:00Z",
            false,
            "CME Sunday before 17:00 Chicago",
        ),
        (
            CalendarId::Cme,
            "2025-03-16T22:00:00Z",
            true,
            "CME Sunday 17:00 Chicago",
        ),
        (
            CalendarId::Crypto,
            "2025-03-09T03:00:00Z",
            true,
            "crypto on a Sunday night",
        ),
        (
            CalendarId::Crypto,
            "2025-12-25T00:00:00Z",
            true,
            "crypto on Christmas",
        ),
    ];
    for (calendar, at, open, why) in cases {
        assert_eq!(
            cals.is_open(calendar, t(at)),
            open,
            "{calendar} {at}: {why}"
        );
    }
}

#[test]
fn closes_and_last_closed_session() {
    let cals = cal();
    let closes = cals.closes_between(
        CalendarId::Xnys,
        t("2025-07-03T16:00:00Z"),
        t("2025-07-08T00:00:00Z"),
    );
    let dates: Vec<_> = closes.iter().map(|s| s.date.to_string()).collect();
    assert_eq!(dates, ["2025-07-03", "2025-07-07"]);
    assert_eq!(closes[0].close, t("2025-07-03T17:00:00Z"));

    let last = |c, at| {
        cals.last_closed_session(c, t(at))
            .map(|s| s.date.to_string())
    };
    assert_eq!(
        last(CalendarId::Xnys, "2025-07-07T12:00:00Z").as_deref(),
        Some("2025-07-03")
    );
    assert_eq!(
        last(CalendarId::Xnys, "2025-07-07T20:00:00Z").as_deref(),
        Some("2025-07-07")
    );
    assert_eq!(
        last(CalendarId::Crypto, "2025-07-07T00:00:00Z").as_deref(),
        Some("2025-07-06")
    );
    assert_eq!(
        last(CalendarId::Xlon, "2025-12-29T09:00:00Z").as_deref(),
        Some("2025-12-24")
    );
}

#[test]
fn exchanges_map_to_calendars_and_unknown_ones_do_not() {
    assert_eq!(CalendarId::for_exchange("XNAS"), Some(CalendarId::Xnys));
    assert_eq!(CalendarId::for_exchange("xlon"), Some(CalendarId::Xlon));
    assert_eq!(CalendarId::for_exchange("CRYPTO"), Some(CalendarId::Crypto));
    assert_eq!(CalendarId::for_exchange("XCEC"), Some(CalendarId::Cme));
    assert_eq!(CalendarId::for_exchange("XTSE"), None);
    for mic in CalendarId::KNOWN_EXCHANGES {
        assert!(CalendarId::for_exchange(mic).is_some(), "{mic}");
    }
}

#[test]
fn an_operators_closures_file_overrides_and_extends_the_builtin_list() {
    let dir = std::env::temp_dir().join(format!("pk-closures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("closures.csv");
    std::fs::write(
        &path,
        "exchange,date,change,reason\n\
         # comments are allowed\n\
         XNAS,2027-03-01,closed,\"Snow, somehow\"\n\
         XNYS,2025-01-09,regular,pretend it traded\n\
         XLON,2027-03-02,11:00,early close\n",
    )
    .unwrap();
    let cals = Calendars::new(Closures::builtin_and_file(Some(&path)).unwrap());
    assert_eq!(cals.session(CalendarId::Xnys, d("2027-03-01")), None);
    let s = cals.session(CalendarId::Xnys, d("2025-01-09")).unwrap();
    assert_eq!(s.close, t("2025-01-09T21:00:00Z"));
    let s = cals.session(CalendarId::Xlon, d("2027-03-02")).unwrap();
    assert_eq!(s.close, t("2027-03-02T11:00:00Z"));
    assert_eq!(
        cals.session(CalendarId::Xnys, d("2012-10-29")),
        None,
        "built-ins stay"
    );

    std::fs::write(
        &path,
        "exchange,date,change,reason\nXNYS,2027-03-01,maybe,?\n",
    )
    .unwrap();
    let err = Closures::builtin_and_file(Some(&path))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2") && err.contains("maybe"), "{err}");
    std::fs::write(
        &path,
        "exchange,date,change,reason\nXTSE,2027-03-01,closed,?\n",
    )
    .unwrap();
    let err = Closures::builtin_and_file(Some(&path))
        .unwrap_err()
        .to_string();
    assert!(err.contains("XTSE"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
