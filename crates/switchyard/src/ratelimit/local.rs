//! The seed's sliding-window limiter, as a sliding-window *counter*: the count of the
//! current fixed window plus the previous window's count weighted by how much of it still
//! overlaps the sliding window. Memory is constant and the error against an exact sliding
//! log is small (it assumes the previous window's requests were evenly spread).
//!
//! The whole state (window number and both counts) is one `AtomicU64` updated by
//! compare-and-swap, so worker threads never wait on each other. [`step`] is the pure maths,
//! tested without clocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::Decision;

const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const WINDOW_BITS: u32 = 64 - 2 * COUNT_BITS;
const WINDOW_MASK: u64 = (1 << WINDOW_BITS) - 1;

/// Packed limiter state: window number (low 24 bits of it), previous and current counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packed {
    pub window: u64,
    pub previous: u64,
    pub current: u64,
}

impl Packed {
    fn unpack(v: u64) -> Self {
        Packed {
            window: v >> (2 * COUNT_BITS),
            previous: (v >> COUNT_BITS) & COUNT_MASK,
            current: v & COUNT_MASK,
        }
    }

    fn pack(self) -> u64 {
        ((self.window & WINDOW_MASK) << (2 * COUNT_BITS))
            | ((self.previous & COUNT_MASK) << COUNT_BITS)
            | (self.current & COUNT_MASK)
    }
}

/// One step of the limiter: given the stored state, the current window number, how far into
/// it we are (`elapsed` of `window`), returns the new state (`None`: unchanged) and the
/// decision. Window numbers are compared modulo 2^24; an idle gap of exactly a multiple of
/// 2^24 windows (194 days at 1 s) would reuse a stale count for one window.
pub(crate) fn step(
    stored: Packed,
    window_now: u64,
    elapsed: Duration,
    window: Duration,
    limit: u64,
) -> (Option<Packed>, Decision) {
    let gap = window_now.wrapping_sub(stored.window) & WINDOW_MASK;
    let (previous, current) = match gap {
        0 => (stored.previous, stored.current),
        1 => (stored.current, 0),
        _ => (0, 0),
    };
    let w = window.as_nanos();
    let e = elapsed.as_nanos().min(w);
    // Allowed when previous * (w - e) / w + current < limit, in integers.
    let weighted = u128::from(previous) * (w - e) + u128::from(current) * w;
    if weighted < u128::from(limit) * w {
        let next = Packed {
            window: window_now & WINDOW_MASK,
            previous,
            current: current + 1,
        };
        return (Some(next), Decision::Allow);
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
    state: AtomicU64,
}

impl SlidingWindow {
    /// Allows `limit` requests per sliding `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        SlidingWindow {
            limit: u64::from(limit),
            window,
            epoch: Instant::now(),
            state: AtomicU64::new(0),
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
        let w = self.window.as_nanos().max(1);
        let window_now = (since.as_nanos() / w) as u64;
        let elapsed = Duration::from_nanos((since.as_nanos() % w) as u64);
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let (next, decision) = step(
                Packed::unpack(current),
                window_now,
                elapsed,
                self.window,
                self.limit,
            );
            let Some(next) = next else {
                return decision;
            };
            match self.state.compare_exchange_weak(
                current,
                next.pack(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return decision,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn state(window: u64, previous: u64, current: u64) -> Packed {
        Packed {
            window,
            previous,
            current,
        }
    }

    #[test]
    fn packs_and_unpacks() {
        let p = state(123_456, 1_000_000, 7);
        assert_eq!(Packed::unpack(p.pack()), p);
    }

    #[test]
    fn allows_up_to_the_limit_in_one_window() {
        let mut s = state(0, 0, 0);
        for i in 0..20 {
            let (next, d) = step(s, 0, ms(10), W, 20);
            assert_eq!(d, Decision::Allow, "request {i}");
            s = next.unwrap();
        }
        let (next, d) = step(s, 0, ms(10), W, 20);
        assert!(next.is_none());
        assert!(matches!(d, Decision::Deny { .. }));
    }

    #[test]
    fn previous_window_weighs_by_overlap() {
        // 20 requests in window 0, then at 25% into window 1, 75% of them still count: 15.
        let s = state(0, 0, 20);
        let mut s1 = s;
        let mut allowed = 0;
        while let (Some(next), Decision::Allow) = step(s1, 1, ms(250), W, 20) {
            s1 = next;
            allowed += 1;
        }
        assert_eq!(allowed, 5);
        // At 90% into window 1, only 2 of window 0's count: 18 allowed.
        let mut s2 = s;
        let mut allowed = 0;
        while let (Some(next), Decision::Allow) = step(s2, 1, ms(900), W, 20) {
            s2 = next;
            allowed += 1;
        }
        assert_eq!(allowed, 18);
    }

    #[test]
    fn old_windows_are_forgotten() {
        let s = state(5, 20, 20);
        let (next, d) = step(s, 7, ms(0), W, 20);
        assert_eq!(d, Decision::Allow);
        assert_eq!(next, Some(state(7, 0, 1)));
    }

    #[test]
    fn window_numbers_wrap() {
        let s = state(WINDOW_MASK, 0, 20);
        let (next, d) = step(s, WINDOW_MASK + 1, ms(999), W, 20);
        assert_eq!(d, Decision::Allow);
        assert_eq!(
            next.map(|n| (n.window, n.previous, n.current)),
            Some((0, 20, 1))
        );
    }

    #[test]
    fn retry_after_points_to_when_a_request_fits() {
        // Full current window at 40%: in the next window the 20 weigh (1 - t) * 20 < 20 as
        // soon as it has begun, 600 ms from now.
        let s = state(0, 0, 20);
        let (_, d) = step(s, 0, ms(400), W, 20);
        let Decision::Deny { retry_after } = d else {
            panic!("expected deny")
        };
        assert!(
            retry_after > ms(600) && retry_after <= ms(601),
            "{retry_after:?}"
        );
        // Full previous window, at 10%: allowed once previous * (1 - t) < 20 - 0.
        let s = state(1, 40, 0);
        let (_, d) = step(s, 1, ms(100), W, 20);
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
