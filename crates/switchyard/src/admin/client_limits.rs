//! The per-client rate limits' figures of `/metrics` (JSON `client_rate_limit`; Prometheus
//! `switchyard_client_rate_limited_total`, `switchyard_client_rate_limit_keys`,
//! `switchyard_client_rate_limit_capacity`, `switchyard_client_rate_limit_memory_bytes` and
//! `switchyard_client_rate_limit_evictions_total`), over every per-client limiter in force
//! (`[client_rate_limit]` and the routes'). Keys tracked are counted by a scan of each
//! limiter's slots at the scrape (16 bytes a slot: 1.6 MB read for 100,000), never on the
//! request path.

use std::fmt;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::TypedMetric;
use serde::Serialize;
use tokio::time::Instant;

use super::names;
use crate::metrics::Metrics;
use crate::state::State;

/// The per-client limits' figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientLimitSnapshot {
    /// Requests answered `429` by a per-client limit (part of `rate_limited`).
    pub rate_limited: u64,
    /// Keys with counts in their window now, all limiters.
    pub keys_tracked: u64,
    /// Keys the limiters can track at once (their `max_clients`, added up).
    pub keys_capacity: u64,
    /// Live keys pushed out at `max_clients` to make room for new ones.
    pub keys_evicted: u64,
    /// Memory the limiters' counts take, in bytes.
    pub memory_bytes: u64,
}

// === impl ClientLimitSnapshot ===

impl ClientLimitSnapshot {
    /// Reads the figures now.
    pub fn read(metrics: &Metrics, state: &State) -> Self {
        let c = metrics.counters();
        let now = Instant::now();
        let mut snapshot = ClientLimitSnapshot {
            rate_limited: c.sum(|s| &s.client_rate_limited),
            keys_evicted: c.sum(|s| &s.client_keys_evicted),
            ..ClientLimitSnapshot::default()
        };
        let routes = state.routes.routes().iter();
        let limiters = std::iter::once(state.client_limiter.as_ref())
            .chain(routes.map(|r| r.client_limiter.as_ref()))
            .flatten();
        for limiter in limiters {
            let store = limiter.store();
            snapshot.keys_tracked += store.tracked(now);
            snapshot.keys_capacity += store.capacity();
            snapshot.memory_bytes += store.bytes() as u64;
        }
        snapshot
    }

    /// The Prometheus families.
    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        for (name, help, value) in [
            (
                names::CLIENT_RATE_LIMITED,
                "Requests answered 429 by a per-client rate limit.",
                self.rate_limited,
            ),
            (
                names::CLIENT_RATE_LIMIT_EVICTIONS,
                "Live keys pushed out of a per-client rate limiter at max_clients.",
                self.keys_evicted,
            ),
        ] {
            let metric = ConstCounter::new(value);
            let kind = ConstCounter::<u64>::TYPE;
            metric.encode(encoder.encode_descriptor(name, help, None, kind)?)?;
        }
        for (name, help, value) in [
            (
                names::CLIENT_RATE_LIMIT_KEYS,
                "Keys with counts in their window in the per-client rate limiters.",
                self.keys_tracked,
            ),
            (
                names::CLIENT_RATE_LIMIT_CAPACITY,
                "Keys the per-client rate limiters can track at once.",
                self.keys_capacity,
            ),
            (
                names::CLIENT_RATE_LIMIT_MEMORY,
                "Bytes the per-client rate limiters' counts take.",
                self.memory_bytes,
            ),
        ] {
            let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            let kind = ConstGauge::<i64>::TYPE;
            metric.encode(encoder.encode_descriptor(name, help, None, kind)?)?;
        }
        Ok(())
    }
}
