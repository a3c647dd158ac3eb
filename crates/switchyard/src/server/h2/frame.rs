//! HTTP/2 frames (RFC 9113 section 4 and 6): the 9-octet head, each frame type a client may
//! send parsed and checked against its section's rules, and the frames a server sends
//! written straight into the connection's output.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// What a client sends first (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The length of a frame head.
pub const HEAD_LEN: usize = 9;
/// `SETTINGS_MAX_FRAME_SIZE` until a peer says otherwise, and the least it may say.
pub const DEFAULT_MAX_FRAME: u32 = 16_384;
/// The largest `SETTINGS_MAX_FRAME_SIZE` a peer may say.
pub const MAX_MAX_FRAME: u32 = (1 << 24) - 1;
/// The largest flow-control window (RFC 9113 section 6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// Every window's size until SETTINGS say otherwise.
pub const DEFAULT_WINDOW: u32 = 65_535;

/// Frame types.
pub mod kind {
    #![allow(missing_docs)]
    pub const DATA: u8 = 0;
    pub const HEADERS: u8 = 1;
    pub const PRIORITY: u8 = 2;
    pub const RST_STREAM: u8 = 3;
    pub const SETTINGS: u8 = 4;
    pub const PUSH_PROMISE: u8 = 5;
    pub const PING: u8 = 6;
    pub const GOAWAY: u8 = 7;
    pub const WINDOW_UPDATE: u8 = 8;
    pub const CONTINUATION: u8 = 9;
}

/// Frame flags.
pub mod flag {
    #![allow(missing_docs)]
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// An error code (RFC 9113 section 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason(pub u32);

#[allow(missing_docs)]
impl Reason {
    pub const NO_ERROR: Reason = Reason(0x0);
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    pub const CANCEL: Reason = Reason(0x8);
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    pub const CONNECT_ERROR: Reason = Reason(0xa);
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
    pub const HTTP_1_1_REQUIRED: Reason = Reason(0xd);
}

/// A frame head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Payload length.
    pub len: u32,
    /// Frame type ([`kind`]).
    pub kind: u8,
    /// Flags ([`flag`]).
    pub flags: u8,
    /// Stream identifier (the reserved bit dropped).
    pub stream: u32,
}

impl Head {
    /// Reads a head.
    pub fn parse(src: &[u8; HEAD_LEN]) -> Head {
        Head {
            len: u32::from_be_bytes([0, src[0], src[1], src[2]]),
            kind: src[3],
            flags: src[4],
            stream: u32::from_be_bytes([src[5], src[6], src[7], src[8]]) & MAX_WINDOW,
        }
    }

    /// Writes it.
    pub fn put(self, dst: &mut BytesMut) {
        dst.put_slice(&self.bytes());
    }

    /// Its nine octets.
    pub fn bytes(self) -> [u8; HEAD_LEN] {
        let [_, l0, l1, l2] = self.len.to_be_bytes();
        let [s0, s1, s2, s3] = self.stream.to_be_bytes();
        [l0, l1, l2, self.kind, self.flags, s0, s1, s2, s3]
    }
}

/// A stream's priority, as HEADERS or PRIORITY carry it. Priorities are deprecated (RFC 9113
/// section 5.3.2) and ignored here but for the one rule that still holds: no stream depends
/// on itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    /// The stream it depends on.
    pub depends_on: u32,
}

/// The settings a SETTINGS frame carries (RFC 9113 section 6.5.2); unknown ones are ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Settings {
    pub header_table_size: Option<u32>,
    pub enable_push: Option<bool>,
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: Option<u32>,
    pub max_frame_size: Option<u32>,
    pub max_header_list_size: Option<u32>,
    pub enable_connect_protocol: Option<bool>,
}

/// A frame from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Frame {
    /// DATA: `data` without padding; `flow` is the whole payload, which flow control counts.
    Data {
        stream: u32,
        data: Bytes,
        flow: u32,
        end_stream: bool,
    },
    /// HEADERS: the first fragment of a header block.
    Headers {
        stream: u32,
        fragment: Bytes,
        end_stream: bool,
        end_headers: bool,
    },
    /// PRIORITY (checked, then ignored).
    Priority,
    /// RST_STREAM.
    Reset { stream: u32, reason: Reason },
    /// SETTINGS.
    Settings { ack: bool, settings: Settings },
    /// PING.
    Ping { ack: bool, payload: [u8; 8] },
    /// GOAWAY.
    GoAway { last_stream: u32, reason: Reason },
    /// WINDOW_UPDATE.
    WindowUpdate { stream: u32, increment: u32 },
    /// CONTINUATION: a further fragment of a header block.
    Continuation {
        stream: u32,
        fragment: Bytes,
        end_headers: bool,
    },
    /// A frame type this server does not know: ignored (RFC 9113 section 4.1).
    Unknown,
}

/// A frame that breaks its section's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The connection ends with GOAWAY and this code.
    Connection(Reason, &'static str),
    /// Only this stream ends, with RST_STREAM and this code.
    Stream(u32, Reason),
}

fn conn(reason: Reason, why: &'static str) -> FrameError {
    FrameError::Connection(reason, why)
}

/// Parses a frame of a client's from its head and payload (`payload.len() == head.len`).
pub fn parse(head: Head, mut payload: Bytes) -> Result<Frame, FrameError> {
    use FrameError::Stream;
    let (flags, stream) = (head.flags, head.stream);
    let on_stream = |what| {
        if stream == 0 {
            Err(conn(Reason::PROTOCOL_ERROR, what))
        } else {
            Ok(())
        }
    };
    let on_conn = |what| {
        if stream != 0 {
            Err(conn(Reason::PROTOCOL_ERROR, what))
        } else {
            Ok(())
        }
    };
    let len = payload.len();
    Ok(match head.kind {
        kind::DATA => {
            on_stream("DATA on stream 0")?;
            let data = unpad(flags, &mut payload)?;
            Frame::Data {
                stream,
                data,
                flow: head.len,
                end_stream: flags & flag::END_STREAM != 0,
            }
        }
        kind::HEADERS => {
            on_stream("HEADERS on stream 0")?;
            let mut fragment = unpad(flags, &mut payload)?;
            if flags & flag::PRIORITY != 0 {
                if fragment.len() < 5 {
                    return Err(conn(
                        Reason::FRAME_SIZE_ERROR,
                        "HEADERS too short for its priority",
                    ));
                }
                let priority = Priority {
                    depends_on: fragment.get_u32() & MAX_WINDOW,
                };
                fragment.advance(1);
                if priority.depends_on == stream {
                    return Err(Stream(stream, Reason::PROTOCOL_ERROR));
                }
            }
            Frame::Headers {
                stream,
                fragment,
                end_stream: flags & flag::END_STREAM != 0,
                end_headers: flags & flag::END_HEADERS != 0,
            }
        }
        kind::PRIORITY => {
            on_stream("PRIORITY on stream 0")?;
            if len != 5 {
                return Err(Stream(stream, Reason::FRAME_SIZE_ERROR));
            }
            if payload.get_u32() & MAX_WINDOW == stream {
                return Err(Stream(stream, Reason::PROTOCOL_ERROR));
            }
            Frame::Priority
        }
        kind::RST_STREAM => {
            on_stream("RST_STREAM on stream 0")?;
            if len != 4 {
                return Err(conn(Reason::FRAME_SIZE_ERROR, "RST_STREAM not 4 octets"));
            }
            Frame::Reset {
                stream,
                reason: Reason(payload.get_u32()),
            }
        }
        kind::SETTINGS => {
            on_conn("SETTINGS on a stream")?;
            let ack = flags & flag::ACK != 0;
            if (ack && len != 0) || len % 6 != 0 {
                return Err(conn(Reason::FRAME_SIZE_ERROR, "SETTINGS of a bad length"));
            }
            Frame::Settings {
                ack,
                settings: settings(payload)?,
            }
        }
        kind::PUSH_PROMISE => {
            return Err(conn(Reason::PROTOCOL_ERROR, "PUSH_PROMISE from a client"))
        }
        kind::PING => {
            on_conn("PING on a stream")?;
            let payload: [u8; 8] = payload[..]
                .try_into()
                .map_err(|_| conn(Reason::FRAME_SIZE_ERROR, "PING not 8 octets"))?;
            Frame::Ping {
                ack: flags & flag::ACK != 0,
                payload,
            }
        }
        kind::GOAWAY => {
            on_conn("GOAWAY on a stream")?;
            if len < 8 {
                return Err(conn(
                    Reason::FRAME_SIZE_ERROR,
                    "GOAWAY shorter than 8 octets",
                ));
            }
            Frame::GoAway {
                last_stream: payload.get_u32() & MAX_WINDOW,
                reason: Reason(payload.get_u32()),
            }
        }
        kind::WINDOW_UPDATE => {
            if len != 4 {
                return Err(conn(Reason::FRAME_SIZE_ERROR, "WINDOW_UPDATE not 4 octets"));
            }
            let increment = payload.get_u32() & MAX_WINDOW;
            if increment == 0 {
                return Err(match stream {
                    0 => conn(Reason::PROTOCOL_ERROR, "WINDOW_UPDATE of 0"),
                    _ => Stream(stream, Reason::PROTOCOL_ERROR),
                });
            }
            Frame::WindowUpdate { stream, increment }
        }
        kind::CONTINUATION => {
            on_stream("CONTINUATION on stream 0")?;
            Frame::Continuation {
                stream,
                fragment: payload,
                end_headers: flags & flag::END_HEADERS != 0,
            }
        }
        _ => Frame::Unknown,
    })
}

/// The payload of a DATA or HEADERS frame without its padding.
fn unpad(flags: u8, payload: &mut Bytes) -> Result<Bytes, FrameError> {
    if flags & flag::PADDED == 0 {
        return Ok(std::mem::take(payload));
    }
    let pad = usize::from(
        *payload
            .first()
            .ok_or(conn(Reason::FRAME_SIZE_ERROR, "no pad length"))?,
    );
    if pad >= payload.len() {
        return Err(conn(
            Reason::PROTOCOL_ERROR,
            "padding longer than the frame",
        ));
    }
    Ok(payload.slice(1..payload.len() - pad))
}

fn settings(mut payload: Bytes) -> Result<Settings, FrameError> {
    let mut s = Settings::default();
    let flag = |value: u32, what| match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(conn(Reason::PROTOCOL_ERROR, what)),
    };
    while payload.has_remaining() {
        let (id, value) = (payload.get_u16(), payload.get_u32());
        match id {
            0x1 => s.header_table_size = Some(value),
            0x2 => s.enable_push = Some(flag(value, "SETTINGS_ENABLE_PUSH not 0 or 1")?),
            0x3 => s.max_concurrent_streams = Some(value),
            0x4 if value > MAX_WINDOW => {
                return Err(conn(
                    Reason::FLOW_CONTROL_ERROR,
                    "SETTINGS_INITIAL_WINDOW_SIZE too large",
                ));
            }
            0x4 => s.initial_window_size = Some(value),
            0x5 if !(DEFAULT_MAX_FRAME..=MAX_MAX_FRAME).contains(&value) => {
                return Err(conn(
                    Reason::PROTOCOL_ERROR,
                    "SETTINGS_MAX_FRAME_SIZE out of range",
                ));
            }
            0x5 => s.max_frame_size = Some(value),
            0x6 => s.max_header_list_size = Some(value),
            0x8 => {
                s.enable_connect_protocol =
                    Some(flag(value, "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1")?)
            }
            _ => {}
        }
    }
    Ok(s)
}

mod put;
pub use put::*;

#[cfg(test)]
#[path = "frame/tests.rs"]
mod tests;
