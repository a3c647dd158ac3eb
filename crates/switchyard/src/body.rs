//! Bodies, at the bottom of the layers: the client's request body on its way to a backend
//! ([`RequestBody`]) and why a body stopped early ([`BodyError`]). The response body types sit above, where they own what a
//! response holds: `upstream::body` (the backend's body with its attempt) and `proxy::body`
//! (what the client is sent, with its access-log line).
//!
//! Bodies stream frame by frame and are never buffered whole here. Their idle timer
//! ([`crate::clock::IdleTimer`]) arms only when the other side actually makes a body wait, so
//! a body that flows costs no timer work.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use crate::clock::{nanos, IdleTimer};

/// Any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client's request body as its connection's codec hands it over.
#[derive(Debug)]
pub enum ClientBody {
    /// No body at all (a request without `Content-Length` or `Transfer-Encoding`, or
    /// `Content-Length: 0`).
    Empty,
    /// Read from the connection itself by switchyard's server when polled: the `seq`-th
    /// request's body of the HTTP/1.1 connection `conn` (`server::h1`), or the body of stream
    /// `seq` of the HTTP/2 connection `conn` (`server::h2`).
    Conn {
        /// The connection.
        conn: Arc<dyn ConnBody>,
        /// Which of its requests.
        seq: u32,
    },
}

/// A connection that reads its requests' bodies when they are polled: its `seq`-th request's
/// (HTTP/1.1; a body kept past its request reads nothing of the next) or stream `seq`'s
/// (HTTP/2).
pub trait ConnBody: Send + Sync + std::fmt::Debug {
    /// The next frame of request `seq`'s body.
    fn poll_frame(
        &self,
        seq: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>;
    /// True once request `seq`'s body has been read to its end.
    fn is_end_stream(&self, seq: u32) -> bool;
    /// What is known of request `seq`'s body's length.
    fn size_hint(&self, seq: u32) -> SizeHint;
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::Conn { conn, seq } => conn.poll_frame(*seq, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Empty => true,
            ClientBody::Conn { conn, seq } => conn.is_end_stream(*seq),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::Conn { conn, seq } => conn.size_hint(*seq),
        }
    }
}

/// Why a body stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client paused longer than the read timeout in the middle of its request body.
    #[error("client sent no request body data for {0:?}")]
    ClientTimeout(Duration),
    /// The client's request body grew past the route's `max_body_size` (this many bytes).
    #[error("request body larger than {0} bytes")]
    ClientTooLarge(u64),
    /// Reading the client's request body failed (connection reset, bad chunked encoding).
    #[error("reading the request body failed")]
    Client(#[source] BoxError),
    /// The backend paused longer than the write timeout in the middle of its response body.
    #[error("backend sent no response body data for {0:?}")]
    UpstreamTimeout(Duration),
    /// Reading the backend's response body failed.
    #[error("reading the response body from the backend failed")]
    Upstream(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A gRPC call's deadline passed in the middle of a message of its answer: the stream
    /// is reset with the reason inside (`CANCEL`).
    #[error("the call's deadline passed in the middle of a message")]
    Deadline(#[source] h2::Error),
}

/// Marks a response made while the request body is still unread to close the connection
/// after it, so that the unread bytes can never be taken for the next request.
pub fn close_if_unread(headers: &mut http::HeaderMap, body_unread: bool) {
    if body_unread {
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
}

impl BodyError {
    /// True when the client, not the backend, broke the body off.
    pub fn is_client_fault(&self) -> bool {
        matches!(
            self,
            BodyError::ClientTimeout(_) | BodyError::Client(_) | BodyError::ClientTooLarge(_)
        )
    }
}

/// How long a request body has waited on its client, shared with the upstream client so
/// that the per-try timeout counts only the backend's own silence: a slow client is never
/// taken for a slow backend.
#[derive(Debug, Default)]
pub struct ClientWait {
    /// Nanoseconds waited in waits that are over.
    total: AtomicU64,
    /// `nanos()` when the current wait began; 0 while not waiting.
    since: AtomicU64,
    /// How the client's body broke off, once it has: an HTTP/2 backend's client sees only
    /// its stream reset (the body is sent by a task of its own), so the upstream client
    /// asks here whose fault the failure was.
    failure: std::sync::OnceLock<ClientFailure>,
}

/// How a client's request body broke off (see [`ClientWait::failure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFailure {
    /// It paused longer than the read timeout.
    Timeout(Duration),
    /// It grew past the body limit (this many bytes).
    TooLarge(u64),
    /// Reading it failed (reset, bad framing).
    Broken,
}

// === impl ClientWait ===

impl ClientWait {
    /// A wait on the client began `at`.
    pub(crate) fn begin(&self, at: Instant) {
        self.since.store(nanos(at).max(1), Ordering::Relaxed);
    }

    /// The wait in progress ended `now`.
    pub(crate) fn end(&self, now: Instant) {
        let since = self.since.swap(0, Ordering::Relaxed);
        if since != 0 {
            let waited = nanos(now).saturating_sub(since);
            self.total.fetch_add(waited, Ordering::Relaxed);
        }
    }

    /// The client's body broke off so.
    pub(crate) fn broke(&self, how: ClientFailure) {
        let _ = self.failure.set(how);
    }

    /// How the client's body broke off, if it has.
    pub fn failure(&self) -> Option<ClientFailure> {
        self.failure.get().copied()
    }

    /// Time spent waiting on the client so far, the wait in progress included.
    pub fn waited(&self, now: Instant) -> Duration {
        let since = self.since.load(Ordering::Relaxed);
        let current = if since == 0 {
            0
        } else {
            nanos(now).saturating_sub(since)
        };
        Duration::from_nanos(self.total.load(Ordering::Relaxed).saturating_add(current))
    }
}

/// The client's request body, forwarded upstream. hyper re-frames it (Content-Length when
/// the size is known, chunked otherwise); the client's own framing headers are not copied.
#[derive(Debug)]
pub struct RequestBody {
    source: Source,
    idle: IdleTimer,
    /// Most bytes the client may send (`0`: no limit).
    max: u64,
    /// Bytes the client sent so far, counted while there is a limit.
    read: u64,
}

#[derive(Debug)]
enum Source {
    /// Streamed from the client; `wait` tells the upstream client how long it waited.
    Client {
        inner: ClientBody,
        wait: Arc<ClientWait>,
    },
    /// Read whole beforehand (small bodies of retryable requests), or none at all.
    Buffered(Option<Bytes>),
}

// === impl RequestBody ===

impl RequestBody {
    /// Wraps the client's body with the read timeout as its idle limit.
    pub fn new(inner: ClientBody, read_timeout: Duration) -> Self {
        RequestBody {
            source: Source::Client {
                inner,
                wait: Arc::default(),
            },
            idle: IdleTimer::new(read_timeout),
            max: 0,
            read: 0,
        }
    }

    /// Fails the body with [`BodyError::ClientTooLarge`] as soon as more than `max` bytes
    /// have come (`0`: no limit).
    pub fn limit(mut self, max: u64) -> Self {
        self.max = max;
        self
    }

    /// A body already read whole (sent again on a retry).
    pub fn buffered(bytes: Bytes) -> Self {
        RequestBody {
            source: Source::Buffered((!bytes.is_empty()).then_some(bytes)),
            idle: IdleTimer::new(Duration::ZERO),
            max: 0,
            read: 0,
        }
    }

    /// No body at all.
    pub fn empty() -> Self {
        RequestBody::buffered(Bytes::new())
    }

    /// How long this body has waited on its client, when it streams from one.
    pub fn client_wait(&self) -> Option<Arc<ClientWait>> {
        match &self.source {
            Source::Client { wait, .. } => Some(wait.clone()),
            Source::Buffered(_) => None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let (inner, wait) = match &mut this.source {
            Source::Client { inner, wait } => (inner, wait),
            Source::Buffered(bytes) => {
                return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b))))
            }
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if this.idle.disarm().is_some() {
                    wait.end(Instant::now());
                }
                if let (Some(Ok(f)), true) = (&frame, this.max != 0) {
                    this.read += f.data_ref().map_or(0, |d| d.len() as u64);
                    if this.read > this.max {
                        wait.broke(ClientFailure::TooLarge(this.max));
                        return Poll::Ready(Some(Err(BodyError::ClientTooLarge(this.max))));
                    }
                }
                if let Some(Err(_)) = &frame {
                    wait.broke(ClientFailure::Broken);
                }
                Poll::Ready(frame.map(|f| f.map_err(BodyError::Client)))
            }
            Poll::Pending => {
                let was_waiting = this.idle.waiting_since().is_some();
                let expired = this.idle.poll_expired(cx);
                if let (false, Some(since)) = (was_waiting, this.idle.waiting_since()) {
                    wait.begin(since);
                }
                ready!(expired);
                wait.broke(ClientFailure::Timeout(this.idle.limit()));
                Poll::Ready(Some(Err(BodyError::ClientTimeout(this.idle.limit()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Client { inner, .. } => inner.is_end_stream(),
            Source::Buffered(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Client { inner, .. } => inner.size_hint(),
            Source::Buffered(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn client_wait_counts_the_wait_in_progress_and_past_ones() {
        let wait = ClientWait::default();
        let t0 = Instant::now();
        wait.begin(t0);
        assert_eq!(
            wait.waited(t0 + Duration::from_millis(30)),
            Duration::from_millis(30)
        );
        wait.end(t0 + Duration::from_millis(50));
        assert_eq!(
            wait.waited(t0 + Duration::from_secs(9)),
            Duration::from_millis(50)
        );
        wait.begin(t0 + Duration::from_millis(100));
        assert_eq!(
            wait.waited(t0 + Duration::from_millis(110)),
            Duration::from_millis(60)
        );
    }
}
