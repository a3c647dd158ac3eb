//! The worker threads: each runs its own single-threaded event loop and keeps one accept
//! loop per listener of the set in force, until shutdown; then it waits (within the drain
//! timeout) for its connections and the open WebSocket tunnels to finish.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::listeners::{ListenerEntry, ListenerSet};
use super::shutdown::stopped;
use super::{conn, proxy_protocol};
use crate::config::{OverLimit, RuntimeModel};
use crate::metrics;
use crate::proxy::context::{ConnInfo, Transport};
use crate::proxy::limits::conn::{ConnSlot, Over};
use crate::state::Shared;
use crate::telemetry::audit::{Hit, Kind};

/// One worker thread: its own event loop, accepting from every listener of the set.
pub(super) struct Worker {
    /// Its counter shard.
    pub index: usize,
    pub shared: Arc<Shared>,
    /// How long its connections may take to finish at shutdown.
    pub drain_timeout: Duration,
    pub shutdown: watch::Receiver<bool>,
    /// The listeners in force.
    pub listeners: watch::Receiver<Arc<ListenerSet>>,
    /// Told whether every connection drained in time.
    pub done: mpsc::Sender<bool>,
}

impl Worker {
    pub(super) fn run(self, model: RuntimeModel, threads: usize) {
        metrics::set_thread_shard(self.index);
        let runtime = match model {
            RuntimeModel::PerCore => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            RuntimeModel::MultiThread => {
                let next = std::sync::atomic::AtomicUsize::new(0);
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .on_thread_start(move || {
                        metrics::set_thread_shard(
                            next.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        )
                    })
                    .enable_all()
                    .build()
            }
        };
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!(error = %e, "cannot start worker runtime");
                return;
            }
        };
        let done = self.done.clone();
        let drained = runtime.block_on(self.serve());
        // The runtime is dropped here, cancelling connections that did not drain in time.
        drop(runtime);
        let _ = done.try_send(drained);
    }

    /// Keeps one accept loop running per listener of the current set until shutdown, then
    /// waits for this worker's connections to finish.
    async fn serve(mut self) -> bool {
        // Every connection task holds a receiver; `closed()` resolves when all are gone.
        let (connections, _) = watch::channel(());
        let connections = Arc::new(connections);
        let mut running: HashMap<u64, watch::Sender<bool>> = HashMap::new();
        let mut shutdown = self.shutdown.clone();
        loop {
            let set = self.listeners.borrow_and_update().clone();
            running.retain(|id, stop| {
                let keep = set.entries.iter().any(|e| e.id == *id);
                if !keep {
                    let _ = stop.send(true);
                }
                keep
            });
            for entry in &set.entries {
                if running.contains_key(&entry.id) {
                    continue;
                }
                let (stop, stopped_rx) = watch::channel(false);
                running.insert(entry.id, stop);
                tokio::spawn(accept_loop(
                    entry.clone(),
                    self.shared.clone(),
                    connections.clone(),
                    stopped_rx,
                    self.shutdown.clone(),
                ));
            }
            tokio::select! {
                biased;
                _ = stopped(&mut shutdown) => break,
                changed = self.listeners.changed() => if changed.is_err() { break },
            }
        }
        for stop in running.values() {
            let _ = stop.send(true);
        }
        // WebSocket tunnels outlive the connections they came from: they are work to wait
        // for too, and are cut with the runtime at the deadline.
        let tunnels = self.shared.metrics.tunnels().clone();
        let drained = async move {
            connections.closed().await;
            tunnels.all_closed().await;
        };
        tokio::time::timeout(self.drain_timeout, drained)
            .await
            .is_ok()
    }
}

/// Accepts connections on one listener until told to stop (listener removed, or shutdown).
async fn accept_loop(
    entry: ListenerEntry,
    shared: Arc<Shared>,
    connections: Arc<watch::Sender<()>>,
    mut stop: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) {
    let listener = match entry
        .socket
        .try_clone()
        .and_then(tokio::net::TcpListener::from_std)
    {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(listen = %entry.local_addr, error = %e, "cannot register listener");
            return;
        }
    };
    let http = conn::http_settings(&entry.settings, &entry.limits);
    let mut global_stop = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            _ = stopped(&mut global_stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, addr)) => {
                let guard = (
                    connections.subscribe(),
                    crate::memory::OpenConnection::new(),
                );
                if entry.settings.proxy_protocol && from_trusted_proxy(&shared, addr) {
                    let task = (entry.clone(), http, shared.clone(), shutdown.clone());
                    let (entry, http, shared, shutdown) = task;
                    tokio::spawn(serve_proxied(
                        entry, http, shared, stream, addr, shutdown, guard,
                    ));
                    continue;
                }
                let Some(conn) = connection(&entry, &shared, addr) else {
                    // Over a connection limit with `over_connection_limit = "close"`.
                    drop(stream);
                    continue;
                };
                let (http, shared, tls, shutdown) =
                    (http, shared.clone(), entry.tls.clone(), shutdown.clone());
                // The connection's future is the task itself: wrapped in an `async` block it
                // would be stored twice (once as captured, once being awaited), and every idle
                // connection pays its task.
                tokio::spawn(conn::serve_connection(
                    http, shared, stream, conn, tls, shutdown, guard,
                ));
            }
            Err(e) => {
                // Typically out of file descriptors: keep the connections we have, and try
                // again shortly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The connection's `ConnInfo` for `client`, with its place under the listener's connection
/// limits; `None`: over them with `over_connection_limit = "close"`.
fn connection(
    entry: &ListenerEntry,
    shared: &Shared,
    client: std::net::SocketAddr,
) -> Option<ConnInfo> {
    let mut conn = ConnInfo::new(
        client,
        &entry.settings,
        entry.admin_only,
        Transport::PLAIN_HTTP1,
    );
    conn.policy = entry.policy.clone();
    conn.slot = Some(admit(entry, shared, conn.addr)?);
    Some(conn)
}

/// A peer whose PROXY protocol header is believed (`[access] trusted_proxies`).
fn from_trusted_proxy(shared: &Shared, peer: std::net::SocketAddr) -> bool {
    let state = shared.state();
    let trusted = state.config.access.trusted_proxies.as_deref();
    trusted.is_some_and(|t| t.contains(peer.ip().to_canonical()))
}

/// A connection from a trusted proxy on a `proxy_protocol` listener: its header first (within
/// the read timeout), whose client is the one the connection limits, logs and IP rules see;
/// a connection without a valid header is closed.
async fn serve_proxied(
    entry: ListenerEntry,
    http: super::HttpSettings,
    shared: Arc<Shared>,
    mut stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    shutdown: watch::Receiver<bool>,
    alive: conn::Alive,
) {
    let client = match proxy_protocol::read(&mut stream, entry.settings.read_timeout).await {
        Ok(client) => client.unwrap_or(peer),
        Err(e) => {
            metrics::inc(&shared.metrics.local().proxy_protocol_errors);
            tracing::debug!(%peer, error = %e, "PROXY protocol header refused");
            return;
        }
    };
    let Some(conn) = connection(&entry, &shared, client) else {
        return;
    };
    conn::serve_connection(
        http,
        shared,
        stream,
        conn,
        entry.tls.clone(),
        shutdown,
        alive,
    )
    .await;
}

/// A place for a connection from `client` under the listener's connection limits; over
/// them, a slot that answers `503` (`over_connection_limit = "503"`), or `None`: close it.
fn admit(
    entry: &ListenerEntry,
    shared: &Shared,
    client: std::net::SocketAddr,
) -> Option<Arc<ConnSlot>> {
    match entry.conns.admit(client.ip(), &entry.limits) {
        Ok(slot) => Some(Arc::new(slot)),
        Err(over) => {
            let c = shared.metrics.local();
            metrics::inc(match over {
                Over::Total => &c.refused_connections,
                Over::PerIp => &c.refused_connections_per_ip,
            });
            tracing::debug!(%client, ?over, "connection over the listener's limits");
            if let Some(audit) = &shared.audit {
                audit.hit(Hit {
                    client: client.ip(),
                    kind: Kind::ConnectionLimit,
                    key: None,
                    detail: Some(match over {
                        Over::Total => "total",
                        Over::PerIp => "per_ip",
                    }),
                });
            }
            match entry.limits.over_limit {
                OverLimit::Close => None,
                OverLimit::Unavailable => Some(Arc::new(ConnSlot::over_limit(client.ip()))),
            }
        }
    }
}
