//! Which history to queue for an asset, as a pure function of what is held
//! or queued already and what the applied events asked for.

use chrono::{Months, NaiveDate};

/// Daily history held or queued for an asset: `[from, to]`.
pub type Coverage = (NaiveDate, NaiveDate);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Coverage once the jobs below are queued.
    pub coverage: Coverage,
    /// Ranges to queue, `[start, end]`, possibly none.
    pub jobs: Vec<Coverage>,
}

/// What a batch of events means for one asset's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// The earliest purchase date among the applied buys, if any.
    pub earliest_buy: Option<NaiveDate>,
    /// The asset went from no holders to some.
    pub reopened: bool,
}

/// Plans the backfill for one asset.
///
/// - Nothing held yet: `[earliest_buy - months, today]`.
/// - A buy dated before the held history: only the missing stretch before.
/// - An asset held again after a pause: the stretch since the held history
///   ended, up to today.
///
/// Returns None when nothing changes.
pub fn plan(held: Option<Coverage>, demand: Demand, today: NaiveDate, months: u32) -> Option<Plan> {
    if demand.earliest_buy.is_none() && !demand.reopened {
        return None;
    }
    let wanted_from = wanted_from(demand, today, months);

    let Some((from, to)) = held else {
        return Some(Plan {
            coverage: (wanted_from, today),
            jobs: vec![(wanted_from, today)],
        });
    };

    let mut jobs = Vec::new();
    let mut coverage = (from, to);
    if demand.earliest_buy.is_some() && wanted_from < from {
        jobs.push((wanted_from, from.pred_opt().unwrap_or(from)));
        coverage.0 = wanted_from;
    }
    if demand.reopened && to < today {
        jobs.push((to.succ_opt().unwrap_or(to), today));
        coverage.1 = today;
    }
    (!jobs.is_empty()).then_some(Plan { coverage, jobs })
}

/// The first day of history a demand needs: `months` before the earliest
/// purchase (today when there is none, or it is dated in the future).
pub fn wanted_from(demand: Demand, today: NaiveDate, months: u32) -> NaiveDate {
    let anchor = demand.earliest_buy.unwrap_or(today).min(today);
    anchor
        .checked_sub_months(Months::new(months))
        .unwrap_or(NaiveDate::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn plans_follow_the_rules() {
        let today = d("2026-11-21");
        let buy = |s: &str, reopened| Demand {
            earliest_buy: Some(d(s)),
            reopened,
        };
        let reopened_only = Demand {
            earliest_buy: None,
            reopened: true,
        };
        let held = Some((d("2025-03-01"), d("2026-11-21")));
        let stale = Some((d("2025-03-01"), d("2026-06-30")));
        #[rustfmt::skip]
        let cases: Vec<(&str, Option<Coverage>, Demand, Option<Plan>)> = vec![
            ("first purchase: a year before it, to today",
             None, buy("2026-03-01", true),
             Some(Plan { coverage: (d("2025-03-01"), today), jobs: vec![(d("2025-03-01"), today)] })),
            ("leap day goes back one calendar year",
             None, buy("2024-02-29", true),
             Some(Plan { coverage: (d("2023-02-28"), today), jobs: vec![(d("2023-02-28"), today)] })),
            ("later purchase within held history: nothing",
             held, buy("2026-05-01", false), None),
            ("purchase on the held edge: nothing",
             held, buy("2026-03-01", false), None),
            ("purchase dated earlier than held history: only the missing range",
             held, buy("2025-01-15", false),
             Some(Plan { coverage: (d("2024-01-15"), d("2026-11-21")),
                         jobs: vec![(d("2024-01-15"), d("2025-02-28"))] })),
            ("held again after a pause: the stretch since",
             stale, buy("2026-11-20", true),
             Some(Plan { coverage: (d("2025-03-01"), today), jobs: vec![(d("2026-07-01"), today)] })),
            ("held again by a corrected sell, history current: nothing",
             held, reopened_only, None),
            ("held again and bought earlier: both stretches",
             stale, buy("2024-12-01", true),
             Some(Plan { coverage: (d("2023-12-01"), today),
                         jobs: vec![(d("2023-12-01"), d("2025-02-28")), (d("2026-07-01"), today)] })),
            ("a purchase dated in the future counts from today",
             None, buy("2027-01-01", true),
             Some(Plan { coverage: (d("2025-11-21"), today), jobs: vec![(d("2025-11-21"), today)] })),
            ("no buy and not reopened: nothing",
             None, Demand { earliest_buy: None, reopened: false }, None),
        ];
        for (what, held, demand, want) in cases {
            assert_eq!(plan(held, demand, today, 12), want, "{what}");
        }
    }

    #[test]
    fn the_range_length_is_configurable() {
        let today = d("2026-11-21");
        let demand = Demand {
            earliest_buy: Some(d("2026-11-01")),
            reopened: true,
        };
        let got = plan(None, demand, today, 3).unwrap();
        assert_eq!(got.jobs, vec![(d("2026-08-01"), today)]);
    }
}
