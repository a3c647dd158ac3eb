//! One client connection: the downstream transport under it (plain TCP with the write
//! timeout today; TLS termination and HTTP/2 detection plug in here) and HTTP served on it,
//! each request handed to [`crate::proxy::handle`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;

use super::io;
use super::shutdown::stopped;
use crate::config::ListenerConfig;
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

/// Serves HTTP on one accepted connection until it closes or shutdown drains it.
pub async fn serve_connection(
    http: http1::Builder,
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    conn: ConnInfo,
    write_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(io::ClientIo::new(stream, write_timeout));
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
