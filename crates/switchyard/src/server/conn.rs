//! One client connection: the downstream transport under it (plain TCP with the write
//! timeout, or TLS on it for an HTTPS listener: [`serve_connection`]), and HTTP served on
//! that transport ([`serve_http`]), each request handed to [`crate::proxy::handle`].
//!
//! Which HTTP is told by ALPN after TLS, else from the first bytes ([`super::preface`]):
//! HTTP/2 with prior knowledge (h2c) or HTTP/1.1, on the same listener. The protocol goes into the connection's `Transport`. HTTP/1.1 is served
//! with upgrades enabled; HTTP/2 with its limits and timers ([`super::http2`]), each stream
//! one request, exactly as an HTTP/1.1 request is.

use std::sync::Arc;

use tokio::sync::watch;

use super::idle::IdleIo;
use super::shutdown::stopped;
use super::tls::TlsAcceptor;
use super::HttpSettings;
use super::{io, preface};
use crate::config::{ConnLimits, ListenerConfig};
use crate::metrics;
use crate::proxy::context::{ConnInfo, Protocol};
use crate::state::Shared;

/// The HTTP settings of a listener's connections, with its `limits`' requests per connection
/// and response buffer.
pub fn http_settings(settings: &ListenerConfig, limits: &ConnLimits) -> HttpSettings {
    HttpSettings {
        max_head: settings.max_header_bytes,
        response_buffer: limits.response_buffer,
        max_requests: limits.max_requests_per_connection,
    }
}

/// Held by a connection's task for as long as it lives: the worker's count of connections to
/// wait for at shutdown, and the worker's count of open connections, whose fall gives freed
/// memory back ([`crate::memory`]).
pub type Alive = (watch::Receiver<()>, crate::memory::OpenConnection);

/// Serves one accepted connection until it closes or shutdown drains it: the socket with
/// the write timeout ([`io::ClientIo`]), the TLS handshake on it when the listener is HTTPS
/// (within the read timeout; the handshake settles `conn.transport`), then HTTP. `alive` is
/// held for as long as the connection lives (the worker waits for all of them at shutdown).
///
/// This future is the connection's task, and an idle connection costs what its task holds:
/// everything is owned here once and lent below (references, not copies, at each level).
#[allow(clippy::manual_async_fn)] // on purpose: see the block's comment
pub fn serve_connection(
    http: HttpSettings,
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    mut conn: ConnInfo,
    tls: Option<Arc<TlsAcceptor>>,
    mut shutdown: watch::Receiver<bool>,
    alive: Alive,
) -> impl std::future::Future<Output = ()> + Send {
    // A block over the arguments rather than an `async fn`: an `async fn` moves each argument
    // into a local of its own, and the task would hold both (about 500 bytes per connection).
    async move {
        let _ = stream.set_nodelay(true);
        let io = io::ClientIo::new(stream, conn.write_timeout);
        match &tls {
            None => serve_http(&http, &shared, io, &mut conn, &mut shutdown).await,
            // Boxed: the handshake's and the TLS stream's state would otherwise be part of
            // every connection's task, plaintext ones included.
            Some(acceptor) => {
                Box::pin(serve_tls(
                    &http,
                    &shared,
                    io,
                    &mut conn,
                    acceptor,
                    &mut shutdown,
                ))
                .await;
            }
        }
        drop(alive);
    }
}

/// The TLS handshake on `io` (within the read timeout; it settles `conn.transport`), then
/// HTTP on the TLS stream.
async fn serve_tls(
    http: &HttpSettings,
    shared: &Arc<Shared>,
    io: io::ClientIo,
    conn: &mut ConnInfo,
    acceptor: &TlsAcceptor,
    shutdown: &mut watch::Receiver<bool>,
) {
    let handshake = tokio::time::timeout(conn.read_timeout, acceptor.accept(io));
    let accepted = tokio::select! {
        accepted = handshake => accepted,
        // Nothing is in flight yet: nothing to finish.
        _ = stopped(shutdown) => return,
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

/// Serves HTTP on `io`, any transport (TCP, TLS), in the version ALPN chose, else telling
/// HTTP/1.1 from HTTP/2 by the first bytes the client sends; it has the read timeout to send
/// them.
pub async fn serve_http<I>(
    http: &HttpSettings,
    shared: &Arc<Shared>,
    io: I,
    conn: &mut ConnInfo,
    shutdown: &mut watch::Receiver<bool>,
) where
    I: IdleIo,
{
    let Some((detected, io)) = preface::detect(io, conn.read_timeout).await else {
        tracing::debug!(client = %conn.addr, "client sent nothing: connection closed");
        return;
    };
    // ALPN, when the client offered it, decides: a client that agreed on `http/1.1` is not
    // served HTTP/2 because its first bytes look like the preface.
    let protocol = conn
        .transport
        .tls
        .as_ref()
        .and_then(|tls| tls.alpn)
        .unwrap_or(detected);
    conn.transport.protocol = protocol;
    let conn: &ConnInfo = conn;
    let client = conn.addr;
    let result = match protocol {
        Protocol::Http1 => super::h1::serve(http, shared, io, conn, shutdown).await,
        // Boxed, as the TLS path is: an HTTP/1.1 connection's task does not carry the
        // HTTP/2 connection's state.
        Protocol::Http2 => Box::pin(super::h2::serve(http, shared, io, conn, shutdown)).await,
    };
    if let Err(e) = result {
        tracing::debug!(client = %client, error = %e, "client connection ended with an error");
    }
}
