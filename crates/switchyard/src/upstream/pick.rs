//! Which backend a request tries first. Algorithms are an enum; each yields a starting
//! index among the backends it is allowed to use, and [`super::Candidates`] walks the pool
//! from there, so a retry takes the next backend in the same order.
//!
//! - round robin: one atomic increment; weighted in nginx's smooth order, precomputed;
//! - random: a per-thread xorshift generator (no lock, no dependency for 10 lines);
//! - least request and peak EWMA: power of two random choices on the backends' load;
//! - consistent hash: a Maglev lookup table; when the chosen backend cannot be used, the key
//!   is hashed again (deterministically), so only that backend's keys move, and they move
//!   back when it returns.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{HashKey, Policy};

use super::Backend;

/// A balancing algorithm with its state.
#[derive(Debug)]
pub enum Picker {
    /// Round robin; `schedule` holds the smooth weighted order when weights differ.
    RoundRobin {
        /// Requests picked so far.
        next: AtomicUsize,
        /// Backend index per turn, when weights differ.
        schedule: Option<Box<[usize]>>,
    },
    /// Uniformly random.
    Random,
    /// P2C on outstanding requests.
    LeastRequest,
    /// P2C on peak-EWMA latency × (outstanding + 1).
    PeakEwma,
    /// Maglev consistent hashing.
    ConsistentHash {
        /// What is hashed.
        key: HashKey,
        /// Lookup table: slot → backend index.
        table: Box<[u32]>,
    },
}

/// Longest weighted schedule precomputed; larger weight sums are scaled down.
const MAX_SCHEDULE: u64 = 4096;
/// Maglev table size: a prime well above the number of backends.
const MAGLEV_SIZE: usize = 65_537;
/// Rehashes tried when a key's backend cannot be used.
const REHASHES: u64 = 16;

// === impl Picker ===

impl Picker {
    /// The picker for `policy` over backends with these weights and identities (a stable
    /// hash of each backend's URL, so that consistent hashing moves only a removed backend's
    /// keys).
    pub fn new(policy: &Policy, weights: &[u32], identities: &[u64]) -> Self {
        match policy {
            Policy::RoundRobin => Picker::weighted_round_robin(weights),
            Policy::Random => Picker::Random,
            Policy::LeastRequest => Picker::LeastRequest,
            Policy::PeakEwma => Picker::PeakEwma,
            Policy::ConsistentHash(key) => Picker::ConsistentHash {
                key: key.clone(),
                table: maglev_table(identities).into_boxed_slice(),
            },
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

    /// The hash key this picker needs from the request, if any.
    pub fn hash_key(&self) -> Option<&HashKey> {
        match self {
            Picker::ConsistentHash { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Whether a pick reads the backends' outstanding counts (then kept in one count per
    /// backend for all workers: `load.rs`).
    pub fn reads_outstanding(&self) -> bool {
        matches!(self, Picker::LeastRequest | Picker::PeakEwma)
    }

    /// Index of the first backend to try, out of `backends` (non-empty). `usable(i)` says
    /// whether backend `i` may be picked first; when none is, any index is returned.
    pub fn first(
        &self,
        backends: &[Arc<Backend>],
        hash: Option<u64>,
        usable: impl Fn(usize) -> bool,
    ) -> usize {
        let len = backends.len();
        match self {
            Picker::RoundRobin { next, schedule } => {
                let turn = next.fetch_add(1, Ordering::Relaxed);
                let first = match schedule {
                    Some(s) => s[turn % s.len()] % len,
                    None => turn % len,
                };
                // The backend whose turn it is may not be picked first (unavailable, or ramping
                // up after a recovery): the next one in order that may takes its turn.
                (0..len)
                    .map(|k| (first + k) % len)
                    .find(|&i| usable(i))
                    .unwrap_or(first)
            }
            Picker::Random => random_usable(len, &usable),
            Picker::LeastRequest => {
                p2c(len, &usable, |i| f64::from(backends[i].load.outstanding()))
            }
            Picker::PeakEwma => p2c(len, &usable, |i| backends[i].load.cost()),
            Picker::ConsistentHash { table, .. } => match hash {
                None => random_usable(len, &usable),
                Some(h) => {
                    let first = table[(h % table.len() as u64) as usize] as usize % len;
                    if usable(first) {
                        return first;
                    }
                    (1..REHASHES)
                        .map(|attempt| {
                            let slot = mix(h ^ attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                                % table.len() as u64;
                            table[slot as usize] as usize % len
                        })
                        .find(|&i| usable(i))
                        .unwrap_or(first)
                }
            },
        }
    }
}

/// A uniformly random usable index (any index if none is usable).
fn random_usable(len: usize, usable: &impl Fn(usize) -> bool) -> usize {
    let start = (random() % len as u64) as usize;
    (0..len)
        .map(|i| (start + i) % len)
        .find(|&i| usable(i))
        .unwrap_or(start)
}

/// Power of two random choices: of two random usable backends, the one with lower `cost`.
fn p2c(len: usize, usable: &impl Fn(usize) -> bool, cost: impl Fn(usize) -> f64) -> usize {
    if len == 1 {
        return 0;
    }
    let a = random_usable(len, usable);
    let mut b = (random() % (len as u64 - 1)) as usize;
    if b >= a {
        b += 1;
    }
    if !usable(b) {
        return a;
    }
    if cost(b) < cost(a) {
        b
    } else {
        a
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let stack = &RNG as *const _ as u64;
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    mix(stack ^ time) | 1
}

/// xorshift64*: fast, good enough to spread load; not for anything secret.
pub fn random() -> u64 {
    RNG.with(|rng| {
        let mut x = rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A 64-bit finaliser (splitmix64): spreads similar inputs apart.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a over bytes, finalised with [`mix`]: the request key's hash.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// Maglev lookup table (Eisenbud et al., NSDI 2016): each backend fills slots along its own
/// permutation of the table, derived from its identity, in turn, until the table is full.
fn maglev_table(identities: &[u64]) -> Vec<u32> {
    let m = MAGLEV_SIZE;
    let n = identities.len();
    if n == 0 {
        return vec![0; m];
    }
    let perms: Vec<(usize, usize)> = identities
        .iter()
        .map(|id| {
            let h = mix(*id);
            let offset = (h % m as u64) as usize;
            let skip = (mix(h) % (m as u64 - 1)) as usize + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0usize; n];
    let mut table = vec![u32::MAX; m];
    let mut filled = 0;
    'fill: loop {
        for i in 0..n {
            let (offset, skip) = perms[i];
            let mut slot = (offset + next[i] * skip) % m;
            while table[slot] != u32::MAX {
                next[i] += 1;
                slot = (offset + next[i] * skip) % m;
            }
            table[slot] = i as u32;
            next[i] += 1;
            filled += 1;
            if filled == m {
                break 'fill;
            }
        }
    }
    table
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
    }

    #[test]
    fn maglev_spreads_evenly() {
        let ids: Vec<u64> = (0..5)
            .map(|i| hash_bytes(format!("http://10.0.0.{i}:80").as_bytes()))
            .collect();
        let table = maglev_table(&ids);
        let mut counts = [0usize; 5];
        for b in table.iter() {
            counts[*b as usize] += 1;
        }
        let ideal = MAGLEV_SIZE / 5;
        for c in counts {
            assert!(c.abs_diff(ideal) <= ideal / 100 + 1, "{counts:?}");
        }
    }

    #[test]
    fn random_is_not_constant() {
        let a: Vec<u64> = (0..4).map(|_| random() % 1000).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]));
    }
}
