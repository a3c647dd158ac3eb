//! [`ResponseBody`]: what the client is sent, a body switchyard made itself or a backend's
//! ([`UpstreamBody`], which carries its attempt to the end), and the access-log line,
//! written when the body is done or dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::body::BodyError;
use crate::telemetry::AccessLog;
use crate::upstream::UpstreamBody;

/// A response body on its way to the client.
#[derive(Debug)]
pub struct ResponseBody {
    kind: Kind,
    bytes: u64,
    log: Option<Box<AccessLog>>,
}

#[derive(Debug)]
enum Kind {
    /// A body switchyard produced itself (errors, admin endpoints, redirects).
    Full(Option<Bytes>),
    /// A backend's body.
    Upstream(UpstreamBody),
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
        }
    }

    /// Writes `log` when the body is finished (or dropped).
    pub fn set_log(&mut self, log: Option<Box<AccessLog>>) {
        self.log = log;
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
            Kind::Upstream(body) => Pin::new(body).poll_frame(cx),
        };
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(body) => body.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            let backend = match &self.kind {
                Kind::Upstream(body) => Some(body.backend_label()),
                Kind::Full(_) => None,
            };
            log.write(backend, self.bytes, self.is_end_stream());
        }
    }
}
