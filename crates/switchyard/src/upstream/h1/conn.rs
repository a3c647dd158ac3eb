//! One backend HTTP/1.1 connection and one exchange on it, driven by the request's own
//! future: [`Conn::send`] writes the head and streams the body while it watches for the
//! response head, then hands the connection to the [`Body`] that reads the response body
//! (and sends the rest of the request, if the backend answered before it had all of it); a
//! body read to its end on a connection that stays open gives the connection back
//! ([`Body::take_conn`]).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{request, Method};
use http_body::Body as HttpBody;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::body::{Body, State};
use super::chunked::{self, ChunkError};
use super::encode::{self, BodyFraming};
use super::head::{self, Framing, Head, HeadError};
use super::upload::Upload;
pub(super) use crate::body::BoxError;

/// A byte stream to a backend (TCP, or TLS over it).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection failed before any byte of the request was written: the request can be
    /// sent elsewhere as it is (its body was not touched).
    #[error("connection failed before the request was sent")]
    NotSent(#[source] io::Error),
    /// The backend closed the connection before any byte of a response.
    #[error("connection closed before a response")]
    ClosedBeforeResponse,
    /// The backend closed the connection in the middle of a response.
    #[error("connection closed before the response was complete")]
    Incomplete,
    /// The response head was refused.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The chunked body was malformed.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// Reading from or writing to the backend failed.
    #[error("backend connection failed")]
    Io(#[source] io::Error),
    /// The request body failed, or did not match its declared length.
    #[error("request body failed")]
    Body(#[source] BoxError),
}

/// An HTTP/1.1 connection to a backend, between exchanges.
pub struct Conn {
    pub(super) io: Box<dyn Io>,
    pub(super) read: BytesMut,
    /// Largest response head (and trailer section) accepted.
    max_head: usize,
    /// Bytes read from the backend at a time.
    read_size: usize,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("buffered", &self.read.len())
            .finish()
    }
}

impl Conn {
    /// A connection over `io`, refusing heads over `max_head`, reading `read_size` at a time.
    pub fn new(io: Box<dyn Io>, max_head: usize, read_size: usize) -> Self {
        Conn {
            io,
            read: BytesMut::new(),
            max_head,
            read_size: read_size.max(1024),
        }
    }

    /// For a connection taken from the idle pool: true when the backend closed it (or sent
    /// bytes nobody asked for) while it sat idle. Never waits.
    pub fn closed_while_idle(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.poll_closed(&mut cx)
    }

    /// [`Conn::closed_while_idle`], with `cx` woken when the backend closes it later (or
    /// sends anything): how the idle pool's sweep learns of it.
    pub fn poll_closed(&mut self, cx: &mut Context<'_>) -> bool {
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        Pin::new(&mut *self.io).poll_read(cx, &mut buf).is_ready()
    }

    /// Sends a request with head `parts` and `body`, and waits for the final response head
    /// (1xx answers skipped). The response's body reads on from the connection, and sends
    /// the rest of the request body meanwhile if the backend answered before it had all of
    /// it (an echo streams its answer while it reads the request). When nothing of the
    /// request was written, its body comes back with the error.
    pub async fn send<B>(
        mut self,
        parts: &request::Parts,
        body: B,
    ) -> Result<(Head, Body<B>), Failed<B>>
    where
        B: HttpBody<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let framing = BodyFraming::of(
            &parts.method,
            body.is_end_stream(),
            body.size_hint().exact(),
        );
        let mut out = Vec::with_capacity(512);
        encode::head(parts, framing, &mut out);
        let mut upload = Upload::new(body, framing, out);
        let head_request = parts.method == Method::HEAD;
        let mut seen_any = false;
        // A write that failed once some of the request was out: the backend may have
        // answered early and stopped reading; its answer is still read.
        let mut write_failed = None;
        let head = poll_fn(|cx| {
            if !upload.sent && write_failed.is_none() {
                match upload.poll_send(cx, &mut *self.io) {
                    Poll::Ready(Err(Error::Io(e))) if upload.touched => write_failed = Some(e),
                    Poll::Ready(Err(Error::Io(e))) => return Poll::Ready(Err(Error::NotSent(e))),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) | Poll::Pending => {}
                }
            }
            loop {
                match head::parse(&mut self.read, self.max_head, head_request)? {
                    Some(h) if h.parts.status.is_informational() => continue,
                    Some(h) => return Poll::Ready(Ok(h)),
                    None => {}
                }
                let n = match ready!(self.poll_read_more(cx)) {
                    Ok(n) => n,
                    Err(e) => return Poll::Ready(Err(Error::Io(e))),
                };
                if n == 0 {
                    return Poll::Ready(Err(if seen_any {
                        Error::Incomplete
                    } else if !upload.touched {
                        Error::NotSent(io::ErrorKind::UnexpectedEof.into())
                    } else if let Some(e) = write_failed.take() {
                        Error::Io(e)
                    } else {
                        Error::ClosedBeforeResponse
                    }));
                }
                seen_any = true;
            }
        })
        .await;
        let mut head = match head {
            Ok(head) => head,
            Err(error) => {
                let body = matches!(error, Error::NotSent(_)).then_some(upload.body);
                return Err(Failed { error, body });
            }
        };
        // The rest of the request can no longer be sent: the connection cannot carry
        // another request.
        head.reusable &= write_failed.is_none();
        let state = match head.framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(chunked::Decoder::new(self.max_head)),
            Framing::UntilClose => State::UntilClose,
        };
        let discarding = write_failed.is_some();
        let upload = (!upload.sent).then(|| Box::new(upload));
        let body = Body::new(self, state, head.reusable, upload, discarding);
        Ok((head, body))
    }

    /// The connection without its read buffer (empty), as it waits in the idle pool.
    pub(super) fn without_buffer(self) -> Conn {
        Conn {
            read: BytesMut::new(),
            ..self
        }
    }

    /// Reads what the backend sent next into the buffer: the count, 0 at the end of stream.
    pub(super) fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < 1024 {
            self.read.reserve(self.read_size);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut *self.io), cx, &mut self.read)
    }
}

/// An exchange that got no response head.
pub struct Failed<B> {
    /// Why.
    pub error: Error,
    /// The request body, untouched, when nothing of the request was written
    /// ([`Error::NotSent`]).
    pub body: Option<B>,
}

impl<B> std::fmt::Debug for Failed<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failed")
            .field("error", &self.error)
            .field("unsent", &self.body.is_some())
            .finish()
    }
}
