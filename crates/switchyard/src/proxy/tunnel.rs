//! Phases 6 to 10 for a WebSocket upgrade: a tunnel.
//!
//! An upgrade request (one whose `Upgrade: websocket` and `Connection: upgrade` [`super::rewrite`]
//! kept) takes a place among the open tunnels (`[websocket] max_tunnels`, over all listeners;
//! none left: `503`), then goes to a backend through [`crate::upstream::upgrade`], on a
//! connection of its own. When the backend answers `101`, the client gets `101` with the
//! backend's `Upgrade`, `Connection: upgrade` and `Sec-WebSocket-*` headers, and a task of
//! its own copies bytes both ways between the two switched connections ([`splice`]) until
//! both sides have closed, or no byte moved either way for `[websocket] idle_timeout`. Any
//! other answer (a `400`, a `403`) is relayed as a normal response, and the place given back.
//!
//! The tunnel works on switched IOs, whatever carries the client connection, handed over by
//! the server through [`ClientUpgrade`] once the answer is written: the socket itself (plain
//! TCP or TLS) after a `101` on HTTP/1.1, or the HTTP/2 stream (`server::h2`'s `StreamIo`). A
//! WebSocket on an HTTP/2 stream (RFC 8441's extended CONNECT, which [`super::rewrite`] made
//! an HTTP/1.1 upgrade for the backend) goes the same way: the backend's `101` becomes the
//! client's `200` (`rewrite_h2_opened_response`: the backend's `Sec-WebSocket-Protocol` and
//! `-Extensions` relayed, its `Sec-WebSocket-Accept` not), and the stream is the client side
//! of the tunnel; it stays among its connection's open streams while the tunnel holds it. A
//! backend that answers such an upgrade with a `2xx` other than `101` has not switched: the
//! client would take that `2xx` for an open tunnel, so it gets `502` instead
//! ([`upstream::Error::NotSwitched`]); any other answer is relayed.
//!
//! What a tunnel holds is held by guards, for its whole life: its place ([`TunnelSlot`]) and
//! the backend's load slot ([`Switched`], the attempt that answered `101`). A tunnel
//! task lives on the worker that accepted its client: a reload leaves it alone, and a
//! graceful shutdown waits for it (the drain waits for `tunnels_open` to reach zero) and
//! cuts it at the drain deadline, when the worker's runtime is dropped.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{request, Response, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::body::ResponseBody;
use super::error::ProxyError;
use super::rewrite;
use crate::body::BoxError;
use crate::clock::IdleTimer;
use crate::config::WebSocketConfig;
use crate::metrics::{self, TunnelSlot};
use crate::upstream::client::Exchange;
use crate::upstream::h1::conn::Io;
use crate::upstream::upgrade::{self, Switched, Upgrade};
use crate::upstream::{self, UpstreamBody};

/// Bytes buffered per direction of a tunnel.
const BUFFER: usize = 8 * 1024;

/// How an upgrade request was answered.
#[derive(Debug)]
pub enum Opened {
    /// The backend switched: the `101` for the client; the tunnel runs on its own.
    Tunnel(Response<ResponseBody>),
    /// The backend declined: its answer, relayed as any response.
    Declined(Response<UpstreamBody>),
}

/// The client's side of an upgrade, as switchyard's servers offer it (in a request's
/// extensions): the HTTP/1.1 connection once the `101` is sent, with whatever the client had
/// sent after its request put back in front, or the HTTP/2 stream once its `200` is.
#[derive(Clone)]
pub struct ClientUpgrade(Arc<std::sync::Mutex<Option<Switching>>>);

/// Where the switched connection comes from.
type Switching = oneshot::Receiver<Box<dyn Io>>;

impl std::fmt::Debug for ClientUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientUpgrade")
    }
}

impl ClientUpgrade {
    /// An upgrade the connection hands over through `switched`.
    pub fn new(switched: Switching) -> Self {
        ClientUpgrade(Arc::new(std::sync::Mutex::new(Some(switched))))
    }
}

impl ClientUpgrade {
    /// The switched connection, once the `101` (or the HTTP/2 `200`) is sent.
    async fn switched(self) -> Result<Box<dyn Io>, BoxError> {
        let taken = self.0.lock().ok().and_then(|mut slot| slot.take());
        let receiver = taken.ok_or("the upgrade was already taken")?;
        Ok(receiver
            .await
            .map_err(|_| "the connection closed before switching")?)
    }
}

/// Sends the upgrade request `parts` to the exchange's pool and, when the backend switches,
/// starts the tunnel between the client (`client`) and it. `attempts` counts the backends
/// tried.
pub async fn open(
    ex: Exchange<'_>,
    attempts: &mut u32,
    mut parts: request::Parts,
    settings: &WebSocketConfig,
    client: SocketAddr,
) -> Result<Opened, ProxyError> {
    // The HTTP/1.1 server offers the upgrade on every request that asks for one, the HTTP/2
    // server on an extended CONNECT.
    let client_side = parts
        .extensions
        .remove::<ClientUpgrade>()
        .ok_or(ProxyError::BadRequest("this connection cannot be upgraded"))?;
    // A WebSocket on an HTTP/2 stream: answered `200`.
    let h2 = parts.version == Version::HTTP_2;
    let tunnels = ex.metrics.tunnels();
    let slot = tunnels
        .try_reserve(u64::from(settings.max_tunnels))
        .ok_or(ProxyError::TunnelLimit)?;
    let (mut head, backend_side) = match upgrade::send(ex, attempts, parts).await? {
        Upgrade::Switched(head, switched) => (head, switched),
        Upgrade::Declined(resp) if h2 && resp.status().is_success() => {
            let backend = resp.body().backend_label().into();
            let status = resp.status();
            return Err(upstream::Error::NotSwitched { backend, status }.into());
        }
        Upgrade::Declined(resp) => return Ok(Opened::Declined(resp)),
    };
    metrics::inc(&tunnels.opened);
    if h2 {
        rewrite::rewrite_h2_opened_response(&mut head);
    } else {
        rewrite::rewrite_switching_response(&mut head);
    }
    let tunnel = Tunnel {
        client,
        backend: backend_side,
        idle_timeout: settings.idle_timeout,
        slot,
    };
    tokio::spawn(tunnel.run(client_side));
    Ok(Opened::Tunnel(Response::from_parts(
        head,
        ResponseBody::full(Bytes::new()),
    )))
}

/// One tunnel, from the `101` until both sides have closed. What it holds goes back when it
/// is dropped: when it ends, or when its task is cancelled (the drain deadline).
#[derive(Debug)]
pub struct Tunnel {
    /// The client's address, for the log.
    pub client: SocketAddr,
    /// The backend's side, holding the backend's load slot.
    pub backend: Switched,
    /// Longest time with no byte either way.
    pub idle_timeout: Duration,
    /// Its place among the open tunnels.
    pub slot: TunnelSlot,
}

// === impl Tunnel ===

impl Tunnel {
    /// Waits for both switched connections (`client`, the client's, once its `101` is sent),
    /// then copies bytes between them until the tunnel ends.
    async fn run(mut self, client: ClientUpgrade) {
        let (client, backend) = tokio::join!(client.switched(), self.backend.connection());
        let (client, backend) = match (client, backend) {
            (Ok(client), Ok(backend)) => (client, backend),
            (Err(e), _) => {
                tracing::debug!(client = %self.client, backend = %self.backend.backend(), error = %e, "tunnel not opened: the client went away");
                return;
            }
            (_, Err(e)) => {
                tracing::debug!(client = %self.client, backend = %self.backend.backend(), error = %e, "tunnel not opened: the backend went away");
                return;
            }
        };
        let started = Instant::now();
        let spliced = splice(client, TokioIo::new(backend), self.idle_timeout).await;
        if spliced.end == End::Idle {
            metrics::inc(&self.slot.tunnels().idle_timeouts);
        }
        tracing::debug!(
            client = %self.client,
            backend = %self.backend.backend(),
            end = ?spliced.end,
            to_backend = spliced.to_backend,
            to_client = spliced.to_client,
            duration = ?started.elapsed(),
            "tunnel closed"
        );
    }
}

/// Why a tunnel ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Both sides closed.
    Closed,
    /// No byte moved either way for the idle timeout.
    Idle,
    /// A side failed (reset, or a write that stalled past the client's write timeout).
    Failed(io::ErrorKind),
}

/// How a tunnel went.
#[derive(Debug)]
pub struct Spliced {
    /// Why it ended.
    pub end: End,
    /// Bytes copied from the client to the backend.
    pub to_backend: u64,
    /// Bytes copied from the backend to the client.
    pub to_client: u64,
}

/// Copies bytes both ways between `client` and `backend` until both have closed (a side's
/// close is passed on to the other as a shutdown of its write half, and the other direction
/// goes on until it closes too), a side fails, or nothing moved either way for
/// `idle_timeout`.
pub async fn splice<C, B>(mut client: C, mut backend: B, idle_timeout: Duration) -> Spliced
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut up = Pipe::new();
    let mut down = Pipe::new();
    let mut idle = IdleTimer::new(idle_timeout);
    let end = std::future::poll_fn(|cx| {
        let mut moved = false;
        let up_done = up.poll_copy(cx, &mut client, &mut backend, &mut moved)?;
        let down_done = down.poll_copy(cx, &mut backend, &mut client, &mut moved)?;
        if up_done.is_ready() && down_done.is_ready() {
            return Poll::Ready(Ok(End::Closed));
        }
        if moved {
            idle.disarm();
        }
        ready!(idle.poll_expired(cx));
        Poll::Ready(Ok(End::Idle))
    })
    .await
    .unwrap_or_else(|e: io::Error| End::Failed(e.kind()));
    Spliced {
        end,
        to_backend: up.copied,
        to_client: down.copied,
    }
}

/// One direction of a tunnel: what was read and is not yet written.
struct Pipe {
    buf: Box<[u8]>,
    /// `buf[start..end]` waits to be written.
    start: usize,
    end: usize,
    /// The reader has ended.
    read_done: bool,
    /// The writer's write half is shut down: this direction is over.
    done: bool,
    copied: u64,
}

// === impl Pipe ===

impl Pipe {
    fn new() -> Self {
        Pipe {
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            read_done: false,
            done: false,
            copied: 0,
        }
    }

    /// Moves what `from` has to `to` until either would wait (`Pending`, with both woken
    /// when they can go on) or this direction is over (`Ready`: `from` ended and `to` was
    /// shut down). `moved` is set when any byte was read or written.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut R,
        to: &mut W,
        moved: &mut bool,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            if self.start < self.end {
                let n = ready!(Pin::new(&mut *to).poll_write(cx, &self.buf[self.start..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
                self.copied += n as u64;
                *moved = true;
                continue;
            }
            if self.read_done {
                // The peer may be gone already: a failed shutdown ends this direction too.
                let _ = ready!(Pin::new(&mut *to).poll_shutdown(cx));
                self.done = true;
                continue;
            }
            let mut buf = ReadBuf::new(&mut self.buf);
            match Pin::new(&mut *from).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    (self.start, self.end) = (0, n);
                    if n == 0 {
                        self.read_done = true;
                    } else {
                        *moved = true;
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Nothing more to read for now: what was written must not wait in a buffer.
                    ready!(Pin::new(&mut *to).poll_flush(cx))?;
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
