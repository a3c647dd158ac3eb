//! HTTP/2 connections to backends, shared: a request holds one stream of a connection
//! ([`H2Stream`], counted while it lives) while the pool keeps the connection itself
//! ([`H2Conn`]) for the next requests, up to a limit of streams in use (the pool's
//! `max_streams_per_connection`, or fewer when the backend's SETTINGS say so).

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use http::uri::{Authority, Scheme};
use http::{header, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::connect::spawn_connection;
use crate::body::RequestBody;
use crate::clock::nanos;

/// The largest flow-control window HTTP/2 allows (RFC 9113 §6.9.1).
const MAX_WINDOW: u32 = (1 << 31) - 1;

/// A request's hold on one stream of a shared HTTP/2 connection; dropping it gives the
/// stream back.
#[derive(Debug)]
pub struct H2Stream {
    sender: http2::SendRequest<RequestBody>,
    shared: Arc<H2Shared>,
}

/// What the streams of one HTTP/2 connection share: how many are in use, since when none.
#[derive(Debug)]
pub struct H2Shared {
    in_use: AtomicUsize,
    /// `nanos()` when the last stream in use ended.
    idle_since: AtomicU64,
    /// The backend's `SETTINGS_MAX_CONCURRENT_STREAMS`, as the connection last saw it.
    max_send: AtomicUsize,
    /// `:scheme` of its requests: `https` over TLS.
    scheme: Scheme,
}

/// Speaks HTTP/2 on a new stream (`tls`: its requests say `:scheme https`); the first
/// stream of the connection. `window`: response bytes a stream may receive ahead of the
/// client.
pub async fn handshake<S>(
    stream: S,
    max_head: usize,
    window: usize,
    tls: bool,
) -> Result<H2Stream, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .max_header_list_size(u32::try_from(max_head).unwrap_or(u32::MAX))
        // What a stream holds for a client that stops reading: hyper's default window, 2
        // MiB, let a backend fill that much per stream before backpressure reached it.
        .initial_stream_window_size(u32::try_from(window).unwrap_or(u32::MAX).min(MAX_WINDOW))
        .handshake(TokioIo::new(stream))
        .await?;
    let scheme = if tls { Scheme::HTTPS } else { Scheme::HTTP };
    let stream = H2Stream::first(sender, scheme);
    let shared = stream.shared.clone();
    // The backend's stream limit, published for the pool after every poll.
    let mut conn = Box::pin(conn);
    spawn_connection(std::future::poll_fn(move |cx| {
        let polled = conn.as_mut().poll(cx);
        let max = conn.current_max_send_streams();
        if shared.max_send.load(Ordering::Relaxed) != max {
            shared.max_send.store(max, Ordering::Relaxed);
        }
        polled
    }));
    Ok(stream)
}

// === impl H2Stream ===

impl H2Stream {
    /// The first stream of a new connection.
    fn first(sender: http2::SendRequest<RequestBody>, scheme: Scheme) -> Self {
        let shared = Arc::new(H2Shared {
            in_use: AtomicUsize::new(1),
            idle_since: AtomicU64::new(0),
            max_send: AtomicUsize::new(usize::MAX),
            scheme,
        });
        H2Stream { sender, shared }
    }

    /// True when the connection can take no more requests.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Waits until the connection can take a request.
    pub async fn ready(&mut self) -> Result<(), hyper::Error> {
        self.sender.ready().await
    }

    /// Sends `req` (in HTTP/2 form, see [`H2Stream::address`]) on this stream.
    pub fn try_send_request(
        &mut self,
        req: Request<RequestBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, TrySendError<Request<RequestBody>>>> {
        self.sender.try_send_request(req)
    }

    /// Puts `req`'s `Host` into its URI, which becomes `:scheme`, `:authority` and `:path`
    /// (RFC 9113 §8.3.1).
    pub fn address(&self, req: &mut Request<RequestBody>) {
        h2_target(req, &self.shared.scheme);
    }

    /// A handle on its connection, for the pool (it holds no stream).
    pub(super) fn connection(&self) -> H2Conn {
        H2Conn {
            sender: self.sender.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// A shared HTTP/2 connection as the pool keeps it: streams of it are leased to requests.
#[derive(Debug)]
pub struct H2Conn {
    sender: http2::SendRequest<RequestBody>,
    shared: Arc<H2Shared>,
}

// === impl H2Conn ===

impl H2Conn {
    /// A stream of it for one request.
    pub(super) fn lease(&self) -> H2Stream {
        self.shared.in_use.fetch_add(1, Ordering::Relaxed);
        H2Stream {
            sender: self.sender.clone(),
            shared: self.shared.clone(),
        }
    }

    /// True once it can take no more requests (closed, or after the backend's GOAWAY).
    pub(super) fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Streams in use.
    pub(super) fn in_use(&self) -> usize {
        self.shared.in_use.load(Ordering::Relaxed)
    }

    /// Streams it may carry at once: `limit`, or fewer if the backend says so.
    pub(super) fn capacity(&self, limit: usize) -> usize {
        limit.min(self.shared.max_send.load(Ordering::Relaxed))
    }

    /// When its last stream in use ended (`nanos()`), if none is in use now.
    pub(super) fn idle_since(&self) -> Option<u64> {
        (self.in_use() == 0).then(|| self.shared.idle_since.load(Ordering::Relaxed))
    }
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        if self.shared.in_use.fetch_sub(1, Ordering::Relaxed) == 1 {
            let now = nanos(tokio::time::Instant::now());
            self.shared.idle_since.store(now, Ordering::Relaxed);
        }
    }
}

/// Puts `req`'s `Host` into its URI, which becomes `:scheme`, `:authority` and `:path`.
fn h2_target(req: &mut Request<RequestBody>, scheme: &Scheme) {
    let Some(host) = req.headers_mut().remove(header::HOST) else {
        return;
    };
    let Ok(authority) = Authority::try_from(host.as_bytes()) else {
        return;
    };
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(scheme.clone());
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    // Each part is valid on its own, and scheme, authority and path make a valid URI.
    *req.uri_mut() = Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"));
}
