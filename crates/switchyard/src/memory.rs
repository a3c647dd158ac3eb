//! Memory given back to the system when load falls.
//!
//! No allocator gives freed memory back by itself once a worker is idle: glibc's malloc keeps
//! freed chunks between live ones (after 10,000 idle connections closed, RSS stayed at its
//! 208 MiB peak), and mimalloc, the default allocator, purges freed pages only at its next
//! allocations, which an idle worker does not make (`BENCHMARKS.md`, "Allocator and memory
//! returned"). So this module asks: `mi_collect(true)` with mimalloc, `malloc_trim(0)` with
//! glibc (208 MiB down to 14 MiB).
//!
//! Each client connection holds an [`OpenConnection`] for its life, and each busy spell of
//! an HTTP/1.1 connection a [`BusySpell`] (`server::h1`: when 10,000 keep-alive
//! connections go idle, their spells end and their buffers are freed, with the connections
//! still open), each counted apart. When either count of a worker has fallen to half of its
//! peak since the last trim, and by at least [`MIN_FALL`], a trim is made once the closes
//! have paused for [`QUIET`] (one trim for a wave of closes, after its tail, not one per
//! close nor one in its middle), or at the latest [`TRIM_WITHIN`] after it was due. The
//! counts are per worker thread, so the request path shares nothing.
//!
//! With jemalloc (`--no-default-features --features jemalloc`), or off glibc without
//! mimalloc, a trim does nothing.

use std::cell::Cell;
use std::time::Duration;

/// The fall in a worker's open connections, since the last trim, below which no trim is made
/// (about 20 MiB of freed connection state: a trim costs more than it gives below that).
pub const MIN_FALL: u32 = 1024;

/// How long a wave of closes must have paused before the trim is made: one trim once the
/// wave is over, not one per close, nor one in its middle that misses its tail.
pub const QUIET: Duration = Duration::from_millis(100);

/// The longest a due trim waits for the closes to pause (a worker whose connections keep
/// closing still gives memory back).
pub const TRIM_WITHIN: Duration = Duration::from_secs(1);

thread_local! {
    /// This worker's counts and its trim in waiting.
    static WORKER: Cell<Counts> = const { Cell::new(Counts::new()) };
}

/// A worker's open connections and busy HTTP/1.1 spells, whether a trim is waiting, and how
/// many closes it has seen (for the trim to tell whether they paused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counts {
    conns: Falls,
    spells: Falls,
    pending: bool,
    closes: u32,
}

impl Counts {
    const fn new() -> Self {
        Counts {
            conns: Falls::new(),
            spells: Falls::new(),
            pending: false,
            closes: 0,
        }
    }
}

/// One open client connection, counted while it lives; its drop may start a trim.
#[derive(Debug)]
pub struct OpenConnection(());

/// One busy spell of an HTTP/1.1 connection (its buffers allocated), counted apart from
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
        let mut c = w.get();
        match count {
            Count::Connections => c.conns.opened(),
            Count::Spells => c.spells.opened(),
        }
        w.set(c);
    });
}

/// Counts one fewer in `count`; starts a trim when the fall calls for one.
fn closed(count: Count) {
    let due = WORKER.with(|w| {
        let mut c = w.get();
        let fell = match count {
            Count::Connections => c.conns.closed(),
            Count::Spells => c.spells.closed(),
        };
        c.closes = c.closes.wrapping_add(1);
        let due = fell && !c.pending;
        c.pending |= due;
        w.set(c);
        due
    });
    if !due {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async {
                let start = tokio::time::Instant::now();
                loop {
                    let seen = WORKER.with(|w| w.get().closes);
                    tokio::time::sleep(QUIET).await;
                    let now = WORKER.with(|w| w.get().closes);
                    if now == seen || start.elapsed() >= TRIM_WITHIN {
                        break;
                    }
                }
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
        let mut c = w.get();
        c.conns.trimmed();
        c.spells.trimmed();
        c.pending = false;
        w.set(c);
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

/// mimalloc: purges the pages this worker's heap has freed (it would do so itself only at
/// its next allocations after `purge_delay`, and an idle worker makes none).
#[cfg(feature = "mimalloc")]
#[allow(unsafe_code)]
fn give_back() -> bool {
    // SAFETY: `mi_collect` takes no pointer and touches only the allocator's own state (the
    // calling thread's heap, and the arenas under their atomics). Measured reason: an idle
    // HTTP/1.1 connection 9.2 KiB of RSS without it, 3.0 KiB with it (BENCHMARKS.md).
    unsafe { libmimalloc_sys::mi_collect(true) };
    true
}

/// Another allocator, or not glibc: nothing to do here.
#[cfg(all(
    not(feature = "mimalloc"),
    not(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))
))]
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
        let c = WORKER.with(Cell::get);
        assert!(!c.pending);
        assert_eq!((c.conns, c.spells), (Falls::new(), Falls::new()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_trim_waits_for_the_closes_to_pause() {
        let spells: Vec<BusySpell> = (0..4 * MIN_FALL).map(|_| BusySpell::new()).collect();
        let mut spells = spells.into_iter();
        // Half of them close: a trim is due, and waits.
        for spell in spells.by_ref().take(2 * MIN_FALL as usize) {
            drop(spell);
        }
        assert!(WORKER.with(Cell::get).pending);
        // The closes go on every 50 ms: no pause, so the trim waits up to TRIM_WITHIN.
        let mut waited = Duration::ZERO;
        while waited < TRIM_WITHIN - QUIET {
            drop(spells.next());
            tokio::time::sleep(QUIET / 2).await;
            waited += QUIET / 2;
            assert!(WORKER.with(Cell::get).pending, "trimmed after {waited:?}");
        }
        tokio::time::sleep(2 * QUIET).await;
        assert!(
            !WORKER.with(Cell::get).pending,
            "not trimmed within TRIM_WITHIN"
        );
        // A new wave, then a pause: trimmed a QUIET after the last close.
        let rest: Vec<BusySpell> = spells.collect();
        let open = rest.len() as u32;
        drop(rest);
        assert!(open >= MIN_FALL);
        assert!(WORKER.with(Cell::get).pending);
        tokio::time::sleep(QUIET + QUIET / 2).await;
        assert!(!WORKER.with(Cell::get).pending);
        assert_eq!(WORKER.with(Cell::get).spells, Falls::new());
    }
}
