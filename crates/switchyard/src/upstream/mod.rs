//! The upstream side: pools of backends, which backend a request tries (and in what order
//! on retry), circuit breaking per backend, and the keep-alive connections to them.
//!
//! - [`backend`]: one backend: addresses, breaker, counters.
//! - [`pick`]: balancing algorithms.
//! - [`breaker`]: the circuit breaker state machine.
//! - [`connect`]: connecting, and the per-worker pool of idle keep-alive connections.

pub mod backend;
pub mod breaker;
pub mod connect;
pub mod pick;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use backend::Backend;
use breaker::{Permit, Transition};
use connect::Connector;
use pick::Picker;

use crate::config::PoolConfig;
use crate::metrics::{self, BackendSnapshot};

/// A named set of interchangeable backends, how to choose among them and how to reach them.
#[derive(Debug)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    backends: Vec<Arc<Backend>>,
    picker: Picker,
    /// How connections to its backends are made and pooled.
    pub connector: Connector,
    /// Further backends tried after a connect failure.
    pub retries: u32,
    /// Time a backend has to send its response head.
    pub timeout: Duration,
}

// === impl Pool ===

impl Pool {
    /// A pool as `config` describes it, over `backends` (the same order as in `config`).
    pub fn new(config: &PoolConfig, backends: Vec<Arc<Backend>>, max_header_bytes: usize) -> Self {
        let weights: Vec<u32> = config.backends.iter().map(|b| b.weight).collect();
        Pool {
            name: config.name.clone(),
            backends,
            picker: Picker::weighted_round_robin(&weights),
            connector: Connector {
                connect_timeout: config.connect_timeout,
                pool: config.keepalive,
                max_header_bytes,
            },
            retries: config.retries,
            timeout: config.timeout,
        }
    }

    /// The backends, in configuration order.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// Backends to try for one request, in preference order: the picker's choice first, then
    /// the others in turn. Backends whose circuit keeps traffic away are skipped; each one
    /// yielded comes with the breaker's permit, which the caller must settle through an
    /// [`Attempt`].
    pub fn candidates(&self, now: Instant) -> Candidates<'_> {
        let len = self.backends.len();
        Candidates {
            backends: &self.backends,
            start: if len == 0 { 0 } else { self.picker.first(len) },
            offset: 0,
            now,
        }
    }

    /// Figures of every backend.
    pub fn snapshot(&self) -> Vec<BackendSnapshot> {
        self.backends
            .iter()
            .map(|b| b.snapshot(&self.name))
            .collect()
    }
}

/// Iterator returned by [`Pool::candidates`].
#[derive(Debug)]
pub struct Candidates<'a> {
    backends: &'a [Arc<Backend>],
    start: usize,
    offset: usize,
    now: Instant,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = Attempt<'a>;

    fn next(&mut self) -> Option<Attempt<'a>> {
        while self.offset < self.backends.len() {
            let backend = &self.backends[(self.start + self.offset) % self.backends.len()];
            self.offset += 1;
            let (permit, transition) = backend.breaker.try_acquire(self.now);
            log_transition(backend, transition);
            if let Some(permit) = permit {
                metrics::inc(&backend.counters.local().requests);
                return Some(Attempt {
                    backend,
                    permit,
                    settled: false,
                });
            }
        }
        None
    }
}

/// One try of one request on one backend. It must end in [`Attempt::succeeded`] or
/// [`Attempt::failed`]; dropped unsettled (the client went away), it hands a half-open
/// circuit's trial slot back.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// The backend tried.
    pub backend: &'a Arc<Backend>,
    permit: Permit,
    settled: bool,
}

/// How an attempt ended, as the breaker and the counters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response the backend is healthy to give.
    Success,
    /// A 502/503/504 response: the backend answered but reports itself unwell.
    FailedResponse,
    /// No response: connect error, timeout, connection reset.
    NoResponse,
}

impl Attempt<'_> {
    /// Records how the attempt ended.
    pub fn settle(mut self, outcome: Outcome) {
        self.settled = true;
        let counters = self.backend.counters.local();
        let transition = match outcome {
            Outcome::Success => {
                metrics::inc(&counters.responses);
                self.backend.breaker.on_success(self.permit)
            }
            Outcome::FailedResponse | Outcome::NoResponse => {
                if outcome == Outcome::NoResponse {
                    metrics::inc(&counters.errors);
                } else {
                    metrics::inc(&counters.responses);
                }
                metrics::inc(&counters.failures);
                self.backend.breaker.on_failure(self.permit, Instant::now())
            }
        };
        log_transition(self.backend, transition);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            metrics::inc(&self.backend.counters.local().cancelled);
            self.backend.breaker.on_cancel(self.permit);
        }
    }
}

fn log_transition(backend: &Backend, transition: Option<Transition>) {
    if let Some(Transition { from, to }) = transition {
        let (from, to) = (backend::state_name(from), backend::state_name(to));
        if to == "open" {
            tracing::warn!(backend = %backend.label, from, to, "circuit state changed");
        } else {
            tracing::info!(backend = %backend.label, from, to, "circuit state changed");
        }
    }
}
