//! One backend: where it is, its circuit breaker and its counters. Backends are shared
//! (`Arc`) by every worker thread.
//!
//! A backend's host name is resolved when the backend is built (at start and on reload). A
//! name that does not resolve is not fatal: the backend is built without addresses, logged
//! once, kept out of rotation (see [`Backend::is_resolved`]) and resolved again later — by
//! the health-check thread every [`RESOLVE_RETRY`], and by a connection attempt that reaches
//! it (panic mode) — while the pool serves from its other backends.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
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
    /// The addresses its host resolved to; empty until it resolves.
    addrs: ArcSwap<Vec<SocketAddr>>,
    /// True once `addrs` is not empty (read on the request path without touching `addrs`).
    resolved: AtomicBool,
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

/// How often the health-check thread tries again to resolve a backend whose host name did
/// not resolve.
pub const RESOLVE_RETRY: Duration = Duration::from_secs(5);

/// A backend host name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host:?}")]
pub struct ResolveError {
    host: String,
    #[source]
    source: std::io::Error,
}

// === impl Backend ===

impl Backend {
    /// Resolves `url`'s host (blocking briefly) and builds the backend. A host that does not
    /// resolve gives a backend without addresses, out of rotation until it resolves (logged
    /// here, once).
    pub fn new(url: BackendUrl, breaker: BreakerConfig, shards: usize) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let label = url.to_string();
        let addrs = match resolve_now(&url) {
            Ok(addrs) => addrs,
            Err(e) => {
                tracing::warn!(
                    backend = %label,
                    error = %crate::errors::Chain(&e),
                    retry_every = ?RESOLVE_RETRY,
                    "backend host name does not resolve: out of rotation until it does"
                );
                Vec::new()
            }
        };
        let host_header = HeaderValue::from_str(&url.authority())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        let identity = super::pick::hash_bytes(label.as_bytes());
        Backend {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            url,
            host_header,
            resolved: AtomicBool::new(!addrs.is_empty()),
            addrs: ArcSwap::from_pointee(addrs),
            preferred: AtomicUsize::new(0),
            breaker: Breaker::new(breaker),
            health: Health::default(),
            outlier: Outlier::default(),
            load: Load::new(shards),
            identity,
            counters: Sharded::new(shards),
            h2: AtomicBool::new(false),
            label: label.into(),
        }
    }

    /// True once the host name has resolved to at least one address.
    #[inline]
    pub fn is_resolved(&self) -> bool {
        self.resolved.load(Ordering::Relaxed)
    }

    /// Resolves the host name again, without blocking the runtime; on success the backend
    /// has addresses (and is back in rotation, as far as resolution goes).
    pub async fn resolve(&self) -> Result<(), ResolveError> {
        let host = (self.url.host.clone(), self.url.port);
        let found = tokio::net::lookup_host(host)
            .await
            .map(Iterator::collect::<Vec<_>>);
        let addrs = non_empty(&self.url, found)?;
        self.addrs.store(Arc::new(addrs));
        self.preferred.store(0, Ordering::Relaxed);
        self.resolved.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Addresses to try, the one that worked last time first (none while unresolved).
    pub fn addrs(&self) -> impl Iterator<Item = (usize, SocketAddr)> {
        let addrs = self.addrs.load_full();
        let start = self.preferred.load(Ordering::Relaxed);
        let n = addrs.len();
        (0..n).map(move |i| {
            let idx = (start + i) % n;
            (idx, addrs[idx])
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

/// Resolves `url`'s host with the system resolver, blocking.
fn resolve_now(url: &BackendUrl) -> Result<Vec<SocketAddr>, ResolveError> {
    let found = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map(Iterator::collect::<Vec<_>>);
    non_empty(url, found)
}

/// The addresses found, or why there are none.
fn non_empty(
    url: &BackendUrl,
    found: std::io::Result<Vec<SocketAddr>>,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let source = match found {
        Ok(addrs) if !addrs.is_empty() => return Ok(addrs),
        Ok(_) => std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
        Err(e) => e,
    };
    Err(ResolveError {
        host: url.host.clone(),
        source,
    })
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
        Backend::new(url.parse().unwrap(), breaker, 1)
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
        assert!(b.is_resolved());
        assert!(b.addrs().all(|(_, a)| a.ip().is_loopback()));
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_gives_a_backend_without_addresses() {
        let b = backend("http://does-not-resolve.invalid:80");
        assert!(!b.is_resolved());
        assert_eq!(b.addrs().count(), 0);
        let err = b.resolve().await.expect_err(".invalid never resolves");
        let text = crate::errors::Chain(&err).to_string();
        assert!(
            text.starts_with("cannot resolve \"does-not-resolve.invalid\": "),
            "{text}"
        );
        assert!(!b.is_resolved());
    }
}
