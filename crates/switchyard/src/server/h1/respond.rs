//! An answer written to an HTTP/1.1 client: its head, framed as RFC 9112 §6 says for the
//! request it answers, then its body streamed with at most `response_buffer` bytes queued
//! for a client that does not read (the body's next frame waits for room: backpressure
//! reaches the backend).
//!
//! Framing: no body for `HEAD`, 1xx, 204 and 304; a `Content-Length` when the answer has one
//! or its body's length is known; chunked for an HTTP/1.1 client otherwise, and for an
//! HTTP/1.0 client the body runs until the connection closes. A small answer (head and
//! body) goes out in one write; a long data chunk is queued as it is and written with the
//! bytes before it in one `writev`, never copied.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;

use super::head::{decimal, lists};
use super::wire::Wire;
use crate::proxy::body::ResponseBody;
use crate::server::idle::IdleIo;
use crate::server::out::{chunk_size, Out};

/// What the request said about the answer it may get (`Default`: what a refused head
/// gets, no keep-alive).
#[derive(Clone, Copy, Debug, Default)]
pub struct Asked {
    /// A `HEAD` request: the answer has no body, whatever its headers say.
    pub head: bool,
    /// An HTTP/1.0 client: no chunked coding; keep-alive only when asked.
    pub http10: bool,
    /// The connection may stay open after the answer.
    pub keep_alive: bool,
    /// It asked for an upgrade: a `101` switches the connection.
    pub upgrade: bool,
    /// It accepts trailer fields (`TE: trailers`).
    pub trailers: bool,
}

/// What an answer's header section says about its framing, read in one pass over it (four
/// lookups in the map cost more than looking at its few names once).
#[derive(Debug, Default)]
struct Fields {
    /// `Connection` lists `close`.
    close: bool,
    transfer_encoding: bool,
    /// `Content-Length`, when it is one number.
    length: Option<u64>,
    date: bool,
}

impl Fields {
    fn of(headers: &HeaderMap) -> Self {
        let mut fields = Fields::default();
        for (name, value) in headers {
            if *name == header::CONTENT_LENGTH {
                fields.length = decimal(value.as_bytes());
            } else if *name == header::DATE {
                fields.date = true;
            } else if *name == header::CONNECTION {
                fields.close |= lists(value.as_bytes(), "close");
            } else if *name == header::TRANSFER_ENCODING {
                fields.transfer_encoding = true;
            }
        }
        fields
    }
}

/// How the connection goes on after an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// It may carry the next request.
    KeepAlive,
    /// It closes (the answer said so, or its body's end is the connection's).
    Close,
    /// A `101` was sent: it is a tunnel's.
    Switched,
}

/// How the body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Writes `resp` to the client; an error (the client went away, a write stalled past the
/// write timeout, the backend's body broke off) means the connection must close now.
/// The answer's header map is left in `spare`, emptied, for the next request's head: its
/// room is reused rather than freed and allocated again (as hyper's server does; about 500
/// instructions a request).
pub async fn write<I: IdleIo>(
    wire: &Wire<I>,
    out: &mut Out,
    spare: &mut HeaderMap,
    resp: Response<ResponseBody>,
    asked: Asked,
    limit: usize,
) -> io::Result<After> {
    let (mut parts, body) = resp.into_parts();
    let status = parts.status;
    let headers = &mut parts.headers;
    let fields = Fields::of(headers);
    let mut after = if asked.keep_alive && !fields.close {
        After::KeepAlive
    } else {
        After::Close
    };
    if fields.transfer_encoding {
        // The framing is this module's to choose.
        headers.remove(header::TRANSFER_ENCODING);
    }
    let switched = status == StatusCode::SWITCHING_PROTOCOLS && asked.upgrade;
    let framing = if switched {
        after = After::Switched;
        Framing::None
    } else if status.is_informational() || status == StatusCode::NO_CONTENT {
        if fields.length.is_some() {
            headers.remove(header::CONTENT_LENGTH);
        }
        Framing::None
    } else {
        match (fields.length, body.size_hint().exact()) {
            _ if asked.head || status == StatusCode::NOT_MODIFIED => Framing::None,
            (Some(n), _) => Framing::Length(n),
            (None, Some(n)) => {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
                Framing::Length(n)
            }
            (None, None) if !asked.http10 => {
                headers.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
                Framing::Chunked
            }
            (None, None) => {
                after = After::Close;
                Framing::UntilClose
            }
        }
    };
    match after {
        // Closing is HTTP/1.0's default: said only to an HTTP/1.1 client.
        After::Close if !asked.http10 && !fields.close => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        After::KeepAlive if asked.http10 => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        }
        _ => {}
    }
    if !fields.date {
        headers.insert(header::DATE, date::now());
    }
    wire.lock().answering();
    out.head(asked.http10, status, headers);
    headers.clear();
    *spare = std::mem::take(headers);
    let mut sending = Sending {
        framing,
        left: match framing {
            Framing::Length(n) => n,
            _ => 0,
        },
        trailers: asked.trailers,
        // Dropped as soon as it has ended, before its last bytes are written: its access-log
        // line is out by the time the client has the answer.
        body: (framing != Framing::None).then_some(body),
        broken: false,
    };
    poll_fn(|cx| sending.poll(cx, wire, out, limit)).await?;
    if sending.broken || sending.left > 0 {
        // The body did not match its length: what the client got is all it gets.
        return Ok(After::Close);
    }
    Ok(after)
}

/// A body being sent.
struct Sending {
    framing: Framing,
    /// Bytes still owed under `Content-Length`.
    left: u64,
    trailers: bool,
    /// The body, until it has ended (its end is queued).
    body: Option<ResponseBody>,
    /// The body was longer than its `Content-Length`: cut there.
    broken: bool,
}

impl Sending {
    /// Moves the body into `out` while it has room and `out` to the client, until both
    /// are done.
    fn poll<I: IdleIo>(
        &mut self,
        cx: &mut Context<'_>,
        wire: &Wire<I>,
        out: &mut Out,
        limit: usize,
    ) -> Poll<io::Result<()>> {
        loop {
            if let (Some(body), true) = (&mut self.body, out.queued < limit) {
                match Pin::new(body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        match frame.into_data() {
                            Ok(data) => self.data(out, data),
                            Err(frame) => {
                                if let Ok(trailers) = frame.into_trailers() {
                                    self.end(out, Some(&trailers));
                                }
                            }
                        }
                        continue;
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io::Error::other(e))),
                    Poll::Ready(None) => {
                        self.end(out, None);
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            let mut state = wire.lock();
            let Some(io) = state.io.as_mut() else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            let mut io = Pin::new(io);
            if out.queued > 0 {
                match out.poll_write(cx, io.as_mut()) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(_)) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.body.is_some() {
                return Poll::Pending;
            }
            return io.poll_flush(cx);
        }
    }

    fn data(&mut self, out: &mut Out, mut data: Bytes) {
        if data.is_empty() {
            return;
        }
        match self.framing {
            Framing::None => {}
            Framing::Length(_) => {
                if data.len() as u64 > self.left {
                    data.truncate(self.left as usize);
                    self.broken = true;
                    self.body = None;
                }
                self.left -= data.len() as u64;
                out.data(data);
            }
            Framing::Chunked => {
                let mut line = [0u8; 18];
                out.copy(chunk_size(data.len(), &mut line));
                out.data(data);
                out.copy(b"\r\n");
            }
            Framing::UntilClose => out.data(data),
        }
    }

    fn end(&mut self, out: &mut Out, trailers: Option<&HeaderMap>) {
        if self.body.take().is_none() {
            return;
        }
        if self.framing != Framing::Chunked {
            return;
        }
        out.copy(b"0\r\n");
        if let (Some(trailers), true) = (trailers, self.trailers) {
            for (name, value) in trailers {
                out.field(name.as_str().as_bytes(), value.as_bytes());
            }
        }
        out.copy(b"\r\n");
    }
}

/// The `Date` header of answers, made once a second per worker thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    use http::HeaderValue;

    thread_local! {
        static CACHED: RefCell<(u64, HeaderValue)> =
            const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
    }

    /// The current time as an HTTP date.
    pub fn now() -> HeaderValue {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with_borrow_mut(|(at, value)| {
            if *at != secs {
                *at = secs;
                if let Ok(fresh) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
                    *value = fresh;
                }
            }
            value.clone()
        })
    }
}
