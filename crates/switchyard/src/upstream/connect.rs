//! Connections to backends: [`Connection`], what one request is sent on, and the
//! [`Connector`] that opens them (connect timeout, each resolved address in turn) or takes
//! an idle one from this worker's pool ([`super::idle`]).
//!
//! A connection is one enum over the protocols, not a trait per call site: HTTP/1.1 is
//! exclusive (one request at a time; it goes back to the idle pool when its response is
//! complete), and HTTP/2, when it comes, is shared (many requests at once on a clone of its
//! sender; it stays in the pool while in use). TLS or plain is a property of the stream
//! under it: [`Connector::handshake`] takes any stream, so a TLS stream is handed in the
//! same way as a TCP one. A new connection is TCP connect → [`UpstreamIo`] → TLS for an
//! `https://` backend ([`super::tls`], over `UpstreamIo`, so an early answer is still kept)
//! → the HTTP handshake.
//!
//! Written here rather than using `hyper-util`'s pooled client because the request path
//! needs what that client hides: a request whose connection could not be established comes
//! back untouched (so it can be retried on another backend, body and all), and a stale
//! pooled connection is told apart from a backend that is down.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{header, Request, Response, Version};
use hyper::body::Incoming;
use hyper::client::conn::{http1, TrySendError};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::io::UpstreamIo;
use super::tls::{Negotiated, TlsClient, TlsError};
use super::{idle, Backend};
use crate::body::RequestBody;
use crate::config::KeepAliveConfig;
use crate::metrics;
use tokio_rustls::client::TlsStream;

/// A connection to a backend that can take a request.
#[derive(Debug)]
pub enum Connection {
    /// HTTP/1.1: one request at a time.
    H1(http1::SendRequest<RequestBody>),
}

/// Why no connection to a backend could be had. The request was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect did not finish in time.
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    /// TCP connect failed (refused, unreachable, ...).
    #[error("connect failed")]
    Io(#[source] std::io::Error),
    /// The HTTP handshake on a new connection failed.
    #[error("handshake failed")]
    Handshake(#[source] hyper::Error),
    /// A new connection closed before it took the request.
    #[error("connection closed before the request was sent")]
    Closed(#[source] hyper::Error),
    /// The TLS handshake with an `https://` backend failed (its certificate was not
    /// trusted, or the handshake itself failed).
    #[error("TLS handshake failed")]
    Tls(#[source] TlsError),
}

// === impl Connection ===

impl Connection {
    /// True when the connection can take no more requests.
    pub fn is_closed(&self) -> bool {
        match self {
            Connection::H1(sender) => sender.is_closed(),
        }
    }

    /// Waits until the connection can take a request; fails if it closed meanwhile.
    pub async fn ready(&mut self) -> Result<(), hyper::Error> {
        match self {
            Connection::H1(sender) => sender.ready().await,
        }
    }

    /// Sends `req` in this connection's HTTP version; `te_trailers`: it carries a
    /// `TE: trailers`, kept for HTTP/2 (gRPC needs it) while HTTP/1.1 backends get no `TE`, a
    /// hop-by-hop header. When the connection turns out unable to take the request, hyper
    /// hands it back unsent inside the error.
    pub fn try_send(
        &mut self,
        mut req: Request<RequestBody>,
        te_trailers: bool,
    ) -> impl Future<Output = Result<Response<Incoming>, TrySendError<Request<RequestBody>>>> {
        match self {
            Connection::H1(sender) => {
                *req.version_mut() = Version::HTTP_11;
                if te_trailers {
                    req.headers_mut().remove(header::TE);
                }
                sender.try_send_request(req)
            }
        }
    }
}

/// Opens connections to backends and checks idle ones out of the current worker's pool.
#[derive(Debug, Clone)]
pub struct Connector {
    /// TCP connect timeout, per address tried; also the time a TLS handshake may take.
    pub connect_timeout: Duration,
    /// The pool's TLS client, when it has `https://` backends.
    pub tls: Option<Arc<TlsClient>>,
    /// Idle pool limits.
    pub pool: KeepAliveConfig,
    /// Largest response head accepted from a backend.
    pub max_header_bytes: usize,
}

// === impl Connector ===

impl Connector {
    /// A connection to `backend` ready to take a request: an idle pooled one if this worker
    /// has one (`reused == true`), else a new one.
    pub async fn checkout(&self, backend: &Backend) -> Result<(Connection, bool), ConnectError> {
        while let Some(mut conn) = idle::pop(backend, &self.pool) {
            // A pooled connection is normally ready at once; one the backend closed while it
            // sat idle fails here and is dropped.
            if conn.ready().await.is_ok() {
                metrics::inc(&backend.counters.local().connections_reused);
                return Ok((conn, true));
            }
        }
        // Boxed: once per new connection, and kept out of the size of every request's future.
        let connect = Box::pin(self.connect(backend));
        connect.await.map(|conn| (conn, false))
    }

    /// Opens a new connection, trying each of the backend's addresses.
    pub async fn connect(&self, backend: &Backend) -> Result<Connection, ConnectError> {
        let io = self.open(backend).await?;
        if backend.url.scheme.is_tls() {
            return self.handshake_tls(backend, io).await;
        }
        self.handshake(io).await
    }

    /// Opens a new stream to the backend, trying each of its addresses, without speaking
    /// HTTP on it yet (a tunnel's connection is made from it, see `super::upgrade`).
    pub async fn open(&self, backend: &Backend) -> Result<UpstreamIo, ConnectError> {
        let mut last_err = ConnectError::Timeout(self.connect_timeout);
        for (idx, addr) in backend.addrs() {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    backend.prefer(idx);
                    metrics::inc(&backend.counters.local().connections_opened);
                    // Small requests and responses must not wait for Nagle; keepalive probes
                    // notice a backend host that vanished while the connection sat idle.
                    let _ = stream.set_nodelay(true);
                    let keepalive = socket2::TcpKeepalive::new()
                        .with_time(Duration::from_secs(60))
                        .with_interval(Duration::from_secs(10));
                    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
                    return Ok(UpstreamIo::new(stream));
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

    /// TLS on a freshly connected stream to an `https://` backend, then HTTP in the version
    /// ALPN chose.
    async fn handshake_tls(
        &self,
        backend: &Backend,
        io: UpstreamIo,
    ) -> Result<Connection, ConnectError> {
        let (stream, negotiated) = self.tls_stream(backend, io).await?;
        // Only `http/1.1` is offered until HTTP/2 upstream lands; then `negotiated` chooses
        // the handshake (`Negotiated::H2` → an HTTP/2 connection).
        let _ = negotiated;
        self.handshake(stream).await
    }

    /// The TLS handshake with an `https://` backend on a freshly connected stream, within
    /// the connect timeout.
    pub async fn tls_stream(
        &self,
        backend: &Backend,
        io: UpstreamIo,
    ) -> Result<(TlsStream<UpstreamIo>, Negotiated), ConnectError> {
        let tls = self
            .tls
            .as_ref()
            .ok_or(ConnectError::Tls(TlsError::NotConfigured))?;
        match tokio::time::timeout(self.connect_timeout, tls.connect(backend, io)).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => Err(ConnectError::Tls(e)),
            Err(_) => {
                metrics::inc(&backend.counters.local().connect_timeouts);
                Err(ConnectError::Tls(TlsError::Timeout(self.connect_timeout)))
            }
        }
    }

    /// Speaks HTTP/1.1 on a freshly opened stream, plain or TLS.
    pub async fn handshake<S>(&self, stream: S) -> Result<Connection, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(self.max_header_bytes.max(64 * 1024))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection closed with an error");
            }
        });
        Ok(Connection::H1(sender))
    }
}
