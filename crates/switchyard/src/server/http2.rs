//! HTTP/2 on a client connection: the limits that bound what one connection can make
//! switchyard do ([`builder`]), and the two timers hyper's HTTP/2 server lacks ([`serve`]).
//!
//! The server offers the extended CONNECT protocol (`SETTINGS_ENABLE_CONNECT_PROTOCOL`, RFC
//! 8441), so a client can open a WebSocket on a stream (`proxy::tunnel`). Such a stream
//! outlives its response (the `200` opens it, then it carries the tunnel): it keeps its place
//! among the connection's open streams for as long as the tunnel holds it ([`hold_for_tunnel`]),
//! so the idle timer never takes a connection with an open tunnel for an idle one.
//!
//! Limits (each a known attack):
//! - at most [`MAX_CONCURRENT_STREAMS`] streams open at once (more are refused);
//! - a decoded header list at most `max_header_bytes` long (the HTTP/1.1 head limit): a
//!   larger one gets `431`, a far larger one (an HPACK bomb) or too many CONTINUATION frames
//!   a GOAWAY (`ENHANCE_YOUR_CALM`), by the `h2` crate;
//! - streams the client resets before they are served (rapid reset, CVE-2023-44487) and
//!   streams it makes fail are counted; past [`MAX_PENDING_RESETS`] and
//!   [`MAX_ERROR_RESETS`] the connection is closed with `ENHANCE_YOUR_CALM`;
//! - streams the client resets after they were accepted but before their answer began are
//!   counted too: past [`MAX_PREMATURE_RESETS`], when they are at least half of the
//!   connection's streams, the connection is closed (what the `h2` crate's limit misses when
//!   each reset comes in a packet of its own; Envoy's rule);
//! - SETTINGS and PING frames each need an answer, and the `h2` crate reads no further
//!   frame until the answer is written: a flood is held back by the client's own reading,
//!   and a client that does not read meets the write timeout of its socket (`ClientIo`).
//!
//! Timers, checked every [`tick`] by the connection's own task:
//! - idle: a connection without an open stream for the read timeout (also the time a new
//!   connection has to send its first request) is shut down gracefully (GOAWAY), as an idle
//!   HTTP/1.1 connection is closed after it;
//! - stall: when response data waits for the client's flow-control window and no stream's
//!   data moves for the write timeout (a client that stops granting window, so the socket
//!   never fills), the connection is closed: the same rule as a socket that stops taking
//!   writes, one level up. Its streams end, and so do their upstream attempts.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::server::conn::http2;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};

use super::inline::{Inline, InlineExec};
use super::shutdown::stop;
use crate::body::BodyError;
use crate::config::ListenerConfig;
use crate::proxy::body::ResponseBody;
use crate::proxy::tunnel::StreamHold;

/// Streams a client may have open at once on one connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Streams reset by the client before they were accepted, at once, before the connection is
/// closed (the `h2` crate's rapid-reset limit).
pub const MAX_PENDING_RESETS: usize = 20;
/// Streams reset by switchyard because the client broke the protocol on them, before the
/// connection is closed.
pub const MAX_ERROR_RESETS: usize = 256;
/// Streams a client may reset before their answer began (when they are at least half of
/// its streams) before its connection is closed.
pub const MAX_PREMATURE_RESETS: u64 = 100;

/// The HTTP/2 settings of a listener's connections.
/// `response_buffer`: response data queued per stream before it waits for the client.
/// Its streams run in their connection's task ([`super::inline`]).
pub fn builder(settings: &ListenerConfig, response_buffer: usize) -> http2::Builder<InlineExec> {
    let mut http = http2::Builder::new(InlineExec);
    http.timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(MAX_ERROR_RESETS)
        .max_send_buf_size(response_buffer)
        // WebSockets over HTTP/2 (RFC 8441).
        .enable_connect_protocol();
    http
}

/// On an extended CONNECT request (a `:protocol`, which hyper only lets through on a CONNECT),
/// puts a [`StreamHold`] in its extensions: the stream counts as open for the idle timer until
/// the tunnel it may become (or the request, if it does not) lets it go.
pub fn hold_for_tunnel(streams: &Arc<Streams>, req: &mut http::Request<hyper::body::Incoming>) {
    if req.extensions().get::<hyper::ext::Protocol>().is_some() {
        streams.open.fetch_add(1, Ordering::Relaxed);
        let guard = StreamGuard {
            streams: streams.clone(),
            answered: true,
        };
        req.extensions_mut().insert(StreamHold::new(guard));
    }
}

/// How often a connection's timers are checked: a quarter of the shorter timeout.
pub fn tick(read_timeout: Duration, write_timeout: Duration) -> Duration {
    (read_timeout.min(write_timeout) / 4).max(Duration::from_millis(10))
}

/// What a connection's streams tell its timers.
#[derive(Debug, Default)]
pub struct Streams {
    /// Streams open (a request being handled or its response being sent).
    open: AtomicUsize,
    /// Streams ever opened: a connection whose streams come and go between two ticks is
    /// not idle.
    opened: AtomicU64,
    /// Streams whose last data frame waits for the client's window.
    waiting: AtomicUsize,
    /// Counts data frames that got out after waiting: moves whenever the client reads.
    moved: AtomicU64,
    /// Streams that ended before their answer began (the client reset them).
    premature: AtomicU64,
    /// Woken when premature resets pass the limit.
    abuse: Notify,
}

/// One open stream; dropping it closes the stream for the idle timer.
#[derive(Debug)]
pub struct StreamGuard {
    streams: Arc<Streams>,
    answered: bool,
}

// === impl Streams ===

impl Streams {
    /// A stream opened.
    pub fn open(self: &Arc<Self>) -> StreamGuard {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.opened.fetch_add(1, Ordering::Relaxed);
        StreamGuard {
            streams: self.clone(),
            answered: false,
        }
    }
}

// === impl StreamGuard ===

impl StreamGuard {
    /// The stream's answer began.
    pub fn answered(&mut self) {
        self.answered = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let streams = &self.streams;
        streams.open.fetch_sub(1, Ordering::Relaxed);
        if !self.answered {
            let premature = streams.premature.fetch_add(1, Ordering::Relaxed) + 1;
            let opened = streams.opened.load(Ordering::Relaxed);
            if premature >= MAX_PREMATURE_RESETS && premature * 2 >= opened {
                streams.abuse.notify_one();
            }
        }
    }
}

/// A response body on an HTTP/2 stream, telling the stall timer when its data waits.
#[derive(Debug)]
pub struct StreamBody {
    inner: ResponseBody,
    guard: StreamGuard,
    waiting: bool,
}

// === impl StreamBody ===

impl StreamBody {
    /// `inner`, sent on the stream `guard` stands for.
    pub fn new(inner: ResponseBody, mut guard: StreamGuard) -> Self {
        guard.answered();
        StreamBody {
            inner,
            guard,
            waiting: false,
        }
    }

    /// hyper asks for the next frame only once the last one is sent: it got out.
    fn sent(&mut self) {
        if std::mem::take(&mut self.waiting) {
            let streams = &self.guard.streams;
            streams.waiting.fetch_sub(1, Ordering::Relaxed);
            streams.moved.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        this.sent();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if frame.data_ref().is_some_and(|d| !d.is_empty()) {
                this.waiting = true;
                this.guard.streams.waiting.fetch_add(1, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        self.sent();
    }
}

/// Serves HTTP/2 on `io` until the connection closes, shutdown drains it, it stays idle for
/// `read_timeout` or its responses stall for `write_timeout` (see the module doc).
pub async fn serve<I, S>(
    http: &http2::Builder<InlineExec>,
    io: I,
    service: S,
    streams: Arc<Streams>,
    timeouts: (Duration, Duration),
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<StreamBody>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let (read_timeout, write_timeout) = timeouts;
    let served = Inline::new(http.serve_connection(TokioIo::new(io), service));
    tokio::pin!(served);
    let every = tick(read_timeout, write_timeout);
    let ticks = |limit: Duration| limit.as_nanos().div_ceil(every.as_nanos()).max(1);
    let (idle_limit, stall_limit) = (ticks(read_timeout), ticks(write_timeout));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut idle, mut stalled, mut last_moved, mut last_opened) = (0u128, 0u128, 0u64, 0u64);
    let mut draining = false;
    let mut stopping = std::pin::pin!(stop(&mut shutdown));
    loop {
        tokio::select! {
            result = served.as_mut() => return result.map_err(|e| e.to_string()),
            _ = streams.abuse.notified() => {
                return Err(format!(
                    "client reset {} streams before their answer",
                    streams.premature.load(Ordering::Relaxed)
                ));
            }
            _ = stopping.as_mut(), if !draining => {
                draining = true;
                served.as_mut().conn().graceful_shutdown();
            }
            _ = ticker.tick() => {
                let opened = streams.opened.load(Ordering::Relaxed);
                let quiet = streams.open.load(Ordering::Relaxed) == 0 && opened == last_opened;
                last_opened = opened;
                idle = if quiet { idle + 1 } else { 0 };
                let moved = streams.moved.load(Ordering::Relaxed);
                let waiting = streams.waiting.load(Ordering::Relaxed) > 0;
                stalled = if waiting && moved == last_moved { stalled + 1 } else { 0 };
                last_moved = moved;
                if stalled >= stall_limit {
                    return Err(format!(
                        "client granted no flow-control window for {write_timeout:?}"
                    ));
                }
                if idle >= idle_limit && !draining {
                    draining = true;
                    served.as_mut().conn().graceful_shutdown();
                } else if idle >= 2 * idle_limit {
                    // Shut down, idle, and still not closed: the client does not answer.
                    return Err("idle connection did not close after GOAWAY".to_owned());
                }
            }
        }
    }
}
