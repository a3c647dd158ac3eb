//! Connections to backends: opening them (with a connect timeout, trying each resolved
//! address) and keeping idle keep-alive connections for reuse.
//!
//! The idle pool is per worker thread (a thread-local map from backend id to a stack of idle
//! connections): each worker runs its own event loop, so a connection is only ever used by
//! the thread that opened it and no lock is taken to check one out or back in.
//!
//! Written here rather than using `hyper-util`'s pooled client because the request path
//! needs what that client hides: a request whose connection could not be established comes
//! back untouched (so it can be retried on another backend, body and all), and a stale
//! pooled connection is told apart from a backend that is down.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use std::sync::atomic::Ordering;

use crate::config::KeepAliveConfig;
use crate::metrics;
use crate::proxy::body::RequestBody;

use super::Backend;

/// The sending half of an HTTP/1.1 connection to a backend.
pub type Sender = http1::SendRequest<RequestBody>;

/// Why no connection to a backend could be had. The request was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect did not finish in time.
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    /// TCP connect failed (refused, unreachable, ...).
    #[error("connect failed")]
    Io(#[source] std::io::Error),
}

/// Opens connections to backends and checks idle ones out of the current worker's pool.
#[derive(Debug, Clone, Copy)]
pub struct Connector {
    /// TCP connect timeout, per address tried.
    pub connect_timeout: Duration,
    /// Idle pool limits.
    pub pool: KeepAliveConfig,
    /// Largest response head accepted from a backend.
    pub max_header_bytes: usize,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

#[derive(Default)]
struct IdleList {
    /// Oldest first; checkout takes the newest.
    conns: Vec<Idle>,
    max_idle: usize,
    idle_timeout: Duration,
}

/// Backend ids are small sequential integers: hashing them is wasted work.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

thread_local! {
    static IDLE: RefCell<HashMap<u64, IdleList, BuildHasherDefault<IdHasher>>> =
        RefCell::new(HashMap::default());
}

// === impl Connector ===

impl Connector {
    /// A connection to `backend` ready to take a request: an idle pooled one if this worker
    /// has one (`reused == true`), else a new one.
    pub async fn checkout(&self, backend: &Backend) -> Result<(Sender, bool), ConnectError> {
        while let Some(mut sender) = self.pop_idle(backend) {
            // A pooled connection is normally ready at once; one the backend closed while it
            // sat idle fails here and is dropped.
            if sender.ready().await.is_ok() {
                metrics::inc(&backend.counters.local().connections_reused);
                return Ok((sender, true));
            }
        }
        self.connect(backend).await.map(|sender| (sender, false))
    }

    fn pop_idle(&self, backend: &Backend) -> Option<Sender> {
        let now = Instant::now();
        let out = &backend.counters.local().idle_out;
        IDLE.try_with(|idle| {
            let mut idle = idle.borrow_mut();
            let list = idle.entry(backend.id).or_default();
            list.max_idle = self.pool.max_idle;
            list.idle_timeout = self.pool.idle_timeout;
            while let Some(conn) = list.conns.pop() {
                metrics::inc(out);
                if now.saturating_duration_since(conn.since) > list.idle_timeout {
                    // The newest is too old, so all are.
                    out.fetch_add(list.conns.len() as u64, Ordering::Relaxed);
                    list.conns.clear();
                    return None;
                }
                if !conn.sender.is_closed() {
                    return Some(conn.sender);
                }
            }
            None
        })
        .ok()
        .flatten()
    }

    /// Opens a new connection, trying each of the backend's addresses.
    pub async fn connect(&self, backend: &Backend) -> Result<Sender, ConnectError> {
        let mut last_err = ConnectError::Timeout(self.connect_timeout);
        for (idx, addr) in backend.addrs() {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    backend.prefer(idx);
                    metrics::inc(&backend.counters.local().connections_opened);
                    return self.handshake(stream).await;
                }
                Ok(Err(e)) => last_err = ConnectError::Io(e),
                Err(_) => {
                    metrics::inc(&backend.counters.local().connect_timeouts);
                    last_err = ConnectError::Timeout(self.connect_timeout);
                }
            }
        }
        Err(last_err)
    }

    async fn handshake(&self, stream: TcpStream) -> Result<Sender, ConnectError> {
        // Small requests and responses must not wait for Nagle; keepalive probes notice a
        // backend host that vanished while the connection sat idle.
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(10));
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(self.max_header_bytes.max(64 * 1024))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::Io(std::io::Error::other(e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection closed with an error");
            }
        });
        Ok(sender)
    }
}

/// Puts a connection whose last response is complete back into this worker's idle pool.
pub fn checkin(backend: &Backend, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    let now = Instant::now();
    let counters = backend.counters.local();
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let Some(list) = idle.get_mut(&backend.id) else {
            return;
        };
        let timeout = list.idle_timeout;
        let expired = list
            .conns
            .iter()
            .take_while(|c| now.saturating_duration_since(c.since) > timeout)
            .count();
        list.conns.drain(..expired);
        let mut dropped = expired as u64;
        if list.conns.len() >= list.max_idle {
            if list.max_idle == 0 {
                counters.idle_out.fetch_add(dropped, Ordering::Relaxed);
                return;
            }
            list.conns.remove(0);
            dropped += 1;
        }
        list.conns.push(Idle { sender, since: now });
        counters.idle_out.fetch_add(dropped, Ordering::Relaxed);
        metrics::inc(&counters.idle_in);
    });
}
