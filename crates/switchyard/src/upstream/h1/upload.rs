//! The request body on its way to a backend: framed (`Content-Length` or chunked) into one
//! buffer with what is due before it, and written as the connection takes it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::Body as HttpBody;

use super::conn::{BoxError, Error, Io};
use super::encode::{self, BodyFraming};

/// The request body on its way out.
pub(super) struct Upload<B> {
    pub(super) body: B,
    framing: BodyFraming,
    /// Bytes framed and not yet written.
    out: Vec<u8>,
    written: usize,
    /// Bytes still due under a `Content-Length`.
    left: u64,
    /// The body has ended (its last chunk is in `out`).
    ended: bool,
    /// Everything is written and flushed.
    pub(super) sent: bool,
    /// Some of the request was written (or its body polled): it cannot be sent elsewhere as
    /// it is any more.
    pub(super) touched: bool,
}

impl<B> Upload<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// The upload of `body` framed as `framing`, after `head` (the request head, written).
    pub(super) fn new(body: B, framing: BodyFraming, head: Vec<u8>) -> Self {
        Upload {
            body,
            framing,
            out: head,
            written: 0,
            left: match framing {
                BodyFraming::Length(n) => n,
                _ => 0,
            },
            ended: framing == BodyFraming::Empty,
            sent: false,
            touched: false,
        }
    }

    /// Reads the rest of the body and drops it, once the backend stopped reading: so that
    /// the client's connection stays usable after its answer (nginx discards an unsent
    /// request body the same way). Ready at the body's end, or when it fails.
    pub(super) fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Some(Ok(_)) = ready!(Pin::new(&mut self.body).poll_frame(cx)) {}
        Poll::Ready(())
    }

    /// Writes what is due and reads on from the body until everything is written and
    /// flushed, the connection cannot take more for now, or something failed.
    pub(super) fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut dyn Io,
    ) -> Poll<Result<(), Error>> {
        loop {
            while self.written < self.out.len() {
                let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.out[self.written..]))
                    .map_err(Error::Io)?;
                if n == 0 {
                    return Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into())));
                }
                self.touched = true;
                self.written += n;
            }
            self.out.clear();
            self.written = 0;
            if self.ended {
                ready!(Pin::new(&mut *io).poll_flush(cx)).map_err(Error::Io)?;
                self.sent = true;
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => {
                    if self.left > 0 {
                        return Poll::Ready(Err(Error::Body(
                            "request body shorter than its length".into(),
                        )));
                    }
                    if self.framing == BodyFraming::Chunked {
                        self.out.extend_from_slice(encode::LAST_CHUNK);
                    }
                    self.ended = true;
                }
                Some(Err(e)) => return Poll::Ready(Err(Error::Body(e.into()))),
                Some(Ok(frame)) => {
                    // Request trailers are not sent to HTTP/1.1 backends (as hyper).
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    match self.framing {
                        BodyFraming::Chunked => {
                            self.out
                                .extend_from_slice(&encode::chunk_prefix(data.len()));
                            self.out.extend_from_slice(&data);
                            self.out.extend_from_slice(encode::CHUNK_END);
                        }
                        BodyFraming::Length(_) => {
                            let len = data.len() as u64;
                            if len > self.left {
                                return Poll::Ready(Err(Error::Body(
                                    "request body longer than its length".into(),
                                )));
                            }
                            self.left -= len;
                            self.out.extend_from_slice(&data);
                        }
                        BodyFraming::Empty => {}
                    }
                }
            }
        }
    }
}
