//! Which backend a request tries first. Algorithms are an enum; each yields a starting
//! index, and [`super::Candidates`] walks the pool from there, skipping backends whose
//! circuit is open, so a retry takes the next backend in the same order.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A balancing algorithm with its state.
#[derive(Debug)]
pub enum Picker {
    /// The seed's round robin: each request starts one backend further along.
    RoundRobin {
        /// Requests picked so far.
        next: AtomicUsize,
    },
}

// === impl Picker ===

impl Picker {
    /// Round robin starting at the first backend.
    pub fn round_robin() -> Self {
        Picker::RoundRobin {
            next: AtomicUsize::new(0),
        }
    }

    /// Index of the first backend to try, out of `len` (> 0).
    #[inline]
    pub fn first(&self, len: usize) -> usize {
        match self {
            Picker::RoundRobin { next } => next.fetch_add(1, Ordering::Relaxed) % len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_evenly() {
        let p = Picker::round_robin();
        let picks: Vec<usize> = (0..6).map(|_| p.first(3)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }
}
