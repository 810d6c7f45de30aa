//! Validation of normalized rows, pure and shared by every provider.
//!
//! The rules (from the design document): every price > 0, volume >= 0, the
//! bar starts no later than now, and the range holds open and close
//! (low <= open, close <= high, and the same for the other pair). A row that
//! breaks one is rejected with a reason; a row without a close (Yahoo's
//! missing bars, all nulls) is skipped, never turned into zeros; a
//! close-to-close move over 50% is flagged as a spike and kept. A value the
//! provider sent that cannot be stored is a rejected row, never a skipped
//! one, and so is a price [`IMPLAUSIBLE_FACTOR`] times the answer's median
//! close: no daily bar moves a millionfold.

use chrono::{DateTime, Duration as TimeDelta, Utc};
use rust_decimal::Decimal;

use super::bar::{Bar, BarFlag, RawBar, Rejected};

/// A price this many times the answer's median close is not a market
/// price (real series, even a memecoin's year, stay within a few hundred).
pub const IMPLAUSIBLE_FACTOR: i64 = 10_000;

/// Clocks disagree by a little; a bar that starts up to this far "in the
/// future" is our clock's fault, not the provider's.
const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(60);

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Validated {
    /// Oldest first, unique by `ts`.
    pub bars: Vec<Bar>,
    pub rejected: Vec<Rejected>,
    pub skipped: usize,
}

/// Validates `rows` (any order) as of `now`. Duplicated timestamps keep the
/// last row the provider sent (Yahoo repeats the live bar) and reject the rest.
pub fn validate(mut rows: Vec<RawBar>, currency: Option<&str>, now: DateTime<Utc>) -> Validated {
    // Stable sort keeps the provider's order among equal timestamps.
    rows.sort_by_key(|r| r.ts);
    let mut out = Validated::default();
    let mut iter = rows.into_iter().peekable();
    while let Some(row) = iter.next() {
        if iter.peek().is_some_and(|next| next.ts == row.ts) {
            out.rejected.push(Rejected {
                ts: row.ts,
                reason: "duplicate timestamp; a later row replaces it".to_owned(),
            });
            continue;
        }
        if let Some(reason) = &row.unreadable {
            out.rejected.push(Rejected {
                ts: row.ts,
                reason: reason.clone(),
            });
            continue;
        }
        match check_row(&row, now) {
            Check::Skip => out.skipped += 1,
            Check::Reject(reason) => out.rejected.push(Rejected { ts: row.ts, reason }),
            Check::Accept(close) => out.bars.push(Bar {
                ts: row.ts,
                open: row.open,
                high: row.high,
                low: row.low,
                close,
                adj_close: row.adj_close,
                volume: row.volume,
                currency: currency.map(str::to_owned),
                flags: Vec::new(),
            }),
        }
    }
    reject_implausible(&mut out);
    flag_spikes(&mut out.bars);
    out
}

/// Rejects bars with a price over [`IMPLAUSIBLE_FACTOR`] times the median
/// close. The median, not the previous close: one absurd bar must not make
/// every honest bar after it look absurd. Two bars cannot tell which one
/// is absurd: that takes three.
fn reject_implausible(out: &mut Validated) {
    if out.bars.len() < 3 {
        return;
    }
    let mut closes: Vec<Decimal> = out.bars.iter().map(|b| b.close).collect();
    closes.sort_unstable();
    let median = closes[(closes.len() - 1) / 2];
    let Some(ceiling) = median.checked_mul(Decimal::from(IMPLAUSIBLE_FACTOR)) else {
        return;
    };
    let (kept, dropped): (Vec<Bar>, Vec<Bar>) = std::mem::take(&mut out.bars)
        .into_iter()
        .partition(|b| highest_price(b) <= ceiling);
    out.bars = kept;
    out.rejected.extend(dropped.into_iter().map(|b| Rejected {
        ts: b.ts,
        reason: format!(
            "price {} is over {IMPLAUSIBLE_FACTOR} times the median close {median}; not a market price",
            highest_price(&b)
        ),
    }));
    out.rejected.sort_by_key(|r| r.ts);
}

fn highest_price(bar: &Bar) -> Decimal {
    [bar.open, bar.high, bar.low, bar.adj_close]
        .into_iter()
        .flatten()
        .fold(bar.close, Decimal::max)
}

#[derive(Debug, PartialEq, Eq)]
enum Check {
    Accept(Decimal),
    Reject(String),
    Skip,
}

fn check_row(row: &RawBar, now: DateTime<Utc>) -> Check {
    let Some(close) = row.close else {
        return Check::Skip;
    };
    if row.ts > now + CLOCK_SKEW {
        return Check::Reject(format!("bar starts in the future ({})", row.ts));
    }
    let prices = [
        ("open", row.open),
        ("high", row.high),
        ("low", row.low),
        ("close", Some(close)),
        ("adj_close", row.adj_close),
    ];
    for (name, value) in prices {
        if let Some(v) = value
            && v <= Decimal::ZERO
        {
            return Check::Reject(format!("{name} {v} is not above zero"));
        }
    }
    if let Some(v) = row.volume
        && v < Decimal::ZERO
    {
        return Check::Reject(format!("volume {v} is negative"));
    }
    let ordered = [
        ("low", row.low, "open", row.open),
        ("low", row.low, "close", Some(close)),
        ("open", row.open, "high", row.high),
        ("close", Some(close), "high", row.high),
        ("low", row.low, "high", row.high),
    ];
    for (lo_name, lo, hi_name, hi) in ordered {
        if let (Some(lo), Some(hi)) = (lo, hi)
            && lo > hi
        {
            return Check::Reject(format!("{lo_name} {lo} is above {hi_name} {hi}"));
        }
    }
    Check::Accept(close)
}

/// Flags a bar whose close is more than 50% away from the previous close.
fn flag_spikes(bars: &mut [Bar]) {
    let half = Decimal::new(5, 1);
    for i in 1..bars.len() {
        let prev = bars[i - 1].close;
        // checked_div: a move too large for a Decimal (a price of 1e-28
        // followed by 10) must flag the bar, not panic.
        let spike = (bars[i].close - prev)
            .checked_div(prev)
            .is_none_or(|ratio| ratio.abs() > half);
        if spike {
            bars[i].flags.push(BarFlag::Spike);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()
    }

    fn day(n: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 2, n, 14, 30, 0).unwrap()
    }

    fn d(s: &str) -> Option<Decimal> {
        Some(Decimal::from_str(s).unwrap())
    }

    /// A row from "open high low close volume", `-` for null.
    fn row(ts: DateTime<Utc>, ohlcv: &str) -> RawBar {
        let v: Vec<Option<Decimal>> = ohlcv
            .split_whitespace()
            .map(|s| if s == "-" { None } else { d(s) })
            .collect();
        RawBar {
            ts,
            open: v[0],
            high: v[1],
            low: v[2],
            close: v[3],
            adj_close: v[3],
            volume: v[4],
            unreadable: None,
        }
    }

    #[test]
    fn each_rule_rejects_with_its_reason() {
        let future = now() + TimeDelta::days(1);
        let cases = [
            (row(day(1), "10 11 9 10.5 100"), None),
            (row(day(1), "10 11 9 10.5 0"), None),
            (row(day(1), "10 11 9 10.5 -"), None),
            (
                row(day(1), "0 11 9 10.5 100"),
                Some("open 0 is not above zero"),
            ),
            (
                row(day(1), "10 11 9 -1 100"),
                Some("close -1 is not above zero"),
            ),
            (
                row(day(1), "10 11 9 10.5 -5"),
                Some("volume -5 is negative"),
            ),
            (
                row(day(1), "10 11 10.2 10.5 1"),
                Some("low 10.2 is above open 10"),
            ),
            (
                row(day(1), "10 11 10.6 10.5 1"),
                Some("low 10.6 is above open 10"),
            ),
            (
                row(day(1), "10 10.4 9 10.5 1"),
                Some("close 10.5 is above high 10.4"),
            ),
            (
                row(day(1), "12 11 9 10.5 1"),
                Some("open 12 is above high 11"),
            ),
            (
                row(day(1), "- 11 12 11.5 1"),
                Some("low 12 is above close 11.5"),
            ),
            (
                row(future, "10 11 9 10.5 1"),
                Some("bar starts in the future"),
            ),
        ];
        for (raw, want) in cases {
            let text = format!("{raw:?}");
            let out = validate(vec![raw], Some("USD"), now());
            match want {
                None => assert_eq!(out.bars.len(), 1, "{text}: {:?}", out.rejected),
                Some(reason) => {
                    assert!(out.bars.is_empty(), "{text}");
                    assert!(
                        out.rejected[0].reason.starts_with(reason),
                        "{text}: {:?}",
                        out.rejected
                    );
                }
            }
        }
    }

    #[test]
    fn null_rows_are_skipped_and_partial_nulls_stay_null() {
        let rows = vec![
            row(day(1), "10 11 9 10.5 100"),
            row(day(2), "- - - - -"),
            row(day(3), "- - - 10.7 -"),
        ];
        let out = validate(rows, Some("USD"), now());
        assert_eq!(out.skipped, 1);
        assert_eq!(out.bars.len(), 2);
        assert_eq!(out.bars[1].open, None);
        assert_eq!(out.bars[1].volume, None);
        assert_eq!(out.bars[1].currency.as_deref(), Some("USD"));
    }

    #[test]
    fn spikes_are_flagged_not_dropped() {
        let rows = vec![
            row(day(1), "10 11 9 10 1"),
            row(day(2), "10 16 10 15.1 1"), // +51%
            row(day(3), "15 16 14 15 1"),
            row(day(4), "15 15 7 7.4 1"), // -50.7%
            row(day(5), "7 12 7 11.1 1"), // +50% exactly: not a spike
        ];
        let out = validate(rows, None, now());
        let flagged: Vec<bool> = out.bars.iter().map(|b| !b.flags.is_empty()).collect();
        assert_eq!(flagged, [false, true, false, true, false]);
    }

    #[test]
    fn a_move_beyond_decimal_range_is_a_spike_not_a_panic() {
        let tiny = "0.0000000000000000000000000001";
        let rows = vec![
            row(day(1), &format!("{tiny} {tiny} {tiny} {tiny} 1")),
            row(day(2), "10 10 10 10 1"),
        ];
        let out = validate(rows, None, now());
        assert_eq!(out.bars.len(), 2);
        assert!(!out.bars[1].flags.is_empty());
    }

    #[test]
    fn unstorable_and_implausible_prices_are_rejected_with_a_reason() {
        let mut unreadable = row(day(2), "- - - - -");
        unreadable.unreadable = Some("close 1e300 cannot be stored as a decimal".into());
        let rows = vec![
            row(day(1), "10 11 9 10 1"),
            unreadable,
            row(day(3), "10 11 9 10.5 1"),
            row(day(4), "10 10000000 9 10 1"), // high a millionfold
            row(day(5), "10000000 10000000 10000000 10000000 1"),
            row(day(6), "10 11 9 10.2 1"),
        ];
        let out = validate(rows, None, now());
        let kept: Vec<u32> = out
            .bars
            .iter()
            .map(|b| chrono::Datelike::day(&b.ts))
            .collect();
        assert_eq!(kept, [1, 3, 6]);
        let reasons: Vec<&str> = out.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(reasons[0], "close 1e300 cannot be stored as a decimal");
        assert!(reasons[1].starts_with("price 10000000 is over 10000 times the median close 10"));
        assert_eq!(out.rejected.len(), 3);
        assert!(
            out.bars[2].flags.is_empty(),
            "the absurd bar is gone, so no spike"
        );
    }

    #[test]
    fn sorted_and_duplicates_keep_the_last() {
        let rows = vec![
            row(day(2), "10 11 9 10 1"),
            row(day(1), "10 11 9 10 1"),
            row(day(2), "10 12 9 11 2"),
        ];
        let out = validate(rows, None, now());
        assert_eq!(out.bars.len(), 2);
        assert_eq!(out.bars[0].ts, day(1));
        assert_eq!(out.bars[1].close, Decimal::from(11));
        assert_eq!(out.rejected.len(), 1);
    }
}
