//! Idle keep-alive connections, kept for reuse, and the shared HTTP/2 ones.
//!
//! The pool is per worker thread (a thread-local map from backend id to its connections):
//! each worker runs its own event loop, so a connection is only ever used by the thread that
//! opened it and no lock is taken to check one out or back in. An HTTP/1.1 connection is
//! here only while no request uses it ([`pop`], [`checkin`]). An HTTP/2 connection stays
//! here from the moment it opens ([`share`]), in use or not: each request leases one stream
//! of it ([`lease`]) while the connection has fewer than `max_streams` in use (or fewer than
//! the backend allows); when every one is full, the next request opens another. While one
//! request opens a connection, the others wait for it ([`Opening`]) instead of opening their
//! own, so a burst of requests shares one connection rather than racing to open many.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::connect::{ConnectError, Connection, H2Conn, H2Stream};
use super::Backend;
use crate::clock::nanos;
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
    /// HTTP/2 connections, in use or not, oldest first; a lease takes the oldest with room,
    /// so that the newer ones empty and expire when the load drops.
    shared: Vec<H2Conn>,
    /// A connection being opened by a request of this worker, and its number.
    opening: Option<(u64, watch::Receiver<Opened>)>,
    max_idle: usize,
    idle_timeout: Duration,
    /// The backend, for the sweep's counts.
    backend: std::sync::Weak<Backend>,
}

/// How opening a shared connection went, once it did.
type Opened = Option<Result<(), Arc<ConnectError>>>;

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
    static NEXT_OPENING: Cell<u64> = const { Cell::new(0) };
    /// This worker's sweep task is running.
    static SWEEPING: Cell<bool> = const { Cell::new(false) };
}

/// How often the sweep drops idle HTTP/1.1 connections past the idle timeout.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Takes this worker's newest idle connection to `backend` that is still open, if any, at
/// `now`. `limits` are the pool's settings, remembered for [`checkin`].
pub fn pop(backend: &Backend, limits: &KeepAliveConfig, now: Instant) -> Option<Connection> {
    let out = &backend.counters.local().idle_out;
    IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(backend.id).or_default();
        list.max_idle = limits.max_idle;
        list.idle_timeout = limits.idle_timeout;
        while let Some(mut entry) = list.conns.pop() {
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

/// Puts a connection whose last response is complete back into this worker's idle pool,
/// idle since `now`. A stream of a shared HTTP/2 connection is given back instead (the
/// connection is still in the pool).
pub fn checkin(backend: &Arc<Backend>, conn: Connection, now: Instant) {
    // An HTTP/1.1 connection comes here only when its response was complete and it may
    // carry another (see `h1::body::Body::take_conn`).
    if !matches!(conn, Connection::H1(_)) {
        return;
    }
    let counters = backend.counters.local();
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let Some(list) = idle.get_mut(&backend.id) else {
            return;
        };
        if !std::ptr::eq(list.backend.as_ptr(), Arc::as_ptr(backend)) {
            list.backend = Arc::downgrade(backend);
        }
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
    start_sweep();
}

/// Starts this worker's sweep unless it runs. An HTTP/1.1 connection has no task of its own
/// while it sits idle, so nothing else would see its backend close it (it would linger in
/// `CLOSE_WAIT` until its next checkout) or its idle timeout pass with no traffic. Only on
/// a worker's own single-threaded event loop: on a multi-threaded one, requests move between
/// threads and so do their connections; each is then checked at its next checkout.
fn start_sweep() {
    if SWEEPING.get() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread {
        return;
    }
    SWEEPING.set(true);
    runtime.spawn(sweep());
}

/// While this worker has idle HTTP/1.1 connections: drops each one its backend closes (the
/// task is woken by the socket), and every [`SWEEP_EVERY`] those past the idle timeout.
async fn sweep() {
    let mut tick = Box::pin(tokio::time::sleep(SWEEP_EVERY));
    poll_fn(|cx| {
        let expire = tick.as_mut().poll(cx).is_ready();
        if expire {
            tick.as_mut().reset(Instant::now() + SWEEP_EVERY);
            let _ = tick.as_mut().poll(cx);
        }
        if sweep_once(cx, expire) {
            Poll::Pending
        } else {
            SWEEPING.set(false);
            Poll::Ready(())
        }
    })
    .await;
}

/// One pass over this worker's idle HTTP/1.1 connections: each is probed (and `cx` woken
/// when its backend closes it later); `expire`: those past the idle timeout go too. False
/// when none is left.
fn sweep_once(cx: &mut Context<'_>, expire: bool) -> bool {
    let now = Instant::now();
    IDLE.try_with(|idle| {
        let mut left = false;
        for list in idle.borrow_mut().values_mut() {
            let before = list.conns.len();
            let timeout = list.idle_timeout;
            list.conns.retain_mut(|entry| {
                let Connection::H1(conn) = &mut entry.conn else {
                    return false;
                };
                let expired = expire && now.saturating_duration_since(entry.since) > timeout;
                !expired && !conn.poll_closed(cx)
            });
            left |= !list.conns.is_empty();
            let dropped = (before - list.conns.len()) as u64;
            if let (true, Some(backend)) = (dropped > 0, list.backend.upgrade()) {
                let out = &backend.counters.local().idle_out;
                out.fetch_add(dropped, Ordering::Relaxed);
            }
        }
        left
    })
    .unwrap_or(false)
}

/// What [`lease`] found.
#[derive(Debug)]
pub enum Lease {
    /// A stream of an open connection.
    Stream(H2Stream),
    /// Another request is opening a connection: wait for it, then lease again.
    Wait(Waiting),
    /// None with room, none being opened: the caller opens one and says how it went.
    Open(Opening),
}

/// A request waiting for the connection another one is opening.
#[derive(Debug)]
pub struct Waiting(watch::Receiver<Opened>);

/// The right (and duty) to open a shared connection to a backend; others wait for it.
/// Dropped without [`Opening::opened`] (the request went away), it lets them try again.
#[derive(Debug)]
pub struct Opening {
    backend: u64,
    number: u64,
    done: watch::Sender<Opened>,
}

/// A stream of this worker's HTTP/2 connection to `backend` that has room for one more
/// (`max_streams`, or fewer if the backend says so), dropping connections closed (by the
/// backend, or after its GOAWAY) or idle past the idle timeout on the way.
pub fn lease(backend: &Backend, limits: &KeepAliveConfig, max_streams: usize) -> Lease {
    let leased = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(backend.id).or_default();
        list.max_idle = limits.max_idle;
        list.idle_timeout = limits.idle_timeout;
        let mut now = None;
        let timeout = u64::try_from(limits.idle_timeout.as_nanos()).unwrap_or(u64::MAX);
        list.shared.retain(|conn| {
            if conn.is_closed() {
                return false;
            }
            let Some(since) = conn.idle_since() else {
                return true;
            };
            let now = *now.get_or_insert_with(|| nanos(Instant::now()));
            limits.max_idle > 0 && now.saturating_sub(since) <= timeout
        });
        if let Some(conn) = list
            .shared
            .iter()
            .find(|c| c.in_use() < c.capacity(max_streams))
        {
            return Lease::Stream(conn.lease());
        }
        if let Some((_, opening)) = &list.opening {
            // Still under way (not finished, its opener not gone: an opener dropped on
            // another thread could not clear it).
            if opening.has_changed().is_ok() && opening.borrow().is_none() {
                return Lease::Wait(Waiting(opening.clone()));
            }
        }
        let number = NEXT_OPENING.with(|n| {
            n.set(n.get() + 1);
            n.get()
        });
        let (done, waiting) = watch::channel(None);
        list.opening = Some((number, waiting));
        Lease::Open(Opening {
            backend: backend.id,
            number,
            done,
        })
    });
    // No pool on this thread (it is being torn down): a connection of one's own.
    leased.unwrap_or_else(|_| {
        let (done, _) = watch::channel(None);
        Lease::Open(Opening {
            backend: backend.id,
            number: 0,
            done,
        })
    })
}

/// Puts a new HTTP/2 connection (the first stream of it, held by the caller) into this
/// worker's pool, for the next requests to lease streams of. An HTTP/1.1 one is left alone.
pub fn share(backend: &Backend, conn: &Connection) {
    let Connection::H2(stream) = conn else {
        return;
    };
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(backend.id).or_default();
        list.shared.push(stream.connection());
    });
}

// === impl Waiting ===

impl Waiting {
    /// Waits until the connection is open (then lease again), or fails as it did.
    pub async fn wait(mut self) -> Result<(), ConnectError> {
        match self.0.wait_for(Option::is_some).await {
            Ok(opened) => match &*opened {
                Some(Err(e)) => Err(ConnectError::Shared(e.clone())),
                _ => Ok(()),
            },
            // The request opening it went away: lease again (and perhaps open it).
            Err(_) => Ok(()),
        }
    }
}

// === impl Opening ===

impl Opening {
    /// Tells the waiting requests how opening went (the connection is in the pool on
    /// success, see [`share`]).
    pub fn opened(self, result: Result<(), Arc<ConnectError>>) {
        let _ = self.done.send(Some(result));
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        let _ = IDLE.try_with(|idle| {
            let mut idle = idle.borrow_mut();
            if let Some(list) = idle.get_mut(&self.backend) {
                if list
                    .opening
                    .as_ref()
                    .is_some_and(|(n, _)| *n == self.number)
                {
                    list.opening = None;
                }
            }
        });
    }
}
