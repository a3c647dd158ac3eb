//! How busy and how fast a backend is, for the load-aware policies and for
//! `max_connections`: requests outstanding (a slot held by an [`super::Attempt`], from its
//! admission to the end of its response body) and a peak-EWMA of response-head latency (linkerd2-proxy's estimator: a slower
//! sample is taken at once, faster ones decay in over `DECAY`).
//!
//! Every request writes here twice (its slot taken and given back) and its answer once more
//! (the estimate), on whichever worker thread serves it. Those writes go to the worker's own
//! shard ([`Sharded`], cache-line aligned), so that two workers never write one cache line,
//! and `/health` sums the shards; the estimate always, the slots unless the count is read on
//! every request. It is under a `max_connections` limit (which must be exact) and with the
//! `least_request` and `peak_ewma` policies (a pick reads two backends' counts: one cache
//! line each, not one per worker): the slots are then counted in one atomic for all workers.
//! A [`Slot`] says where it was counted, so a reload that changes this while slots are held
//! gives each back where it was taken. Two threads making a request's writes back to
//! back on one shard take 67.8 ns per request each, against 15.2 ns on a shard each (the
//! `backend_load` micro-benchmark; BENCHMARKS.md, "Two workers").

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock::nanos;
use crate::metrics::Sharded;

/// Time constant of the latency average.
const DECAY: Duration = Duration::from_secs(10);
const DECAY_NS: f64 = DECAY.as_nanos() as f64;
/// Latency assumed for a backend not measured yet (so new backends get tried).
const DEFAULT_RTT_NS: f64 = 1_000_000.0;

/// A backend's load.
#[derive(Debug)]
pub struct Load {
    /// Slots taken in the count shared by all workers.
    shared: AtomicU32,
    /// 0: no limit.
    max: AtomicU32,
    /// The slots are counted in `shared` (a limit, or a policy that reads the count).
    counted_once: AtomicBool,
    /// Per worker: slots taken in the worker's count, and the latency estimate.
    local: Sharded<Local>,
    freed: Notify,
}

/// One worker's share of a backend's load.
#[derive(Debug, Default)]
struct Local {
    /// Slots taken here minus slots given back here: signed, as a slot may be given back on
    /// another thread than the one that took it (the sum over shards is the count).
    outstanding: AtomicI64,
    ewma_bits: AtomicU64,
    ewma_at: AtomicU64,
}

/// A load slot held, and where it was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a slot is given back with `Load::release`"]
pub enum Slot {
    /// In the count shared by all workers.
    Shared,
    /// In the worker's shard.
    Local,
}

impl Load {
    /// A backend's load, with `shards` shards (one per worker thread).
    pub fn new(shards: usize) -> Self {
        Load {
            shared: AtomicU32::new(0),
            max: AtomicU32::new(0),
            counted_once: AtomicBool::new(false),
            local: Sharded::new(shards),
            freed: Notify::new(),
        }
    }

    /// Sets the concurrency limit (`None`: unlimited), and whether the pool's policy reads
    /// the count at every pick (`least_request`, `peak_ewma`).
    pub fn configure(&self, max: Option<u32>, read_by_picks: bool) {
        self.max.store(max.unwrap_or(0), Ordering::Relaxed);
        self.counted_once
            .store(max.is_some() || read_by_picks, Ordering::Relaxed);
        self.freed.notify_waiters();
    }

    /// Requests outstanding now.
    pub fn outstanding(&self) -> u32 {
        self.in_shards()
            .saturating_add(self.shared.load(Ordering::Relaxed))
    }

    /// Slots held that were counted in the workers' shards, summed.
    fn in_shards(&self) -> u32 {
        let sum = self
            .local
            .iter()
            .map(|l| l.outstanding.load(Ordering::Relaxed))
            .fold(0i64, i64::wrapping_add);
        u32::try_from(sum.max(0)).unwrap_or(u32::MAX)
    }

    /// Takes a slot if the limit allows, waiting up to `wait` for one to free.
    pub async fn acquire(&self, wait: Duration) -> Option<Slot> {
        // A free slot (nearly always): no clock read, no waiter.
        if let Some(slot) = self.try_acquire() {
            return Some(slot);
        }
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.freed.notified();
            if let Some(slot) = self.try_acquire() {
                return Some(slot);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.try_acquire();
            }
        }
    }

    /// Takes a slot if one is free now.
    pub fn try_acquire(&self) -> Option<Slot> {
        if !self.counted_once.load(Ordering::Relaxed) {
            self.local
                .local()
                .outstanding
                .fetch_add(1, Ordering::Relaxed);
            return Some(Slot::Local);
        }
        let max = self.max.load(Ordering::Relaxed);
        if max == 0 {
            self.shared.fetch_add(1, Ordering::Relaxed);
            return Some(Slot::Shared);
        }
        // The slots taken in the shards before the limit was set count against it too.
        let before = self.in_shards();
        self.shared
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n.saturating_add(before) < max).then_some(n + 1)
            })
            .is_ok()
            .then_some(Slot::Shared)
    }

    /// Gives a slot back.
    pub fn release(&self, slot: Slot) {
        match slot {
            Slot::Local => {
                self.local
                    .local()
                    .outstanding
                    .fetch_sub(1, Ordering::Relaxed);
            }
            Slot::Shared => {
                self.shared.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if self.max.load(Ordering::Relaxed) != 0 {
            self.freed.notify_one();
        }
    }

    /// Records a response head that took `rtt`, in this worker's estimate. Runs once per
    /// response whatever the policy (the admin snapshot shows the estimate), so kept cheap:
    /// no 128-bit conversion, no locked exchange, and for the usual microseconds between two
    /// answers against a 10 s decay the first terms of `exp` (an error below 2e-10) rather
    /// than `exp` itself (together 160 instructions per request, measured with callgrind).
    pub fn observe(&self, rtt: Duration, now: Instant) {
        let local = self.local.local();
        let sample = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX) as f64;
        let at = nanos(now);
        // A thread that is not a worker shares a shard with one, and concurrent updates may
        // then lose a sample (as below); the estimate stays sound.
        let last_at = local.ewma_at.load(Ordering::Relaxed);
        local.ewma_at.store(at, Ordering::Relaxed);
        let old = f64::from_bits(local.ewma_bits.load(Ordering::Relaxed));
        let new = if old == 0.0 || sample > old {
            sample
        } else {
            let x = at.saturating_sub(last_at) as f64 / DECAY_NS;
            let w = if x < 1e-3 {
                1.0 - x + 0.5 * x * x
            } else {
                (-x).exp()
            };
            old * w + sample * (1.0 - w)
        };
        local.ewma_bits.store(new.to_bits(), Ordering::Relaxed);
    }

    /// Peak-EWMA latency (ns, as this worker measured it) × (outstanding + 1): lower is
    /// better.
    pub fn cost(&self) -> f64 {
        let ewma = f64::from_bits(self.local.local().ewma_bits.load(Ordering::Relaxed));
        let ewma = if ewma == 0.0 { DEFAULT_RTT_NS } else { ewma };
        ewma * f64::from(self.outstanding() + 1)
    }

    /// The latency estimate in ns (0 before any sample): the highest of the workers'
    /// (the peak, as each worker's estimate takes a slower sample at once).
    pub fn ewma_ns(&self) -> f64 {
        self.local
            .iter()
            .map(|l| f64::from_bits(l.ewma_bits.load(Ordering::Relaxed)))
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_is_taken_at_once_and_decays() {
        let load = Load::new(1);
        let t0 = Instant::now();
        load.observe(Duration::from_millis(10), t0);
        load.observe(Duration::from_millis(100), t0 + Duration::from_millis(1));
        assert!((load.ewma_ns() - 100e6).abs() < 1.0);
        load.observe(Duration::from_millis(10), t0 + Duration::from_secs(30));
        assert!(load.ewma_ns() < 20e6, "{}", load.ewma_ns());
    }

    #[test]
    fn limit_is_enforced() {
        let load = Load::new(2);
        load.configure(Some(2), false);
        let first = load.try_acquire();
        assert_eq!(first, Some(Slot::Shared));
        assert!(load.try_acquire().is_some());
        assert_eq!(load.try_acquire(), None);
        load.release(Slot::Shared);
        assert!(load.try_acquire().is_some());
        assert_eq!(load.outstanding(), 2);
    }

    #[test]
    fn slots_are_given_back_where_they_were_counted() {
        let load = Load::new(2);
        // Taken without a limit, then the limit set by a reload: the slot held counts
        // against it, and goes back to the worker's shard.
        let unlimited = load.try_acquire();
        assert_eq!(unlimited, Some(Slot::Local));
        load.configure(Some(2), false);
        let limited = load.try_acquire();
        assert_eq!(limited, Some(Slot::Shared));
        assert_eq!(
            load.try_acquire(),
            None,
            "the slot taken before the limit counts"
        );
        assert_eq!(load.outstanding(), 2);
        load.release(Slot::Local);
        assert_eq!(load.outstanding(), 1);
        // The limit lifted: the limited slot still goes back to the shared count.
        load.configure(None, false);
        assert_eq!(load.try_acquire(), Some(Slot::Local));
        load.release(Slot::Shared);
        load.release(Slot::Local);
        assert_eq!(load.outstanding(), 0);
    }

    #[test]
    fn a_policy_that_reads_the_count_gets_one_count() {
        let load = Load::new(2);
        load.configure(None, true);
        let slot = load.try_acquire();
        assert_eq!(slot, Some(Slot::Shared));
        assert_eq!(load.try_acquire(), Some(Slot::Shared), "no limit");
        assert_eq!(load.outstanding(), 2);
        load.release(Slot::Shared);
        load.release(Slot::Shared);
        assert_eq!(load.outstanding(), 0);
    }

    #[test]
    fn a_slot_given_back_on_another_thread_keeps_the_count() {
        let load = std::sync::Arc::new(Load::new(2));
        crate::metrics::set_thread_shard(0);
        let slot = load.try_acquire().expect("no limit");
        let other = load.clone();
        std::thread::spawn(move || {
            crate::metrics::set_thread_shard(1);
            other.release(slot);
        })
        .join()
        .expect("thread");
        assert_eq!(load.outstanding(), 0);
    }
}
