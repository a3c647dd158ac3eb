//! The socket under an upstream connection, so that an early answer is never lost.
//!
//! A backend may answer before it has read the whole request body (a `413` to a large
//! upload) and close at once. The next body write then fails (broken pipe, reset) while its
//! answer sits unread in our receive buffer, and hyper's client, which reads and writes in
//! turn, reports the write error to the request instead of the response. When the response
//! head has arrived, it is the answer: so a write that fails this way while unread bytes are
//! waiting is held back (the write stays pending) until the read side has reached its end
//! (or [`EARLY_ANSWER_WAIT`] passed), and only then reported. hyper meanwhile reads and
//! delivers the response. hyper offers no way to get a response back once its connection has
//! failed, so this sits under it, as an IO adapter.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Longest a failed write is held back while the response is read.
pub const EARLY_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// A backend connection's stream.
#[derive(Debug)]
pub struct UpstreamIo {
    stream: TcpStream,
    /// A write error held back while an answer is read.
    held: Option<Held>,
    /// The read side has ended (end of stream or error).
    read_done: bool,
}

#[derive(Debug)]
struct Held {
    error: io::Error,
    writer: Option<Waker>,
    deadline: Pin<Box<Sleep>>,
}

// === impl UpstreamIo ===

impl UpstreamIo {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream) -> Self {
        UpstreamIo {
            stream,
            held: None,
            read_done: false,
        }
    }

    /// What a write returns: `polled` as it is, unless it failed because the backend went
    /// away while its answer is still to be read.
    fn on_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(Err(e))
                if self.held.is_none() && peer_gone(&e) && self.answer_waiting() =>
            {
                self.held = Some(Held {
                    error: e,
                    writer: None,
                    deadline: Box::pin(tokio::time::sleep(EARLY_ANSWER_WAIT)),
                });
                self.poll_held(cx)
            }
            other => other,
        }
    }

    /// True when bytes are waiting to be read (and the read side has not ended). Asks the
    /// socket itself: tokio's readiness may not have seen them yet.
    fn answer_waiting(&self) -> bool {
        if self.read_done {
            return false;
        }
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        matches!(socket2::SockRef::from(&self.stream).peek(&mut byte), Ok(n) if n > 0)
    }

    /// The held error, once the read side is done or the wait is over; pending until then.
    fn poll_held<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let Some(held) = &mut self.held else {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        };
        if self.read_done || held.deadline.as_mut().poll(cx).is_ready() {
            let error = std::mem::replace(&mut held.error, io::ErrorKind::BrokenPipe.into());
            return Poll::Ready(Err(error));
        }
        held.writer = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The backend closed or reset the connection.
fn peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let ended = match &polled {
            Poll::Ready(Ok(())) => buf.filled().len() == before && buf.remaining() > 0,
            Poll::Ready(Err(_)) => true,
            Poll::Pending => false,
        };
        if ended {
            self.read_done = true;
            if let Some(writer) = self.held.as_mut().and_then(|h| h.writer.take()) {
                writer.wake();
            }
        }
        polled
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.held.is_some() {
            return self.poll_held(cx);
        }
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.on_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.held.is_some() {
            return self.poll_held(cx);
        }
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.on_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.held.is_some() {
            return self.poll_held(cx);
        }
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        self.on_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
