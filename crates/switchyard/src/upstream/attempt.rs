//! [`Attempt`]: one try of one request on one backend, and the guard of everything that try
//! took: the circuit breaker's permit, the backend's load slot (`max_connections` and the
//! counts the load-aware policies read) and the connection the request went out on.
//!
//! It is settled once with the attempt's [`Outcome`] (see [`super::classify`]), which feeds
//! the breaker, outlier ejection and the backend's counters; [`Attempt::finish`] then hands a
//! connection whose exchange completed back to the idle pool. Whatever is left is given back
//! by `Drop`, exactly once, on every path: a future dropped because the client went away or
//! a timeout fired leaks no slot and no half-open trial permit.

use std::sync::Arc;

use tokio::time::Instant;

use super::breaker::{self, Permit, Transition};
use super::classify::Outcome;
use super::connect::Connection;
use super::load::Slot;
use super::{idle, Backend, Pool};
use crate::metrics;

/// One try of one request on one backend, owning what it took.
#[derive(Debug)]
pub struct Attempt {
    pool: Arc<Pool>,
    index: usize,
    /// The breaker's permit, until the attempt is settled.
    permit: Option<Permit>,
    /// The backend's load slot, while held.
    slot: Option<Slot>,
    /// The connection the response arrives on, once a head came back.
    conn: Option<Connection>,
    /// When the try began (its latency counts from here).
    started: Instant,
    /// When its response head arrived.
    answered: Option<Instant>,
}

// === impl Attempt ===

impl Attempt {
    /// An attempt on backend `index` of `pool`, with the permit its breaker gave, beginning
    /// at `now` (the caller's clock reading: the request's arrival for its first try).
    pub(super) fn new(pool: Arc<Pool>, index: usize, permit: Permit, now: Instant) -> Self {
        let attempt = Attempt {
            pool,
            index,
            permit: Some(permit),
            slot: None,
            conn: None,
            started: now,
            answered: None,
        };
        metrics::inc(&attempt.backend().counters.local().requests);
        attempt
    }

    /// The backend tried.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.pool.backends[self.index]
    }

    /// The pool the backend belongs to.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The try begins at `now` (after a wait for its turn, a slot or the request body): its
    /// latency counts from there.
    pub fn begin(&mut self, now: Instant) {
        self.started = now;
    }

    /// When the try began.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When its response head arrived, once one did.
    pub fn answered_at(&self) -> Option<Instant> {
        self.answered
    }

    /// Takes a load slot on the backend if one is free now.
    pub fn try_admit(&mut self) -> bool {
        if self.slot.is_none() {
            self.slot = self.pool.backends[self.index].load.try_acquire();
        }
        self.slot.is_some()
    }

    /// Takes a load slot on the backend, waiting up to the pool's queue timeout while it is
    /// at `max_connections`. False: none freed in time.
    pub async fn admit(&mut self) -> bool {
        if self.slot.is_none() {
            let pool = &self.pool;
            let load = &pool.backends[self.index].load;
            self.slot = load.acquire(pool.queue_timeout).await;
        }
        self.slot.is_some()
    }

    /// A response head arrived on `conn` (`None`: the response body carries its connection):
    /// records the latency; the connection stays with the attempt until the body is done.
    pub fn answered(&mut self, conn: Option<Connection>) {
        let now = Instant::now();
        let backend = &self.pool.backends[self.index];
        backend
            .load
            .observe(now.saturating_duration_since(self.started), now);
        metrics::inc(&backend.counters.local().responses);
        self.answered = Some(now);
        self.conn = conn;
    }

    /// Takes back the connection a response body carried, once that body is complete.
    pub fn hold(&mut self, conn: Connection) {
        self.conn = Some(conn);
    }

    /// Records how the attempt ended: breaker, outlier ejection, counters. Only the first
    /// call counts.
    pub fn settle(&mut self, outcome: Outcome) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        // The clock is read only for what needs it, a failure or a recovery: a success, the
        // common case, records no time here.
        let mut read = None;
        let mut now = || *read.get_or_insert_with(Instant::now);
        let pool = &*self.pool;
        let backend = &pool.backends[self.index];
        let counters = backend.counters.local();
        if outcome == Outcome::NoAnswer {
            metrics::inc(&counters.errors);
        }
        let failed = outcome.is_failure();
        let transition = if failed {
            metrics::inc(&counters.failures);
            backend.breaker.on_failure(permit, now())
        } else {
            backend.breaker.on_success(permit)
        };
        if let Some(Transition {
            to: breaker::State::Closed,
            ..
        }) = transition
        {
            backend.health.mark_recovered(now());
        }
        super::log_transition(backend, transition);
        if !outcome.answered() {
            return;
        }
        if !failed {
            backend.outlier.record_success();
            return;
        }
        let at = now();
        // How many of the pool are out matters: the cap on ejections.
        let ejected = pool.ejected(at);
        if backend
            .outlier
            .record_failure(&pool.outlier, at, ejected, pool.backends.len())
        {
            metrics::inc(&counters.ejections);
            tracing::warn!(backend = %backend.label, pool = %pool.name, ejection_time = ?pool.outlier.ejection_time, "backend ejected after consecutive failed answers");
        }
    }

    /// Gives back the load slot and the connection: `complete` means the exchange finished
    /// cleanly, so the connection can take the next request and goes back to this worker's
    /// idle pool (idle from `now`, when the caller has the time; else the clock is read);
    /// otherwise it is closed.
    pub fn finish(&mut self, complete: bool, now: Option<Instant>) {
        let backend = &self.pool.backends[self.index];
        if let (true, Some(conn)) = (complete, self.conn.take()) {
            idle::checkin(backend, conn, now.unwrap_or_else(Instant::now));
        }
        self.conn = None;
        if let Some(slot) = self.slot.take() {
            backend.load.release(slot);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let backend = &self.pool.backends[self.index];
        if let Some(permit) = self.permit.take() {
            // Never settled: the client went away, a timeout fired, the client's own body
            // failed, or the backend stayed at `max_connections`. Nothing is held against the
            // backend; a half-open trial slot goes back.
            if self.answered.is_none() {
                metrics::inc(&backend.counters.local().cancelled);
            }
            backend.breaker.on_cancel(permit);
        }
        self.finish(false, None);
    }
}
