//! One stream's life after its request arrived: handled by [`crate::proxy::handle`] (dropped
//! at once if the client resets the stream), its answer framed (HEADERS, DATA within the
//! client's windows and the connection's response buffer, trailers), or, for a WebSocket on
//! the stream, the stream handed to the tunnel as a byte stream ([`StreamIo`]).

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use super::core::{Core, State};
use super::frame::{self, Reason};
use crate::body::ClientBody;
use crate::proxy;
use crate::proxy::body::ResponseBody;
use crate::proxy::context::ConnInfo;
use crate::state::Shared;
use crate::upstream::h1::conn::Io;

/// A stream's place among its connection's open streams: dropping it closes the stream
/// ([`State::close`]), whichever way its handling ends.
#[derive(Debug)]
pub struct StreamRef {
    core: Arc<Core>,
    id: u32,
}

impl StreamRef {
    /// Stream `id` of `core`, open.
    pub fn new(core: Arc<Core>, id: u32) -> Self {
        StreamRef { core, id }
    }
}

impl Drop for StreamRef {
    fn drop(&mut self) {
        self.core.lock().close(self.id);
    }
}

/// What one stream needs to be handled.
pub struct Handling {
    /// The proxy's state.
    pub shared: Arc<Shared>,
    /// The connection's.
    pub conn: Arc<ConnInfo>,
    /// The request.
    pub req: Request<ClientBody>,
    /// Where the stream goes if it becomes a tunnel (an extended CONNECT).
    pub switch: Option<oneshot::Sender<Box<dyn Io>>>,
}

/// Handles the request on `stream` and sends its answer.
pub async fn run(stream: StreamRef, handling: Handling) {
    let Handling {
        shared,
        conn,
        req,
        switch,
    } = handling;
    let head = req.method() == http::Method::HEAD;
    let handled = pin!(proxy::handle(&shared, &conn, req));
    let Some(resp) = unless_reset(&stream, handled).await else {
        return;
    };
    let _ = respond(stream, resp, head, switch).await;
}

/// `fut`'s output, or `None` once the stream is reset (or the connection gone): the
/// handling is dropped, and with it the upstream attempt.
async fn unless_reset<F: Future>(stream: &StreamRef, mut fut: Pin<&mut F>) -> Option<F::Output> {
    poll_fn(|cx| {
        {
            let mut state = stream.core.lock();
            let closed = state.closed;
            let Some(s) = state.stream(stream.id) else {
                return Poll::Ready(None);
            };
            if s.reset.is_some() || closed {
                return Poll::Ready(None);
            }
            if !s
                .task_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                s.task_waker = Some(cx.waker().clone());
            }
        }
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}

/// The stream is over (reset, or the connection gone).
struct Gone;

async fn respond(
    stream: StreamRef,
    resp: Response<ResponseBody>,
    head: bool,
    switch: Option<oneshot::Sender<Box<dyn Io>>>,
) -> Result<(), Gone> {
    let (mut parts, body) = resp.into_parts();
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        parts.headers.remove(name);
    }
    parts.headers.remove("keep-alive");
    let status = parts.status;
    let no_body = head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let tunnel = switch.filter(|_| status.is_success());
    let end = tunnel.is_none() && (no_body || body.is_end_stream());
    send_head(&stream, Some(status), &parts.headers, end)?;
    if let Some(switch) = tunnel {
        let io = StreamIo {
            stream,
            reading: Bytes::new(),
        };
        let _ = switch.send(Box::new(io));
        return Ok(());
    }
    if end {
        return Ok(());
    }
    let mut body = pin!(body);
    loop {
        let Some(frame) =
            unless_reset(&stream, pin!(poll_fn(|cx| body.as_mut().poll_frame(cx)))).await
        else {
            return Err(Gone);
        };
        match frame {
            None => return send_data(&stream, Bytes::new(), true).await,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed: stream reset");
                stream.core.lock().reset(stream.id, reset_reason(&e));
                return Err(Gone);
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let end = body.is_end_stream();
                    if data.is_empty() && !end {
                        continue;
                    }
                    send_data(&stream, data, end).await?;
                    if end {
                        return Ok(());
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        return send_head(&stream, None, &trailers, true);
                    }
                }
            },
        }
    }
}

/// The reason to reset a stream whose answer failed with `e`: the HTTP/2 reason inside it
/// (a backend's reset relayed, `CANCEL` for a gRPC deadline), else `INTERNAL_ERROR`.
fn reset_reason(e: &(dyn std::error::Error + 'static)) -> Reason {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(reason) = e.downcast_ref::<h2::Error>().and_then(h2::Error::reason) {
            return Reason(reason.into());
        }
        source = e.source();
    }
    Reason::INTERNAL_ERROR
}

/// The answer's HEADERS (`status`), or its trailers (`None`: HEADERS that end the stream).
fn send_head(
    stream: &StreamRef,
    status: Option<StatusCode>,
    headers: &HeaderMap,
    end: bool,
) -> Result<(), Gone> {
    let mut state = stream.core.lock();
    let s = open(&mut state, stream.id)?;
    s.send_ended = end;
    s.answered = true;
    let State {
        encoder,
        out,
        peer_max_frame,
        ..
    } = &mut *state;
    let max = *peer_max_frame;
    out.put(|dst| {
        dst.reserve(frame::HEAD_LEN + 16 + headers.len() * 40);
        frame::put_headers_with(stream.id, end, max, dst, |block| {
            encoder.begin(block);
            if let Some(status) = status {
                encoder.status(status, block);
            }
            for (name, value) in headers {
                encoder.header(name, value, block);
            }
        });
    });
    state.queued();
    Ok(())
}

fn open(state: &mut State, id: u32) -> Result<&mut super::core::Stream, Gone> {
    let closed = state.closed;
    match state.stream(id) {
        Some(s) if s.reset.is_none() && !closed => Ok(s),
        _ => Err(Gone),
    }
}

/// Sends `data` as DATA frames as the windows and the buffer allow, the last one ending the
/// stream when `end`.
async fn send_data(stream: &StreamRef, mut data: Bytes, end: bool) -> Result<(), Gone> {
    loop {
        let room = poll_fn(|cx| poll_room(&stream.core, stream.id, cx, data.is_empty())).await?;
        let mut state = stream.core.lock();
        let n = room.min(data.len());
        let chunk = data.split_to(n);
        let last = end && data.is_empty();
        state.sent(stream.id, n, last);
        state
            .out
            .put(|dst| frame::put_data_head(stream.id, n, last, dst));
        state.out.data(chunk);
        state.queued();
        if data.is_empty() {
            return Ok(());
        }
    }
}

/// How many octets stream `id` may send now: within both windows and the frame size, once
/// the connection's output is under the response buffer. `empty`: only a frame without data
/// is to be sent, which needs no window.
fn poll_room(core: &Core, id: u32, cx: &mut Context<'_>, empty: bool) -> Poll<Result<usize, Gone>> {
    let mut state = core.lock();
    let (conn_window, buffered, limit, max_frame) = (
        state.send_window,
        state.out.queued,
        state.response_buffer,
        state.peer_max_frame,
    );
    let s = open(&mut state, id)?;
    if buffered < limit {
        let window = conn_window.min(s.send_window).min(max_frame as i64);
        if empty || window > 0 {
            return Poll::Ready(Ok(window.max(0) as usize));
        }
    }
    if !s
        .send_waker
        .as_ref()
        .is_some_and(|w| w.will_wake(cx.waker()))
    {
        s.send_waker = Some(cx.waker().clone());
    }
    Poll::Pending
}

impl State {
    /// `n` octets of data went out on stream `id` (the last when `end`).
    fn sent(&mut self, id: u32, n: usize, end: bool) {
        self.send_window -= n as i64;
        self.moved += 1;
        if let Some(s) = self.stream(id) {
            s.send_window -= n as i64;
            s.send_ended |= end;
        }
    }
}

/// A stream as a byte stream, for a tunnel: what the client sends on it is read, what is
/// written goes out as DATA (RFC 8441).
#[derive(Debug)]
pub struct StreamIo {
    stream: StreamRef,
    /// The part of a received frame not read yet.
    reading: Bytes,
}

impl AsyncRead for StreamIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.reading.is_empty() {
            let core = self.stream.core.clone();
            match std::task::ready!(crate::body::ConnBody::poll_frame(
                &*core,
                self.stream.id,
                cx
            )) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.reading = data;
                    }
                }
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.reading.len().min(buf.remaining());
        buf.put_slice(&self.reading[..n]);
        self.reading.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for StreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let id = self.stream.id;
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the stream is closed");
        let room = std::task::ready!(poll_room(&self.stream.core, id, cx, buf.is_empty()))
            .map_err(|_| gone())?;
        let n = room.min(buf.len());
        let mut state = self.stream.core.lock();
        state.sent(id, n, false);
        state.out.put(|dst| frame::put_data_head(id, n, false, dst));
        state.out.copy(&buf[..n]);
        state.queued();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection's task writes what is queued.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let id = self.stream.id;
        let mut state = self.stream.core.lock();
        if let Ok(s) = open(&mut state, id) {
            if !s.send_ended {
                s.send_ended = true;
                state.out.put(|dst| frame::put_data_head(id, 0, true, dst));
                state.queued();
            }
        }
        Poll::Ready(Ok(()))
    }
}
