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
//! malformed head or a version other than 1.x, `431` for one over the limit, the
//! connection closed after any of them; pipelined requests answered in order; `100 Continue`
//! sent when the body is first read; `Connection: close` honoured both ways; an upgrade
//! (`101`) hands the socket, with any bytes read past the request, to the tunnel.
//!
//! Between requests the connection waits for the next head under the read timeout ([`clock`]:
//! one ticking timer per connection, not one per request), and once it has waited a tick
//! with nothing read, it frees its read buffer and waits on the socket alone. Shutdown closes
//! a connection between requests, and lets the request in progress finish first.

pub mod clock;
pub mod head;
mod respond;
mod wait;
pub mod wire;

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
use head::Head;
use respond::{After, Asked};
use wait::{Next, Waiting};
use wire::{BodyKind, Wire};

pub use super::HttpSettings as Settings;

/// How a busy spell ended.
enum Ended {
    /// The connection is over.
    Over(Result<(), String>),
    /// It waited a whole tick for a head with nothing read: its read buffer is freed.
    Idle,
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
    let mut waiting = Waiting::new(conn.read_timeout);
    let mut stop = pin!(stop(shutdown));
    loop {
        // Boxed: a spell's state (the request being handled, several KiB) is freed with it,
        // and an idle connection's task stays small.
        let spell = spell(settings, shared, conn, &wire, &mut waiting, stop.as_mut());
        match Box::pin(spell).await {
            Ended::Over(result) => return result,
            Ended::Idle => {}
        }
        if !waiting.idle(&wire, stop.as_mut()).await {
            return Ok(());
        }
    }
}

/// Requests served one after the other until the connection closes or goes idle.
async fn spell<I: IdleIo, S: Future<Output = ()>>(
    settings: &Settings,
    shared: &Arc<Shared>,
    conn: &ConnInfo,
    wire: &Arc<Wire<I>>,
    waiting: &mut Waiting,
    mut stop: Pin<&mut S>,
) -> Ended {
    // Counted while the connection holds a read buffer: a wave of connections going idle
    // gives their buffers back to the system (`crate::memory`).
    let _busy = BusySpell::new();
    // The write buffer, reused by the spell's answers.
    let mut out = super::out::Out::default();
    // The last answer's header map, emptied, for the next head.
    let mut spare = http::HeaderMap::new();
    loop {
        let head = match waiting
            .next(wire, settings, &mut spare, stop.as_mut())
            .await
        {
            Next::Head(head) => head,
            Next::Refused(refusal) => {
                tracing::debug!(client = %conn.addr, error = %refusal, "request refused");
                // No body: `respond` frames it `Content-Length: 0`.
                let mut resp = Response::new(ResponseBody::full(bytes::Bytes::new()));
                *resp.status_mut() = refusal.status();
                let asked = Asked::default();
                let limit = settings.response_buffer;
                if respond::write(wire, &mut out, &mut spare, resp, asked, limit)
                    .await
                    .is_ok()
                {
                    close(wire).await;
                }
                return Ended::Over(Ok(()));
            }
            Next::Closed => return Ended::Over(Ok(())),
            Next::Idle => {
                wire.lock().read = BytesMut::new();
                conn.try_timer.release();
                return Ended::Idle;
            }
        };
        waiting.seq = waiting.seq.wrapping_add(1);
        let seq = waiting.seq;
        let Head {
            parts,
            body: kind,
            keep_alive,
            expect_continue,
            upgrade,
            trailers,
        } = head;
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
        // Polled in place (a future of several KiB moved into another would be copied
        // whole, twice per request).
        let mut handled = pin!(proxy::handle(shared, conn, req));
        let answered = poll_fn(|cx| waiting.poll_handle(cx, wire, handled.as_mut(), stop.as_mut()));
        let Some(mut resp) = answered.await else {
            tracing::debug!(client = %conn.addr, "client closed the connection before the answer");
            return Ended::Over(Ok(()));
        };
        // Shutdown came while the request was handled: its answer is the connection's last.
        asked.keep_alive &= !waiting.stopping;
        if seq == settings.max_requests {
            metrics::inc(&shared.metrics.local().connections_at_max_requests);
            close_if_unread(resp.headers_mut(), true);
        }
        let limit = settings.response_buffer;
        let after = match respond::write(wire, &mut out, &mut spare, resp, asked, limit).await {
            Ok(after) => after,
            Err(e) => return Ended::Over(Err(e.to_string())),
        };
        match after {
            After::KeepAlive if wire.lock().body_done() => {}
            After::Switched => {
                let mut state = wire.lock();
                let read = std::mem::take(&mut state.read).freeze();
                if let (Some(io), Some(switch)) = (state.io.take(), switch) {
                    let _ = switch.send(Box::new(Rewind::new(read, io)));
                }
                return Ended::Over(Ok(()));
            }
            // The answer closes the connection, or came before the request's body was read
            // (the unread bytes cannot be taken for the next request).
            After::KeepAlive | After::Close => {
                close(wire).await;
                return Ended::Over(Ok(()));
            }
        }
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
