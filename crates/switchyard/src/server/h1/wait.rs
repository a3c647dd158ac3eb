//! What a client connection waits for between its answers: the next request head (within
//! the read timeout, [`super::clock`]), the client's next bytes once idle, and while a
//! request is handled, the client leaving.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, Response};

use super::clock::{HeadClock, Tick};
use super::head::{self, Head, Refusal};
use super::wire::{Wire, READ_SIZE};
use super::Settings;
use crate::proxy::body::ResponseBody;
use crate::server::idle::IdleIo;

/// What waiting for the next head gave.
#[allow(clippy::large_enum_variant)] // moved once, from here to the spell: cheaper than a box
pub enum Next {
    Head(Head),
    Refused(Refusal),
    /// The client closed, the head was late, or shutdown came between requests.
    Closed,
    /// A whole tick passed with nothing read: the spell ends.
    Idle,
}

/// A connection's state across its spells.
#[derive(Debug)]
pub struct Waiting {
    clock: HeadClock,
    /// Shutdown has come: no new request is read.
    pub stopping: bool,
    /// Requests read so far.
    pub seq: u32,
}

impl Waiting {
    /// A connection whose heads are due within `read_timeout`.
    pub fn new(read_timeout: Duration) -> Self {
        Waiting {
            clock: HeadClock::new(read_timeout),
            stopping: false,
            seq: 0,
        }
    }

    /// The next request head, reading as much as it takes within the read timeout.
    /// `spare`: an empty header map to parse the head into.
    pub async fn next<I: IdleIo, S: Future<Output = ()>>(
        &mut self,
        wire: &Wire<I>,
        settings: &Settings,
        spare: &mut HeaderMap,
        mut stop: Pin<&mut S>,
    ) -> Next {
        loop {
            {
                let mut state = wire.lock();
                if !state.read.is_empty() {
                    match head::parse(&mut state.read, settings.max_head, spare) {
                        Ok(Some(head)) => return Next::Head(head),
                        Ok(None) => {}
                        Err(refusal) => return Next::Refused(refusal),
                    }
                }
            }
            if self.stopping {
                return Next::Closed;
            }
            // `None`: bytes came, parsed at the next turn.
            let read = poll_fn(|cx| {
                if stop.as_mut().poll(cx).is_ready() {
                    self.stopping = true;
                    return Poll::Ready(Some(Next::Closed));
                }
                let mut state = wire.lock();
                match state.poll_read_more(cx) {
                    Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(Some(Next::Closed)),
                    Poll::Ready(Ok(_)) => Poll::Ready(None),
                    Poll::Pending => match self.clock.poll(cx, self.seq, state.read.is_empty()) {
                        Tick::Wait => Poll::Pending,
                        Tick::Release => Poll::Ready(Some(Next::Idle)),
                        Tick::Late => Poll::Ready(Some(Next::Closed)),
                    },
                }
            });
            if let Some(next) = read.await {
                return next;
            }
        }
    }

    /// Waits, holding no buffer, until the client sends something: false when the
    /// connection should close instead (the client closed, the read timeout, shutdown).
    pub async fn idle<I: IdleIo, S: Future<Output = ()>>(
        &mut self,
        wire: &Wire<I>,
        mut stop: Pin<&mut S>,
    ) -> bool {
        poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                self.stopping = true;
                return Poll::Ready(false);
            }
            let mut state = wire.lock();
            let Some(io) = state.io.as_mut() else {
                return Poll::Ready(false);
            };
            match io.poll_readable(cx) {
                Poll::Ready(result) => Poll::Ready(result.is_ok()),
                Poll::Pending => match self.clock.poll(cx, self.seq, true) {
                    Tick::Late => Poll::Ready(false),
                    Tick::Wait | Tick::Release => Poll::Pending,
                },
            }
        })
        .await
    }

    /// Polls `handled`, the answer to a request, watching the connection meanwhile: `None`
    /// when the client closed it first (the request is dropped, and everything it held
    /// with it). Once the request has been read whole, its client's next bytes (a pipelined
    /// request) are read ahead, up to a buffer's worth; after a short read the socket is not
    /// readable, so watching costs no read call.
    pub fn poll_handle<I, F, S>(
        &mut self,
        cx: &mut Context<'_>,
        wire: &Wire<I>,
        handled: Pin<&mut F>,
        stop: Pin<&mut S>,
    ) -> Poll<Option<Response<ResponseBody>>>
    where
        I: IdleIo,
        F: Future<Output = Response<ResponseBody>>,
        S: Future<Output = ()>,
    {
        if let Poll::Ready(resp) = handled.poll(cx) {
            return Poll::Ready(Some(resp));
        }
        if !self.stopping && stop.poll(cx).is_ready() {
            self.stopping = true;
        }
        let mut state = wire.lock();
        while state.body_done() && state.read.len() < READ_SIZE {
            match state.poll_read_more(cx) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => break,
            }
        }
        Poll::Pending
    }
}
