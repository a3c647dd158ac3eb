//! Memory given back to the system when load falls.
//!
//! glibc's malloc keeps what a program frees for reuse: after 10,000 idle connections close,
//! switchyard's RSS stays at its peak (208 MiB, and 260 MiB after a second wave; measured in
//! `BENCHMARKS.md`, "Allocator and memory returned"), because the freed chunks sit between
//! live ones and glibc only returns the top of a heap by itself. `malloc_trim(0)` walks every
//! arena and hands whole free pages back (`madvise`): 208 MiB down to 14 MiB.
//!
//! Each client connection holds an [`OpenConnection`] for its life, and each busy spell of
//! an HTTP/1.1 connection a [`BusySpell`] (`server::http1`: when 10,000 keep-alive
//! connections go idle, their spells end and hyper's buffers are freed, with the connections
//! still open), each counted apart. When either count of a worker has fallen to half of its
//! peak since the last trim, and by at least
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
    /// This worker's open connections, its busy HTTP/1.1 spells, and whether a trim is
    /// waiting.
    static WORKER: Cell<(Falls, Falls, bool)> = const {
        Cell::new((Falls::new(), Falls::new(), false))
    };
}

/// One open client connection, counted while it lives; its drop may start a trim.
#[derive(Debug)]
pub struct OpenConnection(());

/// One busy spell of an HTTP/1.1 connection (hyper's buffers allocated), counted apart from
/// the connections: when a wave of keep-alive connections goes idle their spells end, the
/// connections stay open, and that fall too gives the freed buffers back.
#[derive(Debug)]
pub struct BusySpell(());

/// Which count a guard is in.
#[derive(Clone, Copy)]
enum Count {
    Connections,
    Spells,
}

/// Counts one more in `count` on this worker thread.
fn opened(count: Count) {
    WORKER.with(|w| {
        let (mut conns, mut spells, pending) = w.get();
        match count {
            Count::Connections => conns.opened(),
            Count::Spells => spells.opened(),
        }
        w.set((conns, spells, pending));
    });
}

/// Counts one fewer in `count`; starts a trim when the fall calls for one.
fn closed(count: Count) {
    let due = WORKER.with(|w| {
        let (mut conns, mut spells, pending) = w.get();
        let fell = match count {
            Count::Connections => conns.closed(),
            Count::Spells => spells.closed(),
        };
        let due = fell && !pending;
        w.set((conns, spells, pending || due));
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

// === impl OpenConnection ===

impl OpenConnection {
    /// Counts one more open connection on this worker thread.
    pub fn new() -> Self {
        opened(Count::Connections);
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
        closed(Count::Connections);
    }
}

// === impl BusySpell ===

impl BusySpell {
    /// Counts one more busy spell on this worker thread.
    pub fn new() -> Self {
        opened(Count::Spells);
        BusySpell(())
    }
}

impl Default for BusySpell {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for BusySpell {
    fn drop(&mut self) {
        closed(Count::Spells);
    }
}

/// Trims, and starts this worker's counts of the fall again from what is open now.
fn trim_now() {
    WORKER.with(|w| {
        let (mut conns, mut spells, _) = w.get();
        conns.trimmed();
        spells.trimmed();
        w.set((conns, spells, false));
    });
    let start = tokio::time::Instant::now();
    let released = give_back();
    tracing::debug!(released, took = ?start.elapsed(), "freed memory given back to the system");
}

/// A worker's count (open connections, or busy spells) and its peak since the last trim
/// (sans-io: no clock, no allocator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Falls {
    open: u32,
    peak: u32,
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
        let spells: Vec<BusySpell> = (0..2 * MIN_FALL).map(|_| BusySpell::new()).collect();
        drop(spells);
        let (conns, spells, pending) = WORKER.with(Cell::get);
        assert!(!pending);
        assert_eq!((conns, spells), (Falls::new(), Falls::new()));
    }
}
