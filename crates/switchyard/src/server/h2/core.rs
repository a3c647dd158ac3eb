//! What an HTTP/2 connection's parts share, behind one lock: its open streams (their request
//! data not yet read, their flow-control windows), the frames on their way out, the HPACK
//! encoder (whose table must see the blocks in the order they are written), and the
//! connection's own windows.
//!
//! The connection's task owns the socket and the lock's state is only ever taken briefly:
//! by the task (frames read, output written), by a stream's handling (its answer queued, its
//! request body read, both in the same task) and by a tunnel's task (a WebSocket on a
//! stream). Uncontended but for tunnels, so a plain mutex.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};

use super::frame::{self, Reason, DEFAULT_WINDOW, MAX_WINDOW};
use super::hpack::Encoder;
use crate::body::{BoxError, ConnBody};
use crate::server::out::Out;

/// The window switchyard grants each stream for its request data (the protocol's default,
/// so no SETTINGS entry is needed): at most this much of one request waits in memory.
pub const STREAM_WINDOW: u32 = DEFAULT_WINDOW;
/// The window granted to the whole connection (raised from the default by a WINDOW_UPDATE
/// right after the preface): several streams can each fill theirs.
pub const CONN_WINDOW: u32 = 1024 * 1024;

/// One connection's shared state.
#[derive(Debug)]
pub struct Core {
    state: Mutex<State>,
}

/// What the lock guards.
#[derive(Debug)]
pub struct State {
    /// Open streams, few: searched in order.
    pub streams: Vec<Stream>,
    /// Frames on their way out.
    pub out: Out,
    /// The answers' header compression.
    pub encoder: Encoder,
    /// What the client lets us send on the connection.
    pub send_window: i64,
    /// What the client may still send on the connection.
    pub recv_window: i64,
    /// Request data read by the streams' bodies and not yet granted back to the connection.
    pub recv_unacked: u32,
    /// The client's `SETTINGS_INITIAL_WINDOW_SIZE`.
    pub peer_window: u32,
    /// The client's `SETTINGS_MAX_FRAME_SIZE`.
    pub peer_max_frame: usize,
    /// Most bytes queued in `out` before a stream's answer waits.
    pub response_buffer: usize,
    /// The connection's task, to wake when something is queued from outside it.
    pub conn_waker: Option<Waker>,
    /// The connection's task is running: what is queued now goes out before it waits.
    pub polling: bool,
    /// Data frames sent (for the stall timer: moves whenever the client takes data).
    pub moved: u64,
    /// The connection is over: streams stop waiting.
    pub closed: bool,
}

/// One open stream.
#[derive(Debug)]
pub struct Stream {
    /// Its identifier.
    pub id: u32,
    /// Request data received and not yet read.
    pub recv: VecDeque<Bytes>,
    /// The request's trailers, once received.
    pub trailers: Option<HeaderMap>,
    /// The client ended its side (END_STREAM received).
    pub recv_ended: bool,
    /// Octets the client may still send on the stream.
    pub recv_window: i64,
    /// Octets read by the body and not yet granted back.
    pub recv_unacked: u32,
    /// Octets of request data received (read or not).
    pub recv_len: u64,
    /// The request's `content-length`.
    pub expected_len: Option<u64>,
    /// The request body, waiting for data.
    pub body_waker: Option<Waker>,
    /// What the client lets us send on the stream.
    pub send_window: i64,
    /// The answer, waiting for window or buffer room.
    pub send_waker: Option<Waker>,
    /// The stream's handling, to wake when the stream is reset.
    pub task_waker: Option<Waker>,
    /// Our side ended (END_STREAM sent) or was reset.
    pub send_ended: bool,
    /// The stream was reset (by the client, or by us for a protocol error).
    pub reset: Option<Reason>,
    /// The answer's HEADERS went out.
    pub answered: bool,
}

impl Stream {
    /// A stream the client just opened.
    pub fn new(id: u32, peer_window: u32, recv_ended: bool, expected_len: Option<u64>) -> Self {
        Stream {
            id,
            recv: VecDeque::new(),
            trailers: None,
            recv_ended,
            recv_window: i64::from(STREAM_WINDOW),
            recv_unacked: 0,
            recv_len: 0,
            expected_len,
            body_waker: None,
            send_window: i64::from(peer_window),
            send_waker: None,
            task_waker: None,
            send_ended: false,
            reset: None,
            answered: false,
        }
    }

    /// Wakes whatever waits on the stream (it was reset, or the connection ended).
    pub fn wake_all(&mut self) {
        for waker in [
            self.body_waker.take(),
            self.send_waker.take(),
            self.task_waker.take(),
        ]
        .into_iter()
        .flatten()
        {
            waker.wake();
        }
    }
}

impl Core {
    /// A connection's state, answers queued up to `response_buffer` octets.
    pub fn new(response_buffer: usize) -> Arc<Self> {
        Arc::new(Core {
            state: Mutex::new(State {
                streams: Vec::new(),
                out: Out::default(),
                encoder: Encoder::default(),
                send_window: i64::from(DEFAULT_WINDOW),
                recv_window: i64::from(CONN_WINDOW),
                recv_unacked: 0,
                peer_window: DEFAULT_WINDOW,
                peer_max_frame: frame::DEFAULT_MAX_FRAME as usize,
                response_buffer,
                conn_waker: None,
                polling: false,
                moved: 0,
                closed: false,
            }),
        })
    }

    /// The state. A panic while it was held cannot leave it half-changed in a way that
    /// matters more than the connection, which ends.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// The open stream `id`.
    pub fn stream(&mut self, id: u32) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    /// Something was queued: the connection's task writes it (at once when it is running).
    pub fn queued(&mut self) {
        if !self.polling {
            if let Some(w) = &self.conn_waker {
                w.wake_by_ref();
            }
        }
    }

    /// Wakes every answer waiting for window or buffer room (both just grew).
    pub fn wake_senders(&mut self) {
        for s in &mut self.streams {
            if let Some(w) = s.send_waker.take() {
                w.wake();
            }
        }
    }

    /// Ends stream `id` from our side with RST_STREAM `reason` (unless it is over already).
    pub fn reset(&mut self, id: u32, reason: Reason) {
        if let Some(s) = self.stream(id) {
            if s.reset.is_none() {
                s.reset = Some(reason);
                s.wake_all();
            }
        }
        self.out.put(|dst| frame::put_reset(id, reason, dst));
        self.queued();
    }

    /// The stream's handling is over: it leaves the open streams. A stream whose request
    /// is still coming is told to stop (RST_STREAM `NO_ERROR` after a whole answer, RFC 9113
    /// section 8.1; `CANCEL` when the answer was cut short).
    pub fn close(&mut self, id: u32) {
        let Some(at) = self.streams.iter().position(|s| s.id == id) else {
            return;
        };
        let s = self.streams.swap_remove(at);
        // What it had not read is the connection's again.
        let unread: usize = s.recv.iter().map(Bytes::len).sum();
        self.grant_conn(unread as u32);
        let reason = match (s.reset, s.send_ended, s.recv_ended) {
            (Some(_), _, _) => None,
            (None, true, true) => None,
            (None, true, false) => Some(Reason::NO_ERROR),
            (None, false, _) => Some(Reason::CANCEL),
        };
        if let Some(reason) = reason {
            self.out.put(|dst| frame::put_reset(id, reason, dst));
        }
        self.queued();
    }

    /// `n` octets of request data left the connection's window: granted back once half of
    /// the window is used.
    pub fn grant_conn(&mut self, n: u32) {
        self.recv_unacked += n;
        if self.recv_unacked >= CONN_WINDOW / 2 {
            let n = std::mem::take(&mut self.recv_unacked);
            self.recv_window += i64::from(n);
            self.out.put(|dst| frame::put_window_update(0, n, dst));
            self.queued();
        }
    }

    /// The client granted `n` more octets on stream `id` (0: the connection).
    pub fn window_update(&mut self, id: u32, n: u32) -> Result<(), Reason> {
        let window = if id == 0 {
            &mut self.send_window
        } else {
            match self.streams.iter_mut().find(|s| s.id == id) {
                Some(s) => &mut s.send_window,
                None => return Ok(()),
            }
        };
        *window += i64::from(n);
        if *window > i64::from(MAX_WINDOW) {
            return Err(Reason::FLOW_CONTROL_ERROR);
        }
        self.wake_senders();
        Ok(())
    }

    /// The connection ended: everything waiting on it wakes, to find it over.
    pub fn end(&mut self) {
        self.closed = true;
        for s in &mut self.streams {
            s.wake_all();
        }
    }
}

/// A request body, read from its stream's received data.
impl ConnBody for Core {
    fn poll_frame(
        &self,
        id: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut state = self.lock();
        let closed = state.closed;
        let Some(s) = state.stream(id) else {
            return Poll::Ready(Some(Err("the stream is closed".into())));
        };
        if let Some(data) = s.recv.pop_front() {
            let n = data.len() as u32;
            s.recv_unacked += n;
            let grant = (s.recv_unacked >= STREAM_WINDOW / 2 && !s.recv_ended)
                .then(|| std::mem::take(&mut s.recv_unacked));
            if let Some(grant) = grant {
                s.recv_window += i64::from(grant);
                state
                    .out
                    .put(|dst| frame::put_window_update(id, grant, dst));
            }
            state.grant_conn(n);
            state.queued();
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(reason) = s.reset {
            return Poll::Ready(Some(Err(format!(
                "the client reset the stream ({})",
                reason.0
            )
            .into())));
        }
        if s.recv_ended {
            return Poll::Ready(s.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        if closed {
            return Poll::Ready(Some(Err("the connection closed".into())));
        }
        if !s
            .body_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            s.body_waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn is_end_stream(&self, id: u32) -> bool {
        let mut state = self.lock();
        state
            .stream(id)
            .is_none_or(|s| s.recv_ended && s.recv.is_empty() && s.trailers.is_none())
    }

    fn size_hint(&self, id: u32) -> SizeHint {
        let mut state = self.lock();
        match state
            .stream(id)
            .and_then(|s| Some((s.expected_len?, s.recv_len, &s.recv)))
        {
            Some((expected, received, queued)) => {
                let queued: usize = queued.iter().map(Bytes::len).sum();
                SizeHint::with_exact(expected.saturating_sub(received) + queued as u64)
            }
            None => SizeHint::default(),
        }
    }
}
