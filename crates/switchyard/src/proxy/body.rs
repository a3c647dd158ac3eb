//! The two bodies a request moves: the client's request body on its way to a backend
//! ([`RequestBody`]) and the response body on its way to the client ([`ResponseBody`]).
//! Both stream frame by frame; neither is ever buffered whole.
//!
//! Both enforce an idle timeout (the longest pause between two pieces of body), arming a
//! timer only when the other side actually makes them wait, so a body that flows costs no
//! timer work. The response body also hands its upstream connection back to the pool the
//! moment the backend's body is complete, and writes the access-log line when it is done.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::telemetry::AccessLog;
use std::sync::Arc;

use crate::upstream::connect::{self, Sender};
use crate::upstream::Backend;

/// Why a body stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client paused longer than the read timeout in the middle of its request body.
    #[error("client sent no request body data for {0:?}")]
    ClientTimeout(Duration),
    /// Reading the client's request body failed (connection reset, bad chunked encoding).
    #[error("reading the request body failed")]
    Client(#[source] hyper::Error),
    /// The backend paused longer than the write timeout in the middle of its response body.
    #[error("backend sent no response body data for {0:?}")]
    UpstreamTimeout(Duration),
    /// Reading the backend's response body failed.
    #[error("reading the response body from the backend failed")]
    Upstream(#[source] hyper::Error),
}

/// Idle timer shared by both bodies: armed when a poll returns `Pending`, disarmed when data
/// arrives. The `Sleep` is allocated on first use only.
#[derive(Debug)]
struct IdleTimer {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl IdleTimer {
    fn new(limit: Duration) -> Self {
        IdleTimer {
            limit,
            sleep: None,
            armed: false,
        }
    }

    /// Call when the inner body returned `Pending`; `Ready` means the limit has passed.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.armed {
            let deadline = Instant::now() + self.limit;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

/// The client's request body, forwarded upstream. hyper re-frames it (Content-Length when
/// the size is known, chunked otherwise); the client's own framing headers are not copied.
#[derive(Debug)]
pub struct RequestBody {
    source: Source,
    idle: IdleTimer,
}

#[derive(Debug)]
enum Source {
    /// Streamed from the client.
    Client(Incoming),
    /// Read whole beforehand (small bodies of retryable requests), or none at all.
    Buffered(Option<Bytes>),
}

impl RequestBody {
    /// Wraps the client's body with the read timeout as its idle limit.
    pub fn new(inner: Incoming, read_timeout: Duration) -> Self {
        RequestBody {
            source: Source::Client(inner),
            idle: IdleTimer::new(read_timeout),
        }
    }

    /// A body already read whole (sent again on a retry).
    pub fn buffered(bytes: Bytes) -> Self {
        RequestBody {
            source: Source::Buffered((!bytes.is_empty()).then_some(bytes)),
            idle: IdleTimer::new(Duration::ZERO),
        }
    }

    /// No body at all.
    pub fn empty() -> Self {
        RequestBody::buffered(Bytes::new())
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
        let inner = match &mut this.source {
            Source::Client(inner) => inner,
            Source::Buffered(bytes) => {
                return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b))))
            }
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.idle.disarm();
                Poll::Ready(frame.map(|f| f.map_err(BodyError::Client)))
            }
            Poll::Pending => {
                ready!(this.idle.poll_expired(cx));
                Poll::Ready(Some(Err(BodyError::ClientTimeout(this.idle.limit))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Client(inner) => inner.is_end_stream(),
            Source::Buffered(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Client(inner) => inner.size_hint(),
            Source::Buffered(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// A response body on its way to the client.
#[derive(Debug)]
pub struct ResponseBody {
    kind: Kind,
    bytes: u64,
    log: Option<Box<AccessLog>>,
}

#[derive(Debug)]
enum Kind {
    /// A body switchyard produced itself (errors, admin endpoints).
    Full(Option<Bytes>),
    /// A backend's body, with the connection it arrives on and the backend's request slot
    /// (released when the body is done).
    Upstream {
        body: Incoming,
        backend: Arc<Backend>,
        conn: Option<Sender>,
        slot: bool,
        idle: IdleTimer,
    },
}

impl ResponseBody {
    /// A complete body produced by switchyard.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ResponseBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
            bytes: 0,
            log: None,
        }
    }

    /// A backend's body; `sender` goes back to the pool and the backend's request slot is
    /// released once the body is complete.
    pub fn upstream(body: Incoming, sender: Sender, backend: Arc<Backend>, idle: Duration) -> Self {
        let mut this = ResponseBody {
            kind: Kind::Upstream {
                body,
                backend,
                conn: Some(sender),
                slot: true,
                idle: IdleTimer::new(idle),
            },
            bytes: 0,
            log: None,
        };
        this.release_if_done();
        this
    }

    /// Writes `log` when the body is finished (or dropped).
    pub fn set_log(&mut self, log: Option<Box<AccessLog>>) {
        self.log = log;
    }

    /// Hands the upstream connection back as soon as the backend's body is complete, so the
    /// next request can use it while hyper is still writing this one to the client.
    fn release_if_done(&mut self) {
        if let Kind::Upstream {
            body,
            backend,
            conn,
            slot,
            ..
        } = &mut self.kind
        {
            if body.is_end_stream() {
                if let Some(sender) = conn.take() {
                    connect::checkin(backend, sender);
                }
                release_slot(backend, slot);
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream { body, idle, .. } => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(frame) => {
                    idle.disarm();
                    Poll::Ready(frame.map(|f| f.map_err(BodyError::Upstream)))
                }
                Poll::Pending => {
                    ready!(idle.poll_expired(cx));
                    Poll::Ready(Some(Err(BodyError::UpstreamTimeout(idle.limit))))
                }
            },
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.bytes += data.len() as u64;
            }
        }
        this.release_if_done();
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}

fn release_slot(backend: &Backend, slot: &mut bool) {
    if std::mem::take(slot) {
        backend.load.release();
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Kind::Upstream { backend, slot, .. } = &mut self.kind {
            release_slot(backend, slot);
        }
        if let Some(log) = self.log.take() {
            log.write(self.bytes, self.is_end_stream());
        }
    }
}

/// Finds a [`BodyError`] in an error's source chain (hyper wraps the body's error when a
/// request body fails while it is being sent upstream).
pub fn find_body_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(body) = e.downcast_ref::<BodyError>() {
            return Some(body);
        }
        current = e.source();
    }
    None
}
