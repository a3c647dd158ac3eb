//! Which backend a request tries first. Algorithms are an enum; each yields a starting
//! index, and [`super::Candidates`] walks the pool from there, skipping backends whose
//! circuit is open, so a retry takes the next backend in the same order.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A balancing algorithm with its state.
#[derive(Debug)]
pub enum Picker {
    /// The seed's round robin: each request starts one backend further along. With weights,
    /// backends take turns in nginx's smooth weighted order (no bursts to the heaviest),
    /// computed once into `schedule` so that picking stays one atomic increment.
    RoundRobin {
        /// Requests picked so far.
        next: AtomicUsize,
        /// Backend index per turn, when weights differ.
        schedule: Option<Box<[usize]>>,
    },
}

/// Longest weighted schedule precomputed; larger weight sums are scaled down.
const MAX_SCHEDULE: u64 = 4096;

// === impl Picker ===

impl Picker {
    /// Round robin starting at the first backend.
    pub fn round_robin() -> Self {
        Picker::RoundRobin {
            next: AtomicUsize::new(0),
            schedule: None,
        }
    }

    /// Weighted round robin over backends with these weights.
    pub fn weighted_round_robin(weights: &[u32]) -> Self {
        let schedule = (weights.windows(2).any(|w| w[0] != w[1]))
            .then(|| smooth_weighted_schedule(weights).into_boxed_slice());
        Picker::RoundRobin {
            next: AtomicUsize::new(0),
            schedule,
        }
    }

    /// Index of the first backend to try, out of `len` (> 0).
    #[inline]
    pub fn first(&self, len: usize) -> usize {
        match self {
            Picker::RoundRobin { next, schedule } => {
                let turn = next.fetch_add(1, Ordering::Relaxed);
                match schedule {
                    Some(s) => s[turn % s.len()] % len,
                    None => turn % len,
                }
            }
        }
    }
}

/// nginx's smooth weighted round robin, run for one full cycle: each turn every backend's
/// current weight grows by its weight, the largest is picked and loses the total.
fn smooth_weighted_schedule(weights: &[u32]) -> Vec<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let scale = total.div_ceil(MAX_SCHEDULE).max(1);
    let weights: Vec<i64> = weights
        .iter()
        .map(|w| (u64::from(*w) / scale).max(1) as i64)
        .collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += w;
            }
            let best = (0..current.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            current[best] -= total;
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_weighted_order_has_no_bursts() {
        // nginx's documented example: weights 5, 1, 1 give a a b a c a a.
        assert_eq!(smooth_weighted_schedule(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        let p = Picker::weighted_round_robin(&[3, 1]);
        let picks: Vec<usize> = (0..8).map(|_| p.first(2)).collect();
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 6);
    }

    #[test]
    fn round_robin_cycles_evenly() {
        let p = Picker::round_robin();
        let picks: Vec<usize> = (0..6).map(|_| p.first(3)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    }
}
