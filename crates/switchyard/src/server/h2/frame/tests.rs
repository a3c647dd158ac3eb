use super::*;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Result<Frame, FrameError> {
    let mut raw = BytesMut::new();
    head(kind, flags, stream, payload.len(), &mut raw);
    raw.put_slice(payload);
    let head = Head::parse(raw[..HEAD_LEN].try_into().expect("nine octets"));
    assert_eq!(head.len as usize, payload.len());
    parse(head, raw.freeze().slice(HEAD_LEN..))
}

#[test]
fn a_head_round_trips_without_the_reserved_bit() {
    let mut raw = BytesMut::new();
    Head {
        len: 0x12_3456,
        kind: 7,
        flags: 0x25,
        stream: 0x7fff_fffe,
    }
    .put(&mut raw);
    raw[5] |= 0x80;
    let head = Head::parse(raw[..].try_into().expect("nine octets"));
    assert_eq!(
        head,
        Head {
            len: 0x12_3456,
            kind: 7,
            flags: 0x25,
            stream: 0x7fff_fffe
        }
    );
}

#[test]
fn padding_and_priority_are_taken_off() {
    let data = frame(
        kind::DATA,
        flag::PADDED | flag::END_STREAM,
        1,
        b"\x03abc\0\0\0",
    );
    assert_eq!(
        data,
        Ok(Frame::Data {
            stream: 1,
            data: Bytes::from_static(b"abc"),
            flow: 7,
            end_stream: true
        })
    );
    let headers = frame(
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY | flag::END_HEADERS,
        3,
        b"\x01\x80\0\0\x01\x10\x82\0",
    );
    assert_eq!(
        headers,
        Ok(Frame::Headers {
            stream: 3,
            fragment: Bytes::from_static(b"\x82"),
            end_stream: false,
            end_headers: true
        })
    );
}

#[test]
fn frames_that_break_their_rules_are_errors_of_the_right_scope() {
    let is_conn = |r: Result<Frame, FrameError>, want: Reason| {
        assert!(
            matches!(r, Err(FrameError::Connection(got, _)) if got == want),
            "{r:?}"
        );
    };
    is_conn(frame(kind::DATA, 0, 0, b"x"), Reason::PROTOCOL_ERROR);
    is_conn(
        frame(kind::DATA, flag::PADDED, 1, b"\x01"),
        Reason::PROTOCOL_ERROR,
    );
    is_conn(
        frame(kind::DATA, flag::PADDED, 1, b""),
        Reason::FRAME_SIZE_ERROR,
    );
    is_conn(
        frame(kind::HEADERS, flag::PRIORITY, 1, b"\0\0"),
        Reason::FRAME_SIZE_ERROR,
    );
    is_conn(frame(kind::SETTINGS, 0, 1, b""), Reason::PROTOCOL_ERROR);
    is_conn(
        frame(kind::SETTINGS, flag::ACK, 0, b"\0\x01\0\0\0\0"),
        Reason::FRAME_SIZE_ERROR,
    );
    is_conn(
        frame(kind::SETTINGS, 0, 0, b"\0\x01\0\0"),
        Reason::FRAME_SIZE_ERROR,
    );
    is_conn(
        frame(kind::SETTINGS, 0, 0, b"\0\x02\0\0\0\x02"),
        Reason::PROTOCOL_ERROR,
    );
    is_conn(
        frame(kind::SETTINGS, 0, 0, b"\0\x04\x80\0\0\0"),
        Reason::FLOW_CONTROL_ERROR,
    );
    is_conn(
        frame(kind::SETTINGS, 0, 0, b"\0\x05\0\0\x3f\xff"),
        Reason::PROTOCOL_ERROR,
    );
    is_conn(
        frame(kind::PUSH_PROMISE, flag::END_HEADERS, 1, b"\0\0\0\x02"),
        Reason::PROTOCOL_ERROR,
    );
    is_conn(
        frame(kind::PING, 0, 0, b"1234567"),
        Reason::FRAME_SIZE_ERROR,
    );
    is_conn(frame(kind::PING, 0, 1, b"12345678"), Reason::PROTOCOL_ERROR);
    is_conn(
        frame(kind::GOAWAY, 0, 0, b"\0\0\0\0"),
        Reason::FRAME_SIZE_ERROR,
    );
    is_conn(
        frame(kind::RST_STREAM, 0, 1, b"\0\0\0"),
        Reason::FRAME_SIZE_ERROR,
    );
    is_conn(
        frame(kind::RST_STREAM, 0, 0, b"\0\0\0\x08"),
        Reason::PROTOCOL_ERROR,
    );
    is_conn(
        frame(kind::WINDOW_UPDATE, 0, 0, b"\0\0\0\0"),
        Reason::PROTOCOL_ERROR,
    );
    is_conn(
        frame(kind::WINDOW_UPDATE, 0, 1, b"\0\0\0\0\0"),
        Reason::FRAME_SIZE_ERROR,
    );
    is_conn(frame(kind::CONTINUATION, 0, 0, b""), Reason::PROTOCOL_ERROR);
    // Stream errors: only that stream is reset.
    assert_eq!(
        frame(kind::WINDOW_UPDATE, 0, 5, b"\0\0\0\0"),
        Err(FrameError::Stream(5, Reason::PROTOCOL_ERROR))
    );
    assert_eq!(
        frame(kind::PRIORITY, 0, 5, b"\0\0\0\x05\x10"),
        Err(FrameError::Stream(5, Reason::PROTOCOL_ERROR))
    );
    assert_eq!(
        frame(kind::PRIORITY, 0, 5, b"\0\0\0"),
        Err(FrameError::Stream(5, Reason::FRAME_SIZE_ERROR))
    );
    assert_eq!(frame(0xfa, 0xff, 9, b"whatever"), Ok(Frame::Unknown));
}

#[test]
fn settings_round_trip() {
    let settings = Settings {
        header_table_size: Some(0),
        enable_push: Some(false),
        max_concurrent_streams: Some(100),
        initial_window_size: Some(MAX_WINDOW),
        max_frame_size: Some(MAX_MAX_FRAME),
        max_header_list_size: Some(16_384),
        enable_connect_protocol: Some(true),
    };
    let mut raw = BytesMut::new();
    put_settings(&settings, &mut raw);
    let head = Head::parse(raw[..HEAD_LEN].try_into().expect("nine octets"));
    assert_eq!((head.kind, head.len), (kind::SETTINGS, 42));
    let parsed = parse(head, raw.freeze().slice(HEAD_LEN..));
    assert_eq!(
        parsed,
        Ok(Frame::Settings {
            ack: false,
            settings
        })
    );
}

#[test]
fn a_long_header_block_is_split_into_continuations() {
    let block: Vec<u8> = (0..=9).collect();
    let mut raw = BytesMut::new();
    put_headers(7, &block, true, 4, &mut raw);
    let mut at = 0;
    let mut seen = vec![];
    while at < raw.len() {
        let head = Head::parse(raw[at..at + HEAD_LEN].try_into().expect("nine octets"));
        seen.push((head.kind, head.flags, head.len));
        at += HEAD_LEN + head.len as usize;
    }
    assert_eq!(
        seen,
        [
            (kind::HEADERS, flag::END_STREAM, 4),
            (kind::CONTINUATION, 0, 4),
            (kind::CONTINUATION, flag::END_HEADERS, 2)
        ]
    );
    let mut one = BytesMut::new();
    put_headers(7, b"ab", false, 4, &mut one);
    assert_eq!(one[4], flag::END_HEADERS);
}
