//! This process's provider requests over the last hour, in one-minute
//! buckets: what `/health/sources` shows as "requests and rate-limit
//! answers in the last hour". `provider_state` keeps only totals since the
//! beginning, and a Prometheus counter cannot be read back as a window.

use std::sync::Mutex;
use std::time::Instant;

use crate::providers::ProviderKind;

const BUCKETS: usize = 60;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub requests: u64,
    pub rate_limited: u64,
    pub errors: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Self) {
        self.requests += o.requests;
        self.rate_limited += o.rate_limited;
        self.errors += o.errors;
    }
}

/// Per provider, a ring of per-minute counts keyed by the minute number
/// since the window was made, so stale buckets are recognised and skipped.
#[derive(Debug)]
pub struct Window {
    start: Instant,
    rings: Mutex<[[(u64, Counts); BUCKETS]; 3]>,
}

impl Default for Window {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl Window {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            rings: Mutex::new([[(u64::MAX, Counts::default()); BUCKETS]; 3]),
        }
    }

    fn minute(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_secs() / 60
    }

    pub fn record(&self, provider: ProviderKind, at: Instant, add: Counts) {
        let minute = self.minute(at);
        let mut rings = self.rings.lock().expect("request window");
        let slot = &mut rings[index(provider)][(minute % BUCKETS as u64) as usize];
        if slot.0 != minute {
            *slot = (minute, Counts::default());
        }
        slot.1 += add;
    }

    /// The counts of the 60 minutes up to `at`.
    pub fn last_hour(&self, provider: ProviderKind, at: Instant) -> Counts {
        let now = self.minute(at);
        let rings = self.rings.lock().expect("request window");
        let mut total = Counts::default();
        for (minute, counts) in rings[index(provider)].iter() {
            if *minute <= now && now - *minute < BUCKETS as u64 {
                total += *counts;
            }
        }
        total
    }
}

fn index(provider: ProviderKind) -> usize {
    match provider {
        ProviderKind::Yahoo => 0,
        ProviderKind::Binance => 1,
        ProviderKind::CoinGecko => 2,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn counts_leave_the_window_after_an_hour() {
        let t0 = Instant::now();
        let w = Window::new(t0);
        let one = Counts {
            requests: 1,
            rate_limited: 1,
            errors: 0,
        };
        w.record(ProviderKind::Yahoo, t0, one);
        w.record(ProviderKind::Yahoo, t0 + Duration::from_secs(30 * 60), one);
        w.record(ProviderKind::Binance, t0, one);
        let at = |mins: u64| t0 + Duration::from_secs(mins * 60);
        assert_eq!(w.last_hour(ProviderKind::Yahoo, at(31)).requests, 2);
        assert_eq!(w.last_hour(ProviderKind::Yahoo, at(61)).requests, 1);
        assert_eq!(w.last_hour(ProviderKind::Yahoo, at(91)).requests, 0);
        assert_eq!(w.last_hour(ProviderKind::CoinGecko, at(1)).requests, 0);
        // A bucket reused an hour later starts from zero.
        w.record(ProviderKind::Binance, at(60), one);
        assert_eq!(w.last_hour(ProviderKind::Binance, at(60)).requests, 1);
    }
}
