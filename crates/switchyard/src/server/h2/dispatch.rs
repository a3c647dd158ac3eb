//! What each frame from the client does (RFC 9113 sections 5 and 6): a new stream handed to
//! its handling, request data to its stream's body, windows and settings to the shared
//! state, and every rule a client can break answered with the error of the right scope.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::stream::FuturesUnordered;
use http::{Request, StatusCode};
use tokio::sync::oneshot;

use super::conn::Conn;
use super::core::Stream;
use super::frame::{self, Frame, FrameError, Head, Reason, HEAD_LEN};
use super::request::Fields;
use super::stream::{self, Handling, StreamRef};
use super::{MAX_CONCURRENT_STREAMS, MAX_ERROR_RESETS, MAX_PREMATURE_RESETS};
use crate::body::ClientBody;
use crate::metrics;
use crate::proxy::tunnel::ClientUpgrade;
use crate::server::idle::IdleIo;

/// Most CONTINUATION frames one header block may take (a flood of empty ones is an attack).
const MAX_CONTINUATIONS: usize = 32;
/// A decoded header list this many times the limit ends the connection (a `431` answers one
/// merely over it).
const BOMB: usize = 16;

/// A header block whose HEADERS came and whose END_HEADERS has not.
#[derive(Debug)]
pub struct Partial {
    id: u32,
    block: BytesMut,
    end_stream: bool,
    frames: usize,
}

impl<I: IdleIo> Conn<'_, I> {
    /// Acts on every whole frame read so far.
    pub(super) fn frames(&mut self) {
        while self.failed.is_none() && self.take_preface() {
            let Some(raw) = self.read.get(..HEAD_LEN) else {
                return;
            };
            let head = Head::parse(raw.try_into().unwrap_or(&[0; HEAD_LEN]));
            if head.len > frame::DEFAULT_MAX_FRAME {
                return self.fail(
                    Reason::FRAME_SIZE_ERROR,
                    "frame larger than SETTINGS_MAX_FRAME_SIZE",
                );
            }
            let whole = HEAD_LEN + head.len as usize;
            if self.read.len() < whole {
                self.read.reserve(whole - self.read.len());
                return;
            }
            let payload = self.read.split_to(whole).freeze().slice(HEAD_LEN..);
            if self
                .partial
                .as_ref()
                .is_some_and(|p| head.kind != frame::kind::CONTINUATION || head.stream != p.id)
            {
                return self.fail(Reason::PROTOCOL_ERROR, "frame inside a header block");
            }
            match frame::parse(head, payload) {
                Ok(frame) => self.frame(frame),
                Err(FrameError::Connection(reason, why)) => self.fail(reason, why),
                Err(FrameError::Stream(id, reason)) => self.stream_error(id, reason),
            }
        }
    }

    fn frame(&mut self, frame: Frame) {
        match frame {
            Frame::Data {
                stream,
                data,
                flow,
                end_stream,
            } => self.data(stream, data, flow, end_stream),
            Frame::Headers {
                stream,
                fragment,
                end_stream,
                end_headers,
            } => {
                if end_headers {
                    self.headers(stream, fragment, end_stream);
                } else {
                    self.partial = Some(Partial {
                        id: stream,
                        block: BytesMut::from(&fragment[..]),
                        end_stream,
                        frames: 1,
                    });
                }
            }
            Frame::Continuation {
                stream,
                fragment,
                end_headers,
            } => {
                let Some(mut partial) = self.partial.take() else {
                    return self.fail(Reason::PROTOCOL_ERROR, "CONTINUATION without HEADERS");
                };
                partial.block.extend_from_slice(&fragment);
                partial.frames += 1;
                if partial.frames > MAX_CONTINUATIONS
                    || partial.block.len() > 4 * self.settings.max_head
                {
                    return self.fail(Reason::ENHANCE_YOUR_CALM, "header block too long");
                }
                if end_headers {
                    self.headers(stream, partial.block.freeze(), partial.end_stream);
                } else {
                    self.partial = Some(partial);
                }
            }
            Frame::Priority | Frame::Unknown => {}
            Frame::Reset { stream, reason } => self.client_reset(stream, reason),
            Frame::Settings { ack: true, .. } => {}
            Frame::Settings {
                ack: false,
                settings,
            } => self.settings(settings),
            Frame::Ping {
                ack: false,
                payload,
            } => {
                self.core
                    .lock()
                    .out
                    .put(|dst| frame::put_ping_ack(payload, dst));
            }
            Frame::Ping { ack: true, .. } => {}
            Frame::GoAway { .. } => self.client_gone = true,
            Frame::WindowUpdate { stream, increment } => {
                if stream > self.last_stream {
                    return self.fail(Reason::PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
                }
                let updated = self.core.lock().window_update(stream, increment);
                if let Err(reason) = updated {
                    if stream == 0 {
                        return self.fail(reason, "connection window overflow");
                    }
                    self.core.lock().reset(stream, reason);
                }
            }
        }
    }

    fn data(&mut self, id: u32, data: Bytes, flow: u32, end_stream: bool) {
        if id > self.last_stream {
            return self.fail(Reason::PROTOCOL_ERROR, "DATA on an idle stream");
        }
        let mut state = self.core.lock();
        state.recv_window -= i64::from(flow);
        if state.recv_window < 0 {
            drop(state);
            return self.fail(Reason::FLOW_CONTROL_ERROR, "connection window exceeded");
        }
        let padding = flow - data.len() as u32;
        let Some(s) = state
            .stream(id)
            .filter(|s| !s.recv_ended && s.reset.is_none())
        else {
            // A stream closed or reset already: its data is the connection's again.
            state.grant_conn(flow);
            let half_closed = state.stream(id).is_some_and(|s| s.reset.is_none());
            drop(state);
            if half_closed {
                // The client ended its side already (RFC 9113 section 5.1).
                self.stream_error(id, Reason::STREAM_CLOSED);
            }
            return;
        };
        s.recv_window -= i64::from(flow);
        s.recv_len += data.len() as u64;
        let overflow = s.recv_window < 0;
        let bad_length = s
            .expected_len
            .is_some_and(|n| s.recv_len > n || (end_stream && s.recv_len != n));
        if !data.is_empty() {
            s.recv.push_back(data);
        }
        s.recv_ended = end_stream;
        if let Some(w) = s.body_waker.take() {
            w.wake();
        }
        state.grant_conn(padding);
        if overflow {
            state.reset(id, Reason::FLOW_CONTROL_ERROR);
        } else if bad_length {
            state.reset(id, Reason::PROTOCOL_ERROR);
        }
    }

    fn headers(&mut self, id: u32, block: Bytes, end_stream: bool) {
        let limit = self.settings.max_head;
        let mut fields = Fields::default();
        let decoded = self
            .decoder
            .decode(&block, |field, size| fields.push(field, size, limit));
        if let Err(e) = decoded {
            return self.fail(Reason::COMPRESSION_ERROR, e.to_string());
        }
        if fields.size > BOMB * limit {
            // Table references that expand a small block into a huge list (an HPACK bomb):
            // decoding it cost us, the connection ends.
            return self.fail(Reason::ENHANCE_YOUR_CALM, "header list far over the limit");
        }
        if id <= self.last_stream {
            return self.trailers(id, fields, end_stream);
        }
        if id % 2 == 0 {
            return self.fail(
                Reason::PROTOCOL_ERROR,
                "stream opened with an even identifier",
            );
        }
        self.last_stream = id;
        if self.draining {
            // Past our GOAWAY: never processed (the client may retry it elsewhere).
            return;
        }
        if self.core.lock().streams.len() >= MAX_CONCURRENT_STREAMS as usize {
            return self.core.lock().reset(id, Reason::REFUSED_STREAM);
        }
        if fields.size > limit {
            return self.answer_now(id, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, end_stream);
        }
        let Some((parts, expected)) = fields.request() else {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        };
        if end_stream && expected.is_some_and(|n| n != 0) {
            return self.stream_error(id, Reason::PROTOCOL_ERROR);
        }
        self.open(id, parts, expected, end_stream);
    }

    fn open(
        &mut self,
        id: u32,
        parts: http::request::Parts,
        expected: Option<u64>,
        end_stream: bool,
    ) {
        {
            let mut state = self.core.lock();
            let window = state.peer_window;
            state
                .streams
                .push(Stream::new(id, window, end_stream, expected));
        }
        self.opened += 1;
        if self.opened == u64::from(self.settings.max_requests) {
            metrics::inc(&self.shared.metrics.local().connections_at_max_requests);
            self.drain();
        }
        // An extended CONNECT's data is the tunnel's, not a body (`stream::StreamIo`).
        let tunnel = parts.method == http::Method::CONNECT
            && parts.extensions.get::<hyper::ext::Protocol>().is_some();
        let body = if end_stream || tunnel {
            ClientBody::Empty
        } else {
            ClientBody::Conn {
                conn: self.core.clone(),
                seq: id,
            }
        };
        let mut req = Request::from_parts(parts, body);
        let switch = tunnel.then(|| {
            let (tx, rx) = oneshot::channel();
            req.extensions_mut().insert(ClientUpgrade::new(rx));
            tx
        });
        let handling = Handling {
            shared: self.shared.clone(),
            conn: self
                .owned
                .get_or_insert_with(|| Arc::new(self.conn.clone()))
                .clone(),
            req,
            switch,
        };
        let stream = StreamRef::new(self.core.clone(), id);
        let tasks = self.tasks.get_or_insert_with(FuturesUnordered::new);
        tasks.push(Box::pin(stream::run(stream, handling)));
    }

    fn trailers(&mut self, id: u32, fields: Fields, end_stream: bool) {
        let mut state = self.core.lock();
        let Some(s) = state.stream(id).filter(|s| !s.recv_ended) else {
            drop(state);
            // HEADERS on a stream that is closed (RFC 9113 section 5.1).
            return self.fail(Reason::STREAM_CLOSED, "HEADERS on a closed stream");
        };
        let bad_length = s.expected_len.is_some_and(|n| s.recv_len != n);
        if !end_stream || fields.malformed || !fields.is_trailers() || bad_length {
            return state.reset(id, Reason::PROTOCOL_ERROR);
        }
        s.trailers = Some(fields.headers);
        s.recv_ended = true;
        if let Some(w) = s.body_waker.take() {
            w.wake();
        }
    }

    /// Answers `status` on stream `id` without handling its request.
    fn answer_now(&mut self, id: u32, status: StatusCode, end_stream: bool) {
        let mut state = self.core.lock();
        let mut block = BytesMut::new();
        state.encoder.begin(&mut block);
        state.encoder.status(status, &mut block);
        let max = state.peer_max_frame;
        state
            .out
            .put(|dst| frame::put_headers(id, &block, true, max, dst));
        if !end_stream {
            state
                .out
                .put(|dst| frame::put_reset(id, Reason::NO_ERROR, dst));
        }
    }

    /// Resets stream `id` for breaking the protocol; too many such and the connection ends.
    fn stream_error(&mut self, id: u32, reason: Reason) {
        if id > self.last_stream {
            self.last_stream = id;
        }
        self.core.lock().reset(id, reason);
        self.error_resets += 1;
        if self.error_resets > MAX_ERROR_RESETS {
            self.fail(
                Reason::ENHANCE_YOUR_CALM,
                "too many streams broke the protocol",
            );
        }
    }

    fn client_reset(&mut self, id: u32, reason: Reason) {
        if id > self.last_stream {
            return self.fail(Reason::PROTOCOL_ERROR, "RST_STREAM on an idle stream");
        }
        let mut state = self.core.lock();
        let Some(s) = state.stream(id) else {
            return;
        };
        let premature = !s.answered;
        s.reset = Some(reason);
        s.wake_all();
        drop(state);
        if premature {
            self.premature += 1;
            if self.premature >= MAX_PREMATURE_RESETS && self.premature * 2 >= self.opened {
                let why = format!(
                    "client reset {} streams before their answer",
                    self.premature
                );
                self.fail(Reason::ENHANCE_YOUR_CALM, why);
            }
        }
    }

    fn settings(&mut self, settings: frame::Settings) {
        let mut state = self.core.lock();
        if let Some(size) = settings.header_table_size {
            state.encoder.set_limit(size as usize);
        }
        if let Some(max) = settings.max_frame_size {
            state.peer_max_frame = max as usize;
        }
        if let Some(window) = settings.initial_window_size {
            let delta = i64::from(window) - i64::from(state.peer_window);
            state.peer_window = window;
            let mut overflow = false;
            for s in &mut state.streams {
                s.send_window += delta;
                overflow |= s.send_window > i64::from(frame::MAX_WINDOW);
            }
            if overflow {
                drop(state);
                return self.fail(
                    Reason::FLOW_CONTROL_ERROR,
                    "SETTINGS_INITIAL_WINDOW_SIZE overflows a window",
                );
            }
            state.wake_senders();
        }
        state.out.put(frame::put_settings_ack);
    }
}
