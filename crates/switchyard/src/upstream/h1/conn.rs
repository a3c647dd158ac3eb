//! One backend HTTP/1.1 connection and one exchange on it, driven by the request's own
//! future: [`Conn::send`] writes the head and streams the body while it watches for the
//! response head (an early answer stops the upload and retires the connection), then hands
//! the connection to the [`Body`] that reads the response body; a body read to its end on a
//! connection that stays open gives the connection back ([`Body::into_conn`]).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{request, Method};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::chunked::{self, Chunk, ChunkError};
use super::encode::{self, BodyFraming};
use super::head::{self, Framing, Head, HeadError};

/// A byte stream to a backend (TCP, or TLS over it).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    io: Box<dyn Io>,
    read: BytesMut,
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
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        Pin::new(&mut *self.io)
            .poll_read(&mut cx, &mut buf)
            .is_ready()
    }

    /// Sends a request with head `parts` and `body`, and waits for the final response head
    /// (1xx answers skipped). The response's body reads on from the connection.
    pub async fn send<B>(mut self, parts: &request::Parts, body: B) -> Result<(Head, Body), Error>
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
        let mut upload = Upload {
            body,
            framing,
            out,
            written: 0,
            left: match framing {
                BodyFraming::Length(n) => n,
                _ => 0,
            },
            ended: framing == BodyFraming::Empty,
            sent: false,
        };
        let head_request = parts.method == Method::HEAD;
        let mut seen_any = false;
        let head = poll_fn(|cx| {
            if !upload.sent {
                if let Poll::Ready(done) = upload.poll_send(cx, &mut *self.io) {
                    done?;
                }
            }
            loop {
                match head::parse(&mut self.read, self.max_head, head_request)? {
                    Some(h) if h.parts.status.is_informational() => continue,
                    Some(h) => return Poll::Ready(Ok(h)),
                    None => {}
                }
                let n = ready!(self.poll_read_more(cx)).map_err(Error::Io)?;
                if n == 0 {
                    return Poll::Ready(Err(if seen_any {
                        Error::Incomplete
                    } else {
                        Error::ClosedBeforeResponse
                    }));
                }
                seen_any = true;
            }
        })
        .await?;
        let mut head = head;
        // An answer before the whole request went out: the rest is not sent, so the
        // connection cannot carry another request.
        head.reusable &= upload.sent;
        let state = match head.framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(chunked::Decoder::new(self.max_head)),
            Framing::UntilClose => State::UntilClose,
        };
        let body = Body {
            conn: Some(self),
            state,
            reusable: head.reusable,
        };
        Ok((head, body))
    }

    /// Reads what the backend sent next into the buffer: the count, 0 at the end of stream.
    fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < 1024 {
            self.read.reserve(self.read_size);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut *self.io), cx, &mut self.read)
    }
}

/// The request body on its way out.
struct Upload<B> {
    body: B,
    framing: BodyFraming,
    /// Bytes framed and not yet written.
    out: Vec<u8>,
    written: usize,
    /// Bytes still due under a `Content-Length`.
    left: u64,
    /// The body has ended (its last chunk is in `out`).
    ended: bool,
    /// Everything is written and flushed.
    sent: bool,
}

impl<B> Upload<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    fn poll_send(&mut self, cx: &mut Context<'_>, io: &mut dyn Io) -> Poll<Result<(), Error>> {
        loop {
            while self.written < self.out.len() {
                let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.out[self.written..]))
                    .map_err(Error::Io)?;
                if n == 0 {
                    return Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into())));
                }
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

enum State {
    Length(u64),
    Chunked(chunked::Decoder),
    UntilClose,
    Done,
}

/// A backend's response body, read from its connection.
pub struct Body {
    conn: Option<Conn>,
    state: State,
    reusable: bool,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("reusable", &self.reusable)
            .finish()
    }
}

impl Body {
    /// The connection, once the body was read to its end and the connection can take another
    /// request (nothing unasked-for left in its buffer); its read buffer is let go.
    pub fn into_conn(mut self) -> Option<Conn> {
        let conn = self.conn.take()?;
        if !matches!(self.state, State::Done) || !self.reusable || !conn.read.is_empty() {
            return None;
        }
        Some(Conn {
            read: BytesMut::new(),
            ..conn
        })
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    if !conn.read.is_empty() {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(conn.read.len());
                        *left -= take as u64;
                        if *left == 0 {
                            this.state = State::Done;
                        }
                        let data = conn.read.split_to(take).freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Chunked(decoder) => match decoder.decode(&mut conn.read) {
                    Err(e) => return Poll::Ready(Some(Err(e.into()))),
                    Ok(Some(Chunk::Data(d))) => return Poll::Ready(Some(Ok(Frame::data(d)))),
                    Ok(Some(Chunk::Trailers(t))) => {
                        return Poll::Ready(Some(Ok(Frame::trailers(t))));
                    }
                    Ok(Some(Chunk::End)) => {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                },
                State::UntilClose => {
                    if !conn.read.is_empty() {
                        let data = conn.read.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            let n = ready!(conn.poll_read_more(cx)).map_err(Error::Io);
            match n {
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(0) if matches!(this.state, State::UntilClose) => {
                    this.state = State::Done;
                    this.reusable = false;
                    return Poll::Ready(None);
                }
                Ok(0) => return Poll::Ready(Some(Err(Error::Incomplete))),
                Ok(_) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
