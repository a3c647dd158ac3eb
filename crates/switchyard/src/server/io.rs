//! The client connection's socket, with the write timeout and a lingering close.
//!
//! - Write timeout: a write that cannot make progress for `--write-timeout` (the client
//!   stopped reading) fails, which closes the connection. The timer ([`IdleTimer`]) is armed
//!   only when the socket buffer is full, so a client that reads costs nothing here.
//! - Lingering close (nginx's `lingering_close`): closing a socket that still has unread
//!   request bytes makes the kernel reset the connection, and a client still uploading may
//!   then lose the answer it was sent (a `413`, an error) before reading it. So when the
//!   connection is shut down before the client closed its side, switchyard sends its FIN and
//!   reads and discards what keeps coming, until the client closes too or [`LINGER`] passes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::clock::IdleTimer;

/// Longest a connection shut down before its client closed keeps reading.
pub const LINGER: Duration = Duration::from_secs(2);

/// A client connection's stream.
#[derive(Debug)]
pub struct ClientIo {
    stream: TcpStream,
    stall: IdleTimer,
    /// Set once our FIN is sent; while the client's bytes are still being drained, the
    /// deadline and the scratch buffer.
    closing: Option<Option<Box<Linger>>>,
}

#[derive(Debug)]
struct Linger {
    deadline: Pin<Box<Sleep>>,
    scratch: [u8; 4096],
}

impl ClientIo {
    /// Wraps `stream`.
    pub fn new(stream: TcpStream, write_timeout: Duration) -> Self {
        ClientIo {
            stream,
            stall: IdleTimer::new(write_timeout),
            closing: None,
        }
    }

    /// `Ready` once the socket has something to read (bytes, the end of the stream, an
    /// error): how an idle connection waits without a buffer ([`super::idle`]).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_read_ready(cx)
    }

    /// False once the client has closed its side (or the socket failed): only then can it
    /// send nothing more. Asked of the socket itself; bytes waiting, or none yet, both mean
    /// it may still be sending (an upload's next bytes may be on their way).
    fn client_may_send(&self) -> bool {
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(&self.stream).peek(&mut byte) {
            Ok(n) => n > 0,
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        }
    }

    fn on_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.stall.disarm();
                Poll::Ready(r)
            }
            Poll::Pending => match self.stall.poll_expired(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client did not read the response within the write timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.on_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.on_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.closing.is_none() {
            std::task::ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            let linger = this.client_may_send().then(|| {
                Box::new(Linger {
                    deadline: Box::pin(tokio::time::sleep(LINGER)),
                    scratch: [0; 4096],
                })
            });
            this.closing = Some(linger);
        }
        if let Some(Some(linger)) = &mut this.closing {
            loop {
                if linger.deadline.as_mut().poll(cx).is_ready() {
                    break;
                }
                let mut buf = ReadBuf::new(&mut linger.scratch);
                match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(_)) => break,
                    Poll::Pending => return Poll::Pending,
                }
            }
            this.closing = Some(None);
        }
        Poll::Ready(Ok(()))
    }
}
