//! What the request path reads: the [`State`] built from one configuration, held in an
//! `ArcSwap` so that a request loads it once, without a lock, and sees one consistent version
//! throughout; and [`Shared`], what outlives any one configuration (metrics, reload status).
//!
//! A reload builds a new `State` next to the old one and swaps it in. Building reuses what
//! must survive: backends still listed in a pool of the same name keep their `Backend` (its
//! circuit breaker, counters and, through its id, every worker's idle connections), and rate
//! limiters whose settings did not change keep their counts (per-client limiters: whose window,
//! key and `max_clients` did not change). In-flight requests finish on the
//! state they started with.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::config::tls::CertificateStatus;
use crate::config::{AdminConfig, Config, RouteAction};
use crate::metrics::{Metrics, Sharded};
use crate::ratelimit::keyed::ClientLimiter;
use crate::ratelimit::RateLimiter;
use crate::routing::{Route, RouteTable};
use crate::telemetry::audit::AuditLog;
use crate::upstream::{Backend, Pool};

/// The request path's view of one configuration.
#[derive(Debug)]
pub struct State {
    /// Routes, most specific first.
    pub routes: RouteTable,
    /// Pools by configuration order.
    pub pools: Vec<Arc<Pool>>,
    /// The global rate limiter.
    pub limiter: Arc<RateLimiter>,
    /// The per-client rate limiter of every proxied request, if configured.
    pub client_limiter: Option<Arc<ClientLimiter>>,
    /// Admin endpoint settings.
    pub admin: AdminConfig,
    /// Requests that presented each API key, in the order of `config.access.keys` (kept by
    /// name across reloads).
    pub api_key_uses: Vec<Arc<Sharded<AtomicU64>>>,
    /// The configuration this state was built from.
    pub config: Arc<Config>,
}

/// How reloads have gone, for `/metrics` and `/health`.
#[derive(Debug, Default, Clone)]
pub struct ReloadStatus {
    /// Successful reloads.
    pub succeeded: u64,
    /// Rejected reloads (the old configuration stayed).
    pub failed: u64,
    /// The last attempt: when, and the error if it failed.
    pub last: Option<(SystemTime, Option<String>)>,
}

/// State shared by every connection for the life of the process.
#[derive(Debug)]
pub struct Shared {
    state: ArcSwap<State>,
    /// Counters.
    pub metrics: Metrics,
    /// Reload history.
    pub reloads: Mutex<ReloadStatus>,
    /// The audit log, when there is one (set at start, kept for the process's life).
    pub audit: Option<Arc<AuditLog>>,
    /// The certificates the HTTPS listeners serve (set by `server` whenever they change).
    certificates: Mutex<Vec<CertificateStatus>>,
    /// `/health/ready` has answered ready once (it stays so).
    ready: AtomicBool,
}

// === impl State ===

impl State {
    /// Builds the state `config` describes, reusing what `previous` has that still applies.
    /// Resolves new backends' host names (blocking briefly; a name that does not resolve
    /// leaves that backend out of rotation, see [`Backend::new`]).
    pub fn build(config: Config, previous: Option<&State>, shards: usize) -> State {
        let mut pools = Vec::with_capacity(config.pools.len());
        for pool in &config.pools {
            let old = previous.and_then(|p| p.pool(&pool.name));
            // Connections to `https://` backends made under other TLS settings must not be
            // reused: those backends start anew (new ids, so none of their idle connections).
            let tls_same = old.is_some_and(|p| p.tls_settings() == Some(&pool.tls));
            let mut backends = Vec::with_capacity(pool.backends.len());
            for b in &pool.backends {
                let kept = old
                    .filter(|_| tls_same || !b.url.scheme.is_tls())
                    .and_then(|p| p.backends().iter().find(|ob| ob.url == b.url));
                let backend = match kept {
                    Some(kept) => {
                        kept.breaker.set_config(pool.breaker);
                        kept.clone()
                    }
                    None => Arc::new(Backend::new(b.url.clone(), pool.breaker, shards)),
                };
                backends.push(backend);
            }
            pools.push(Arc::new(Pool::new(
                pool,
                backends,
                &config.limits,
                old.map(|p| &**p),
            )));
        }
        let limiter = match previous {
            Some(p) if p.limiter.is(&config.rate_limit) => p.limiter.clone(),
            _ => Arc::new(RateLimiter::new(config.rate_limit)),
        };
        let keys = &config.access.keys;
        let client_limiter = config.client_rate_limit.as_ref().map(|c| {
            let old = previous.and_then(|p| p.client_limiter.as_deref());
            Arc::new(ClientLimiter::new(c, keys, old, "client"))
        });
        let routes = config
            .routes
            .iter()
            .map(|route| {
                let old_route = previous.and_then(|p| {
                    p.routes
                        .routes()
                        .iter()
                        .find(|r| r.config.name == route.name)
                });
                let pool = match &route.action {
                    RouteAction::Forward { pool } => {
                        pools.iter().find(|p| p.name == *pool).cloned()
                    }
                    _ => None,
                };
                let limiter = route.rate_limit.map(|rl| {
                    let kept = old_route
                        .and_then(|r| r.limiter.clone())
                        .filter(|l| l.is(&rl));
                    kept.unwrap_or_else(|| Arc::new(RateLimiter::new(rl)))
                });
                let client_limiter = route.client_rate_limit.as_ref().map(|c| {
                    let old = old_route.and_then(|r| r.client_limiter.as_deref());
                    Arc::new(ClientLimiter::new(c, keys, old, "route"))
                });
                Route {
                    config: route.clone(),
                    pool,
                    limiter,
                    client_limiter,
                }
            })
            .collect();
        let api_key_uses = config
            .access
            .keys
            .keys()
            .iter()
            .map(|key| {
                previous
                    .and_then(|p| {
                        let old = p.config.access.keys.keys();
                        let i = old.iter().position(|k| k.name == key.name)?;
                        p.api_key_uses.get(i).cloned()
                    })
                    .unwrap_or_else(|| Arc::new(Sharded::new(shards)))
            })
            .collect();
        State {
            routes: RouteTable::new(routes),
            pools,
            limiter,
            client_limiter,
            admin: config.admin.clone(),
            api_key_uses,
            config: Arc::new(config),
        }
    }

    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The configuration's version (file hash), if it came from a file.
    pub fn version(&self) -> Option<&str> {
        self.config.source.as_ref().map(|s| s.version.as_str())
    }
}

// === impl Shared ===

impl Shared {
    /// Shared state starting with `state`.
    pub fn new(state: State, metrics: Metrics) -> Self {
        Shared {
            state: ArcSwap::from_pointee(state),
            metrics,
            reloads: Mutex::new(ReloadStatus::default()),
            audit: None,
            certificates: Mutex::new(Vec::new()),
            ready: AtomicBool::new(false),
        }
    }

    /// The same, writing security events to `audit`.
    pub fn with_audit(mut self, audit: Option<Arc<AuditLog>>) -> Self {
        self.audit = audit;
        self
    }

    /// The state in force now. Hold it for the whole request.
    #[inline]
    pub fn state(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// Puts `state` in force; requests already running keep the one they loaded.
    pub fn swap(&self, state: State) {
        self.state.store(Arc::new(state));
    }

    /// Records a reload attempt.
    pub fn record_reload(&self, error: Option<String>) {
        let mut status = self
            .reloads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if error.is_some() {
            status.failed += 1;
        } else {
            status.succeeded += 1;
        }
        status.last = Some((SystemTime::now(), error));
    }

    /// Records the certificates the HTTPS listeners serve now.
    pub fn set_certificates(&self, certificates: Vec<CertificateStatus>) {
        *self
            .certificates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = certificates;
    }

    /// The certificates the HTTPS listeners serve.
    pub fn certificates(&self) -> Vec<CertificateStatus> {
        self.certificates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// True once the proxy has been found ready (`/health/ready`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Records that the proxy is ready; it stays so.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// A copy of the reload history.
    pub fn reload_status(&self) -> ReloadStatus {
        self.reloads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
