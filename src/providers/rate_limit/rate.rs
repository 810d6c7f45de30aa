//! A request budget (`2000/h`, `25/d`) and the token bucket that keeps to
//! it in every window of its period, bursts included.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

/// A slice is about this much of the budget's time: one round trip to the
/// shared bucket per slice, not per request.
const SLICE_SPAN: Duration = Duration::from_millis(100);

/// A token bucket's shape: one token every `every`, and up to `burst` at
/// once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    pub every: Duration,
    pub burst: NonZeroU32,
}

impl Pacing {
    /// How far ahead of now the bucket may run: the burst less one token.
    pub fn tolerance(self) -> Duration {
        self.every * (self.burst.get() - 1)
    }

    /// Tokens worth taking at once from a shared bucket.
    pub(super) fn slice(self) -> u32 {
        let worth = SLICE_SPAN.as_nanos() / self.every.as_nanos().max(1);
        u32::try_from(worth)
            .unwrap_or(u32::MAX)
            .clamp(1, self.burst.get())
    }
}

/// A request budget: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    pub const fn per_minute(count: u32) -> Self {
        Self {
            count,
            per: Duration::from_secs(60),
        }
    }

    pub const fn per_hour(count: u32) -> Self {
        Self {
            count,
            per: Duration::from_secs(3600),
        }
    }

    /// The slower of two rates.
    pub fn min(self, other: Rate) -> Rate {
        // a/p < b/q  <=>  a*q < b*p, in nanoseconds to stay exact.
        let left = u128::from(self.count) * other.per.as_nanos();
        let right = u128::from(other.count) * self.per.as_nanos();
        if left <= right { self } else { other }
    }

    /// How many requests may go at once after a quiet spell: ten seconds'
    /// worth, but at most a twentieth of `count`, and at least one. A full
    /// bucket of an hourly budget (2000 Yahoo requests at once) is exactly
    /// the hammering that earns 429s.
    pub fn burst(self) -> NonZeroU32 {
        let ten_secs = Duration::from_secs(10).as_nanos();
        let worth = (u128::from(self.count) * ten_secs).div_ceil(self.per.as_nanos().max(1));
        let burst = worth.min(u128::from(self.count / 20)).max(1);
        NonZeroU32::new(u32::try_from(burst).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
    }

    /// The bucket that keeps to this rate in every window of `per`, even
    /// when tokens are spent up to `late` after they were handed out: in a
    /// window the bucket hands out at most `burst` plus one token per
    /// `every`, so the steady pace leaves room for the burst. For 600/min
    /// that is 570/min steady after a burst of 30; for Yahoo's 2000/h,
    /// 1994/h after 6.
    pub fn pacing(self, late: Duration) -> Pacing {
        let burst = self.burst();
        let steady = self.count.saturating_sub(burst.get()).max(1);
        Pacing {
            every: (self.per + late) / steady,
            burst,
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, humantime::format_duration(self.per))
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `2000/h`, `1200/min`, `50/min`, `10/s`, `100/1h`, `5/30s`.
    fn from_str(raw: &str) -> Result<Self, String> {
        let (count, unit) = raw
            .trim()
            .split_once('/')
            .ok_or("no `/` between count and duration")?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("{:?} is not a whole number", count.trim()))?;
        if count == 0 {
            return Err("the count must be at least 1".to_owned());
        }
        let unit = unit.trim();
        let per = match unit {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            _ => humantime::parse_duration(unit).map_err(|e| format!("{unit:?}: {e}"))?,
        };
        if per < Duration::from_millis(1) || per > Duration::from_secs(86_400) {
            return Err("the duration must be from 1ms to 1 day".to_owned());
        }
        Ok(Self { count, per })
    }
}

/// A clap value parser for a [`Rate`] whose error names `var`.
pub fn rate(var: &'static str) -> impl Fn(&str) -> Result<Rate, String> + Clone {
    move |raw| {
        raw.parse().map_err(|e| {
            format!("{var} must be a count per duration such as 2000/h, 1200/min or 50/min ({e})")
        })
    }
}
