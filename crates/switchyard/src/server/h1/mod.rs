//! HTTP/1.1 on a client connection, served by switchyard's own codec: read a request head
//! ([`head`]), hand the request to [`crate::proxy::handle`] with a body that reads itself from
//! the connection when polled ([`wire`]), write the answer ([`respond`]), and again, in the
//! connection's own task.
//!
//! Written by hand rather than served by hyper's server, which cost about 8,000 instructions
//! of a 24,800-instruction proxied request around `proxy::handle` (its dispatcher, the
//! request body's channel, an upgrade slot per request, the head encoded piece by piece) and
//! holds its read and write buffers for as long as a connection lives: an idle connection
//! here holds no buffer at all. Its rules are hyper's where a test pins them: `400` for a
//! malformed head, `431` for one over the limit, `505` for a version other than 1.x, the
//! connection closed after any of them; pipelined requests answered in order; `100 Continue`
//! sent when the body is first read; `Connection: close` honoured both ways; an upgrade
//! (`101`) hands the socket, with any bytes read past the request, to the tunnel.
//!
//! Between requests the connection waits for the next head under the read timeout ([`clock`]:
//! one ticking timer per connection, not one per request), and once it has waited a tick
//! with nothing read, it frees its read buffer and waits on the socket alone. Shutdown closes
//! a connection between requests, and lets the request in progress finish first.

pub mod clock;
mod head;
mod respond;
mod wire;

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use http::{Method, Request, Response, Version};
use tokio::sync::{oneshot, watch};

use super::idle::IdleIo;
use super::preface::Rewind;
use super::shutdown::stop;
use crate::body::{close_if_unread, ClientBody};
use crate::memory::BusySpell;
use crate::metrics;
use crate::proxy;
use crate::proxy::body::ResponseBody;
use crate::proxy::context::ConnInfo;
use crate::proxy::tunnel::ClientUpgrade;
use crate::state::Shared;
use clock::{HeadClock, Tick};
use head::{Head, Refusal};
use respond::{After, Asked};
use wire::{BodyKind, Wire};

/// A listener's HTTP/1.1 settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Largest request head (and trailer section).
    pub max_head: usize,
    /// Most answer bytes queued for a client that does not read.
    pub response_buffer: usize,
    /// Requests served on one connection before it is closed (`0`: no limit).
    pub max_requests: u32,
}

/// What waiting for the next head gave.
enum Next {
    Head(Box<Head>),
    Refused(Refusal),
    /// The client closed, the head was late, or shutdown came between requests.
    Closed,
}

/// Serves HTTP/1.1 on `io` until the connection closes, shutdown drains it, or it stays idle
/// for the read timeout.
pub async fn serve<I: IdleIo>(
    settings: &Settings,
    shared: &Arc<Shared>,
    io: Rewind<I>,
    conn: &ConnInfo,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let (first, io) = io.into_parts();
    let wire = Arc::new(Wire::new(io, BytesMut::from(&first[..]), settings.max_head));
    drop(first);
    let mut waiting = Waiting {
        clock: HeadClock::new(conn.read_timeout),
        stopping: false,
        // Counted while the connection holds a read buffer: a wave of connections going
        // idle gives their buffers back to the system (`crate::memory`).
        busy: Some(BusySpell::new()),
    };
    let mut stop = pin!(stop(shutdown));
    let mut seq = 0u32;
    loop {
        let head = match waiting.next(&wire, seq, settings, stop.as_mut()).await {
            Next::Head(head) => head,
            Next::Refused(refusal) => {
                tracing::debug!(client = %conn.addr, error = %refusal, "request refused");
                // No body: `respond` frames it `Content-Length: 0`.
                let mut resp = Response::new(ResponseBody::full(bytes::Bytes::new()));
                *resp.status_mut() = refusal.status();
                let asked = Asked {
                    head: false,
                    http10: false,
                    keep_alive: false,
                    upgrade: false,
                    trailers: false,
                };
                if respond::write(&wire, resp, asked, settings.response_buffer)
                    .await
                    .is_ok()
                {
                    close(&wire).await;
                }
                return Ok(());
            }
            Next::Closed => return Ok(()),
        };
        seq = seq.wrapping_add(1);
        let Head {
            parts,
            body: kind,
            keep_alive,
            expect_continue,
            upgrade,
            trailers,
        } = *head;
        let mut asked = Asked {
            head: parts.method == Method::HEAD,
            http10: parts.version == Version::HTTP_10,
            keep_alive,
            upgrade,
            trailers,
        };
        wire.lock().start_body(seq, kind, expect_continue);
        let body = match kind {
            BodyKind::Empty => ClientBody::Empty,
            _ => ClientBody::Conn {
                conn: wire.clone(),
                seq,
            },
        };
        let mut req = Request::from_parts(parts, body);
        let switch = upgrade.then(|| {
            let (tx, rx) = oneshot::channel();
            req.extensions_mut().insert(ClientUpgrade::new(rx));
            tx
        });
        let handled = proxy::handle(shared, conn, req);
        let Some(mut resp) = waiting.handle(&wire, handled, stop.as_mut()).await else {
            tracing::debug!(client = %conn.addr, "client closed the connection before the answer");
            return Ok(());
        };
        // Shutdown came while the request was handled: its answer is the connection's last.
        asked.keep_alive &= !waiting.stopping;
        let last = seq == settings.max_requests;
        if last {
            metrics::inc(&shared.metrics.local().connections_at_max_requests);
            close_if_unread(resp.headers_mut(), true);
        }
        let after = respond::write(&wire, resp, asked, settings.response_buffer)
            .await
            .map_err(|e| e.to_string())?;
        match after {
            After::KeepAlive if wire.lock().body_done() => {}
            After::Switched => {
                let mut state = wire.lock();
                let read = std::mem::take(&mut state.read).freeze();
                if let (Some(io), Some(switch)) = (state.io.take(), switch) {
                    let _ = switch.send(Box::new(Rewind::new(read, io)));
                }
                return Ok(());
            }
            // The answer closes the connection, or came before the request's body was read
            // (the unread bytes cannot be taken for the next request).
            After::KeepAlive | After::Close => {
                close(&wire).await;
                return Ok(());
            }
        }
    }
}

/// A connection's state between requests.
struct Waiting {
    clock: HeadClock,
    /// Shutdown has come: no new request is read.
    stopping: bool,
    busy: Option<BusySpell>,
}

impl Waiting {
    /// The next request head of the connection (`seen` requests in), reading as much as it
    /// takes within the read timeout.
    async fn next<I: IdleIo, S: Future<Output = ()>>(
        &mut self,
        wire: &Wire<I>,
        seen: u32,
        settings: &Settings,
        mut stop: Pin<&mut S>,
    ) -> Next {
        loop {
            {
                let mut state = wire.lock();
                if !state.read.is_empty() {
                    match head::parse(&mut state.read, settings.max_head) {
                        Ok(Some(head)) => return Next::Head(Box::new(head)),
                        Ok(None) => {}
                        Err(refusal) => return Next::Refused(refusal),
                    }
                }
            }
            if self.stopping {
                return Next::Closed;
            }
            let read = poll_fn(|cx| {
                if stop.as_mut().poll(cx).is_ready() {
                    self.stopping = true;
                    return Poll::Ready(false);
                }
                let mut state = wire.lock();
                if state.read.capacity() == 0 {
                    // Idle: wait for the client's bytes without a buffer.
                    let Some(io) = state.io.as_mut() else {
                        return Poll::Ready(false);
                    };
                    match io.poll_readable(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(_)) => return Poll::Ready(false),
                        Poll::Pending => {
                            return match self.clock.poll(cx, seen, true) {
                                Tick::Late => Poll::Ready(false),
                                Tick::Wait | Tick::Release => Poll::Pending,
                            };
                        }
                    }
                    self.busy.get_or_insert_with(BusySpell::new);
                }
                match state.poll_read_more(cx) {
                    Poll::Ready(Ok(n)) => Poll::Ready(n > 0),
                    Poll::Ready(Err(_)) => Poll::Ready(false),
                    Poll::Pending => match self.clock.poll(cx, seen, state.read.is_empty()) {
                        Tick::Wait => Poll::Pending,
                        Tick::Release => {
                            state.read = BytesMut::new();
                            self.busy = None;
                            Poll::Pending
                        }
                        Tick::Late => Poll::Ready(false),
                    },
                }
            })
            .await;
            if !read && !self.stopping {
                return Next::Closed;
            }
        }
    }
}

impl Waiting {
    /// Waits for `handled`, the answer to a request, watching the connection meanwhile:
    /// `None` when the client closed it first (the request is dropped, and everything it
    /// held with it). Once the request has been read whole, its client's next bytes (a
    /// pipelined request) are read ahead, up to a buffer's worth; after a short read the
    /// socket is not readable, so watching costs no read call.
    async fn handle<I, F, S>(
        &mut self,
        wire: &Wire<I>,
        handled: F,
        mut stop: Pin<&mut S>,
    ) -> Option<Response<ResponseBody>>
    where
        I: IdleIo,
        F: Future<Output = Response<ResponseBody>>,
        S: Future<Output = ()>,
    {
        let mut handled = pin!(handled);
        poll_fn(|cx| {
            if let Poll::Ready(resp) = handled.as_mut().poll(cx) {
                return Poll::Ready(Some(resp));
            }
            if !self.stopping && stop.as_mut().poll(cx).is_ready() {
                self.stopping = true;
            }
            let mut state = wire.lock();
            while state.body_done() && state.read.len() < wire::READ_SIZE {
                match state.poll_read_more(cx) {
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => break,
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Closes the connection: our side shut down (the client's unread bytes are drained for a
/// while, so that it reads the answer before any reset: `super::io`).
async fn close<I: IdleIo>(wire: &Wire<I>) {
    let _ = poll_fn(|cx| {
        let mut state = wire.lock();
        match state.io.as_mut() {
            Some(io) => tokio::io::AsyncWrite::poll_shutdown(Pin::new(io), cx),
            None => Poll::Ready(Ok(())),
        }
    })
    .await;
}
