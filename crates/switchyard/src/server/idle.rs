//! An idle HTTP/1.1 connection holds no buffers.
//!
//! hyper keeps a connection's read buffer and write buffer (8 KiB each, more once grown) and
//! its request slot for as long as the connection lives; it has no setting to let them go
//! between requests, so ten thousand idle keep-alive clients cost about 190 MB. nginx frees
//! a keep-alive connection's buffers once its answer is out (`ngx_http_set_keepalive`);
//! switchyard does the same with hyper as it is:
//!
//! - Each connection is served as a series of hyper connections, one per busy spell
//!   ([`super::http1`]). Once every request of the spell is answered and the answer flushed,
//!   and the client has sent nothing more for [`RELEASE_AFTER`], the socket's next read
//!   reports the end of the stream to hyper ([`Gate`]); hyper ends that connection cleanly,
//!   without closing the socket and without a response, and its state is freed.
//! - Not at once: a busy client's next request usually follows within microseconds, and
//!   ending a spell costs about 9,000 instructions (a new hyper connection, its buffers
//!   allocated again), +24% per request when measured on a saturated keep-alive run. The
//!   gate's timer is armed at the spell's first read that finds nothing and never reset per
//!   request: at each tick, the spell ends if it is idle and no request came since the tick
//!   before, else the timer is armed again. So a busy connection costs one timer wake per
//!   tick ([`RELEASE_AFTER`]), an idle one is released between one and two ticks after its
//!   last answer.
//! - The connection then waits for the client's next bytes on the socket alone
//!   ([`IdleIo::poll_readable`]), and starts the next spell with whatever hyper had already
//!   read beyond the last request (a pipelined request) put back in front.
//!
//! - The same timer keeps the request head deadline (the read timeout, against slowloris):
//!   hyper's own (`header_read_timeout`) boxed, armed and cancelled a timer for every
//!   request, about 1,500 instructions of a 27,000-instruction request (BENCHMARKS.md,
//!   "Parsing and timers"). A tick at which the spell waits for a
//!   head, with no request since the tick before, counts towards the deadline; once the ticks
//!   add up to the read timeout, the read fails and hyper closes the connection. Ticks are
//!   [`RELEASE_AFTER`] apart, or half the read timeout when that is shorter, so the head of a
//!   request gets between the read timeout and one tick more.
//!
//! A spell is never ended while a request is in progress ([`Activity`]: the service holds a
//! [`Busy`] guard until its answer's body is dropped), while a request body may still be
//! unread (hyper could be reading or draining it), in a spell where a request asked for an
//! upgrade (hyper would hand the socket to it when its connection ends), before the first request of the spell
//! (so bytes put back are always served), or while the answer is still in hyper's buffer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;

use super::io::ClientIo;

/// How long a spell stays idle (at least) before it ends and its buffers are freed.
pub const RELEASE_AFTER: Duration = Duration::from_millis(250);

/// A client transport whose connection can wait for the client's next bytes without a
/// buffer.
pub trait IdleIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// `Ready` once reading may give something (bytes, the end of the stream, an error).
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl IdleIo for ClientIo {
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }
}

impl IdleIo for TlsStream<ClientIo> {
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (socket, tls) = self.get_mut();
        // Records already decrypted are readable now, whatever the socket says.
        match tls.process_new_packets() {
            Ok(state) if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() => {
                Poll::Ready(Ok(()))
            }
            Ok(_) => socket.poll_read_ready(cx),
            Err(e) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
        }
    }
}

/// What one client connection's current spell is doing, shared by its service, its answers'
/// bodies and its [`Gate`]. One per connection; every access is on the connection's own
/// thread (atomics only because the connection's future must be `Send`).
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests whose answer's body has not been dropped yet.
    busy: AtomicU32,
    /// Requests seen in this spell.
    seen: AtomicU32,
    /// The latest request had a body: hyper may still be reading it.
    body: AtomicBool,
    /// The answers are out of hyper's buffer: a flush succeeded since the last one ended.
    flushed: AtomicBool,
    /// A write or flush had to wait (the client's socket buffer was full).
    flush_waited: AtomicBool,
    /// A request of this spell asked for an upgrade (`Upgrade`, `CONNECT`): hyper keeps it
    /// pending until its connection ends and would hand the socket to it then, so the spell
    /// is not ended here.
    upgrade: AtomicBool,
    /// An answer switched protocols (`101`): the socket is a tunnel's once hyper lets go of it,
    /// and no request head is awaited on it any more.
    switched: AtomicBool,
}

// === impl Activity ===

impl Activity {
    /// A new spell: nothing seen yet.
    pub fn new_spell(&self) {
        self.seen.store(0, Ordering::Relaxed);
        self.flushed.store(true, Ordering::Relaxed);
        self.flush_waited.store(false, Ordering::Relaxed);
        self.upgrade.store(false, Ordering::Relaxed);
        self.switched.store(false, Ordering::Relaxed);
    }

    /// The answer of the latest request switched protocols.
    pub fn switched(&self) {
        self.switched.store(true, Ordering::Relaxed);
    }

    /// A request arrives (`has_body`: its body is not known to be empty; `upgrade`: it asks
    /// for an upgrade); the guard is held until its answer's body is dropped.
    pub fn request(self: &Arc<Self>, has_body: bool, upgrade: bool) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.seen.fetch_add(1, Ordering::Relaxed);
        self.body.store(has_body, Ordering::Relaxed);
        if upgrade {
            self.upgrade.store(true, Ordering::Relaxed);
        }
        Busy(self.clone())
    }

    /// Every answer is done and no protocol was switched: what hyper reads next is a request
    /// head, which the read timeout bounds.
    fn awaits_head(&self) -> bool {
        self.busy.load(Ordering::Relaxed) == 0 && !self.switched.load(Ordering::Relaxed)
    }

    /// The spell may end: see the module doc.
    fn idle(&self) -> bool {
        self.busy.load(Ordering::Relaxed) == 0
            && !self.upgrade.load(Ordering::Relaxed)
            && self.seen.load(Ordering::Relaxed) > 0
            && !self.body.load(Ordering::Relaxed)
            && self.flushed.load(Ordering::Relaxed)
    }
}

/// A request of a spell in progress, until its answer's body is dropped.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        // The answer's last bytes may still be in hyper's buffer.
        self.0.flushed.store(false, Ordering::Relaxed);
    }
}

/// An answer's body, holding its request's [`Busy`] guard.
#[derive(Debug)]
pub struct Answer<B> {
    inner: B,
    _busy: Busy,
}

impl<B> Answer<B> {
    /// `inner`, the answer of the request `busy` stands for.
    pub fn new(inner: B, busy: Busy) -> Self {
        Answer { inner, _busy: busy }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Answer<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The transport as hyper sees it during a spell: once the spell may end ([`Activity`]) and
/// the client has nothing more to read, a read reports the end of the stream, and shutting
/// the stream down then does nothing (the socket stays open for the next spell). A request
/// head that takes longer than the read timeout fails the read.
#[derive(Debug)]
pub struct Gate<I> {
    io: I,
    activity: Arc<Activity>,
    released: bool,
    /// How far apart the spell's ticks are.
    tick: Duration,
    /// How long a request head may take, counted in ticks.
    read_timeout: Duration,
    /// Armed when the spell first waits for a head or goes idle (see the module doc).
    timer: Option<Ticks>,
}

/// The spell's timer and what it saw at its last tick.
#[derive(Debug)]
struct Ticks {
    sleep: Pin<Box<Sleep>>,
    /// Requests seen at the last tick.
    seen: u32,
    /// Consecutive ticks at which a head was awaited and no request had come.
    waited: Duration,
}

/// What the spell's timer says when the client has nothing more to read.
enum Tick {
    /// Not yet: the timer will poll the connection again.
    Wait,
    /// The spell has been idle for a whole tick: end it.
    Release,
    /// The request head is late.
    HeadTimeout,
}

impl<I> Gate<I> {
    /// `io`, for a spell of the connection `activity` describes, whose request heads must
    /// arrive within `read_timeout`.
    pub fn new(io: I, activity: Arc<Activity>, read_timeout: Duration) -> Self {
        Gate {
            io,
            activity,
            released: false,
            tick: RELEASE_AFTER
                .min(read_timeout / 2)
                .max(Duration::from_millis(1)),
            read_timeout,
            timer: None,
        }
    }

    /// True once the spell was ended by the gate rather than by the client or hyper.
    pub fn released(&self) -> bool {
        self.released
    }

    /// The transport back.
    pub fn into_inner(self) -> I {
        self.io
    }

    /// The client has nothing more to read: what the ticks since the last request say. The
    /// timer is armed at the spell's first such read and ticks for as long as the spell
    /// lasts: hyper reads again only when its task wakes, and after an answer's last bytes
    /// nothing but a tick would wake it.
    fn tick(&mut self, cx: &mut Context<'_>) -> Tick {
        let activity = &self.activity;
        if activity.switched.load(Ordering::Relaxed) {
            // A tunnel's now: it has its own idle timeout, and no tick wakes it.
            self.timer = None;
            return Tick::Wait;
        }
        let seen = activity.seen.load(Ordering::Relaxed);
        let tick = self.tick;
        let ticks = match &mut self.timer {
            // Registered with this task's waker: polled again only once it has fired.
            Some(ticks) if !ticks.sleep.is_elapsed() => return Tick::Wait,
            Some(ticks) => ticks,
            None => self.timer.insert(Ticks {
                sleep: Box::pin(tokio::time::sleep(tick)),
                seen,
                waited: Duration::ZERO,
            }),
        };
        while ticks.sleep.as_mut().poll(cx).is_ready() {
            if ticks.seen != seen || !activity.awaits_head() {
                // A request came, or one is still being answered.
                ticks.seen = seen;
                ticks.waited = Duration::ZERO;
            } else if activity.idle() {
                return Tick::Release;
            } else {
                ticks.waited += tick;
                if ticks.waited >= self.read_timeout {
                    return Tick::HeadTimeout;
                }
            }
            ticks.sleep.as_mut().reset(Instant::now() + tick);
        }
        Tick::Wait
    }

    fn waited_if(&self, pending: bool) {
        if pending {
            self.activity.flush_waited.store(true, Ordering::Relaxed);
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Gate<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.released {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Pending => match self.tick(cx) {
                Tick::Wait => Poll::Pending,
                Tick::Release => {
                    // Nothing filled: the end of the stream, as far as this spell goes.
                    self.released = true;
                    Poll::Ready(Ok(()))
                }
                Tick::HeadTimeout => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request head not received within the read timeout",
                ))),
            },
            polled => polled,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Gate<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.waited_if(polled.is_pending());
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.waited_if(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.waited_if(polled.is_pending());
        let activity = &self.activity;
        if matches!(polled, Poll::Ready(Ok(())))
            && activity.busy.load(Ordering::Relaxed) == 0
            && !activity.flushed.swap(true, Ordering::Relaxed)
            // hyper polled its read before this flush finished and will not read again until
            // the client sends: poll once more so that the spell ends.
            && activity.flush_waited.swap(false, Ordering::Relaxed)
        {
            cx.waker().wake_by_ref();
        }
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.released {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
