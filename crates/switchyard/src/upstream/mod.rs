//! The upstream side: pools of backends, which backend a request tries (and in what order
//! on retry), health, circuit breaking and ejection per backend, retries and their budget,
//! and the keep-alive connections to backends.
//!
//! - [`backend`]: one backend: addresses, breaker, health, load, counters.
//! - [`pick`]: balancing algorithms.
//! - [`breaker`]: the circuit breaker state machine.
//! - [`health`]: active health checks.
//! - [`outlier`]: passive ejection on consecutive failed answers.
//! - [`load`]: outstanding requests, latency, `max_connections`.
//! - [`retry`]: the retry budget and backoff.
//! - [`client`]: the upstream client: pick, admit, connect or reuse, send, retry
//!   ([`exchange`]: one try; [`deadline`]: its two clocks; [`replay`]: what may be sent
//!   twice; [`error`]: why it failed).
//! - [`upgrade`]: a WebSocket upgrade request, sent on a fresh connection the tunnel
//!   will take over.
//! - [`attempt`]: the guard of one try: breaker permit, load slot, connection.
//! - [`classify`]: an attempt's outcome, decided once, when its response has ended.
//! - [`body`]: a backend's response body, carrying its attempt to the end.
//! - [`connection`]: upstream connections (HTTP/1.1, exclusive, spoken by [`h1`]; HTTP/2,
//!   shared) and sending on them; [`connect`]: opening them; [`multiplex`]: streams of shared
//!   HTTP/2 connections; [`idle`]: the per-worker pool of
//!   idle keep-alive and shared HTTP/2 connections; [`io`]: the socket under them, which keeps
//!   an early answer from being lost to a failed body write; [`tls`]: TLS to `https://`
//!   backends, over that socket.
//!
//! A backend is *available* when its active checks pass and it is not ejected; a request is
//! offered only available backends whose circuit lets it through. When none is available
//! the pool answers 503, or, in panic mode, offers every backend anyway.

pub mod attempt;
pub mod backend;
pub mod body;
pub mod breaker;
pub mod classify;
pub mod client;
pub mod connect;
pub mod connection;
pub mod deadline;
pub mod error;
pub mod exchange;
pub mod h1;
pub mod health;
pub mod idle;
pub mod io;
pub mod load;
pub mod multiplex;
pub mod outlier;
pub mod pick;
pub mod replay;
pub mod retry;
pub mod tls;
pub mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use attempt::Attempt;
pub use backend::Backend;
pub use body::UpstreamBody;
use breaker::Transition;
use connect::Connector;
pub use error::Error;
use pick::Picker;

use crate::config::{HashKey, HealthCheckConfig, Limits, OutlierConfig, PoolConfig, RetryConfig};

/// A named set of interchangeable backends, how to choose among them and how to reach them.
#[derive(Debug)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    backends: Vec<Arc<Backend>>,
    picker: Picker,
    /// How connections to its backends are made and pooled.
    pub connector: Connector,
    /// Further backends tried (see [`client`] for what is retried).
    pub retries: u32,
    /// Time a backend has to send its response head (per try).
    pub timeout: Duration,
    /// Limit on a whole request, all tries included.
    pub request_timeout: Option<Duration>,
    /// Retry settings.
    pub retry: RetryConfig,
    /// Retry budget, shared by the pool's requests.
    pub budget: Arc<retry::Budget>,
    /// Active health checks.
    pub health_check: Option<HealthCheckConfig>,
    /// Outlier ejection.
    pub outlier: OutlierConfig,
    /// Wait for a backend at `max_connections`.
    pub queue_timeout: Duration,
    /// Ramp-up of recovered backends.
    pub slow_start: Duration,
    /// Offer every backend when none is available.
    pub panic_mode: bool,
}

// === impl Pool ===

impl Pool {
    /// A pool as `config` describes it, over `backends` (the same order as in `config`),
    /// with the backend head limit and response buffer of `limits`, keeping the retry budget and the TLS client of `previous` (the pool of the same name
    /// before a reload) when their settings did not change.
    pub fn new(
        config: &PoolConfig,
        backends: Vec<Arc<Backend>>,
        limits: &Limits,
        previous: Option<&Pool>,
    ) -> Self {
        let weights: Vec<u32> = config.backends.iter().map(|b| b.weight).collect();
        let identities: Vec<u64> = backends.iter().map(|b| b.identity).collect();
        let picker = Picker::new(&config.policy, &weights, &identities);
        for b in &backends {
            b.load
                .configure(config.max_connections, picker.reads_outstanding());
        }
        let budget = previous
            .map(|p| p.budget.clone())
            .filter(|b| b.is(&config.retry))
            .unwrap_or_else(|| Arc::new(retry::Budget::new(&config.retry)));
        Pool {
            name: config.name.clone(),
            backends,
            picker,
            connector: Connector {
                connect_timeout: config.connect_timeout,
                tls: tls_client(config, previous),
                pool: config.keepalive,
                max_header_bytes: limits.max_backend_header_bytes,
                stream_window: limits.connections.response_buffer,
                protocol: config.protocol,
                max_streams: config.max_streams_per_connection as usize,
            },
            retries: config.retries,
            timeout: config.timeout,
            request_timeout: config.request_timeout,
            retry: config.retry.clone(),
            budget,
            health_check: config.health_check.clone(),
            outlier: config.outlier,
            queue_timeout: config.queue_timeout,
            slow_start: config.slow_start,
            panic_mode: config.panic_mode,
        }
    }

    /// The TLS settings its client was built from, when it has `https://` backends.
    pub fn tls_settings(&self) -> Option<&crate::config::UpstreamTlsConfig> {
        self.connector.tls.as_deref().map(tls::TlsClient::settings)
    }

    /// The backends, in configuration order.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// What consistent hashing needs from the request, if this pool hashes.
    pub fn hash_key(&self) -> Option<&HashKey> {
        self.picker.hash_key()
    }

    /// True when `backend` may be offered: its host name resolved, healthy and not ejected.
    pub(crate) fn available(backend: &Backend, now: Instant) -> bool {
        backend.is_resolved() && backend.health.is_healthy() && !backend.outlier.is_ejected(now)
    }

    /// Backends to try for one request, in preference order: the picker's choice first, then
    /// the others in turn. Unavailable backends and those whose circuit keeps traffic away
    /// are skipped; each backend yielded comes as an [`Attempt`] holding the breaker's
    /// permit. `hash` is the request key's hash for consistent hashing.
    pub fn candidates(self: &Arc<Self>, now: Instant, hash: Option<u64>) -> Candidates<'_> {
        let len = self.backends.len();
        let any_available = self.backends.iter().any(|b| Self::available(b, now));
        let panic = !any_available && self.panic_mode && len > 0;
        if panic {
            // Per request, so not at warn: `/health` and the health-check log say why.
            tracing::debug!(pool = %self.name, "no backend available: panic mode, trying all");
        }
        let start = if len == 0 {
            0
        } else {
            let slow_start = self.slow_start;
            self.picker.first(&self.backends, hash, |i| {
                let b = &self.backends[i];
                if !panic && !Self::available(b, now) {
                    return false;
                }
                // A recovering backend is picked first only in proportion to its ramp.
                let ramp = b.health.ramp(now, slow_start);
                ramp >= 1.0 || (pick::random() % 1000) as f64 / 1000.0 < ramp
            })
        };
        Candidates {
            pool: self,
            start,
            offset: 0,
            now,
            panic,
        }
    }

    /// Backends ejected now.
    pub(crate) fn ejected(&self, now: Instant) -> usize {
        self.backends
            .iter()
            .filter(|b| b.outlier.is_ejected(now))
            .count()
    }
}

/// The TLS client of a pool with `https://` backends: `previous`'s when built from the same
/// settings (its session cache lets new connections resume), else a new one. A new client
/// that verifies nothing (`tls.insecure_skip_verify`) is logged once, as a warning.
fn tls_client(config: &PoolConfig, previous: Option<&Pool>) -> Option<Arc<tls::TlsClient>> {
    if !config.backends.iter().any(|b| b.url.scheme.is_tls()) {
        return None;
    }
    // ALPN offers HTTP/2 unless the pool is held to HTTP/1.1.
    let alpn = match config.protocol {
        crate::config::UpstreamProtocol::Http1 => tls::Alpn::Http1,
        _ => tls::Alpn::H2AndHttp1,
    };
    let kept = previous
        .and_then(|p| p.connector.tls.clone())
        .filter(|t| t.is(&config.tls, alpn));
    if let Some(kept) = kept {
        return Some(kept);
    }
    if config.tls.insecure_skip_verify {
        tracing::warn!(
            pool = %config.name,
            "tls.insecure_skip_verify is on: the certificates of this pool's https:// backends are not verified"
        );
    }
    Some(Arc::new(tls::TlsClient::new(&config.tls, alpn)))
}

/// Iterator returned by [`Pool::candidates`].
#[derive(Debug)]
pub struct Candidates<'a> {
    pool: &'a Arc<Pool>,
    start: usize,
    offset: usize,
    now: Instant,
    panic: bool,
}

impl Iterator for Candidates<'_> {
    type Item = Attempt;

    fn next(&mut self) -> Option<Attempt> {
        let backends = &self.pool.backends;
        while self.offset < backends.len() {
            // `start` and `offset` are below the count: no division on the way.
            let (i, len) = (self.start + self.offset, backends.len());
            let index = match i {
                _ if i < len => i,
                _ if i < 2 * len => i - len,
                _ => i % len,
            };
            let backend = &backends[index];
            self.offset += 1;
            if !self.panic && !Pool::available(backend, self.now) {
                continue;
            }
            let (permit, transition) = backend.breaker.try_acquire(self.now);
            log_transition(backend, transition);
            if let Some(permit) = permit {
                return Some(Attempt::new(self.pool.clone(), index, permit, self.now));
            }
        }
        None
    }
}

/// Logs a circuit state change once, where it happened.
pub(crate) fn log_transition(backend: &Backend, transition: Option<Transition>) {
    if let Some(Transition { from, to }) = transition {
        let opened = to == breaker::State::Open;
        let (from, to) = (from.as_str(), to.as_str());
        if opened {
            tracing::warn!(backend = %backend.label, from, to, "circuit state changed");
        } else {
            tracing::info!(backend = %backend.label, from, to, "circuit state changed");
        }
    }
}
