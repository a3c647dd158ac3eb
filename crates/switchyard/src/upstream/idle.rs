//! Idle keep-alive connections, kept for reuse.
//!
//! The idle pool is per worker thread (a thread-local map from backend id to a stack of idle
//! connections): each worker runs its own event loop, so a connection is only ever used by
//! the thread that opened it and no lock is taken to check one out or back in. An HTTP/1.1
//! connection is here only while no request uses it; a shared HTTP/2 connection will stay
//! here while in use, next to them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::connect::Connection;
use super::Backend;
use crate::config::KeepAliveConfig;
use crate::metrics;

struct Idle {
    conn: Connection,
    since: Instant,
}

#[derive(Default)]
struct IdleList {
    /// Oldest first; checkout takes the newest.
    conns: Vec<Idle>,
    max_idle: usize,
    idle_timeout: Duration,
}

/// Backend ids are small sequential integers: hashing them is wasted work.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

thread_local! {
    static IDLE: RefCell<HashMap<u64, IdleList, BuildHasherDefault<IdHasher>>> =
        RefCell::new(HashMap::default());
}

/// Takes this worker's newest idle connection to `backend` that is still open, if any.
/// `limits` are the pool's settings, remembered for [`checkin`].
pub fn pop(backend: &Backend, limits: &KeepAliveConfig) -> Option<Connection> {
    let now = Instant::now();
    let out = &backend.counters.local().idle_out;
    IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(backend.id).or_default();
        list.max_idle = limits.max_idle;
        list.idle_timeout = limits.idle_timeout;
        while let Some(entry) = list.conns.pop() {
            metrics::inc(out);
            if now.saturating_duration_since(entry.since) > list.idle_timeout {
                // The newest is too old, so all are.
                out.fetch_add(list.conns.len() as u64, Ordering::Relaxed);
                list.conns.clear();
                return None;
            }
            if !entry.conn.is_closed() {
                return Some(entry.conn);
            }
        }
        None
    })
    .ok()
    .flatten()
}

/// Puts a connection whose last response is complete back into this worker's idle pool.
pub fn checkin(backend: &Backend, conn: Connection) {
    if conn.is_closed() {
        return;
    }
    let now = Instant::now();
    let counters = backend.counters.local();
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let Some(list) = idle.get_mut(&backend.id) else {
            return;
        };
        let timeout = list.idle_timeout;
        let expired = list
            .conns
            .iter()
            .take_while(|c| now.saturating_duration_since(c.since) > timeout)
            .count();
        list.conns.drain(..expired);
        let mut dropped = expired as u64;
        if list.conns.len() >= list.max_idle {
            if list.max_idle == 0 {
                counters.idle_out.fetch_add(dropped, Ordering::Relaxed);
                return;
            }
            list.conns.remove(0);
            dropped += 1;
        }
        list.conns.push(Idle { conn, since: now });
        counters.idle_out.fetch_add(dropped, Ordering::Relaxed);
        metrics::inc(&counters.idle_in);
    });
}
