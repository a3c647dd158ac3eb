//! [`ResponseBody`]: what the client is sent, a body switchyard made itself or a backend's
//! ([`UpstreamBody`], which carries its attempt to the end), and the access-log line,
//! written when the body is done or dropped. A gRPC call's answer also carries the call's
//! deadline ([`Deadline`]), which ends a stream that outlives it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use tokio::time::Instant;

use super::grpc::Deadline;
use crate::body::BodyError;
use crate::telemetry::AccessLog;
use crate::upstream::UpstreamBody;

/// A response body on its way to the client.
#[derive(Debug)]
pub struct ResponseBody {
    kind: Kind,
    bytes: u64,
    log: Option<Box<AccessLog>>,
    /// A gRPC call's deadline, while its answer streams.
    deadline: Option<Pin<Box<Deadline>>>,
}

#[derive(Debug)]
enum Kind {
    /// A body switchyard produced itself (errors, admin endpoints, redirects).
    Full(Option<Bytes>),
    /// A backend's body.
    Upstream(UpstreamBody),
    /// A backend's body cut off at the call's deadline; the backend's label, for the log.
    Cut(Box<str>),
}

// === impl ResponseBody ===

impl ResponseBody {
    /// A complete body produced by switchyard.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ResponseBody::new(Kind::Full((!bytes.is_empty()).then_some(bytes)))
    }

    /// A backend's body.
    pub fn upstream(body: UpstreamBody) -> Self {
        ResponseBody::new(Kind::Upstream(body))
    }

    fn new(kind: Kind) -> Self {
        ResponseBody {
            kind,
            bytes: 0,
            log: None,
            deadline: None,
        }
    }

    /// Ends the body at `at`, a gRPC call's deadline (`after` the request arrived), if the
    /// backend's answer is still streaming then.
    pub fn set_deadline(&mut self, at: Instant, after: std::time::Duration) {
        if matches!(self.kind, Kind::Upstream(_)) {
            self.deadline = Some(Deadline::new(at, after));
        }
    }

    /// Writes `log` when the body is finished (or dropped).
    pub fn set_log(&mut self, log: Option<Box<AccessLog>>) {
        self.log = log;
    }

    /// `deadline` has passed: drops the backend's body (its stream is reset, its attempt
    /// given back unsettled) and ends the client's.
    fn cut(&mut self, deadline: &Deadline) -> Result<Frame<Bytes>, BodyError> {
        let backend = match &self.kind {
            Kind::Upstream(body) => body.backend_label().into(),
            Kind::Cut(backend) => backend.clone(),
            Kind::Full(_) => "-".into(),
        };
        tracing::debug!(%backend, "gRPC deadline passed while the answer streamed");
        self.kind = Kind::Cut(backend);
        deadline.end()
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
        let passed = this
            .deadline
            .as_mut()
            .is_some_and(|d| d.as_mut().poll_passed(cx).is_ready());
        if let Some(deadline) = this.deadline.take_if(|_| passed) {
            return Poll::Ready(Some(this.cut(&deadline)));
        }
        let polled = match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(body) => Pin::new(body).poll_frame(cx),
            Kind::Cut(_) => Poll::Ready(None),
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.bytes += data.len() as u64;
                if let Some(deadline) = this.deadline.as_mut() {
                    deadline.as_mut().saw(data);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Cut(_) => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(body) => body.size_hint(),
            Kind::Cut(_) => SizeHint::with_exact(0),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            let (backend, complete) = match &self.kind {
                Kind::Upstream(body) => (Some(body.backend_label()), body.is_end_stream()),
                Kind::Cut(backend) => (Some(&**backend), false),
                Kind::Full(bytes) => (None, bytes.is_none()),
            };
            log.write(backend, self.bytes, complete);
        }
    }
}
