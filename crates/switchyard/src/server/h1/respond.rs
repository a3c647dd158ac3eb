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

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;
use tokio::io::AsyncWrite;

use super::head::has_token;
use super::wire::Wire;
use crate::proxy::body::ResponseBody;
use crate::server::idle::IdleIo;

/// A data chunk at most this long is copied behind what is queued; a longer one is queued.
const COPY_AT_MOST: usize = 4096;

/// Most pieces handed to one `writev`.
const MAX_SLICES: usize = 16;

/// What the request said about the answer it may get.
#[derive(Clone, Copy, Debug)]
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
pub async fn write<I: IdleIo>(
    wire: &Wire<I>,
    resp: Response<ResponseBody>,
    asked: Asked,
    limit: usize,
) -> io::Result<After> {
    let (mut parts, body) = resp.into_parts();
    let status = parts.status;
    let headers = &mut parts.headers;
    let mut after = if asked.keep_alive && !has_token(headers, header::CONNECTION, "close") {
        After::KeepAlive
    } else {
        After::Close
    };
    let switched = status == StatusCode::SWITCHING_PROTOCOLS && asked.upgrade;
    let framing = if switched {
        after = After::Switched;
        Framing::None
    } else if status.is_informational() || status == StatusCode::NO_CONTENT {
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::TRANSFER_ENCODING);
        Framing::None
    } else {
        headers.remove(header::TRANSFER_ENCODING);
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        match (declared, body.size_hint().exact()) {
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
        After::Close if !asked.http10 && !has_token(headers, header::CONNECTION, "close") => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        After::KeepAlive if asked.http10 => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        }
        _ => {}
    }
    if !headers.contains_key(header::DATE) {
        headers.insert(header::DATE, date::now());
    }
    wire.lock().answering();
    let mut out = Out::default();
    out.head(asked.http10, status, headers);
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
    poll_fn(|cx| sending.poll(cx, wire, &mut out, limit)).await?;
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

/// `len` in hex with CRLF, written into `line`.
fn chunk_size(len: usize, line: &mut [u8; 18]) -> &[u8] {
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in line[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = b"0123456789abcdef"[(len >> shift) & 0xf];
    }
    line[digits..digits + 2].copy_from_slice(b"\r\n");
    &line[..digits + 2]
}

/// Bytes on their way to the client, in order: long chunks as they came, the small pieces
/// between them copied together.
#[derive(Debug, Default)]
struct Out {
    queue: VecDeque<Bytes>,
    tail: BytesMut,
    queued: usize,
}

impl Out {
    /// The status line (`HTTP/1.0` to an HTTP/1.0 client, as hyper's server wrote it) and
    /// the header section.
    fn head(&mut self, http10: bool, status: StatusCode, headers: &HeaderMap) {
        let size: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        self.tail.reserve(size + 32 + COPY_AT_MOST);
        self.copy(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
        self.copy(status.as_str().as_bytes());
        self.copy(b" ");
        self.copy(status.canonical_reason().unwrap_or("").as_bytes());
        self.copy(b"\r\n");
        for (name, value) in headers {
            self.field(name.as_str().as_bytes(), value.as_bytes());
        }
        self.copy(b"\r\n");
    }

    fn field(&mut self, name: &[u8], value: &[u8]) {
        self.copy(name);
        self.copy(b": ");
        self.copy(value);
        self.copy(b"\r\n");
    }

    fn copy(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        self.queued += bytes.len();
    }

    fn data(&mut self, data: Bytes) {
        if data.len() <= COPY_AT_MOST {
            self.copy(&data);
            return;
        }
        if !self.tail.is_empty() {
            self.queue.push_back(self.tail.split().freeze());
        }
        self.queued += data.len();
        self.queue.push_back(data);
    }

    /// Writes what it can of the queue, then of the tail, in one call.
    fn poll_write<W: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        mut io: Pin<&mut W>,
    ) -> Poll<io::Result<usize>> {
        let n = if self.queue.is_empty() {
            std::task::ready!(io.as_mut().poll_write(cx, &self.tail))?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for piece in self.queue.iter().take(MAX_SLICES - 1) {
                slices[count] = IoSlice::new(piece);
                count += 1;
            }
            if count == self.queue.len() && !self.tail.is_empty() {
                slices[count] = IoSlice::new(&self.tail);
                count += 1;
            }
            std::task::ready!(io.as_mut().poll_write_vectored(cx, &slices[..count]))?
        };
        self.advance(n);
        Poll::Ready(Ok(n))
    }

    fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            match self.queue.front_mut() {
                Some(piece) if piece.len() <= n => {
                    n -= piece.len();
                    self.queue.pop_front();
                }
                Some(piece) => {
                    piece.advance(n);
                    return;
                }
                None => {
                    self.tail.advance(n);
                    if self.tail.is_empty() {
                        // Reused from its start for what comes next.
                        self.tail.clear();
                    }
                    return;
                }
            }
        }
    }
}

/// The `Date` header of answers, made once a second per worker thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    use http::HeaderValue;

    thread_local! {
        static CACHED: RefCell<(u64, HeaderValue)> =
            RefCell::new((u64::MAX, HeaderValue::from_static("")));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_lowercase_hex_lines() {
        let mut line = [0u8; 18];
        assert_eq!(chunk_size(1, &mut line), b"1\r\n");
        assert_eq!(chunk_size(255, &mut line), b"ff\r\n");
        assert_eq!(chunk_size(4096, &mut line), b"1000\r\n");
        assert_eq!(chunk_size(usize::MAX, &mut line).len(), 18);
    }

    #[test]
    fn queued_bytes_leave_in_order_and_long_chunks_are_not_copied() {
        let mut out = Out::default();
        out.copy(b"head ");
        let long = Bytes::from(vec![b'x'; COPY_AT_MOST + 1]);
        out.data(long.clone());
        out.copy(b" end");
        assert_eq!(out.queue.len(), 2);
        assert_eq!(out.queue[1].as_ptr(), long.as_ptr());
        assert_eq!(out.queued, 5 + long.len() + 4);
        out.advance(3);
        assert_eq!(&out.queue[0][..], b"d ");
        out.advance(2 + long.len() + 1);
        assert!(out.queue.is_empty());
        assert_eq!(&out.tail[..], b"end");
        out.advance(3);
        assert_eq!(out.queued, 0);
    }
}
