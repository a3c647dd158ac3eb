//! Active health checks: a background task per backend sends `GET path` every interval
//! (jittered, never on the request path) and flips the backend's `healthy` flag after
//! enough consecutive failures or passes. Each change is logged once. Checks connect as
//! requests do (TLS to `https://` backends, with the pool's TLS client).
//!
//! The checks run on a thread of their own ([`spawn`]), which follows the pools in force: a
//! reload that adds, removes or changes a pool's checks starts and stops only those tasks.
//! The same thread tries again, every [`RESOLVE_RETRY`], to resolve the host names of
//! backends that did not resolve (see [`super::backend`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::backend::RESOLVE_RETRY;
use super::connect::{Connection, Connector};
use super::tls::TlsClient;
use super::{pick, Backend, Pool};
use crate::body::RequestBody;
use crate::clock::nanos;
use crate::config::{HealthCheckConfig, KeepAliveConfig, UpstreamProtocol};

/// A backend's health as active checks see it.
#[derive(Debug)]
pub struct Health {
    healthy: AtomicBool,
    /// True once an active check has given a result (for `/health/ready`).
    checked: AtomicBool,
    /// `nanos()` when the backend last became usable again (for slow start); 0: never out.
    recovered_at: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            healthy: AtomicBool::new(true),
            checked: AtomicBool::new(false),
            recovered_at: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// True unless active checks have taken the backend out.
    #[inline]
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// True once an active check of this backend has given a result.
    pub fn is_checked(&self) -> bool {
        self.checked.load(Ordering::Relaxed)
    }

    /// Sets the flag; returns true when it changed.
    pub fn set(&self, healthy: bool, now: Instant) -> bool {
        let changed = self.healthy.swap(healthy, Ordering::Relaxed) != healthy;
        if changed && healthy {
            self.mark_recovered(now);
        }
        changed
    }

    /// Notes that the backend came back (health check, ejection end, circuit close).
    pub fn mark_recovered(&self, now: Instant) {
        self.recovered_at
            .store(nanos(now).max(1), Ordering::Relaxed);
    }

    /// Share of full traffic a recovering backend takes at `now` during `slow_start` (1.0
    /// when not recovering).
    pub fn ramp(&self, now: Instant, slow_start: Duration) -> f64 {
        let at = self.recovered_at.load(Ordering::Relaxed);
        if at == 0 || slow_start.is_zero() {
            return 1.0;
        }
        let elapsed = nanos(now).saturating_sub(at) as f64;
        (elapsed / slow_start.as_nanos() as f64).clamp(0.1, 1.0)
    }
}

/// The pools in force, as the health-check thread follows them.
pub type Pools = Arc<Vec<Arc<Pool>>>;

/// Starts the health-check thread following `pools`. It stops when the sender is dropped.
pub fn spawn(pools: watch::Receiver<Pools>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("switchyard-health".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the health-check thread");
                    return;
                }
            };
            runtime.block_on(follow(pools));
        })
}

/// Keeps one check task per (backend, settings) of the pools in force.
async fn follow(mut pools: watch::Receiver<Pools>) {
    let mut tasks: HashMap<(u64, String, usize), JoinHandle<()>> = HashMap::new();
    let mut resolving: HashMap<u64, JoinHandle<()>> = HashMap::new();
    loop {
        let current = pools.borrow_and_update().clone();
        let unresolved: HashMap<u64, Arc<Backend>> = current
            .iter()
            .flat_map(|pool| pool.backends())
            .filter(|b| !b.is_resolved())
            .map(|b| (b.id, b.clone()))
            .collect();
        resolving.retain(|id, task| {
            let keep = unresolved.contains_key(id) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, backend) in unresolved {
            resolving
                .entry(id)
                .or_insert_with(|| tokio::spawn(resolve_loop(backend)));
        }
        let mut wanted = HashMap::new();
        for pool in current.iter() {
            let Some(config) = &pool.health_check else {
                continue;
            };
            // A check connects as the pool's requests do: over TLS to `https://` backends,
            // with the pool's TLS client (a new client, after a reload, restarts the task),
            // and in the pool's protocol.
            let tls = pool.connector.tls.clone();
            let tls_id = tls.as_ref().map_or(0, |t| Arc::as_ptr(t) as usize);
            let protocol = pool.connector.protocol;
            for backend in pool.backends() {
                let key = (backend.id, format!("{config:?} {protocol:?}"), tls_id);
                wanted.insert(
                    key,
                    (backend.clone(), config.clone(), tls.clone(), protocol),
                );
            }
        }
        tasks.retain(|key, task| {
            let keep = wanted.contains_key(key);
            if !keep {
                task.abort();
            }
            keep
        });
        for (key, (backend, config, tls, protocol)) in wanted {
            tasks
                .entry(key)
                .or_insert_with(|| tokio::spawn(check_loop(backend, config, tls, protocol)));
        }
        drop(current);
        if pools.changed().await.is_err() {
            break;
        }
    }
    for task in tasks.values().chain(resolving.values()) {
        task.abort();
    }
}

/// Resolves an unresolved backend's host name every [`RESOLVE_RETRY`] until it resolves.
async fn resolve_loop(backend: Arc<Backend>) {
    loop {
        tokio::time::sleep(RESOLVE_RETRY).await;
        if backend.is_resolved() {
            return;
        }
        match backend.resolve().await {
            Ok(()) => {
                backend.health.mark_recovered(Instant::now());
                tracing::info!(backend = %backend.label, "backend host name resolved: back in rotation");
                return;
            }
            Err(e) => {
                tracing::debug!(backend = %backend.label, error = %crate::errors::Chain(&e), "backend host name still does not resolve");
            }
        }
    }
}

async fn check_loop(
    backend: Arc<Backend>,
    config: HealthCheckConfig,
    tls: Option<Arc<TlsClient>>,
    protocol: UpstreamProtocol,
) {
    let connector = Connector {
        connect_timeout: config.timeout,
        tls,
        pool: KeepAliveConfig {
            max_idle: 0,
            idle_timeout: Duration::ZERO,
        },
        max_header_bytes: 64 * 1024,
        stream_window: 64 * 1024,
        protocol,
        max_streams: 1,
    };
    let (mut passes, mut failures) = (0u32, 0u32);
    loop {
        let jitter = config.interval.as_nanos() as u64 / 10;
        let jitter = if jitter == 0 {
            0
        } else {
            pick::random() % jitter
        };
        tokio::time::sleep(config.interval + Duration::from_nanos(jitter)).await;
        let result = check_once(&connector, &backend, &config).await;
        let now = Instant::now();
        match result {
            Ok(()) => {
                passes += 1;
                failures = 0;
                if passes >= config.healthy_threshold && backend.health.set(true, now) {
                    tracing::info!(backend = %backend.label, passes, "backend healthy again: back in rotation");
                }
            }
            Err(reason) => {
                failures += 1;
                passes = 0;
                if failures >= config.unhealthy_threshold && backend.health.set(false, now) {
                    tracing::warn!(backend = %backend.label, failures, reason, "backend failed health checks: out of rotation");
                }
            }
        }
        backend.health.checked.store(true, Ordering::Relaxed);
    }
}

async fn check_once(
    connector: &Connector,
    backend: &Backend,
    config: &HealthCheckConfig,
) -> Result<(), String> {
    let attempt = async {
        let conn = connector
            .connect(backend)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut req = Request::new(RequestBody::empty());
        *req.uri_mut() = backend.target(Some(
            &config.path.parse().map_err(|_| "bad path".to_owned())?,
        ));
        let headers = req.headers_mut();
        headers.insert(header::HOST, backend.host_header.clone());
        if let Connection::H1(_) = conn {
            headers.insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        headers.insert(
            header::USER_AGENT,
            header::HeaderValue::from_static("switchyard-health-check"),
        );
        let (mut head, body) = req.into_parts();
        // The connection (an HTTP/2 stream) is held until the body is read.
        let (resp, _conn) = conn
            .send(&mut head, body, false)
            .await
            .map_err(|e| format!("request: {}", e.error))?;
        let status = resp.status().as_u16();
        // Read (and discard) the body so the exchange completes cleanly.
        let _ = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_else(|_| Bytes::new());
        let (lo, hi) = config.expected_status;
        if (lo..=hi).contains(&status) {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    };
    match tokio::time::timeout(config.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {:?}", config.timeout)),
    }
}
