//! The counters: what is counted, and how it is counted cheaply. This is the low layer that
//! `upstream` and `proxy` write to; it depends on neither. Reading the counters into a
//! snapshot and rendering it (JSON, Prometheus) is the admin module's job (`admin/`).
//!
//! Counting happens on every request, on every worker thread, so counters are sharded: each
//! worker thread increments its own cache-line-aligned shard with a relaxed atomic add (no
//! lock, no cache line shared between cores) and a scrape sums the shards ([`Sharded::sum`]).
//!
//! How the proxy-wide counters add up (each request lands in exactly one bucket):
//!
//! `requests = responses + local + errors + rate_limited + cancelled + in_flight`
//!
//! - `requests`: requests received on the proxy path (the admin endpoints are not counted).
//! - `responses`: requests answered with a backend's response (whatever its status).
//! - `local`: requests answered by a route's redirect or fixed response.
//! - `errors`: requests answered by switchyard itself with an error: 4xx for malformed
//!   requests, 502/503/504 when no backend answered.
//! - `rate_limited`: requests answered `429`.
//! - `cancelled`: requests whose client went away before a response head was ready.
//! - `in_flight`: requests still waiting for a response head.
//!
//! Per backend: `requests = responses + errors + cancelled + in_flight`, where `requests`
//! counts attempts sent to that backend (a retried request counts once per backend tried),
//! `cancelled` counts attempts given up before an answer without holding it against the
//! backend (the client went away, a timeout fired, the client's own body failed, or the
//! backend stayed at `max_connections`), and `failures` counts what its circuit breaker
//! counted as failures (every outcome but success, as `upstream::classify` decides).
//!
//! WebSocket tunnels ([`Tunnels`]) are counted apart: `tunnels_open` is a gauge that is also
//! the count `max_tunnels` limits and what a drain waits for; an upgrade request itself is
//! counted like any request (a `101` relayed is a response, a refusal at the limit an error).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

thread_local! {
    static SHARD_INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Tells the counters which shard the calling thread writes to; worker thread `i` calls this
/// with `i` once at start. Threads that never call it share shard 0.
pub fn set_thread_shard(index: usize) {
    SHARD_INDEX.with(|s| s.set(index));
}

fn shard_index(len: usize) -> usize {
    let index = SHARD_INDEX.with(Cell::get);
    // A worker's index is below the shard count: no division on the request path (a `div`
    // per counter touched, 8 a request, cost 66 instructions and as many tens of cycles).
    if index < len {
        index
    } else {
        index % len
    }
}

/// A set of counters, one copy per shard.
#[derive(Debug)]
pub struct Sharded<T> {
    shards: Box<[Padded<T>]>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T: Default> Sharded<T> {
    /// `n` zeroed shards (at least one).
    pub fn new(n: usize) -> Self {
        Sharded {
            shards: (0..n.max(1)).map(|_| Padded::default()).collect(),
        }
    }

    /// The calling thread's shard.
    pub fn local(&self) -> &T {
        &self.shards[shard_index(self.shards.len())].0
    }

    /// Every shard.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().map(|s| &s.0)
    }

    /// Sums `f` over all shards.
    pub fn sum(&self, f: impl Fn(&T) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(&s.0).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// Adds one to a counter.
#[inline]
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Why a request's JWT was refused, as `/metrics` names it: `claims` is a `403` (a valid
/// token without the route's claims), every other reason a `401`. The index of a reason is
/// that of its counter in [`ProxyCounters::jwt_refused`].
pub const JWT_REFUSALS: [&str; 11] = [
    "missing",
    "malformed",
    "algorithm",
    "unknown_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "issuer",
    "audience",
    "missing_claim",
    "claims",
];

/// Proxy-wide counters of one shard.
#[derive(Debug, Default)]
pub struct ProxyCounters {
    /// See the module doc.
    pub requests: AtomicU64,
    /// See the module doc.
    pub responses: AtomicU64,
    /// See the module doc.
    pub local: AtomicU64,
    /// See the module doc.
    pub errors: AtomicU64,
    /// See the module doc.
    pub rate_limited: AtomicU64,
    /// See the module doc.
    pub cancelled: AtomicU64,
    /// Further attempts of a request, on another backend: after a connect failure or a busy
    /// backend, and, for idempotent requests, after a reset, a per-try timeout or a
    /// `retry_on` status (those within the pool's retry budget).
    pub retries: AtomicU64,
    /// Retries refused because the pool's retry budget was spent.
    pub retries_over_budget: AtomicU64,
    /// Requests answered 503 because no backend of the pool was available.
    pub unavailable: AtomicU64,
    /// Attempts that timed out waiting for a response head (per-try timeout).
    pub try_timeouts: AtomicU64,
    /// Requests that ran out of their whole-request timeout.
    pub request_timeouts: AtomicU64,
    /// Requests refused with `401`: no valid API key (counted in `errors` too).
    pub unauthenticated: AtomicU64,
    /// Requests refused with `403`: an address the IP rules refuse, or a key without the
    /// route's role (counted in `errors` too).
    pub forbidden: AtomicU64,
    /// Requests a route's forward auth service let through (`2xx`).
    pub forward_auth_allowed: AtomicU64,
    /// Requests a route's forward auth service refused: its answer went to the client
    /// (counted in `errors` too).
    pub forward_auth_denied: AtomicU64,
    /// Requests refused `503` because a route's forward auth service gave no usable answer
    /// (counted in `errors` too).
    pub forward_auth_failed: AtomicU64,
    /// Requests refused for their JWT, by reason (named by [`JWT_REFUSALS`], in the same
    /// order; each also counted in `unauthenticated` or, for `claims`, `forbidden`).
    pub jwt_refused: [AtomicU64; JWT_REFUSALS.len()],
    /// TLS handshakes completed on HTTPS listeners.
    pub tls_handshakes: AtomicU64,
    /// TLS handshakes that failed or timed out (no certificate for the name, no valid client
    /// certificate, not TLS, ...).
    pub tls_handshake_failures: AtomicU64,
    /// Connections from trusted proxies closed for a missing, malformed or late PROXY
    /// protocol header.
    pub proxy_protocol_errors: AtomicU64,
    /// Requests refused `413`: a body over `max_body_size` (declared or counted).
    pub refused_body_size: AtomicU64,
    /// Requests refused `414`: a target over `max_uri_length`.
    pub refused_uri_length: AtomicU64,
    /// Requests refused `405`: a method outside the route's `allowed_methods`.
    pub refused_method: AtomicU64,
    /// Requests refused `415`: a body type outside the route's `allowed_content_types`.
    pub refused_content_type: AtomicU64,
    /// Requests refused `503` at `max_requests_per_ip`.
    pub refused_requests_per_ip: AtomicU64,
    /// Connections refused at a listener's `max_connections`.
    pub refused_connections: AtomicU64,
    /// Connections refused at a listener's `max_connections_per_ip`.
    pub refused_connections_per_ip: AtomicU64,
    /// Connections closed (or sent `GOAWAY`) after `max_requests_per_connection`.
    pub connections_at_max_requests: AtomicU64,
    /// Requests answered `429` by a per-client limit (counted in `rate_limited` too).
    pub client_rate_limited: AtomicU64,
    /// Keys with counts still in the window pushed out of a per-client limiter at its
    /// `max_clients`, to make room for a new key.
    pub client_keys_evicted: AtomicU64,
}

/// Per-backend counters of one shard.
#[derive(Debug, Default)]
pub struct BackendCounters {
    /// Attempts sent.
    pub requests: AtomicU64,
    /// Responses received.
    pub responses: AtomicU64,
    /// Attempts without a response.
    pub errors: AtomicU64,
    /// Attempts given up before an answer, nothing held against the backend (see the
    /// module doc).
    pub cancelled: AtomicU64,
    /// Breaker failures.
    pub failures: AtomicU64,
    /// Times the backend was ejected for consecutive failed answers.
    pub ejections: AtomicU64,
    /// Connect attempts that timed out.
    pub connect_timeouts: AtomicU64,
    /// New upstream connections opened.
    pub connections_opened: AtomicU64,
    /// Requests sent on a pooled (reused) connection.
    pub connections_reused: AtomicU64,
    /// Connections put into the idle pool.
    pub idle_in: AtomicU64,
    /// Connections taken out of the idle pool (reused, closed or expired).
    pub idle_out: AtomicU64,
}

/// WebSocket tunnels: how many are open, and what became of them. Not sharded: a tunnel
/// opens and closes once in its life, rarely next to the requests around it, so one set of
/// shared atomics costs nothing noticeable.
#[derive(Debug, Default)]
pub struct Tunnels {
    /// Places taken: tunnels open, and upgrades waiting for the backend's answer.
    open: AtomicU64,
    /// Tunnels opened (the backend answered `101`).
    pub opened: AtomicU64,
    /// Upgrades refused with `503` because `max_tunnels` were open.
    pub refused: AtomicU64,
    /// Tunnels closed because no byte went either way for the idle timeout.
    pub idle_timeouts: AtomicU64,
    /// Woken when the last open tunnel closes.
    all_closed: Notify,
}

/// A place among the open tunnels, held for the tunnel's life and given back when dropped.
#[derive(Debug)]
pub struct TunnelSlot {
    tunnels: Arc<Tunnels>,
}

/// The proxy-wide metrics; lives in the server state and is passed explicitly.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    counters: Sharded<ProxyCounters>,
    tunnels: Arc<Tunnels>,
}

// === impl Metrics ===

impl Metrics {
    /// Metrics with one shard per worker thread.
    pub fn new(shards: usize) -> Self {
        Metrics {
            started: Instant::now(),
            counters: Sharded::new(shards),
            tunnels: Arc::default(),
        }
    }

    /// The WebSocket tunnels.
    pub fn tunnels(&self) -> &Arc<Tunnels> {
        &self.tunnels
    }

    /// The calling thread's counters.
    #[inline]
    pub fn local(&self) -> &ProxyCounters {
        self.counters.local()
    }

    /// Every shard, for reading the sums.
    pub fn counters(&self) -> &Sharded<ProxyCounters> {
        &self.counters
    }

    /// Time since start.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

// === impl Tunnels ===

impl Tunnels {
    /// Takes a place for one more tunnel, unless `limit` are open (counted in `refused`).
    pub fn try_reserve(self: &Arc<Self>, limit: u64) -> Option<TunnelSlot> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < limit).then_some(open + 1)
            });
        if taken.is_err() {
            inc(&self.refused);
            return None;
        }
        Some(TunnelSlot {
            tunnels: self.clone(),
        })
    }

    /// Places taken now: tunnels open, and upgrades waiting for the backend's answer.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Acquire)
    }

    /// Resolves once no tunnel is open (at once if none is).
    pub async fn all_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            tokio::pin!(notified);
            // Registered before the count is read, so a close in between is not missed.
            notified.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

// === impl TunnelSlot ===

impl TunnelSlot {
    /// The tunnels this place is counted in.
    pub fn tunnels(&self) -> &Tunnels {
        &self.tunnels
    }
}

impl Drop for TunnelSlot {
    fn drop(&mut self) {
        if self.tunnels.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tunnels.all_closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tunnel_slots_are_limited_and_given_back() {
        let tunnels = Arc::new(Tunnels::default());
        let first = tunnels.try_reserve(2).expect("first place");
        let second = tunnels.try_reserve(2).expect("second place");
        assert!(tunnels.try_reserve(2).is_none());
        assert_eq!(
            (tunnels.open(), tunnels.refused.load(Ordering::Relaxed)),
            (2, 1)
        );
        drop(first);
        assert!(tunnels.try_reserve(2).is_some(), "a place came back");
        let waiting = tokio::spawn({
            let tunnels = tunnels.clone();
            async move { tunnels.all_closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(second);
        waiting.await.expect("woken when the last tunnel closed");
        assert_eq!(tunnels.open(), 0);
    }

    #[test]
    fn sums_every_shard() {
        let m = Metrics::new(2);
        inc(&m.local().requests);
        set_thread_shard(1);
        inc(&m.local().requests);
        inc(&m.local().errors);
        set_thread_shard(0);
        let c = m.counters();
        assert_eq!((c.sum(|s| &s.requests), c.sum(|s| &s.errors)), (2, 1));
    }
}
