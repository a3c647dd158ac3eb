//! The connection's task: read frames and act on them ([`super::dispatch`]), poll the
//! streams being handled (in this same task), write what they queued, and keep the
//! connection's timers, in that order on every wake-up, so that everything the frames of one
//! read caused leaves in one write.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Interval;

use super::core::{Core, CONN_WINDOW};
use super::frame::{self, Reason, Settings as Sent, DEFAULT_MAX_FRAME, DEFAULT_WINDOW, PREFACE};
use super::hpack::Decoder;
use super::{Settings, MAX_CONCURRENT_STREAMS};
use crate::proxy::context::ConnInfo;
use crate::server::idle::IdleIo;
use crate::state::Shared;

/// Read this much at a time once a read has filled the buffer: a whole frame of the largest
/// size this server accepts.
const READ_SIZE: usize = DEFAULT_MAX_FRAME as usize + frame::HEAD_LEN;
/// Read this much at first: a connection's requests without bodies fit.
const FIRST_READ: usize = 4096;
/// Frames are read only while less than this waits to be written: a client that sends
/// SETTINGS or PINGs and reads no answer is answered no further.
const READ_WHILE_OUT_BELOW: usize = 64 * 1024;

/// A stream being handled.
pub type StreamTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One HTTP/2 connection, served by its task.
pub struct Conn<'a, I> {
    pub(super) settings: &'a Settings,
    pub(super) shared: &'a Arc<Shared>,
    pub(super) conn: &'a ConnInfo,
    /// `conn`, owned by the streams' handling while the connection is busy.
    pub(super) owned: Option<Arc<ConnInfo>>,
    pub(super) io: I,
    pub(super) read: BytesMut,
    /// The last read filled the buffer: the client sends more than small requests.
    read_full: bool,
    /// The last write waited for the socket (which wakes the task when it can take more).
    write_blocked: bool,
    pub(super) core: Arc<Core>,
    pub(super) decoder: Decoder,
    /// The streams being handled (none while idle).
    pub(super) tasks: Option<FuturesUnordered<StreamTask>>,
    /// The highest stream the client opened.
    pub(super) last_stream: u32,
    /// A header block still coming in CONTINUATION frames.
    pub(super) partial: Option<super::dispatch::Partial>,
    /// The client's preface has been read.
    pub(super) preface: bool,
    /// GOAWAY sent: no new stream is taken, the connection ends once its streams have.
    pub(super) draining: bool,
    /// The client sent GOAWAY: the streams it opened finish, then the connection ends.
    pub(super) client_gone: bool,
    /// A connection error: GOAWAY is queued, the connection ends once it is written.
    pub(super) failed: Option<String>,
    /// Streams opened, requests counted against the connection's limit.
    pub(super) opened: u64,
    /// Streams the client reset before their answer began.
    pub(super) premature: u64,
    /// Streams reset for breaking the protocol.
    pub(super) error_resets: usize,
    ticker: Interval,
    idle_ticks: u128,
    stall_ticks: u128,
    last_moved: u64,
    last_opened: u64,
}

impl<'a, I: IdleIo> Conn<'a, I> {
    /// A connection on `io`, whose first bytes (`first`) were read already.
    pub fn new(
        settings: &'a Settings,
        shared: &'a Arc<Shared>,
        conn: &'a ConnInfo,
        io: I,
        first: &[u8],
    ) -> Self {
        let core = Core::new(settings.response_buffer);
        {
            let mut state = core.lock();
            let ours = Sent {
                max_concurrent_streams: Some(MAX_CONCURRENT_STREAMS),
                max_header_list_size: Some(u32::try_from(settings.max_head).unwrap_or(u32::MAX)),
                enable_connect_protocol: Some(true),
                ..Sent::default()
            };
            state.out.put(|dst| {
                frame::put_settings(&ours, dst);
                frame::put_window_update(0, CONN_WINDOW - DEFAULT_WINDOW, dst);
            });
        }
        let every = super::tick(conn.read_timeout, conn.write_timeout);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Conn {
            settings,
            shared,
            conn,
            owned: None,
            io,
            read: BytesMut::from(first),
            read_full: false,
            write_blocked: false,
            core,
            decoder: Decoder::new(4096),
            tasks: None,
            last_stream: 0,
            partial: None,
            preface: false,
            draining: false,
            client_gone: false,
            failed: None,
            opened: 0,
            premature: 0,
            error_resets: 0,
            ticker,
            idle_ticks: 0,
            stall_ticks: 0,
            last_moved: 0,
            last_opened: 0,
        }
    }

    /// Ends the connection with GOAWAY `reason`, once what is queued is written.
    pub(super) fn fail(&mut self, reason: Reason, why: impl Into<String>) {
        if self.failed.is_none() {
            let last = self.last_stream;
            let mut state = self.core.lock();
            state.out.put(|dst| frame::put_goaway(last, reason, dst));
            self.failed = Some(why.into());
        }
    }

    /// Starts a graceful shutdown: GOAWAY, then the streams already open finish.
    pub(super) fn drain(&mut self) {
        if !self.draining {
            self.draining = true;
            let last = self.last_stream;
            self.core
                .lock()
                .out
                .put(|dst| frame::put_goaway(last, Reason::NO_ERROR, dst));
        }
    }

    /// Serves the connection: `Ready` when it is over.
    pub fn poll(&mut self, cx: &mut Context<'_>, stopping: bool) -> Poll<Result<(), String>> {
        if stopping {
            self.drain();
        }
        {
            let mut state = self.core.lock();
            state.polling = true;
            if !state
                .conn_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.conn_waker = Some(cx.waker().clone());
            }
        }
        let result = self.poll_inner(cx);
        let mut state = self.core.lock();
        state.polling = false;
        if result.is_ready() {
            state.end();
        } else if !state.out.is_empty() && !self.write_blocked {
            // Queued from another thread (a tunnel's task) after the write above.
            cx.waker().wake_by_ref();
        } else if state.streams.is_empty() && state.out.is_empty() && self.read.is_empty() {
            // Idle: no buffer held.
            state.out.release();
            state.streams = Vec::new();
            state.encoder.forget();
            self.read = BytesMut::new();
            if self.tasks.as_ref().is_some_and(|t| t.is_empty()) {
                self.tasks = None;
                self.owned = None;
            }
        }
        result
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        if !self.preface {
            // The first bytes came with the connection.
            self.frames();
        }
        // Frames in.
        while self.failed.is_none()
            && !self.client_gone
            && self.core.lock().out.queued < READ_WHILE_OUT_BELOW
        {
            match self.poll_read(cx) {
                // The client closed the connection: its streams' answers have nowhere to
                // go, and their handling is dropped with the connection.
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(_)) => self.frames(),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.to_string())),
                Poll::Pending => break,
            }
        }
        // Streams handled.
        if let Some(tasks) = &mut self.tasks {
            while let Poll::Ready(Some(())) = tasks.poll_next_unpin(cx) {}
        }
        // Frames out.
        self.write_blocked = false;
        loop {
            let mut state = self.core.lock();
            if state.out.is_empty() {
                break;
            }
            let full = state.out.queued >= state.response_buffer;
            match state.out.poll_write(cx, Pin::new(&mut self.io)) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err("the client stopped taking data".into()))
                }
                Poll::Ready(Ok(_)) => {
                    if full && state.out.queued < state.response_buffer {
                        state.wake_senders();
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.to_string())),
                Poll::Pending => {
                    self.write_blocked = true;
                    break;
                }
            }
        }
        let (flushed, open) = {
            let state = self.core.lock();
            (state.out.is_empty(), state.streams.len())
        };
        if let Some(why) = &self.failed {
            if flushed {
                return Poll::Ready(Err(why.clone()));
            }
        }
        if (self.draining || self.client_gone)
            && open == 0
            && self.tasks.as_ref().is_none_or(|t| t.is_empty())
            && flushed
        {
            return Poll::Ready(Ok(()));
        }
        self.poll_timers(cx)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < 1024 {
            self.read.reserve(if self.read_full {
                READ_SIZE
            } else {
                FIRST_READ
            });
        }
        let room = self.read.capacity() - self.read.len();
        let n = std::task::ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.read
        ))?;
        self.read_full = n == room;
        Poll::Ready(Ok(n))
    }

    /// The idle and stall timers (`super::http2`'s rules, kept as they were).
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        let every = self.ticker.period();
        let ticks = |limit: Duration| limit.as_nanos().div_ceil(every.as_nanos()).max(1);
        let (idle_limit, stall_limit) = (
            ticks(self.conn.read_timeout),
            ticks(self.conn.write_timeout),
        );
        while self.ticker.poll_tick(cx).is_ready() {
            let state = self.core.lock();
            let quiet = state.streams.is_empty() && self.opened == self.last_opened;
            self.last_opened = self.opened;
            self.idle_ticks = if quiet { self.idle_ticks + 1 } else { 0 };
            let waiting = state.streams.iter().any(|s| s.send_waker.is_some())
                && (state.send_window <= 0 || state.streams.iter().any(|s| s.send_window <= 0));
            self.stall_ticks = if waiting && state.moved == self.last_moved {
                self.stall_ticks + 1
            } else {
                0
            };
            self.last_moved = state.moved;
            drop(state);
            if self.stall_ticks >= stall_limit {
                let why = format!(
                    "client granted no flow-control window for {:?}",
                    self.conn.write_timeout
                );
                return Poll::Ready(Err(why));
            }
            if self.idle_ticks >= 2 * idle_limit {
                return Poll::Ready(Err("idle connection did not close after GOAWAY".into()));
            }
            if self.idle_ticks >= idle_limit && !self.draining {
                self.drain();
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }

    /// Checks the client's preface (RFC 9113 section 3.4).
    pub(super) fn take_preface(&mut self) -> bool {
        if self.preface {
            return true;
        }
        let n = self.read.len().min(PREFACE.len());
        if self.read[..n] != PREFACE[..n] {
            self.fail(Reason::PROTOCOL_ERROR, "no HTTP/2 preface");
            return false;
        }
        if n < PREFACE.len() {
            return false;
        }
        let _ = self.read.split_to(PREFACE.len());
        self.preface = true;
        true
    }
}
