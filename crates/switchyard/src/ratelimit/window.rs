//! The sliding-window counter, one atomic word per counter: the count of the current fixed
//! window plus the previous window's count weighted by how much of it still overlaps the
//! sliding window. Memory is constant and the error against an exact sliding log is small
//! (it assumes the previous window's events were evenly spread). Used by the rate limiter
//! ([`super::SlidingWindow`]) and by the upstream retry budget.
//!
//! The word holds the window number (low 24 bits) and both counts (20 bits each), updated by
//! compare-and-swap, so worker threads never wait on each other. Window numbers are compared
//! modulo 2^24; an idle gap of exactly a multiple of 2^24 windows (194 days at 1 s) would
//! reuse a stale count for one window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const WINDOW_BITS: u32 = 64 - 2 * COUNT_BITS;
/// Window numbers are kept modulo `WINDOW_MASK + 1`.
pub(crate) const WINDOW_MASK: u64 = (1 << WINDOW_BITS) - 1;
/// The largest count a window holds (counts saturate there).
pub const COUNT_MAX: u64 = COUNT_MASK;

/// A counter's state: window number (low 24 bits of it), previous and current counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packed {
    pub window: u64,
    pub previous: u64,
    pub current: u64,
}

// === impl Packed ===

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

    /// The (previous, current) counts as seen from window `window_now`: a window later, the
    /// current count becomes the previous one; two or more later, both are gone.
    pub fn at(self, window_now: u64) -> (u64, u64) {
        match window_now.wrapping_sub(self.window) & WINDOW_MASK {
            0 => (self.previous, self.current),
            1 => (self.current, 0),
            _ => (0, 0),
        }
    }
}

/// Which window `since` (time since the counter's epoch) falls in, and how far into it.
pub fn position(since: Duration, window: Duration) -> (u64, Duration) {
    let w = window.as_nanos().max(1);
    let n = since.as_nanos();
    ((n / w) as u64, Duration::from_nanos((n % w) as u64))
}

/// The previous window's count weighted by its overlap with the sliding window, plus the
/// current count, `elapsed` into a window of length `window`.
pub fn weighted(previous: u64, current: u64, elapsed: Duration, window: Duration) -> f64 {
    let into = elapsed.as_secs_f64() / window.as_secs_f64().max(f64::MIN_POSITIVE);
    previous as f64 * (1.0 - into.min(1.0)) + current as f64
}

/// Events counted over a sliding window.
#[derive(Debug, Default)]
pub struct WindowCounter {
    state: AtomicU64,
}

// === impl WindowCounter ===

impl WindowCounter {
    /// The (previous, current) counts as of window `window_now`.
    pub fn counts(&self, window_now: u64) -> (u64, u64) {
        Packed::unpack(self.state.load(Ordering::Relaxed)).at(window_now)
    }

    /// Decides on the counts as of window `window_now`: `decide(previous, current)` returns
    /// the new current count to store (`None`: leave it) and a verdict, which is returned.
    /// Retried until the store wins against other threads.
    pub fn update<T>(
        &self,
        window_now: u64,
        mut decide: impl FnMut(u64, u64) -> (Option<u64>, T),
    ) -> T {
        let mut stored = self.state.load(Ordering::Relaxed);
        loop {
            let (previous, current) = Packed::unpack(stored).at(window_now);
            let (next, verdict) = decide(previous, current);
            let Some(next) = next else {
                return verdict;
            };
            let packed = Packed {
                window: window_now & WINDOW_MASK,
                previous,
                current: next.min(COUNT_MAX),
            }
            .pack();
            match self.state.compare_exchange_weak(
                stored,
                packed,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return verdict,
                Err(actual) => stored = actual,
            }
        }
    }

    /// Forgets both counts (a keyed limiter's slot given to another key).
    pub fn reset(&self) {
        self.state.store(0, Ordering::Relaxed);
    }

    /// Counts one event in window `window_now`.
    pub fn add(&self, window_now: u64) {
        self.update(window_now, |_, current| (Some(current + 1), ()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks() {
        let p = Packed {
            window: 123_456,
            previous: 1_000_000,
            current: 7,
        };
        assert_eq!(Packed::unpack(p.pack()), p);
    }

    #[test]
    fn counts_roll_over_and_are_forgotten() {
        let c = WindowCounter::default();
        for _ in 0..3 {
            c.add(5);
        }
        assert_eq!(c.counts(5), (0, 3));
        assert_eq!(c.counts(6), (3, 0));
        assert_eq!(c.counts(7), (0, 0));
        // Window numbers wrap.
        let w = WindowCounter::default();
        w.add(WINDOW_MASK);
        assert_eq!(w.counts(WINDOW_MASK + 1), (1, 0));
    }

    #[test]
    fn previous_window_weighs_by_overlap() {
        let w = Duration::from_secs(1);
        assert_eq!(weighted(20, 0, Duration::from_millis(250), w), 15.0);
        assert_eq!(weighted(20, 3, Duration::from_millis(900), w), 5.0);
        assert_eq!(
            position(Duration::from_millis(2500), w),
            (2, Duration::from_millis(500))
        );
    }
}
