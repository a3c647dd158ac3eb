//! A backend's HTTP/1.1 response body, read from its connection: `Content-Length`, chunked
//! or until the backend closes. While it is read, the rest of the request body goes out if
//! the backend answered before it had all of it. Read to its end on a connection that can
//! take another request, it gives the connection back ([`Body::take_conn`]).

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::chunked::{self, Chunk};
use super::conn::{BoxError, Conn, Error};
use super::upload::Upload;

pub(super) enum State {
    Length(u64),
    Chunked(chunked::Decoder),
    UntilClose,
    Done,
}

/// A backend's response body, read from its connection; `B` is the request body, part of
/// which may still be on its way out.
pub struct Body<B> {
    conn: Option<Conn>,
    state: State,
    reusable: bool,
    /// The rest of the request, while it is still being sent (boxed: rare, and kept out of
    /// the size of every response body).
    upload: Option<Box<Upload<B>>>,
    /// The backend stopped reading it: the rest is read and dropped.
    discarding: bool,
    /// A data frame went out since the last time the body waited.
    delivered: bool,
    /// An error held back one poll so the data before it is passed on first.
    deferred: Option<Error>,
}

impl<B> std::fmt::Debug for Body<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("reusable", &self.reusable)
            .field("uploading", &self.upload.is_some())
            .finish()
    }
}

impl<B> Body<B> {
    /// The body read from `conn` in `state`; `upload`: the rest of the request, if it is not
    /// all out (`discarding`: the backend stopped reading it).
    pub(super) fn new(
        conn: Conn,
        state: State,
        reusable: bool,
        upload: Option<Box<Upload<B>>>,
        discarding: bool,
    ) -> Self {
        Body {
            conn: Some(conn),
            state,
            reusable,
            upload,
            discarding,
            delivered: false,
            deferred: None,
        }
    }

    /// The connection, once the body was read to its end, the whole request went out and the
    /// connection can take another request (nothing unasked-for left in its buffer); its
    /// read buffer is let go. The body reads nothing more afterwards.
    pub fn take_conn(&mut self) -> Option<Conn> {
        let conn = self.conn.take()?;
        let done = matches!(self.state, State::Done) && self.upload.is_none();
        if !done || !self.reusable || !conn.read.is_empty() {
            return None;
        }
        Some(conn.without_buffer())
    }
}

impl<B> Body<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// For a response that ended before the whole request went out (the backend answered
    /// before reading all of it): the rest is sent by a task of its own, as hyper's
    /// connection task would, and the connection closes after it. Left unsent, the client's
    /// upload would stay unread on its connection, which is then reset, and a reset can make
    /// the client lose the answer it was sent.
    pub fn finish_upload(&mut self)
    where
        B: Send + 'static,
    {
        if self.upload.is_none() {
            return;
        }
        let (Some(mut upload), Some(mut conn)) = (self.upload.take(), self.conn.take()) else {
            return;
        };
        let discarding = self.discarding;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if !discarding {
                    let sent = poll_fn(|cx| upload.poll_send(cx, &mut *conn.io)).await;
                    if !matches!(sent, Err(Error::Io(_))) {
                        return;
                    }
                }
                drop(conn);
                poll_fn(|cx| upload.poll_discard(cx)).await;
            });
        }
    }

    /// The next frame, without the holding back of errors.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(upload) = &mut self.upload {
            let done = if self.discarding {
                upload.poll_discard(cx).is_ready()
            } else {
                match upload.poll_send(cx, &mut *conn.io) {
                    Poll::Pending => false,
                    Poll::Ready(Ok(())) => true,
                    // The backend stopped reading the request: its answer is still read, but
                    // the connection cannot take another request.
                    Poll::Ready(Err(Error::Io(_))) => {
                        self.reusable = false;
                        self.discarding = true;
                        upload.poll_discard(cx).is_ready()
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                }
            };
            if done {
                self.upload = None;
            }
        }
        loop {
            match &mut self.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    if let Some(data) = take_counted(&mut conn.read, left) {
                        if *left == 0 {
                            self.state = State::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Chunked(decoder) => match decoder.decode(&mut conn.read) {
                    Err(e) => return Poll::Ready(Some(Err(e.into()))),
                    Ok(Some(Chunk::Data(d))) => return Poll::Ready(Some(Ok(Frame::data(d)))),
                    Ok(Some(Chunk::Trailers(t))) => {
                        // Trailers come last.
                        self.state = State::Done;
                        return Poll::Ready(Some(Ok(Frame::trailers(t))));
                    }
                    Ok(Some(Chunk::End)) => {
                        self.state = State::Done;
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                },
                State::UntilClose => {
                    if !conn.read.is_empty() {
                        let len = conn.read.len();
                        let data = take_data(&mut conn.read, len);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            match std::task::ready!(conn.poll_read_more(cx)) {
                Err(e) => return Poll::Ready(Some(Err(Error::Io(e)))),
                Ok(0) if matches!(self.state, State::UntilClose) => {
                    self.state = State::Done;
                    self.reusable = false;
                    return Poll::Ready(None);
                }
                Ok(0) => return Poll::Ready(Some(Err(Error::Incomplete))),
                Ok(_) => {}
            }
        }
    }
}

impl<B> HttpBody for Body<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if let Some(e) = this.deferred.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match this.poll_next(cx) {
            Poll::Ready(Some(Err(e))) if std::mem::take(&mut this.delivered) => {
                // The data that came just before the error is passed on first: the client's
                // side writes what it holds when the body waits, and gives up (without
                // writing) when it fails. A backend that broke off a response after some of
                // it still has that much reach the client, as with nginx.
                this.deferred = Some(e);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.delivered = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                this.delivered = false;
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done) && self.deferred.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// A data chunk copied out of the read buffer at most this long; a longer one is cut from it.
const COPY_AT_MOST: usize = 4096;

/// The first `n` bytes of `read`, as a chunk of the response body. A short chunk is copied: a
/// chunk cut from the buffer keeps the whole buffer (32 KiB) alive for as long as the chunk
/// lives (queued for a slow client, BENCHMARKS.md, "Slow readers"), and the buffer stays whole
/// and unshared for the connection's next response. A long chunk is cut, not copied. (With
/// the response head copied too, `head.rs`, 260 instructions more per small response.)
pub fn take_data(read: &mut BytesMut, n: usize) -> Bytes {
    if n <= COPY_AT_MOST {
        let data = Bytes::copy_from_slice(&read[..n]);
        read.advance(n);
        data
    } else {
        read.split_to(n).freeze()
    }
}

/// The next data of a body with `left` bytes still to come, from `read` (`None`: it holds
/// none yet), `left` counted down.
pub fn take_counted(read: &mut BytesMut, left: &mut u64) -> Option<Bytes> {
    if read.is_empty() {
        return None;
    }
    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(read.len());
    *left -= take as u64;
    Some(take_data(read, take))
}
