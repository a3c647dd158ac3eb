//! A client connection's socket and read buffer, shared by the connection's task (which reads
//! heads and writes answers) and its current request's body (which reads itself from the
//! socket when the upstream side polls it, with no channel or task in between).
//!
//! One lock, never held across an await and never contended in practice: the body is polled
//! in the connection's own task (an HTTP/1.1 backend) or in a task on the same worker (an
//! HTTP/2 backend's stream), and the connection's task touches the socket only to write the
//! answer. Both are reads and writes of one socket, which a TLS stream cannot split.

use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio_util::io::poll_read_buf;

use crate::body::{BoxError, ConnBody};
use crate::server::idle::IdleIo;
use crate::upstream::h1::body::take_counted;
use crate::upstream::h1::chunked::{Chunk, Decoder};

/// Bytes read from the client at a time (and the read buffer's size while busy).
pub const READ_SIZE: usize = 8 * 1024;

/// The interim answer to `Expect: 100-continue`, sent when the body is first polled.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A connection shared with its request bodies.
pub struct Wire<I> {
    state: Mutex<State<I>>,
}

impl<I> std::fmt::Debug for Wire<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wire")
    }
}

/// What the lock guards.
pub struct State<I> {
    /// The socket; `None` once a tunnel took it.
    pub io: Option<I>,
    /// Bytes read and not parsed yet. Empty with no capacity while the connection is idle.
    pub read: BytesMut,
    /// The request whose body is being read.
    seq: u32,
    body: BodyState,
    /// Bytes of `100 Continue` still to send before the body is read; 0 once sent, or when
    /// none is owed.
    continue_left: usize,
    /// Largest trailer section accepted.
    max_head: usize,
}

/// Where the current request's body is.
#[derive(Debug)]
enum BodyState {
    /// Read to its end (or there was none).
    Done,
    /// This many bytes still to come.
    Length(u64),
    /// Chunked.
    Chunked(Decoder),
    /// Broken off: the connection cannot be read further.
    Failed,
}

/// How a request's body is delimited, as its head says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    Empty,
    /// This many bytes (more than 0).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

impl<I> Wire<I> {
    /// The connection on `io`, with `read` (bytes already read) in front.
    pub fn new(io: I, read: BytesMut, max_head: usize) -> Self {
        Wire {
            state: Mutex::new(State {
                io: Some(io),
                read,
                seq: 0,
                body: BodyState::Done,
                continue_left: 0,
                max_head,
            }),
        }
    }

    /// The state, locked.
    pub fn lock(&self) -> MutexGuard<'_, State<I>> {
        // A panic while the lock was held cannot leave the socket or the buffer half updated
        // in a way that matters more than the panic itself: go on with them.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<I> State<I> {
    /// Request `seq`'s body starts now, delimited as `kind`; `expect_continue`: the client
    /// waits for `100 Continue` before it sends it.
    pub fn start_body(&mut self, seq: u32, kind: BodyKind, expect_continue: bool) {
        self.seq = seq;
        self.body = match kind {
            BodyKind::Empty => BodyState::Done,
            BodyKind::Length(n) => BodyState::Length(n),
            BodyKind::Chunked => BodyState::Chunked(Decoder::new(self.max_head)),
        };
        self.continue_left = if expect_continue && kind != BodyKind::Empty {
            CONTINUE.len()
        } else {
            0
        };
    }

    /// The answer's head goes out: a `100 Continue` not sent by now never will be (the
    /// client sends its body anyway, or the connection closes after the answer).
    pub fn answering(&mut self) {
        self.continue_left = 0;
    }

    /// True when the current body has been read to its end: the next bytes are a request.
    pub fn body_done(&self) -> bool {
        matches!(self.body, BodyState::Done)
    }
}

impl<I: IdleIo> State<I> {
    /// Reads more of the client's bytes into the read buffer: `Ok(0)` when the client closed.
    pub fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        if self.read.capacity() - self.read.len() < READ_SIZE / 4 {
            self.read.reserve(READ_SIZE);
        }
        poll_read_buf(Pin::new(io), cx, &mut self.read)
    }

    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        while self.continue_left > 0 {
            let Some(io) = self.io.as_mut() else { break };
            let at = CONTINUE.len() - self.continue_left;
            let sent = match tokio::io::AsyncWrite::poll_write(Pin::new(io), cx, &CONTINUE[at..]) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return self.fail(e.into()),
                Poll::Pending => return Poll::Pending,
            };
            self.continue_left -= sent;
        }
        loop {
            match &mut self.body {
                BodyState::Done | BodyState::Failed => return Poll::Ready(None),
                BodyState::Length(left) => {
                    if let Some(data) = take_counted(&mut self.read, left) {
                        if *left == 0 {
                            self.body = BodyState::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                BodyState::Chunked(decoder) => match decoder.decode(&mut self.read) {
                    Ok(Some(Chunk::Data(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Some(Chunk::Trailers(trailers))) => {
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                    }
                    Ok(Some(Chunk::End)) => {
                        self.body = BodyState::Done;
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                    Err(e) => return self.fail(e.into()),
                },
            }
            match self.poll_read_more(cx) {
                Poll::Ready(Ok(0)) => {
                    return self.fail(
                        "the client closed the connection in the middle of a request body".into(),
                    )
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return self.fail(e.into()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn fail(&mut self, e: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.body = BodyState::Failed;
        Poll::Ready(Some(Err(e)))
    }
}

impl<I: IdleIo> ConnBody for Wire<I> {
    fn poll_frame(
        &self,
        seq: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut state = self.lock();
        if state.seq != seq {
            return Poll::Ready(None);
        }
        state.poll_body(cx)
    }

    fn is_end_stream(&self, seq: u32) -> bool {
        let state = self.lock();
        state.seq != seq || matches!(state.body, BodyState::Done | BodyState::Failed)
    }

    fn size_hint(&self, seq: u32) -> SizeHint {
        let state = self.lock();
        match state.body {
            _ if state.seq != seq => SizeHint::with_exact(0),
            BodyState::Done | BodyState::Failed => SizeHint::with_exact(0),
            BodyState::Length(n) => SizeHint::with_exact(n),
            BodyState::Chunked(_) => SizeHint::default(),
        }
    }
}
