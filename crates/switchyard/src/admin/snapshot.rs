//! Everything `/metrics` reports, read at one moment into plain values: the sums of the
//! proxy counters, one [`BackendSnapshot`] per backend and the reload history. Both
//! renderings ([`super::json`], [`super::prometheus`]) are made from the same [`Snapshot`].
//!
//! What the counters mean and how they add up is in [`crate::metrics`]. Outcome counters are
//! read before `requests`, so that a request finishing during the read can never make
//! `in_flight` negative.

use std::sync::atomic::Ordering;

use serde::{Serialize, Serializer};
use tokio::time::Instant;

use crate::config::duration;
use crate::config::tls::{format_utc, CertificateStatus};
use crate::metrics::{BackendCounters, Metrics, Sharded};
use crate::state::{Shared, State};
use crate::upstream::breaker;
use crate::upstream::Backend;

/// Everything `/metrics` reports, at one moment. Serialised as the JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// See [`crate::metrics`].
    pub requests: u64,
    /// See [`crate::metrics`].
    pub responses: u64,
    /// See [`crate::metrics`].
    pub local: u64,
    /// See [`crate::metrics`].
    pub errors: u64,
    /// See [`crate::metrics`].
    pub rate_limited: u64,
    /// See [`crate::metrics`].
    pub cancelled: u64,
    /// See [`crate::metrics`].
    pub in_flight: u64,
    /// Further attempts on another backend (see [`crate::metrics::ProxyCounters::retries`]).
    pub retries: u64,
    /// Retries refused by the retry budget.
    pub retries_over_budget: u64,
    /// 503s because no backend was available.
    pub unavailable: u64,
    /// Per-try timeouts.
    pub try_timeouts: u64,
    /// Whole-request timeouts.
    pub request_timeouts: u64,
    /// WebSocket tunnels opened (the backend answered `101`).
    pub tunnels_opened: u64,
    /// WebSocket tunnels open now (with upgrades waiting for the backend's answer).
    pub tunnels_open: u64,
    /// WebSocket upgrades refused with `503` at `max_tunnels`.
    pub tunnels_refused: u64,
    /// WebSocket tunnels closed by their idle timeout.
    pub tunnels_idle_timeouts: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: u64,
    /// Connections closed for a missing, malformed or late PROXY protocol header.
    pub proxy_protocol_errors: u64,
    /// Requests refused 413: a body over max_body_size (declared, or counted as it streamed).
    pub refused_body_size: u64,
    /// Requests refused 414: a request target over max_uri_length.
    pub refused_uri_length: u64,
    /// Requests refused 405: a method outside the route's allowed_methods.
    pub refused_method: u64,
    /// Requests refused 415: a body type outside the route's allowed_content_types.
    pub refused_content_type: u64,
    /// Requests refused 503 because their client IP had max_requests_per_ip in progress.
    pub refused_requests_per_ip: u64,
    /// Connections refused because the listener had max_connections open.
    pub refused_connections: u64,
    /// Connections refused because their client IP had max_connections_per_ip open.
    pub refused_connections_per_ip: u64,
    /// Client connections closed (HTTP/1.1) or sent GOAWAY (HTTP/2) after max_requests_per_connection.
    pub connections_at_max_requests: u64,
    /// Audit events dropped because the audit writer's queue was full.
    pub audit_dropped: u64,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Go-style uptime, as `/health` shows it.
    pub uptime: String,
    /// One entry per backend.
    pub backends: Vec<BackendSnapshot>,
    /// The configuration in force and how reloads went.
    pub config: ConfigSnapshot,
    /// The certificates the HTTPS listeners serve.
    pub certificates: Vec<CertificateSnapshot>,
    /// Access control: refusals, requests per API key.
    pub access: super::access::AccessSnapshot,
    /// Per-client rate limits: refusals, keys tracked, evictions.
    pub client_rate_limit: super::client_limits::ClientLimitSnapshot,
}

/// A certificate an HTTPS listener serves.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateSnapshot {
    /// The listener's address.
    pub listener: String,
    /// The certificate file.
    pub file: String,
    /// The names it is served for.
    pub names: Vec<String>,
    /// Its subject.
    pub subject: String,
    /// When it expires, UTC (`2026-01-31T12:00:00Z`).
    pub expires: String,
    /// When it expires, Unix seconds.
    pub expiry_timestamp_seconds: i64,
}

/// One backend's figures.
#[derive(Debug, Clone, Serialize)]
pub struct BackendSnapshot {
    /// The pool it belongs to.
    pub pool: String,
    /// The backend URL.
    pub url: String,
    /// The circuit state; shown as `closed`, `open` or `half_open`.
    #[serde(serialize_with = "circuit_name")]
    pub circuit: breaker::State,
    /// Consecutive failures counted by the breaker.
    pub consecutive_failures: u32,
    /// Attempts sent.
    pub requests: u64,
    /// Responses received.
    pub responses: u64,
    /// Attempts without a response.
    pub errors: u64,
    /// Attempts abandoned by the client.
    pub cancelled: u64,
    /// Attempts still waiting for a response head.
    pub in_flight: u64,
    /// Breaker failures.
    pub failures: u64,
    /// Active health checks pass (or none are configured).
    pub healthy: bool,
    /// Ejected for consecutive failed answers now.
    pub ejected: bool,
    /// Times ejected.
    pub ejections: u64,
    /// Connect attempts that timed out.
    pub connect_timeouts: u64,
    /// Requests outstanding now.
    pub outstanding: u32,
    /// Peak-EWMA latency of response heads, ms (rounded to the microsecond).
    pub latency_ewma_ms: f64,
    /// New connections opened.
    pub connections_opened: u64,
    /// Requests sent on reused connections.
    pub connections_reused: u64,
    /// Idle keep-alive connections now (all workers).
    pub idle_connections: u64,
}

/// The configuration's version and reload history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigSnapshot {
    /// Hash of the configuration file in force (`null` when running from flags alone).
    pub version: Option<String>,
    /// Successful reloads.
    pub reloads: u64,
    /// Rejected reloads.
    pub reload_failures: u64,
    /// How the last reload attempt went, `null` before any.
    pub last_reload_result: Option<ReloadResult>,
    /// Unix time of the last reload attempt.
    pub last_reload_time: Option<u64>,
    /// The last rejected reload's error.
    pub last_reload_error: Option<String>,
}

/// How a reload attempt went; shown as `ok` or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadResult {
    /// The new configuration is in force.
    Ok,
    /// It was rejected; the old one stayed.
    Error,
}

// === impl Snapshot ===

impl Snapshot {
    /// Reads everything `/metrics` reports, now.
    pub fn read(shared: &Shared, state: &State) -> Self {
        let backends = BackendSnapshot::read_all(state, Instant::now());
        let mut snapshot = Snapshot::new(
            &shared.metrics,
            backends,
            ConfigSnapshot::read(shared, state),
        );
        snapshot.certificates = CertificateSnapshot::read_all(shared);
        snapshot.access = super::access::AccessSnapshot::read(&shared.metrics, state);
        snapshot.client_rate_limit =
            super::client_limits::ClientLimitSnapshot::read(&shared.metrics, state);
        snapshot.audit_dropped = shared.audit.as_ref().map_or(0, |a| a.dropped());
        snapshot
    }

    /// Sums the proxy counters and puts them together with `backends` and `config`.
    pub fn new(metrics: &Metrics, backends: Vec<BackendSnapshot>, config: ConfigSnapshot) -> Self {
        let c = metrics.counters();
        let responses = c.sum(|s| &s.responses);
        let local = c.sum(|s| &s.local);
        let errors = c.sum(|s| &s.errors);
        let rate_limited = c.sum(|s| &s.rate_limited);
        let cancelled = c.sum(|s| &s.cancelled);
        let retries = c.sum(|s| &s.retries);
        let retries_over_budget = c.sum(|s| &s.retries_over_budget);
        let unavailable = c.sum(|s| &s.unavailable);
        let try_timeouts = c.sum(|s| &s.try_timeouts);
        let request_timeouts = c.sum(|s| &s.request_timeouts);
        let tls_handshakes = c.sum(|s| &s.tls_handshakes);
        let tls_handshake_failures = c.sum(|s| &s.tls_handshake_failures);
        let requests = c.sum(|s| &s.requests);
        let done = responses + local + errors + rate_limited + cancelled;
        let tunnels = metrics.tunnels();
        let uptime = metrics.uptime();
        Snapshot {
            requests,
            responses,
            local,
            errors,
            rate_limited,
            cancelled,
            in_flight: requests.saturating_sub(done),
            retries,
            retries_over_budget,
            unavailable,
            try_timeouts,
            request_timeouts,
            tunnels_opened: tunnels.opened.load(Ordering::Relaxed),
            tunnels_open: tunnels.open(),
            tunnels_refused: tunnels.refused.load(Ordering::Relaxed),
            tunnels_idle_timeouts: tunnels.idle_timeouts.load(Ordering::Relaxed),
            tls_handshakes,
            tls_handshake_failures,
            proxy_protocol_errors: c.sum(|s| &s.proxy_protocol_errors),
            refused_body_size: c.sum(|s| &s.refused_body_size),
            refused_uri_length: c.sum(|s| &s.refused_uri_length),
            refused_method: c.sum(|s| &s.refused_method),
            refused_content_type: c.sum(|s| &s.refused_content_type),
            refused_requests_per_ip: c.sum(|s| &s.refused_requests_per_ip),
            refused_connections: c.sum(|s| &s.refused_connections),
            refused_connections_per_ip: c.sum(|s| &s.refused_connections_per_ip),
            connections_at_max_requests: c.sum(|s| &s.connections_at_max_requests),
            audit_dropped: 0,
            uptime_seconds: uptime.as_secs() + u64::from(uptime.subsec_millis() >= 500),
            uptime: duration::format_go_seconds(uptime),
            backends,
            config,
            certificates: Vec::new(),
            access: super::access::AccessSnapshot::default(),
            client_rate_limit: super::client_limits::ClientLimitSnapshot::default(),
        }
    }
}

// === impl CertificateSnapshot ===

impl CertificateSnapshot {
    /// The certificates in use now.
    pub fn read_all(shared: &Shared) -> Vec<Self> {
        shared.certificates().iter().map(Self::from).collect()
    }
}

impl From<&CertificateStatus> for CertificateSnapshot {
    fn from(c: &CertificateStatus) -> Self {
        CertificateSnapshot {
            listener: c.listener.clone(),
            file: c.file.display().to_string(),
            names: c.names.clone(),
            subject: c.subject.clone(),
            expires: format_utc(c.not_after),
            expiry_timestamp_seconds: c.not_after,
        }
    }
}

// === impl BackendSnapshot ===

impl BackendSnapshot {
    /// Every backend of every pool, in configuration order.
    pub fn read_all(state: &State, now: Instant) -> Vec<Self> {
        state
            .pools
            .iter()
            .flat_map(|pool| {
                pool.backends()
                    .iter()
                    .map(|b| BackendSnapshot::read(&pool.name, b, now))
            })
            .collect()
    }

    /// Reads one backend of pool `pool`: its counters, breaker, health, ejection and load.
    pub fn read(pool: &str, backend: &Backend, now: Instant) -> Self {
        let (circuit, consecutive_failures) = backend.breaker.snapshot(now);
        let c: &Sharded<BackendCounters> = &backend.counters;
        let responses = c.sum(|s| &s.responses);
        let errors = c.sum(|s| &s.errors);
        let cancelled = c.sum(|s| &s.cancelled);
        let failures = c.sum(|s| &s.failures);
        let ejections = c.sum(|s| &s.ejections);
        let connect_timeouts = c.sum(|s| &s.connect_timeouts);
        let connections_opened = c.sum(|s| &s.connections_opened);
        let connections_reused = c.sum(|s| &s.connections_reused);
        let idle_connections = c.sum(|s| &s.idle_in).saturating_sub(c.sum(|s| &s.idle_out));
        let requests = c.sum(|s| &s.requests);
        BackendSnapshot {
            pool: pool.to_owned(),
            url: backend.label.to_string(),
            circuit,
            consecutive_failures,
            requests,
            responses,
            errors,
            cancelled,
            in_flight: requests.saturating_sub(responses + errors + cancelled),
            failures,
            healthy: backend.health.is_healthy(),
            ejected: backend.outlier.is_ejected(now),
            ejections,
            connect_timeouts,
            outstanding: backend.load.outstanding(),
            latency_ewma_ms: (backend.load.ewma_ns() / 1e3).round() / 1e3,
            connections_opened,
            connections_reused,
            idle_connections,
        }
    }
}

// === impl ConfigSnapshot ===

impl ConfigSnapshot {
    /// The version in force and the reload history.
    pub fn read(shared: &Shared, state: &State) -> Self {
        let status = shared.reload_status();
        let (result, time, error) = match status.last {
            Some((at, error)) => (
                Some(if error.is_some() {
                    ReloadResult::Error
                } else {
                    ReloadResult::Ok
                }),
                at.duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs()),
                error,
            ),
            None => (None, None, None),
        };
        ConfigSnapshot {
            version: state.version().map(str::to_owned),
            reloads: status.succeeded,
            reload_failures: status.failed,
            last_reload_result: result,
            last_reload_time: time,
            last_reload_error: error,
        }
    }
}

/// Serialises a circuit state by its name.
pub(super) fn circuit_name<S: Serializer>(
    state: &breaker::State,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{inc, set_thread_shard};

    #[test]
    fn counters_add_up_and_in_flight_is_derived() {
        let m = Metrics::new(2);
        for _ in 0..5 {
            inc(&m.local().requests);
        }
        set_thread_shard(1);
        inc(&m.local().responses);
        inc(&m.local().errors);
        set_thread_shard(0);
        inc(&m.local().rate_limited);
        let s = Snapshot::new(&m, Vec::new(), ConfigSnapshot::default());
        assert_eq!(
            (s.requests, s.responses, s.errors, s.rate_limited),
            (5, 1, 1, 1)
        );
        assert_eq!(s.in_flight, 2);
    }
}
