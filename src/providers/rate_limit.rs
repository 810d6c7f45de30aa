//! Per-provider pacing: a token bucket (governor's GCRA) on tokio's clock, so
//! tests drive it with paused time, plus two ways the provider itself can
//! slow us down:
//!
//! - a *hold*: the next requests wait until an instant (Binance's used
//!   weight near its budget); short, so callers simply wait;
//! - a *cooldown*: the provider said 429/418; calls fail at once with
//!   `RateLimited` until it ends, so a worker snoozes its job instead of
//!   sleeping on it, and nobody keeps hammering. It is checked before a
//!   request waits for its token and again just before it is sent.
//!
//! A worker process shares its cooldowns with every other process through
//! the database ([`SharedCooldown`], installed with [`RateLimiter::share`]):
//! then a refusal pauses the provider in that shared view at once, and a
//! pause announced by another process stops requests waiting here too.
//! It shares the budget too ([`SharedBudget`], installed with
//! [`RateLimiter::share_budget`]): every request also takes a token from a
//! bucket in the database, so N processes together keep to one budget.
//!
//! A budget of `count` per `per` means at most `count` requests in any
//! window of `per`, bursts included (see [`Rate::pacing`]): a provider
//! counting its own window must never see more.

use std::fmt;
use std::ops::Add;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Gcra};
use tokio::time::Instant;

use super::kind::ProviderKind;

mod rate;

pub use rate::{Pacing, Rate, rate};

/// A paused provider when the provider said nothing usable and no shared
/// view decides (`fetch`/`quote`): long enough that a batch does not hammer.
const LOCAL_PAUSE: Duration = Duration::from_secs(60);

/// Cooldowns known beyond this process: the queue's view of
/// `provider_state`, kept current by notifications.
pub trait SharedCooldown: Send + Sync + fmt::Debug {
    /// How long `kind` has left to cool, if it is cooling.
    fn cooling_left(&self, kind: ProviderKind) -> Option<Duration>;
    /// `kind` refused a request just now: pause it at once, before the
    /// refusal is recorded anywhere.
    fn refused(&self, kind: ProviderKind, retry_after: Option<Duration>);
}

/// How long the leftover tokens of a slice taken from a [`SharedBudget`]
/// may still be spent; older ones are dropped unspent. The pacing counts
/// it in, so spending late cannot crowd one window.
const SLICE_LIFE: Duration = Duration::from_millis(200);

/// A request budget kept beyond this process: `provider_budget` in the
/// database, taken from by every process that uses it.
#[async_trait]
pub trait SharedBudget: Send + Sync + fmt::Debug {
    /// Takes up to `want` tokens of `kind`'s bucket, paced by `pacing`.
    async fn take(&self, kind: ProviderKind, want: u32, pacing: Pacing) -> Result<Taken, String>;
}

/// What a [`SharedBudget`] handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// This many tokens (at least one), to be spent now.
    Granted(u32),
    /// None free; the next one is this far off.
    Wait(Duration),
}

/// governor's clock, backed by tokio's (pausable) `Instant`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(Instant);

impl Add<Nanos> for TokioInstant {
    type Output = Self;

    fn add(self, other: Nanos) -> Self {
        Self(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        self.0
            .checked_sub(Duration::from(duration))
            .map_or(*self, Self)
    }
}

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(Instant::now())
    }
}

pub struct RateLimiter {
    rate: Rate,
    bucket: Gcra<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>,
    hold_until: Mutex<Option<Instant>>,
    cooldown_until: Mutex<Option<Instant>>,
    shared: OnceLock<(ProviderKind, Arc<dyn SharedCooldown>)>,
    budget: OnceLock<(ProviderKind, Arc<dyn SharedBudget>)>,
    /// Tokens taken from the shared budget and not yet spent. Its lock
    /// also makes one waiter at a time ask the database for more.
    slice: tokio::sync::Mutex<Slice>,
    /// When a failing shared budget was last logged.
    budget_failed: Mutex<Option<Instant>>,
    /// Requests sent and refusals received since the last [`RateLimiter::take_tally`].
    tally: Mutex<Tally>,
}

/// Requests that reached the provider, and how many it refused as rate
/// limits, since the last look.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub requests: i64,
    pub rate_limited: i64,
}

#[derive(Debug, Default)]
struct Slice {
    left: u32,
    until: Option<Instant>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    pub fn new(rate: Rate) -> Self {
        let pacing = rate.pacing(Duration::ZERO);
        let quota = Quota::with_period(pacing.every.max(Duration::from_nanos(1)))
            .expect("period is at least one nanosecond")
            .allow_burst(pacing.burst);
        Self {
            rate,
            bucket: Gcra::direct_with_clock(quota, TokioClock),
            hold_until: Mutex::new(None),
            cooldown_until: Mutex::new(None),
            shared: OnceLock::new(),
            budget: OnceLock::new(),
            slice: tokio::sync::Mutex::new(Slice::default()),
            budget_failed: Mutex::new(None),
            tally: Mutex::new(Tally::default()),
        }
    }

    /// A request is leaving for the provider now.
    pub fn sent(&self) {
        self.tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests += 1;
    }

    /// What was sent and refused since the last call.
    pub fn take_tally(&self) -> Tally {
        std::mem::take(&mut *self.tally.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes `shared` this limiter's cooldown authority for `kind` (once).
    pub fn share(&self, kind: ProviderKind, shared: Arc<dyn SharedCooldown>) {
        let _ = self.shared.set((kind, shared));
    }

    /// Makes every request also take a token of `kind`'s budget in
    /// `budget`, shared with other processes (once).
    pub fn share_budget(&self, kind: ProviderKind, budget: Arc<dyn SharedBudget>) {
        let _ = self.budget.set((kind, budget));
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Waits until a request may be sent: past any hold, then a token of
    /// this process's bucket and of the shared budget, if there is one.
    pub async fn acquire(&self) {
        // Without patience no wait is refused.
        let _ = self.acquire_within(None).await;
    }

    /// [`RateLimiter::acquire`], but a token further off than `patience`
    /// is not waited for: `Err` says how far off it is. A budget counted
    /// per day (Alpha Vantage's 25) would otherwise hold a worker for an
    /// hour; its job snoozes instead.
    pub async fn acquire_within(&self, patience: Option<Duration>) -> Result<(), Duration> {
        self.acquire_local(patience).await?;
        if let Some((kind, budget)) = self.budget.get() {
            self.acquire_shared(*kind, budget.as_ref(), patience)
                .await?;
        }
        Ok(())
    }

    async fn acquire_local(&self, patience: Option<Duration>) -> Result<(), Duration> {
        loop {
            // Checked on every turn: a hold (e.g. Binance's used weight
            // nearing its limit) may be set while this task waits.
            if let Some(until) = self.held_until() {
                tokio::time::sleep_until(until).await;
            }
            match self.bucket.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(TokioClock.now());
                    if patience.is_some_and(|p| wait > p) {
                        return Err(wait);
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// A token of the shared budget: from the slice in hand, else a new
    /// slice, waiting as long as the shared bucket says. Should the
    /// database fail, this process's own bucket is all there is: the
    /// request goes (logged at most every minute), since the job it
    /// serves cannot be stored meanwhile anyway.
    async fn acquire_shared(
        &self,
        kind: ProviderKind,
        budget: &dyn SharedBudget,
        patience: Option<Duration>,
    ) -> Result<(), Duration> {
        let pacing = self.rate.pacing(SLICE_LIFE);
        let mut slice = self.slice.lock().await;
        loop {
            if slice.left > 0 && slice.until.is_some_and(|until| until > Instant::now()) {
                slice.left -= 1;
                return Ok(());
            }
            match budget.take(kind, pacing.slice(), pacing).await {
                Ok(Taken::Granted(n)) => {
                    *slice = Slice {
                        left: n.saturating_sub(1),
                        until: Some(Instant::now() + SLICE_LIFE),
                    };
                    return Ok(());
                }
                Ok(Taken::Wait(wait)) if patience.is_some_and(|p| wait > p) => return Err(wait),
                Ok(Taken::Wait(wait)) => {
                    tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                }
                Err(error) => {
                    let mut logged = self.budget_failed.lock().unwrap_or_else(|p| p.into_inner());
                    if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        *logged = Some(Instant::now());
                        tracing::warn!(provider = %kind, %error,
                            "shared request budget unavailable; pacing by this process's budget alone");
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Makes requests wait until `until` (later holds win).
    pub fn hold(&self, until: Instant) {
        extend(&self.hold_until, until);
    }

    pub fn held_until(&self) -> Option<Instant> {
        current(&self.hold_until)
    }

    /// Refuses requests until `until` (later cooldowns win).
    pub fn cool_down(&self, until: Instant) {
        extend(&self.cooldown_until, until);
    }

    /// How long the provider's cooldown has left, if one is in force here
    /// or in the shared view.
    pub fn cooldown_left(&self) -> Option<Duration> {
        let local = current(&self.cooldown_until).map(|until| until - Instant::now());
        let shared = self
            .shared
            .get()
            .and_then(|(kind, shared)| shared.cooling_left(*kind));
        local.max(shared)
    }

    /// The provider refused a request (429/418): pause it at once, with or
    /// without a Retry-After. With a shared view, that view decides how
    /// long; alone, the provider's word or [`LOCAL_PAUSE`].
    pub fn refused(&self, retry_after: Option<Duration>) {
        self.tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rate_limited += 1;
        match self.shared.get() {
            Some((kind, shared)) => shared.refused(*kind, retry_after),
            None => self.cool_down(
                Instant::now()
                    + retry_after
                        .unwrap_or(LOCAL_PAUSE)
                        .max(Duration::from_secs(1)),
            ),
        }
    }
}

fn extend(slot: &Mutex<Option<Instant>>, until: Instant) {
    let mut slot = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if slot.is_none_or(|current| current < until) {
        *slot = Some(until);
    }
}

fn current(slot: &Mutex<Option<Instant>>) -> Option<Instant> {
    let slot = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    slot.filter(|until| *until > Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::peak_in_window;

    #[test]
    fn rates_parse_in_every_spelling() {
        let cases = [
            ("2000/h", Rate::per_hour(2000)),
            ("1200/min", Rate::per_minute(1200)),
            ("50/min", Rate::per_minute(50)),
            (
                " 10 / s ",
                Rate {
                    count: 10,
                    per: Duration::from_secs(1),
                },
            ),
            ("100/1h", Rate::per_hour(100)),
            (
                "5/30s",
                Rate {
                    count: 5,
                    per: Duration::from_secs(30),
                },
            ),
            ("60/1m", Rate::per_minute(60)),
        ];
        for (raw, want) in cases {
            assert_eq!(raw.parse::<Rate>(), Ok(want), "{raw}");
        }
        for bad in [
            "",
            "2000",
            "0/min",
            "-1/min",
            "ten/min",
            "5/fortnight",
            "5/0s",
            "5/2d",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        let err = rate("PRICEKEEPER_YAHOO_RATE")("2000").unwrap_err();
        assert!(
            err.starts_with("PRICEKEEPER_YAHOO_RATE must be a count per duration"),
            "{err}"
        );
    }

    #[test]
    fn the_slower_rate_wins_and_bursts_are_short() {
        let ceiling = Rate::per_minute(30);
        assert_eq!(Rate::per_hour(2000).min(ceiling), ceiling); // 33/min > 30/min
        assert_eq!(Rate::per_minute(20).min(ceiling), Rate::per_minute(20));
        assert_eq!(Rate::per_hour(2000).burst().get(), 6); // ten seconds' worth
        assert_eq!(Rate::per_minute(1200).burst().get(), 60); // a twentieth
        assert_eq!(Rate::per_minute(50).burst().get(), 2);
        assert_eq!(Rate::per_minute(10).burst().get(), 1);
        assert_eq!(Rate::per_hour(1).burst().get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_of_the_period_sees_more_than_the_count() {
        for rate in [
            Rate::per_minute(600),
            Rate::per_minute(60),
            Rate::per_minute(10),
            Rate::per_hour(2000),
        ] {
            let limiter = RateLimiter::new(rate);
            let mut times = Vec::new();
            for _ in 0..rate.count * 3 {
                limiter.acquire().await;
                times.push(Instant::now());
            }
            let peak = peak_in_window(&times, rate.per);
            assert!(peak <= rate.count as usize, "{rate}: {peak} in one window");
            // ... and the steady pace loses no more than the burst.
            assert!(
                peak as u32 >= rate.count - rate.burst().get(),
                "{rate}: {peak}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_lets_a_burst_through_then_paces() {
        let limiter = RateLimiter::new(Rate::per_minute(600)); // burst 30, then 570/min
        let start = Instant::now();
        for _ in 0..30 {
            limiter.acquire().await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the burst waits for nothing"
        );
        for _ in 0..57 {
            limiter.acquire().await;
        }
        let paced = start.elapsed();
        assert!(
            paced >= Duration::from_secs(6) && paced < Duration::from_millis(6100),
            "{paced:?}"
        );
        // After a quiet minute the whole burst is back.
        tokio::time::advance(Duration::from_secs(60)).await;
        let again = Instant::now();
        for _ in 0..30 {
            limiter.acquire().await;
        }
        assert_eq!(again.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn hourly_budget_is_spread_over_the_hour() {
        let limiter = RateLimiter::new(Rate::per_hour(2000));
        let start = Instant::now();
        for _ in 0..106 {
            limiter.acquire().await;
        }
        // 6 at once, then one every 3600/1994 s.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(180_540) && elapsed < Duration::from_millis(180_560),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn hold_delays_and_cooldown_counts_down() {
        let limiter = RateLimiter::new(Rate::per_minute(1200));
        let start = Instant::now();
        limiter.hold(start + Duration::from_secs(30));
        limiter.hold(start + Duration::from_secs(10)); // earlier hold does not shorten it
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        assert_eq!(limiter.held_until(), None);

        limiter.cool_down(Instant::now() + Duration::from_secs(120));
        assert_eq!(limiter.cooldown_left(), Some(Duration::from_secs(120)));
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(limiter.cooldown_left(), Some(Duration::from_secs(20)));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(limiter.cooldown_left(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_daily_budget_paces_by_the_hour_and_refuses_long_waits() {
        let rate: Rate = "25/d".parse().unwrap();
        let pacing = rate.pacing(Duration::ZERO);
        assert_eq!(pacing.burst.get(), 1);
        assert_eq!(
            pacing.every,
            Duration::from_secs(3600),
            "24 steady tokens a day"
        );
        let limiter = RateLimiter::new(rate);
        let patience = Some(Duration::from_secs(60));
        assert_eq!(limiter.acquire_within(patience).await, Ok(()));
        let wait = limiter.acquire_within(patience).await.unwrap_err();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        tokio::time::advance(wait).await;
        assert_eq!(limiter.acquire_within(patience).await, Ok(()));
    }
}
