//! Retry delays, as pure functions: the caller passes the randomness in, so
//! the tables below pin every value.
//!
//! - A job that failed transiently waits `RETRY_EXPONENTIAL_BASE` after its
//!   first attempt, doubling per attempt (5, 10, 20, 40 min by default),
//!   ±10% jitter so jobs that failed together do not return together,
//!   capped at [`MAX_DELAY`].
//! - A provider that refused with a rate limit pauses base × 2^(n-1) for
//!   its n-th refusal in a row (5, 10, 20, 40 min), or longer if its
//!   Retry-After asks for longer. A shorter Retry-After (`0`, a date in the
//!   past) does not shorten it: a provider that keeps refusing while saying
//!   "retry now" would otherwise be asked again and again without limit.
//!   No jitter: the pause is the provider's, shared by every worker.

use std::time::Duration;

/// No computed delay exceeds this.
pub const MAX_DELAY: Duration = Duration::from_secs(6 * 3600);

/// A provider's own Retry-After is obeyed up to this (a Binance ban can
/// run for days; a broken header must not park a provider for years).
pub const MAX_PROVIDER_WAIT: Duration = Duration::from_secs(7 * 86_400);

/// Jitter band: the delay is scaled by a factor in `[1 - JITTER, 1 + JITTER)`.
pub const JITTER: f64 = 0.1;

/// Delay before retrying a job whose `attempt`-th try (1-based) failed
/// transiently. `unit` in `[0, 1)` places it in the jitter band (0.5 is the
/// exact doubling). Rounded to whole milliseconds.
pub fn transient_delay(base: Duration, attempt: u32, unit: f64) -> Duration {
    let doubled = doubling(base, attempt);
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
    whole_millis(doubled.mul_f64(factor).min(MAX_DELAY))
}

/// How long a provider pauses after its `consecutive`-th rate limit in a
/// row (1-based): the doubling from `base`, or what it said if longer.
pub fn rate_limit_delay(
    base: Duration,
    consecutive: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let ours = doubling(base, consecutive).min(MAX_DELAY);
    let theirs = retry_after.unwrap_or_default().min(MAX_PROVIDER_WAIT);
    whole_millis(ours.max(theirs))
}

/// base × 2^(n-1), saturating (n = 0 is treated as 1).
fn doubling(base: Duration, n: u32) -> Duration {
    let exponent = n.saturating_sub(1).min(30);
    base.saturating_mul(1 << exponent)
}

/// PostgreSQL intervals hold microseconds; whole milliseconds keep logs tidy.
fn whole_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn transient_doubles_from_the_base_per_attempt() {
        let base = 5 * MIN;
        let cases = [
            (1, 0.5, 5 * MIN),
            (2, 0.5, 10 * MIN),
            (3, 0.5, 20 * MIN),
            (4, 0.5, 40 * MIN),
            (5, 0.5, 80 * MIN),
            (0, 0.5, 5 * MIN),
            // the jitter band: -10% .. +10%
            (1, 0.0, Duration::from_secs(270)),
            (1, 1.0, Duration::from_secs(330)),
            (4, 0.0, 36 * MIN),
            (4, 0.75, 42 * MIN),
            // capped, however many attempts
            (9, 0.5, MAX_DELAY),
            (40, 1.0, MAX_DELAY),
            (u32::MAX, 0.0, Duration::from_secs(6 * 3600)),
        ];
        for (attempt, unit, want) in cases {
            assert_eq!(
                transient_delay(base, attempt, unit),
                want,
                "attempt {attempt}, unit {unit}"
            );
        }
    }

    #[test]
    fn transient_follows_a_configured_base_and_stays_in_whole_millis() {
        let base = Duration::from_secs(90);
        assert_eq!(transient_delay(base, 1, 0.5), Duration::from_secs(90));
        assert_eq!(transient_delay(base, 3, 0.5), Duration::from_secs(360));
        let odd = transient_delay(Duration::from_millis(1001), 1, 0.123_456);
        assert_eq!(odd.subsec_nanos() % 1_000_000, 0, "{odd:?}");
    }

    #[test]
    fn rate_limits_double_per_refusal_and_obey_a_longer_retry_after() {
        let base = 5 * MIN;
        let cases = [
            (1, None, 5 * MIN),
            (2, None, 10 * MIN),
            (3, None, 20 * MIN),
            (4, None, 40 * MIN),
            (12, None, MAX_DELAY),
            // A shorter Retry-After is raised to the doubling.
            (1, Some(Duration::from_secs(30)), 5 * MIN),
            (2, Some(Duration::from_secs(30)), 10 * MIN),
            (7, Some(Duration::from_secs(30)), 320 * MIN),
            (1, Some(Duration::from_secs(900)), 15 * MIN),
            (
                1,
                Some(Duration::from_secs(3 * 86_400)),
                Duration::from_secs(3 * 86_400),
            ),
            (1, Some(Duration::from_secs(u64::MAX)), MAX_PROVIDER_WAIT),
            (1, Some(Duration::ZERO), 5 * MIN),
            (3, Some(Duration::ZERO), 20 * MIN),
        ];
        for (n, retry_after, want) in cases {
            assert_eq!(
                rate_limit_delay(base, n, retry_after),
                want,
                "n {n}, {retry_after:?}"
            );
        }
    }
}
