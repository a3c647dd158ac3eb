//! Where a keyed limiter's counts live in process memory: a table of `max_clients` slots
//! allocated once, each a key's 64-bit hash beside its sliding-window counter (one atomic
//! word each, 16 bytes a slot, nothing else per key). No lock and no allocation per request:
//! a key is looked for in its bucket of [`BUCKET`] neighbouring slots and claimed with a
//! compare-and-swap.
//!
//! Memory is bounded by construction. A slot whose counts have both gone (no request for a
//! whole window after the one it last counted in) is idle: it no longer counts as tracked and
//! the next key hashed to its bucket takes it. When every slot of a bucket holds a live key,
//! a new key takes the idlest one's (fewest requests in the current window, then in the
//! previous), as nginx's `limit_req` zone drops its least recently used state: the key
//! pushed out starts again from zero, so at the cap the limit gets more lenient for some
//! clients, never stricter, and a flood of distinct keys cannot grow memory.
//!
//! Approximations, all towards letting a request through: two threads that see a new key at
//! once may give it two slots for a moment (its counts are split until the second one idles
//! out); a request that read a slot's tag just before the slot was given to another key
//! counts once against the new key; a bucket whose slots change under four claims in a row
//! lets the request through uncounted. Hashes are keyed per table (`RandomState`), so clients
//! cannot choose keys that fall into one bucket.

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ratelimit::window::WindowCounter;

/// Slots looked at for one key: two cache lines.
pub const BUCKET: usize = 8;

/// One key's place: its hash (`0`: never used) and its counts.
#[derive(Debug, Default)]
pub struct Slot {
    tag: AtomicU64,
    counter: WindowCounter,
}

/// A key's counter, and whether a live key was pushed out to make room for it.
#[derive(Debug)]
pub struct Claimed<'a> {
    /// The key's sliding-window counter.
    pub counter: &'a WindowCounter,
    /// A key with counts still in the window lost its slot to this one.
    pub evicted: bool,
}

/// A fixed table of keyed counters.
#[derive(Debug)]
pub struct Table {
    slots: Box<[Slot]>,
    buckets: usize,
    hasher: RandomState,
}

// === impl Table ===

impl Table {
    /// A table of `capacity` slots (at least one), allocated now.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let slots: Box<[Slot]> = (0..capacity).map(|_| Slot::default()).collect();
        Table {
            buckets: capacity.div_ceil(BUCKET),
            slots,
            hasher: RandomState::new(),
        }
    }

    /// How many keys it can track at once.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The bytes it holds: the slots (allocated once), and the table itself.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots) + std::mem::size_of::<Self>()
    }

    /// The key's hash in this table (never 0, which marks an unused slot).
    pub fn hash(&self, key: &impl Hash) -> u64 {
        self.hasher.hash_one(key) | 1
    }

    /// The counter of the key hashed to `tag`, as of window `window_now`: its own slot, else
    /// one claimed for it (unused, idle, or the idlest live one). `None` when the bucket
    /// changed under every claim tried.
    pub fn claim(&self, tag: u64, window_now: u64) -> Option<Claimed<'_>> {
        let bucket = self.bucket(tag);
        for _ in 0..4 {
            // The slot to take if the key has none: (index, tag seen, live, counts).
            let mut best: Option<(usize, u64, bool, (u64, u64))> = None;
            for (i, slot) in bucket.iter().enumerate() {
                let seen = slot.tag.load(Ordering::Acquire);
                if seen == tag {
                    return Some(Claimed {
                        counter: &slot.counter,
                        evicted: false,
                    });
                }
                let (previous, current) = if seen == 0 {
                    (0, 0)
                } else {
                    slot.counter.counts(window_now)
                };
                let live = (previous, current) != (0, 0);
                // Idlest first: unused or idle, then fewest in this window, then in the last.
                let rank = (live, (current, previous));
                if best.is_none_or(|(_, _, l, c)| rank < (l, c)) {
                    best = Some((i, seen, live, (current, previous)));
                }
            }
            let (i, seen, live, _) = best?;
            let slot = &bucket[i];
            let won = slot
                .tag
                .compare_exchange(seen, tag, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if won {
                if live {
                    slot.counter.reset();
                }
                return Some(Claimed {
                    counter: &slot.counter,
                    evicted: live,
                });
            }
        }
        None
    }

    /// Keys with counts in the window as of window `window_now` (a scan of every slot, for
    /// the metrics).
    pub fn tracked(&self, window_now: u64) -> usize {
        self.slots
            .iter()
            .filter(|s| {
                s.tag.load(Ordering::Relaxed) != 0 && s.counter.counts(window_now) != (0, 0)
            })
            .count()
    }

    /// The bucket of `tag`: [`BUCKET`] slots (fewer in the last one).
    fn bucket(&self, tag: u64) -> &[Slot] {
        // Multiply-shift: the high bits of the hash pick the bucket, evenly.
        let index = ((u128::from(tag) * self.buckets as u128) >> 64) as usize;
        let start = index * BUCKET;
        &self.slots[start..(start + BUCKET).min(self.slots.len())]
    }
}
