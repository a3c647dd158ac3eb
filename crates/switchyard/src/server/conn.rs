//! One client connection: the downstream transport under it (plain TCP with the write
//! timeout, or TLS on it for an HTTPS listener: [`serve_connection`]), and HTTP served on
//! that transport ([`serve_http`]), each request handed to [`crate::proxy::handle`].

use std::convert::Infallible;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::io;
use super::shutdown::stopped;
use super::tls::TlsAcceptor;
use crate::config::ListenerConfig;
use crate::metrics;
use crate::proxy;
use crate::proxy::context::ConnInfo;
use crate::state::Shared;

/// The HTTP/1.1 settings of a listener's connections.
pub fn http_builder(settings: &ListenerConfig) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // Request head deadline (no slowloris), also the keep-alive idle limit.
        .header_read_timeout(settings.read_timeout)
        // Larger heads get 431.
        .max_header_size(settings.max_header_bytes)
        .keep_alive(true);
    http
}

/// Serves one accepted connection until it closes or shutdown drains it: the socket with
/// the write timeout ([`io::ClientIo`]), the TLS handshake on it when the listener is HTTPS
/// (within the read timeout; the handshake settles `conn.transport`), then HTTP.
pub async fn serve_connection(
    http: http1::Builder,
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    mut conn: ConnInfo,
    tls: Option<Arc<TlsAcceptor>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = io::ClientIo::new(stream, conn.write_timeout);
    let Some(acceptor) = tls else {
        return serve_http(http, shared, io, conn, shutdown).await;
    };
    let handshake = tokio::time::timeout(conn.read_timeout, acceptor.accept(io));
    let accepted = tokio::select! {
        accepted = handshake => accepted,
        // Nothing is in flight yet: nothing to finish.
        _ = stopped(&mut shutdown) => return,
    };
    let counters = shared.metrics.local();
    match accepted {
        Ok(Ok((stream, transport))) => {
            metrics::inc(&counters.tls_handshakes);
            conn.transport = transport;
            serve_http(http, shared, stream, conn, shutdown).await;
        }
        Ok(Err(e)) => {
            metrics::inc(&counters.tls_handshake_failures);
            tracing::debug!(client = %conn.addr, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            metrics::inc(&counters.tls_handshake_failures);
            tracing::debug!(client = %conn.addr, "TLS handshake timed out");
        }
    }
}

/// Serves HTTP on `io`, a connection's transport, until it closes or shutdown drains it.
pub async fn serve_http<I>(
    http: http1::Builder,
    shared: Arc<Shared>,
    io: I,
    conn: ConnInfo,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let io = TokioIo::new(io);
    let service = hyper::service::service_fn(|req| {
        let shared = shared.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(proxy::handle(&shared, &conn, req).await) }
    });
    // Upgrades are enabled so that a tunnel (WebSocket) can take the connection over once a
    // backend agrees to switch protocols.
    let served = http.serve_connection(io, service).with_upgrades();
    tokio::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        _ = stopped(&mut shutdown) => {
            // Finish the request in flight (if any), then close.
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %conn.addr, error = %e, "client connection ended with an error");
    }
}
