//! HTTP/2 on a client connection, served by switchyard's own codec: the frames ([`frame`]),
//! header compression ([`hpack`]), the connection's task ([`conn`], [`dispatch`]), the state
//! its streams share ([`core`]), requests from header blocks ([`request`]), and each stream's
//! handling and answer ([`stream`]).
//!
//! Written by hand rather than served by hyper over the `h2` crate, which held a 16 KiB write
//! buffer and an 8 KiB read buffer for as long as a connection lived (about 39 KiB per idle
//! connection in all) and cost about 23,000 instructions per proxied request around
//! `proxy::handle`'s 15,000, much of it moving large frame and stream structures by value.
//! Here an idle connection holds no buffer, a request's fields reach it without a copy, and
//! its streams run in the connection's own task (as nginx and HAProxy serve a connection's
//! streams from its event handler), so everything one read causes leaves in one write.
//!
//! Limits (each a known attack):
//! - at most [`MAX_CONCURRENT_STREAMS`] streams open at once (more are refused);
//! - a decoded header list at most `max_header_bytes` long (the HTTP/1.1 head limit): a
//!   larger one gets `431`; a block over four times that, in more than 32 CONTINUATION
//!   frames, or decoding to a list sixteen times that (table references expanding a small
//!   block: an HPACK bomb), ends the connection (`ENHANCE_YOUR_CALM`);
//! - streams the client resets before their answer began (rapid reset, CVE-2023-44487):
//!   past [`MAX_PREMATURE_RESETS`], when they are at least half of the connection's
//!   streams, the connection is closed (Envoy's rule); streams it makes us reset for
//!   breaking the protocol: past [`MAX_ERROR_RESETS`];
//! - SETTINGS and PING frames each need an answer: frames are read only while less than
//!   64 KiB waits to be written, so a flood is held back by the client's own reading, and a
//!   client that does not read meets the write timeout of its socket (`ClientIo`);
//! - request data: each stream's window is 64 KiB and the connection's 1 MiB, so what one
//!   connection's requests make us hold is bounded.
//!
//! Timers, checked every [`tick`] by the connection's own task:
//! - idle: a connection without an open stream for the read timeout (also the time a new
//!   connection has to send its first request) is shut down gracefully (GOAWAY), as an idle
//!   HTTP/1.1 connection is closed after it;
//! - stall: when response data waits for the client's flow-control window and no stream's
//!   data moves for the write timeout, the connection is closed.

mod conn;
mod core;
mod dispatch;
pub mod frame;
pub mod hpack;
mod request;
mod stream;

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::idle::IdleIo;
use super::preface::Rewind;
use super::shutdown::stop;
use crate::proxy::context::ConnInfo;
use crate::state::Shared;

/// Streams a client may have open at once on one connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Streams reset by switchyard because the client broke the protocol on them, before the
/// connection is closed.
pub const MAX_ERROR_RESETS: usize = 256;
/// Streams a client may reset before their answer began (when they are at least half of
/// its streams) before its connection is closed.
pub const MAX_PREMATURE_RESETS: u64 = 100;

pub use super::HttpSettings as Settings;

/// How often a connection's timers are checked: a quarter of the shorter timeout.
pub fn tick(read_timeout: Duration, write_timeout: Duration) -> Duration {
    (read_timeout.min(write_timeout) / 4).max(Duration::from_millis(10))
}

/// Serves HTTP/2 on `io` until the connection closes, shutdown drains it, it stays idle for
/// the read timeout or its answers stall for the write timeout.
pub async fn serve<I: IdleIo>(
    settings: &Settings,
    shared: &Arc<Shared>,
    io: Rewind<I>,
    conn: &ConnInfo,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let (first, io) = io.into_parts();
    let mut served = conn::Conn::new(settings, shared, conn, io, &first);
    drop(first);
    let mut stop = pin!(stop(shutdown));
    let mut stopping = false;
    poll_fn(|cx| {
        stopping |= !stopping && stop.as_mut().poll(cx).is_ready();
        served.poll(cx, stopping)
    })
    .await
}
