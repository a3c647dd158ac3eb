//! The three health endpoints, for load balancers and orchestrators:
//!
//! - `/health`: the proxy's [`Status`] as of now — `UP` (every backend in rotation),
//!   `DEGRADED` (some backend out: host name unresolved, failing its health checks, ejected,
//!   or its circuit not closed) or `DOWN` (some pool has no available backend, so its
//!   requests are answered `503`) — with each backend's state and why. `DOWN` answers
//!   `[admin] down_status` (default `503`), so a load balancer probing `/health` stops
//!   sending traffic; `UP` and `DEGRADED` answer `200`.
//! - `/health/live`: the process answers, `200` always.
//! - `/health/ready`: `200` once the listeners are bound (they are before any request is
//!   answered) and every backend with active health checks has had its first check, `503`
//!   before. Once ready, it stays ready: a reload that adds backends does not flap it.
//!
//! Circuits are shown as of now: an open circuit whose open time has passed is `half_open`,
//! ready for a trial request, without waiting for one to arrive.

use serde::Serialize;
use tokio::time::Instant;

use super::snapshot::circuit_name;
use crate::state::State;
use crate::upstream::{breaker, Backend, Pool};

/// The proxy's health as `/health` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Every backend in rotation.
    #[serde(rename = "UP")]
    Up,
    /// Some backends out, every pool still has one available.
    #[serde(rename = "DEGRADED")]
    Degraded,
    /// Some pool has no available backend.
    #[serde(rename = "DOWN")]
    Down,
}

/// One backend as `/health` shows it.
#[derive(Debug, Serialize)]
pub struct BackendHealth {
    /// Its pool.
    pub pool: String,
    /// Its URL.
    pub url: String,
    /// A request may be sent to it now: resolved, healthy, not ejected, circuit not open.
    pub available: bool,
    /// Its host name resolved.
    pub resolved: bool,
    /// Active health checks pass (always true without checks).
    pub healthy: bool,
    /// Ejected for consecutive failed answers now.
    pub ejected: bool,
    /// The circuit state as of now.
    #[serde(serialize_with = "circuit_name")]
    pub circuit: breaker::State,
    /// Consecutive failures counted by the breaker.
    pub consecutive_failures: u32,
}

// === impl BackendHealth ===

impl BackendHealth {
    /// Reads `backend` of `pool` at `now`.
    pub fn read(pool: &Pool, backend: &Backend, now: Instant) -> Self {
        let (circuit, consecutive_failures) = backend.breaker.snapshot(now);
        let resolved = backend.is_resolved();
        let healthy = backend.health.is_healthy();
        let ejected = backend.outlier.is_ejected(now);
        BackendHealth {
            pool: pool.name.clone(),
            url: backend.label.to_string(),
            available: resolved && healthy && !ejected && circuit != breaker::State::Open,
            resolved,
            healthy,
            ejected,
            circuit,
            consecutive_failures,
        }
    }

    /// True when the backend is out of full rotation for any reason.
    fn is_out(&self) -> bool {
        !self.available || self.circuit != breaker::State::Closed
    }
}

/// Every backend of every pool at `now`, in configuration order.
pub fn backends(state: &State, now: Instant) -> Vec<BackendHealth> {
    state
        .pools
        .iter()
        .flat_map(|pool| {
            pool.backends()
                .iter()
                .map(move |b| BackendHealth::read(pool, b, now))
        })
        .collect()
}

/// The status `backends` (all of `pools`) add up to.
pub fn status(pools: &[std::sync::Arc<Pool>], backends: &[BackendHealth]) -> Status {
    let pool_down = pools
        .iter()
        .any(|pool| !backends.iter().any(|b| b.pool == pool.name && b.available));
    if pool_down {
        Status::Down
    } else if backends.iter().any(BackendHealth::is_out) {
        Status::Degraded
    } else {
        Status::Up
    }
}

/// Backends with active health checks that have not had their first check yet.
pub fn unchecked(state: &State) -> usize {
    state
        .pools
        .iter()
        .filter(|pool| pool.health_check.is_some())
        .flat_map(|pool| pool.backends())
        .filter(|b| !b.health.is_checked())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(pool: &str, available: bool, circuit: breaker::State) -> BackendHealth {
        BackendHealth {
            pool: pool.into(),
            url: "http://127.0.0.1:1".into(),
            available,
            resolved: true,
            healthy: available,
            ejected: false,
            circuit,
            consecutive_failures: 0,
        }
    }

    fn pools(names: &[&str]) -> Vec<std::sync::Arc<Pool>> {
        names
            .iter()
            .map(|n| {
                let config = crate::config::PoolConfig::named(n);
                std::sync::Arc::new(Pool::new(&config, Vec::new(), &Default::default(), None))
            })
            .collect()
    }

    #[test]
    fn up_degraded_down() {
        use breaker::State::{Closed, HalfOpen, Open};
        let p = pools(&["a", "b"]);
        let all_in = [backend("a", true, Closed), backend("b", true, Closed)];
        assert_eq!(status(&p, &all_in), Status::Up);
        let half = [backend("a", true, HalfOpen), backend("b", true, Closed)];
        assert_eq!(status(&p, &half), Status::Degraded);
        let one_out = [
            backend("a", true, Closed),
            backend("a", false, Open),
            backend("b", true, Closed),
        ];
        assert_eq!(status(&p, &one_out), Status::Degraded);
        let pool_b_out = [backend("a", true, Closed), backend("b", false, Closed)];
        assert_eq!(status(&p, &pool_b_out), Status::Down);
        assert_eq!(status(&p, &all_in[..1]), Status::Down, "b has no backend");
    }
}
