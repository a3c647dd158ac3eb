//! One backend: where it is, its circuit breaker and its counters. Backends are shared
//! (`Arc`) by every worker thread.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use http::uri::PathAndQuery;
use http::HeaderValue;

use crate::config::{BackendUrl, BreakerConfig};
use crate::metrics::{BackendCounters, Sharded};

use super::breaker::Breaker;
use super::health::Health;
use super::load::Load;
use super::outlier::Outlier;

/// A backend of a pool.
#[derive(Debug)]
pub struct Backend {
    /// Process-unique id; the connection pool is keyed by it.
    pub id: u64,
    /// The URL it was configured with.
    pub url: BackendUrl,
    /// `url` as text, for logs and metrics labels.
    pub label: Arc<str>,
    /// `Host` sent when the client sent none (HTTP/1.0).
    pub host_header: HeaderValue,
    addrs: Vec<SocketAddr>,
    /// Index into `addrs` of the address that last accepted a connection.
    preferred: AtomicUsize,
    /// The circuit breaker.
    pub breaker: Breaker,
    /// Active health-check state.
    pub health: Health,
    /// Passive outlier-ejection state.
    pub outlier: Outlier,
    /// Outstanding requests and latency.
    pub load: Load,
    /// A stable hash of the URL (consistent hashing places backends by it).
    pub identity: u64,
    /// Request counters.
    pub counters: Sharded<BackendCounters>,
    /// An `https://` backend's ALPN chose HTTP/2 on its last new connection.
    h2: AtomicBool,
}

/// A backend host name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("backend {url}: cannot resolve {host:?}: {source}")]
pub struct ResolveError {
    url: String,
    host: String,
    #[source]
    source: std::io::Error,
}

// === impl Backend ===

impl Backend {
    /// Resolves `url`'s host (once, at start) and builds the backend.
    pub fn new(
        url: BackendUrl,
        breaker: BreakerConfig,
        shards: usize,
    ) -> Result<Self, ResolveError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let label = url.to_string();
        let resolve_err = |source| ResolveError {
            url: label.clone(),
            host: url.host.clone(),
            source,
        };
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(resolve_err)?
            .collect();
        if addrs.is_empty() {
            return Err(resolve_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no addresses",
            )));
        }
        let host_header = HeaderValue::from_str(&url.authority())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        let identity = super::pick::hash_bytes(label.as_bytes());
        Ok(Backend {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            url,
            host_header,
            addrs,
            preferred: AtomicUsize::new(0),
            breaker: Breaker::new(breaker),
            health: Health::default(),
            outlier: Outlier::default(),
            load: Load::default(),
            identity,
            counters: Sharded::new(shards),
            h2: AtomicBool::new(false),
            label: label.into(),
        })
    }

    /// Addresses to try, the one that worked last time first.
    pub fn addrs(&self) -> impl Iterator<Item = (usize, SocketAddr)> + '_ {
        let start = self.preferred.load(Ordering::Relaxed);
        let n = self.addrs.len();
        (0..n).map(move |i| {
            let idx = (start + i) % n;
            (idx, self.addrs[idx])
        })
    }

    /// True when an `https://` backend chose HTTP/2 by ALPN on its last new connection.
    pub fn speaks_h2(&self) -> bool {
        self.h2.load(Ordering::Relaxed)
    }

    /// Remembers what ALPN chose on a new TLS connection.
    pub fn learn_h2(&self, h2: bool) {
        if self.speaks_h2() != h2 {
            self.h2.store(h2, Ordering::Relaxed);
        }
    }

    /// Remembers which address accepted a connection.
    pub fn prefer(&self, idx: usize) {
        if self.preferred.load(Ordering::Relaxed) != idx {
            self.preferred.store(idx, Ordering::Relaxed);
        }
    }

    /// The request target to send: the backend's base path joined with the client's path.
    pub fn target(&self, path_and_query: Option<&PathAndQuery>) -> http::Uri {
        let pq = path_and_query.map_or("/", PathAndQuery::as_str);
        if pq == "*" {
            // `OPTIONS *` addresses the server, not a path under the base path.
            return http::Uri::from_static("*");
        }
        if self.url.base_path.is_empty() {
            if let Some(pq) = path_and_query {
                return http::Uri::from(pq.clone());
            }
            return http::Uri::from_static("/");
        }
        let joined = format!("{}{}", self.url.base_path, pq);
        // Both halves are valid path characters, so the join is too; fall back to the
        // client's target rather than fail.
        joined
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn backend(url: &str) -> Backend {
        let breaker = BreakerConfig {
            failure_threshold: 5,
            open_duration: Duration::from_secs(10),
        };
        Backend::new(url.parse().unwrap(), breaker, 1).unwrap()
    }

    #[test]
    fn joins_base_path() {
        let b = backend("http://127.0.0.1:8080/api");
        let pq = PathAndQuery::from_static("/users?id=1");
        assert_eq!(b.target(Some(&pq)), "/api/users?id=1");
        let b = backend("http://127.0.0.1:8080");
        assert_eq!(b.target(Some(&pq)), "/users?id=1");
        assert_eq!(b.target(None), "/");
        assert_eq!(b.host_header, "127.0.0.1:8080");
        let b = backend("https://127.0.0.1/api");
        assert_eq!(b.host_header, "127.0.0.1:443");
        assert_eq!(b.label.as_ref(), "https://127.0.0.1:443/api");
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let b = backend("http://localhost:8080");
        assert!(b.addrs().all(|(_, a)| a.ip().is_loopback()));
    }
}
