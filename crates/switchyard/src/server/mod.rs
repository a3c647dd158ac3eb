//! The downstream edge: the listeners, the worker threads, accepting connections, TLS
//! termination on HTTPS listeners ([`tls`]), serving HTTP/1.1 and HTTP/2 on them with the
//! read/write timeouts, reloading, and draining on shutdown.
//!
//! Runtime model: one thread per worker, each running its own single-threaded tokio
//! runtime, all accepting from the same listening sockets. A connection lives on the worker
//! that accepted it, together with the upstream connections it uses (see
//! [`crate::upstream::idle`]), so the request path never hands work between cores and
//! never takes a lock. Measured against tokio's multi-thread runtime on the same request
//! path, this costs less CPU per request (figures in `docs/performance.md`).
//!
//! Listeners are a set published to every worker (see [`listeners`]); a reload that adds or
//! removes one starts or stops only that listener's accept loops. Connections already
//! accepted are never touched by a reload.

pub mod conn;
pub mod h1;
pub mod h2;
pub mod idle;
pub mod io;
pub mod listeners;
pub mod out;
pub mod preface;
pub mod privileges;
pub mod proxy_protocol;
pub mod shutdown;
pub mod tls;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::config::{AuditTarget, Config, ConfigError, ListenAddr, RuntimeModel};
use crate::metrics::Metrics;
use crate::state::{Shared, State};
use crate::telemetry::audit::AuditLog;
use crate::upstream::health;
use listeners::ListenerSet;
use worker::Worker;

/// A listener's HTTP settings, for both versions' servers.
#[derive(Clone, Copy, Debug)]
pub struct HttpSettings {
    /// Largest request head (HTTP/1.1, and its trailer section) or decoded header list
    /// (HTTP/2): larger ones get 431.
    pub max_head: usize,
    /// Most answer bytes queued for a client that does not read, before the body's next
    /// chunk waits.
    pub response_buffer: usize,
    /// Requests served on one connection before it is closed (HTTP/1.1) or shut down with
    /// GOAWAY (HTTP/2); `0`: no limit.
    pub max_requests: u32,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address is taken.
    #[error(
        "cannot listen on {addr}: address already in use (is another process using this port?)"
    )]
    AddrInUse {
        /// The address.
        addr: ListenAddr,
    },
    /// Binding failed otherwise.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: ListenAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start worker thread")]
    Thread(#[source] std::io::Error),
    /// The audit log could not be opened.
    #[error("cannot open the audit log {target}")]
    Audit {
        /// Where.
        target: crate::config::AuditTarget,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process could not switch to `--user`.
    #[error(transparent)]
    Privileges(#[from] privileges::PrivilegeError),
    /// An HTTPS listener's certificates or settings cannot be used.
    #[error("cannot serve HTTPS on {listener}: {source}")]
    Tls {
        /// The listener.
        listener: SocketAddr,
        /// Why.
        #[source]
        source: tls::TlsError,
    },
}

/// Why a reload was rejected; the configuration in force stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Command-line flags cannot be applied to it.
    #[error("{0}")]
    Flags(String),
    /// A new listener could not be opened.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// A running proxy.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    listeners: watch::Sender<Arc<ListenerSet>>,
    workers_done: mpsc::Receiver<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    shards: usize,
    /// The pools in force, for the health-check thread (which stops when this is dropped).
    health: watch::Sender<health::Pools>,
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// True when every connection finished within the shutdown timeout.
    pub drained: bool,
}

/// Starts the proxy described by `config`: binds its listeners and starts its workers.
pub fn start(config: Config) -> Result<Server, StartError> {
    start_inner(config, None)
}

/// Starts the proxy with its first listener on a socket the caller bound (tests bind
/// `127.0.0.1:0`); other listeners are bound as configured.
pub fn start_with_listener(
    config: Config,
    listener: std::net::TcpListener,
) -> Result<Server, StartError> {
    start_inner(config, Some(listener))
}

fn start_inner(config: Config, first: Option<std::net::TcpListener>) -> Result<Server, StartError> {
    let workers = config.workers.max(1);
    let set = ListenerSet::bind(&config, None, first)?;
    // Opened while still privileged (the file may be in a root-owned directory); then, the
    // ports bound, root is given up before anything is served.
    let audit = AuditLog::start(&config.audit).map_err(|source| StartError::Audit {
        target: config.audit.target.clone().unwrap_or(AuditTarget::Stdout),
        source,
    })?;
    privileges::drop_privileges(&config.process)?;
    let shutdown_timeout = config.shutdown_timeout;
    let model = config.runtime;
    let state = State::build(config, None, workers);
    let shared = Arc::new(Shared::new(state, Metrics::new(workers)).with_audit(audit));
    shared.set_certificates(set.certificates());
    let (health, health_rx) = watch::channel(Arc::new(shared.state().pools.clone()));
    health::spawn(health_rx).map_err(StartError::Thread)?;
    let (shutdown, _) = watch::channel(false);
    let (listeners, _) = watch::channel(Arc::new(set));
    let (done_tx, workers_done) = mpsc::channel(workers);
    // Per core: one event loop per worker thread. Multi-thread (for comparison): one
    // event loop on tokio's work-stealing runtime with `workers` threads.
    let loops = match model {
        RuntimeModel::PerCore => workers,
        RuntimeModel::MultiThread => 1,
    };
    let mut threads = Vec::with_capacity(loops);
    for index in 0..loops {
        let worker = Worker {
            index,
            shared: shared.clone(),
            drain_timeout: shutdown_timeout,
            shutdown: shutdown.subscribe(),
            listeners: listeners.subscribe(),
            done: done_tx.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("switchyard-worker-{index}"))
            .spawn(move || worker.run(model, workers))
            .map_err(StartError::Thread)?;
        threads.push(thread);
    }
    Ok(Server {
        shared,
        shutdown,
        listeners,
        workers_done,
        threads,
        shards: workers,
        health,
    })
}

// === impl Server ===

impl Server {
    /// The address of the first proxy listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners
            .borrow()
            .entries
            .iter()
            .find(|e| !e.admin_only)
            .map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)), |e| e.local_addr)
    }

    /// The addresses of every listener, proxy listeners first, with whether each is the
    /// admin listener.
    pub fn listener_addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.listeners
            .borrow()
            .entries
            .iter()
            .map(|e| (e.local_addr, e.admin_only))
            .collect()
    }

    /// The shared state (metrics, current configuration).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Puts `config` in force: builds its state (reusing backends, breakers, limiters and
    /// connections that still apply), opens new listeners, swaps, and closes listeners no
    /// longer configured. On error nothing changes. Resolves new backends' host names: call
    /// it where blocking briefly is fine.
    pub fn reload(&self, config: Config) -> Result<(), ReloadError> {
        let current = self.listeners.borrow().clone();
        let set = ListenerSet::bind(&config, Some(&current), None)?;
        let certificates = set.prepare_tls(&current)?;
        let old = self.shared.state();
        let state = State::build(config, Some(&old), self.shards);
        self.shared.swap(state);
        for (acceptor, loaded) in certificates {
            acceptor.commit(loaded);
        }
        self.shared.set_certificates(set.certificates());
        self.health
            .send_replace(Arc::new(self.shared.state().pools.clone()));
        self.listeners.send_replace(Arc::new(set));
        Ok(())
    }

    /// Reloads the certificates of every HTTPS listener whose files changed (SIGHUP without
    /// `--config`); a certificate that cannot be served is rejected with one log line and
    /// the one in force stays. Returns true when new certificates are in force.
    pub fn reload_certificates(&self) -> bool {
        let mut changed = false;
        for acceptor in self.tls_acceptors() {
            changed |= acceptor.refresh(None, self.shared.audit.as_deref());
        }
        if changed {
            self.publish_certificates();
        }
        changed
    }

    /// The TLS acceptors of the HTTPS listeners in force.
    pub(crate) fn tls_acceptors(&self) -> Vec<Arc<tls::TlsAcceptor>> {
        self.listeners.borrow().acceptors().cloned().collect()
    }

    /// Records the certificates in force for `/health` and `/metrics`.
    pub(crate) fn publish_certificates(&self) {
        let certificates = self.listeners.borrow().certificates();
        self.shared.set_certificates(certificates);
    }

    /// Stops accepting, lets in-flight requests finish (up to the shutdown timeout), closes
    /// idle connections and stops the workers.
    pub async fn shutdown(mut self) -> ShutdownReport {
        // Drop our hold on the listening sockets so that they close as soon as the workers'
        // accept loops stop: new connections are refused, not left waiting in the backlog.
        self.listeners
            .send_replace(Arc::new(ListenerSet::default()));
        let _ = self.shutdown.send(true);
        let mut drained = true;
        while let Some(worker_drained) = self.workers_done.recv().await {
            drained &= worker_drained;
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        ShutdownReport { drained }
    }
}
