//! Retry budget and backoff.
//!
//! The budget is linkerd's and tower's idea: retries may be at most `budget_percent` of the
//! requests of the last second, plus a small floor per second, so that a failing pool never
//! multiplies its load (with 20%, a pool answering only errors sees at most 1.2 × the
//! requests, plus the floor). Counting is lock-free, on the rate limiter's sliding-window
//! counter ([`crate::ratelimit::window`]) over one-second windows.
//!
//! Connect failures are retried without drawing on the budget: such a request never reached
//! a backend, so retrying it adds no load to one.

use std::time::Duration;

use tokio::time::Instant;

use super::pick;
use crate::clock::nanos;
use crate::config::RetryConfig;
use crate::ratelimit::window::{self, WindowCounter};

const SECOND: Duration = Duration::from_secs(1);

/// Events counted over a sliding second.
#[derive(Debug, Default)]
struct PerSecond(WindowCounter);

impl PerSecond {
    fn add(&self, now_ns: u64) {
        let (second, _) = window::position(Duration::from_nanos(now_ns), SECOND);
        self.0.add(second);
    }

    /// Events in the sliding second ending now.
    fn estimate(&self, now_ns: u64) -> f64 {
        let (second, into) = window::position(Duration::from_nanos(now_ns), SECOND);
        let (previous, current) = self.0.counts(second);
        window::weighted(previous, current, into, SECOND)
    }
}

/// A pool's retry budget.
#[derive(Debug)]
pub struct Budget {
    percent: u32,
    min_per_second: u32,
    requests: PerSecond,
    retries: PerSecond,
}

impl Budget {
    /// A budget with `config`'s share and floor.
    pub fn new(config: &RetryConfig) -> Self {
        Budget {
            percent: config.budget_percent,
            min_per_second: config.budget_min_per_second,
            requests: PerSecond::default(),
            retries: PerSecond::default(),
        }
    }

    /// True when this budget has `config`'s settings (a reload keeps it, with its counts).
    pub fn is(&self, config: &RetryConfig) -> bool {
        self.percent == config.budget_percent && self.min_per_second == config.budget_min_per_second
    }

    /// Counts one request.
    pub fn deposit(&self, now: Instant) {
        self.requests.add(nanos(now));
    }

    /// Takes one retry from the budget if there is room.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        let t = nanos(now);
        let allowed = f64::from(self.min_per_second)
            + self.requests.estimate(t) * f64::from(self.percent) / 100.0;
        if self.retries.estimate(t) + 1.0 > allowed {
            return false;
        }
        self.retries.add(t);
        true
    }
}

/// The wait before retry number `n` (1 for the first retry): a random duration up to
/// `base × 2^(n-1)`, capped at `max` ("full jitter").
pub fn backoff(n: u32, base: Duration, max: Duration) -> Duration {
    if base.is_zero() {
        return Duration::ZERO;
    }
    let ceiling = base
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(max);
    let nanos = ceiling.as_nanos() as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(pick::random() % (nanos + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(percent: u32, min: u32) -> RetryConfig {
        RetryConfig {
            budget_percent: percent,
            budget_min_per_second: min,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn budget_allows_the_floor_then_a_share() {
        let b = Budget::new(&config(20, 2));
        let now = Instant::now();
        // No requests yet: only the floor.
        assert!(b.try_withdraw(now));
        assert!(b.try_withdraw(now));
        assert!(!b.try_withdraw(now));
        // 100 requests: 20% more.
        for _ in 0..100 {
            b.deposit(now);
        }
        let allowed = (0..100).filter(|_| b.try_withdraw(now)).count();
        assert_eq!(allowed, 20);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(10);
        let max = Duration::from_millis(50);
        for n in 1..8 {
            let d = backoff(n, base, max);
            let ceiling = (base * (1 << (n - 1))).min(max);
            assert!(d <= ceiling, "{n}: {d:?}");
        }
        assert_eq!(backoff(3, Duration::ZERO, max), Duration::ZERO);
    }
}
