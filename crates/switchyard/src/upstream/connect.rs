//! Opening connections to backends: the [`Connector`] that opens them (connect timeout,
//! each resolved address in turn) or takes one from this worker's pool ([`super::idle`]);
//! what a connection is and how a request is sent on it is [`super::connection`].
//!
//! TLS or plain is a property of the stream under a connection: [`Connector::handshake`]
//! takes any stream and the protocol to speak on it, so a TLS stream (its ALPN deciding the
//! protocol) is handed in the same way as a TCP one. A new connection is TCP connect →
//! [`UpstreamIo`] → TLS for an `https://` backend ([`super::tls`], over `UpstreamIo`, so an
//! early answer is still kept) → the HTTP handshake (HTTP/2's; HTTP/1.1 has none).
//!
//! Which protocol a backend is spoken to in comes from the pool's `protocol` and the
//! backend's URL scheme ([`Connector::protocol_for`]), and for `https://` from ALPN.
//!
//! Written here rather than using `hyper-util`'s pooled client because the request path
//! needs what that client hides: a request whose connection could not be established comes
//! back untouched (so it can be retried on another backend, body and all), and a stale
//! pooled connection is told apart from a backend that is down.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub use super::connection::{Connection, SendError};
use super::io::UpstreamIo;
pub use super::multiplex::{H2Conn, H2Stream};
use super::tls::{Negotiated, TlsClient, TlsError};
use super::{h1, idle, multiplex, Backend};
use crate::config::{KeepAliveConfig, Scheme, UpstreamProtocol};
use crate::metrics;
use tokio_rustls::client::TlsStream;

/// The HTTP a new connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (with prior knowledge in cleartext, or after ALPN `h2`).
    Http2,
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
    Closed(#[source] SendError),
    /// The TLS handshake with an `https://` backend failed (its certificate was not
    /// trusted, or the handshake itself failed).
    #[error("TLS handshake failed")]
    Tls(#[source] TlsError),
    /// The backend's host name does not resolve (yet).
    #[error("cannot resolve the backend's host")]
    Resolve(#[source] super::backend::ResolveError),
    /// The HTTP/2 connection this request waited for (another request of this worker was
    /// opening it) could not be opened.
    #[error(transparent)]
    Shared(Arc<ConnectError>),
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
    /// Largest response head accepted from a backend (`[limits] max_backend_header_bytes`,
    /// at least hyper's smallest buffer, 8 KiB).
    pub max_header_bytes: usize,
    /// Response bytes an HTTP/2 backend may send on one stream before switchyard passed
    /// them on (its flow-control window, `[limits] response_buffer`).
    pub stream_window: usize,
    /// Which HTTP the pool's backends speak (with each one's URL scheme).
    pub protocol: UpstreamProtocol,
    /// Streams one HTTP/2 connection carries at once; beyond, another one opens.
    pub max_streams: usize,
}

// === impl Connector ===

impl Connector {
    /// The HTTP `backend` is spoken to in.
    pub fn protocol_for(&self, backend: &Backend) -> Protocol {
        match (self.protocol, backend.url.scheme) {
            (UpstreamProtocol::Http2, _) | (_, Scheme::H2c) => Protocol::Http2,
            (UpstreamProtocol::Auto | UpstreamProtocol::Http1, Scheme::Http)
            | (UpstreamProtocol::Http1, Scheme::Https) => Protocol::Http1,
            // ALPN decides; until a first connection has told, HTTP/1.1's path is taken (a
            // connection that turns out HTTP/2 is shared all the same).
            (UpstreamProtocol::Auto, Scheme::Https) => {
                if backend.speaks_h2() {
                    Protocol::Http2
                } else {
                    Protocol::Http1
                }
            }
        }
    }

    /// A connection to `backend` ready to take a request at `now`: an idle pooled one
    /// (HTTP/1.1), or a stream of a shared one (HTTP/2) if this worker has one (`reused ==
    /// true`), else a new one.
    pub async fn checkout(
        &self,
        backend: &Backend,
        now: Instant,
    ) -> Result<(Connection, bool), ConnectError> {
        if self.protocol_for(backend) == Protocol::Http2 {
            // Boxed: kept out of the size of every HTTP/1.1 request's future.
            return Box::pin(self.checkout_h2(backend)).await;
        }
        // One the backend closed while it sat idle is dropped on the way.
        if let Some(conn) = idle::pop(backend, &self.pool, now) {
            metrics::inc(&backend.counters.local().connections_reused);
            return Ok((conn, true));
        }
        // Boxed: once per new connection, and kept out of the size of every request's future.
        let conn = Box::pin(self.connect(backend)).await?;
        // An `https://` backend's first connection may turn out HTTP/2 (ALPN): shared.
        idle::share(backend, &conn);
        Ok((conn, false))
    }

    /// A new connection to `backend` after a pooled one turned out closed: for HTTP/2, the
    /// connection another request is opening or has just opened does as well.
    pub async fn replace(&self, backend: &Backend) -> Result<Connection, ConnectError> {
        match self.protocol_for(backend) {
            Protocol::Http1 => self.connect(backend).await,
            Protocol::Http2 => self.checkout_h2(backend).await.map(|(conn, _)| conn),
        }
    }

    /// A stream of this worker's HTTP/2 connection to `backend` with room for one more, or
    /// of a new one. While one request opens a connection, the others of this worker wait
    /// for it rather than open their own.
    async fn checkout_h2(&self, backend: &Backend) -> Result<(Connection, bool), ConnectError> {
        loop {
            match idle::lease(backend, &self.pool, self.max_streams) {
                idle::Lease::Stream(stream) => {
                    metrics::inc(&backend.counters.local().connections_reused);
                    return Ok((Connection::H2(stream), true));
                }
                idle::Lease::Wait(opening) => opening.wait().await?,
                idle::Lease::Open(opening) => {
                    return match self.connect(backend).await {
                        Ok(conn) => {
                            idle::share(backend, &conn);
                            opening.opened(Ok(()));
                            Ok((conn, false))
                        }
                        Err(e) => {
                            let e = Arc::new(e);
                            opening.opened(Err(e.clone()));
                            Err(ConnectError::Shared(e))
                        }
                    };
                }
            }
        }
    }

    /// Opens a new connection, trying each of the backend's addresses.
    pub async fn connect(&self, backend: &Backend) -> Result<Connection, ConnectError> {
        let io = self.open(backend).await?;
        if backend.url.scheme.is_tls() {
            return self.handshake_tls(backend, io).await;
        }
        self.handshake(io, self.protocol_for(backend), false).await
    }

    /// Opens a new stream to the backend, trying each of its addresses, without speaking
    /// HTTP on it yet (a tunnel's connection is made from it, see `super::upgrade`).
    pub async fn open(&self, backend: &Backend) -> Result<UpstreamIo, ConnectError> {
        if !backend.is_resolved() {
            // Out of rotation until it resolves, but a health check or panic mode got here:
            // resolve again now.
            backend.resolve().await.map_err(ConnectError::Resolve)?;
        }
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
        let (stream, negotiated) = self.tls_stream(backend, io, false).await?;
        let protocol = match negotiated {
            Negotiated::H2 => Protocol::Http2,
            Negotiated::H1 => Protocol::Http1,
        };
        backend.learn_h2(protocol == Protocol::Http2);
        self.handshake(stream, protocol, true).await
    }

    /// The TLS handshake with an `https://` backend on a freshly connected stream, within
    /// the connect timeout; `http1_only`: ALPN offers only `http/1.1` (a WebSocket upgrade).
    pub async fn tls_stream(
        &self,
        backend: &Backend,
        io: UpstreamIo,
        http1_only: bool,
    ) -> Result<(TlsStream<UpstreamIo>, Negotiated), ConnectError> {
        let tls = self
            .tls
            .as_ref()
            .ok_or(ConnectError::Tls(TlsError::NotConfigured))?;
        let handshake = async {
            if http1_only {
                tls.connect_http1(backend, io)
                    .await
                    .map(|s| (s, Negotiated::H1))
            } else {
                tls.connect(backend, io).await
            }
        };
        match tokio::time::timeout(self.connect_timeout, handshake).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => Err(ConnectError::Tls(e)),
            Err(_) => {
                metrics::inc(&backend.counters.local().connect_timeouts);
                Err(ConnectError::Tls(TlsError::Timeout(self.connect_timeout)))
            }
        }
    }

    /// Speaks `protocol` on a freshly opened stream, plain or TLS (`tls`: HTTP/2 requests
    /// then carry `:scheme https`).
    pub async fn handshake<S>(
        &self,
        stream: S,
        protocol: Protocol,
        tls: bool,
    ) -> Result<Connection, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let max_head = self.max_header_bytes;
        match protocol {
            // Nothing to say before the first request: the connection is ready. Its read
            // buffer holds a response head of up to `max_head`; a body is read at most that
            // much at a time (32 KiB by default), the size of the chunks a slow client holds.
            Protocol::Http1 => Ok(Connection::H1(h1::conn::Conn::new(
                Box::new(stream),
                max_head,
                max_head,
            ))),
            Protocol::Http2 => {
                let stream = multiplex::handshake(stream, max_head, self.stream_window, tls)
                    .await
                    .map_err(ConnectError::Handshake)?;
                Ok(Connection::H2(stream))
            }
        }
    }
}

/// Drives a new connection on this worker until it closes.
pub(super) fn spawn_connection<C>(conn: C)
where
    C: Future<Output = Result<(), hyper::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection closed with an error");
        }
    });
}
