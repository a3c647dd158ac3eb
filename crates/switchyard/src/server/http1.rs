//! HTTP/1.1 on a client connection: hyper serves it in busy spells, each request handed to
//! [`crate::proxy::handle`], and between spells the connection waits for the client's next
//! bytes holding no buffer ([`super::idle`] says why and when a spell ends).
//!
//! Upgrades are enabled so that a tunnel (WebSocket) can take the connection over once a
//! backend agrees to switch protocols; the connection's last request (`max_requests`) is
//! answered with `Connection: close`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use super::idle::{Activity, Answer, Gate, IdleIo};
use super::preface::Rewind;
use super::shutdown::{stop, stopped};
use crate::body::close_if_unread;
use crate::metrics;
use crate::proxy;
use crate::proxy::context::ConnInfo;
use crate::state::Shared;

/// How a spell ended.
enum Ended<I> {
    /// The connection is over (the client closed, hyper closed it, an upgrade took it).
    Closed(Result<(), hyper::Error>),
    /// The connection is idle: what hyper had read beyond its last request, and the stream.
    Idle(Bytes, I),
}

/// Serves HTTP/1.1 on `io` until the connection closes, shutdown drains it, or it stays idle
/// for the read timeout; `max_requests` (`0`: no limit) closes it after that many.
pub async fn serve<I: IdleIo>(
    builder: &http1::Builder,
    max_requests: u32,
    shared: &Arc<Shared>,
    mut io: Rewind<I>,
    conn: &ConnInfo,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let activity = Arc::new(Activity::default());
    let served = AtomicU32::new(0);
    let requests = Requests {
        shared,
        conn,
        served: &served,
        max_requests,
    };
    loop {
        activity.new_spell();
        // Boxed: a spell's state (hyper's connection) is freed with it, and the idle
        // connection's own task stays small.
        let spell = Box::pin(spell(builder, &requests, &activity, io, shutdown)).await;
        let (leftover, mut inner) = match spell {
            Ended::Closed(result) => return result.map_err(|e| e.to_string()),
            Ended::Idle(leftover, inner) => (leftover, inner),
        };
        if leftover.is_empty() {
            // The keep-alive idle limit is the read timeout, as for a request's head.
            let readable = std::future::poll_fn(|cx| inner.poll_readable(cx));
            let waited = tokio::select! {
                waited = tokio::time::timeout(conn.read_timeout, readable) => waited,
                // Nothing is in flight: nothing to finish.
                () = stopped(shutdown) => return Ok(()),
            };
            if !matches!(waited, Ok(Ok(()))) {
                return Ok(());
            }
        }
        io = Rewind::new(leftover, inner);
    }
}

/// What every request of a connection needs.
struct Requests<'a> {
    shared: &'a Arc<Shared>,
    conn: &'a ConnInfo,
    served: &'a AtomicU32,
    max_requests: u32,
}

/// One busy spell: a hyper connection on `io` until it ends.
async fn spell<I: IdleIo>(
    builder: &http1::Builder,
    requests: &Requests<'_>,
    activity: &Arc<Activity>,
    io: Rewind<I>,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended<I> {
    // Counted: a wave of spells ending gives their buffers back to the system.
    let _counted = crate::memory::BusySpell::new();
    let service = hyper::service::service_fn(|req: http::Request<Incoming>| {
        let has_body = !hyper::body::Body::is_end_stream(req.body());
        let upgrade = req
            .extensions()
            .get::<hyper::upgrade::OnUpgrade>()
            .is_some();
        let busy = activity.request(has_body, upgrade);
        // Borrowed, not cloned: hyper's HTTP/1.1 connection runs in this task and lives no
        // longer than the spell.
        let (shared, conn) = (requests.shared, requests.conn);
        let last = is_last(requests.served, requests.max_requests);
        async move {
            let mut resp = proxy::handle(shared, conn, req).await;
            if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                activity.switched();
            }
            if last {
                // The connection's last request: hyper closes it after this answer.
                metrics::inc(&shared.metrics.local().connections_at_max_requests);
                close_if_unread(resp.headers_mut(), true);
            }
            Ok::<_, Infallible>(resp.map(|body| Answer::new(body, busy)))
        }
    });
    let gate = Gate::new(io, activity.clone(), requests.conn.read_timeout);
    let mut served = builder
        .serve_connection(TokioIo::new(gate), service)
        .with_upgrades();
    let result = tokio::select! {
        result = &mut served => result,
        () = stop(shutdown) => {
            // Finish the request in flight (if any), then close.
            std::pin::Pin::new(&mut served).graceful_shutdown();
            (&mut served).await
        }
    };
    // `None`: an upgrade took the connection.
    let Some(parts) = served.into_parts() else {
        return Ended::Closed(result);
    };
    let gate = parts.io.into_inner();
    if !gate.released() {
        return Ended::Closed(result);
    }
    // Released by the gate: hyper ended cleanly, or found a pipelined request cut short,
    // which the next spell reads again from the start.
    if let Err(e) = result {
        if !e.is_incomplete_message() {
            return Ended::Closed(Err(e));
        }
    }
    let (prefix, inner) = gate.into_inner().into_parts();
    Ended::Idle(join(parts.read_buf, prefix), inner)
}

/// `first` then `then`, copied only when both hold bytes. An empty result holds no buffer
/// (an empty `Bytes` cut from hyper's read buffer would keep all of it while idle).
fn join(first: Bytes, then: Bytes) -> Bytes {
    match (first.is_empty(), then.is_empty()) {
        (true, true) => return Bytes::new(),
        (false, true) => return first,
        (true, false) => return then,
        (false, false) => {}
    }
    let mut both = BytesMut::with_capacity(first.len() + then.len());
    both.extend_from_slice(&first);
    both.extend_from_slice(&then);
    both.freeze()
}

/// Counts a request of a connection; true for its `max`-th (`0`: no limit), its last.
pub fn is_last(served: &AtomicU32, max: u32) -> bool {
    max != 0 && served.fetch_add(1, Ordering::Relaxed).wrapping_add(1) == max
}
