//! The seed's sliding-window limiter, on the sliding-window counter of [`super::window`]
//! (one atomic word, no lock). [`step`] is the pure maths, tested without clocks.

use std::time::Duration;

use tokio::time::Instant;

use super::window::{self, WindowCounter};
use super::Decision;

/// One step of the limiter: given the window's counts (previous, current), how far into it
/// we are (`elapsed` of `window`), returns the new current count (`None`: unchanged) and the
/// decision.
pub(crate) fn step(
    previous: u64,
    current: u64,
    elapsed: Duration,
    window: Duration,
    limit: u64,
) -> (Option<u64>, Decision) {
    let w = window.as_nanos();
    let e = elapsed.as_nanos().min(w);
    // Allowed when previous * (w - e) / w + current < limit, in integers.
    let weighted = u128::from(previous) * (w - e) + u128::from(current) * w;
    if weighted < u128::from(limit) * w {
        return (Some(current + 1), Decision::Allow);
    }
    let retry_after = time_until_allowed(previous, current, e, w, limit);
    (None, Decision::Deny { retry_after })
}

/// How long until `previous * (w - e) / w + current` drops below `limit`, if no other
/// request is counted meanwhile.
fn time_until_allowed(previous: u64, current: u64, e: u128, w: u128, limit: u64) -> Duration {
    let (previous, current, limit) = (u128::from(previous), u128::from(current), u128::from(limit));
    let nanos = if current < limit {
        // Later in this window: previous * (w - t) < (limit - current) * w.
        // t > w - (limit - current) * w / previous; previous > 0 here, or we'd be allowed.
        let t = w - ((limit - current) * w) / previous.max(1);
        (t + 1).saturating_sub(e)
    } else {
        // In the next window the current count becomes the previous one:
        // current * (w - t) < limit * w  =>  t > w - limit * w / current.
        let t = w - (limit * w) / current;
        (w - e) + t + 1
    };
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The sliding-window counter shared by all worker threads.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: u64,
    window: Duration,
    epoch: Instant,
    counter: WindowCounter,
}

impl SlidingWindow {
    /// Allows `limit` requests per sliding `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        SlidingWindow {
            limit: u64::from(limit),
            window,
            epoch: Instant::now(),
            counter: WindowCounter::default(),
        }
    }

    /// The limit and window.
    pub fn config(&self) -> crate::config::RateLimitConfig {
        crate::config::RateLimitConfig {
            requests: u32::try_from(self.limit).unwrap_or(u32::MAX),
            window: self.window,
        }
    }

    /// Counts one request at `now` and decides.
    pub fn check(&self, now: Instant) -> Decision {
        let since = now.saturating_duration_since(self.epoch);
        let (window_now, elapsed) = window::position(since, self.window);
        self.counter.update(window_now, |previous, current| {
            step(previous, current, elapsed, self.window, self.limit)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn allows_up_to_the_limit_in_one_window() {
        let mut current = 0;
        for i in 0..20 {
            let (next, d) = step(0, current, ms(10), W, 20);
            assert_eq!(d, Decision::Allow, "request {i}");
            current = next.unwrap();
        }
        let (next, d) = step(0, current, ms(10), W, 20);
        assert!(next.is_none());
        assert!(matches!(d, Decision::Deny { .. }));
    }

    #[test]
    fn previous_window_weighs_by_overlap() {
        // 20 requests in window 0, then at 25% into window 1, 75% of them still count: 15.
        let mut current = 0;
        let mut allowed = 0;
        while let (Some(next), Decision::Allow) = step(20, current, ms(250), W, 20) {
            current = next;
            allowed += 1;
        }
        assert_eq!(allowed, 5);
        // At 90% into window 1, only 2 of window 0's count: 18 allowed.
        let mut current = 0;
        let mut allowed = 0;
        while let (Some(next), Decision::Allow) = step(20, current, ms(900), W, 20) {
            current = next;
            allowed += 1;
        }
        assert_eq!(allowed, 18);
    }

    #[test]
    fn retry_after_points_to_when_a_request_fits() {
        // Full current window at 40%: in the next window the 20 weigh (1 - t) * 20 < 20 as
        // soon as it has begun, 600 ms from now.
        let (_, d) = step(0, 20, ms(400), W, 20);
        let Decision::Deny { retry_after } = d else {
            panic!("expected deny")
        };
        assert!(
            retry_after > ms(600) && retry_after <= ms(601),
            "{retry_after:?}"
        );
        // Full previous window, at 10%: allowed once previous * (1 - t) < 20 - 0.
        let (_, d) = step(40, 0, ms(100), W, 20);
        let Decision::Deny { retry_after } = d else {
            panic!("expected deny")
        };
        // 40 * (1 - t) < 20 → t > 0.5: 400 ms from 10%.
        assert!(
            retry_after > ms(399) && retry_after <= ms(401),
            "{retry_after:?}"
        );
    }

    #[test]
    fn shared_limiter_counts_across_threads() {
        let limiter = std::sync::Arc::new(SlidingWindow::new(1000, Duration::from_secs(3600)));
        let now = Instant::now();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    (0..500)
                        .filter(|_| limiter.check(now) == Decision::Allow)
                        .count()
                })
            })
            .collect();
        let allowed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(allowed, 1000);
    }
}
