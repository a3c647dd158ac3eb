//! Memory given back to the system when load falls.
//!
//! glibc's malloc keeps what a program frees for reuse: after 10,000 idle connections close,
//! switchyard's RSS stays at its peak (208 MiB, and 260 MiB after a second wave; measured in
//! `BENCHMARKS.md`, "Allocator and memory returned"), because the freed chunks sit between
//! live ones and glibc only returns the top of a heap by itself. `malloc_trim(0)` walks every
//! arena and hands whole free pages back (`madvise`): 208 MiB down to 14 MiB.
//!
//! Each client connection holds an [`OpenConnection`] for its life. When a worker's open
//! connections have fallen to half of their peak since the last trim, and by at least
//! [`MIN_FALL`], a trim is made [`TRIM_DELAY`] later (one trim for a wave of closes, not one
//! per close). The counts are per worker thread, so the request path shares nothing.
//!
//! With the `mimalloc` or `jemalloc` feature, or off glibc, trimming does nothing: those
//! allocators are configured through their own options.

use std::cell::Cell;
use std::time::Duration;

/// The fall in a worker's open connections, since the last trim, below which no trim is made
/// (about 20 MiB of freed connection state: a trim costs more than it gives below that).
pub const MIN_FALL: u32 = 1024;

/// How long after the fall the trim is made: the rest of a wave of closes comes first.
pub const TRIM_DELAY: Duration = Duration::from_secs(1);

thread_local! {
    /// This worker's open connections and whether a trim is waiting.
    static WORKER: Cell<(Falls, bool)> = const { Cell::new((Falls::new(), false)) };
}

/// One open client connection, counted while it lives; its drop may start a trim.
#[derive(Debug)]
pub struct OpenConnection(());

/// A worker's open connections and their peak since the last trim (sans-io: no clock, no
/// allocator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Falls {
    open: u32,
    peak: u32,
}

// === impl OpenConnection ===

impl OpenConnection {
    /// Counts one more open connection on this worker thread.
    pub fn new() -> Self {
        WORKER.with(|w| {
            let (mut falls, pending) = w.get();
            falls.opened();
            w.set((falls, pending));
        });
        OpenConnection(())
    }
}

impl Default for OpenConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let due = WORKER.with(|w| {
            let (mut falls, pending) = w.get();
            let due = falls.closed() && !pending;
            w.set((falls, pending || due));
            due
        });
        if !due {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async {
                    tokio::time::sleep(TRIM_DELAY).await;
                    trim_now();
                });
            }
            Err(_) => trim_now(),
        }
    }
}

/// Trims, and starts this worker's count of the fall again from what is open now.
fn trim_now() {
    WORKER.with(|w| {
        let (mut falls, _) = w.get();
        falls.trimmed();
        w.set((falls, false));
    });
    let start = tokio::time::Instant::now();
    let released = give_back();
    tracing::debug!(released, took = ?start.elapsed(), "freed memory given back to the system");
}

// === impl Falls ===

impl Falls {
    /// No connection open.
    pub const fn new() -> Self {
        Falls { open: 0, peak: 0 }
    }

    /// One more connection open.
    pub fn opened(&mut self) {
        self.open = self.open.saturating_add(1);
        self.peak = self.peak.max(self.open);
    }

    /// One connection fewer; `true` when the fall since the last trim calls for one: to half
    /// of the peak or below, and by at least [`MIN_FALL`].
    pub fn closed(&mut self) -> bool {
        self.open = self.open.saturating_sub(1);
        let fall = self.peak - self.open;
        fall >= MIN_FALL && self.open <= self.peak / 2
    }

    /// A trim was made: the peak is what is open now.
    pub fn trimmed(&mut self) {
        self.peak = self.open;
    }
}

/// Asks the allocator to return its free pages to the system; `true` if it did.
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(feature = "mimalloc"),
    not(feature = "jemalloc")
))]
#[allow(unsafe_code)]
fn give_back() -> bool {
    // SAFETY: `malloc_trim` takes no pointer and touches only the allocator's own state, under
    // the allocator's locks (glibc documents it MT-Safe). Measured reason: RSS after 10,000
    // idle connections closed, 208 MiB without it, 14 MiB with it (BENCHMARKS.md).
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Another allocator, or not glibc: nothing to do here.
#[cfg(not(all(
    target_os = "linux",
    target_env = "gnu",
    not(feature = "mimalloc"),
    not(feature = "jemalloc")
)))]
fn give_back() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(n: u32) -> Falls {
        let mut falls = Falls::new();
        for _ in 0..n {
            falls.opened();
        }
        falls
    }

    #[test]
    fn trims_once_half_of_the_peak_is_gone() {
        let mut falls = open(10_000);
        let due: Vec<u32> = (0..10_000)
            .filter_map(|_| falls.closed().then_some(falls.open))
            .collect();
        // From 5,000 open on every close says "due"; the caller starts one trim for them.
        assert_eq!(due.first(), Some(&5_000));
        assert_eq!(due.last(), Some(&0));
    }

    #[test]
    fn small_falls_never_trim() {
        let mut falls = open(MIN_FALL - 1);
        assert!(!(0..MIN_FALL - 1).any(|_| falls.closed()));
    }

    #[test]
    fn churn_at_a_steady_level_never_trims() {
        let mut falls = open(5_000);
        for _ in 0..100_000 {
            assert!(!falls.closed());
            falls.opened();
        }
    }

    #[test]
    fn a_trim_counts_the_fall_again_from_what_is_open() {
        let mut falls = open(4_000);
        while !falls.closed() {}
        assert_eq!(falls.open, 2_000);
        falls.trimmed();
        // 2,000 open now: half of them closing is a fall under MIN_FALL, so the next trim is
        // due once MIN_FALL have closed.
        let next = (0..2_000).find_map(|_| falls.closed().then_some(falls.open));
        assert_eq!(next, Some(2_000 - MIN_FALL));
    }

    #[test]
    fn dropping_outside_a_runtime_trims_at_once() {
        let conns: Vec<OpenConnection> = (0..2 * MIN_FALL).map(|_| OpenConnection::new()).collect();
        drop(conns);
        let (falls, pending) = WORKER.with(Cell::get);
        assert!(!pending);
        assert_eq!(falls, Falls::new());
    }
}
