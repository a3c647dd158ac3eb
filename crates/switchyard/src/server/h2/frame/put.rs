//! The frames a server writes, straight into the connection's output.

use bytes::{BufMut, BytesMut};

use super::{flag, kind, Head, Reason, Settings, HEAD_LEN, MAX_MAX_FRAME};

/// A SETTINGS frame with `settings`.
pub fn put_settings(settings: &Settings, dst: &mut BytesMut) {
    let pairs = [
        (0x1, settings.header_table_size),
        (0x2, settings.enable_push.map(u32::from)),
        (0x3, settings.max_concurrent_streams),
        (0x4, settings.initial_window_size),
        (0x5, settings.max_frame_size),
        (0x6, settings.max_header_list_size),
        (0x8, settings.enable_connect_protocol.map(u32::from)),
    ];
    let count = pairs.iter().filter(|(_, v)| v.is_some()).count();
    head(kind::SETTINGS, 0, 0, 6 * count, dst);
    for (id, value) in pairs {
        if let Some(value) = value {
            dst.put_u16(id);
            dst.put_u32(value);
        }
    }
}

/// The acknowledgement of a client's SETTINGS.
pub fn put_settings_ack(dst: &mut BytesMut) {
    head(kind::SETTINGS, flag::ACK, 0, 0, dst);
}

/// The answer to a PING.
pub fn put_ping_ack(payload: [u8; 8], dst: &mut BytesMut) {
    head(kind::PING, flag::ACK, 0, 8, dst);
    dst.put_slice(&payload);
}

/// GOAWAY: streams above `last_stream` were not and will not be processed.
pub fn put_goaway(last_stream: u32, reason: Reason, dst: &mut BytesMut) {
    head(kind::GOAWAY, 0, 0, 8, dst);
    dst.put_u32(last_stream);
    dst.put_u32(reason.0);
}

/// RST_STREAM.
pub fn put_reset(stream: u32, reason: Reason, dst: &mut BytesMut) {
    head(kind::RST_STREAM, 0, stream, 4, dst);
    dst.put_u32(reason.0);
}

/// WINDOW_UPDATE.
pub fn put_window_update(stream: u32, increment: u32, dst: &mut BytesMut) {
    head(kind::WINDOW_UPDATE, 0, stream, 4, dst);
    dst.put_u32(increment);
}

/// The head of a DATA frame of `len` octets (the data itself follows, unpadded).
pub fn put_data_head(stream: u32, len: usize, end_stream: bool, dst: &mut BytesMut) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    head(kind::DATA, flags, stream, len, dst);
}

/// A header block as HEADERS and as many CONTINUATION frames as `max_frame` needs.
pub fn put_headers(
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
    dst: &mut BytesMut,
) {
    let mut chunks = block.chunks(max_frame.max(1));
    let first = chunks.next().unwrap_or(&[]);
    let mut last = chunks.len() == 0;
    let end = if end_stream { flag::END_STREAM } else { 0 };
    let ends = |last: bool| if last { flag::END_HEADERS } else { 0 };
    head(kind::HEADERS, end | ends(last), stream, first.len(), dst);
    dst.put_slice(first);
    while let Some(chunk) = chunks.next() {
        last = chunks.len() == 0;
        head(kind::CONTINUATION, ends(last), stream, chunk.len(), dst);
        dst.put_slice(chunk);
    }
}

/// A header block written by `encode` straight behind what `dst` holds, as HEADERS (and
/// CONTINUATION frames when it is longer than `max_frame`).
pub fn put_headers_with(
    stream: u32,
    end_stream: bool,
    max_frame: usize,
    dst: &mut BytesMut,
    encode: impl FnOnce(&mut BytesMut),
) {
    let at = dst.len();
    dst.put_slice(&[0; HEAD_LEN]);
    encode(dst);
    let len = dst.len() - at - HEAD_LEN;
    if len <= max_frame {
        let flags = flag::END_HEADERS | if end_stream { flag::END_STREAM } else { 0 };
        let len = u32::try_from(len).unwrap_or(MAX_MAX_FRAME);
        let head = Head {
            len,
            kind: kind::HEADERS,
            flags,
            stream,
        };
        dst[at..at + HEAD_LEN].copy_from_slice(&head.bytes());
        return;
    }
    let block = dst.split_off(at + HEAD_LEN);
    dst.truncate(at);
    put_headers(stream, &block, end_stream, max_frame, dst);
}

/// A frame head of `len` octets.
pub fn head(kind: u8, flags: u8, stream: u32, len: usize, dst: &mut BytesMut) {
    let len = u32::try_from(len).unwrap_or(MAX_MAX_FRAME);
    Head {
        len,
        kind,
        flags,
        stream,
    }
    .put(dst);
}
