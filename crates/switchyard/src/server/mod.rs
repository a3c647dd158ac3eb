//! The downstream edge: binding the listener, the worker threads, accepting connections,
//! serving HTTP/1.1 on them with the read/write timeouts, and draining them on shutdown.
//!
//! Runtime model: one thread per worker, each running its own single-threaded tokio
//! runtime, all accepting from the same listening socket. A connection lives on the worker
//! that accepted it, together with the upstream connections it uses (see
//! [`crate::upstream::connect`]), so the request path never hands work between cores and
//! never takes a lock. Measured against tokio's multi-thread runtime on the same request
//! path, this costs less CPU per request (figures in `docs/performance.md`).

pub mod io;
pub mod shutdown;

use std::convert::Infallible;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, ListenAddr, RuntimeModel};
use crate::metrics::{self, Metrics};
use crate::proxy;
use crate::proxy::context::ClientInfo;
use crate::state::{Shared, State};
use crate::upstream::backend::ResolveError;

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
    /// A backend host did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A worker thread could not be started.
    #[error("cannot start worker thread")]
    Thread(#[source] std::io::Error),
}

/// A running proxy.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    workers_done: mpsc::Receiver<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// True when every connection finished within the shutdown timeout.
    pub drained: bool,
}

/// Starts the proxy described by `config`: binds its listener and starts its workers.
pub fn start(config: Config) -> Result<Server, StartError> {
    let listener = bind(config.listen)?;
    start_with_listener(config, listener)
}

/// Starts the proxy on a listener the caller bound (tests bind `127.0.0.1:0`).
pub fn start_with_listener(
    config: Config,
    listener: std::net::TcpListener,
) -> Result<Server, StartError> {
    let workers = config.workers.max(1);
    let state = State::build(&config, workers)?;
    let shared = Arc::new(Shared::new(state, Metrics::new(workers)));
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let (shutdown, _) = watch::channel(false);
    let (done_tx, workers_done) = mpsc::channel(workers);
    let mut threads = Vec::with_capacity(workers);
    // Per core: one event loop per worker thread. Multi-thread (for comparison): one
    // accept loop on tokio's work-stealing runtime with `workers` threads.
    let loops = match config.runtime {
        RuntimeModel::PerCore => workers,
        RuntimeModel::MultiThread => 1,
    };
    let model = config.runtime;
    for index in 0..loops {
        let listener = listener.try_clone().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let worker = Worker {
            index,
            shared: shared.clone(),
            http: http_builder(&config),
            write_timeout: config.downstream.write_timeout,
            drain_timeout: config.shutdown_timeout,
            shutdown: shutdown.subscribe(),
            done: done_tx.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("switchyard-worker-{index}"))
            .spawn(move || worker.run(listener, model, workers))
            .map_err(StartError::Thread)?;
        threads.push(thread);
    }
    tracing::info!(listen = %local_addr, workers, backends = config.upstream.backends.len(), "switchyard started");
    Ok(Server {
        local_addr,
        shared,
        shutdown,
        workers_done,
        threads,
    })
}

/// Binds the listening socket: `:port` binds IPv6 `[::]` accepting IPv4 too (as Go does),
/// falling back to `0.0.0.0` on machines without IPv6.
pub fn bind(addr: ListenAddr) -> Result<std::net::TcpListener, StartError> {
    let result = match addr.ip {
        Some(ip) => bind_socket(SocketAddr::new(ip, addr.port), false),
        None => bind_socket(
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), addr.port),
            true,
        )
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => Err(e),
            _ => bind_socket(SocketAddr::from(([0, 0, 0, 0], addr.port)), false),
        }),
    };
    result.map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => StartError::AddrInUse { addr },
        _ => StartError::Bind { addr, source },
    })
}

fn bind_socket(addr: SocketAddr, dual_stack: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    // Restarting must not wait for old connections in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn http_builder(config: &Config) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // Request head deadline (no slowloris), also the keep-alive idle limit.
        .header_read_timeout(config.downstream.read_timeout)
        // Larger heads get 431.
        .max_header_size(config.downstream.max_header_bytes)
        .keep_alive(true);
    http
}

// === impl Server ===

impl Server {
    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The shared state (metrics, current configuration).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops accepting, lets in-flight requests finish (up to the shutdown timeout), closes
    /// idle connections and stops the workers.
    pub async fn shutdown(mut self) -> ShutdownReport {
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

/// One worker thread: its own event loop, accepting from the shared listener.
struct Worker {
    index: usize,
    shared: Arc<Shared>,
    http: http1::Builder,
    write_timeout: Duration,
    drain_timeout: Duration,
    shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<bool>,
}

impl Worker {
    fn run(self, listener: std::net::TcpListener, model: RuntimeModel, threads: usize) {
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
        let drained = runtime.block_on(self.serve(listener));
        // The runtime is dropped here, cancelling connections that did not drain in time.
        drop(runtime);
        let _ = done.try_send(drained);
    }

    async fn serve(self, listener: std::net::TcpListener) -> bool {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(error = %e, "cannot register listener");
                return true;
            }
        };
        // Every connection task holds a receiver; `closed()` resolves when all are gone.
        let (connections, _) = watch::channel(());
        let mut shutdown = self.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = stopped(&mut shutdown) => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, addr)) => {
                    let conn = serve_connection(
                        self.http.clone(),
                        self.shared.clone(),
                        stream,
                        addr,
                        self.write_timeout,
                        self.shutdown.clone(),
                    );
                    let guard = connections.subscribe();
                    tokio::spawn(async move {
                        conn.await;
                        drop(guard);
                    });
                }
                Err(e) => {
                    // Typically out of file descriptors: keep the connections we have,
                    // and try again shortly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        drop(listener);
        tokio::time::timeout(self.drain_timeout, connections.closed())
            .await
            .is_ok()
    }
}

async fn serve_connection(
    http: http1::Builder,
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    write_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let client = ClientInfo::new(addr);
    let io = TokioIo::new(io::ClientIo::new(stream, write_timeout));
    let service = hyper::service::service_fn(|req| {
        let shared = shared.clone();
        let client = client.clone();
        async move { Ok::<_, Infallible>(proxy::handle(&shared, &client, req).await) }
    });
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stopped(&mut shutdown) => {
            // Finish the request in flight (if any), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %addr, error = %e, "client connection ended with an error");
    }
}

/// Resolves once shutdown has been asked for.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens once the server is dropped.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
