use super::*;

fn parse_all(raw: &str, head_request: bool) -> Result<Option<Head>, HeadError> {
    let mut buf = BytesMut::from(raw.as_bytes());
    parse(&mut buf, 8192, head_request)
}

fn framed(raw: &str) -> (Framing, bool) {
    let head = parse_all(raw, false).unwrap().unwrap();
    (head.framing, head.reusable)
}

#[test]
fn a_head_is_taken_from_the_buffer_and_its_values_kept() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhelloNEXT"[..],
    );
    let head = parse(&mut buf, 8192, false).unwrap().unwrap();
    assert_eq!(&buf[..], b"helloNEXT");
    assert_eq!(head.parts.status, StatusCode::OK);
    assert_eq!(head.parts.version, Version::HTTP_11);
    let xa: Vec<_> = head.parts.headers.get_all("x-a").iter().collect();
    assert_eq!(xa, ["1", "2"]);
    assert_eq!(head.framing, Framing::Length(5));
    assert!(head.reusable);
}

/// Every common name is found in any case, and a name near one (same length,
/// another spelling) is not taken for it.
#[test]
fn common_names_are_found_in_any_case_and_only_they() {
    let common = [
        "date",
        "etag",
        "vary",
        "server",
        "expires",
        "location",
        "connection",
        "set-cookie",
        "content-type",
        "cache-control",
        "last-modified",
        "accept-ranges",
        "content-length",
        "content-encoding",
        "transfer-encoding",
    ];
    for lower in common {
        let known = HeaderName::from_static(lower);
        let upper = lower.to_ascii_uppercase();
        assert_eq!(
            common_name(upper.as_bytes()),
            Some(known.clone()),
            "{upper}"
        );
        assert_eq!(common_name(lower.as_bytes()), Some(known), "{lower}");
    }
    let near = [
        "x-served-by",
        "Content-Typf",
        "Content_Type",
        "Content^Type",
        "Dat",
        "Datf",
        "Date1",
        "",
        "Transfer-Encodings",
        "Transfer-Encodinf",
        "Server~",
        "Serve^",
    ];
    for other in near {
        assert_eq!(common_name(other.as_bytes()), None, "{other}");
    }
    let raw = "HTTP/1.1 200 OK\r\nServer: nginx\r\nCONTENT-TYPE: text/plain\r\n\
               X-Served-By: 1\r\nContent-Length: 0\r\n\r\n";
    let head = parse_all(raw, false).unwrap().unwrap();
    let names: Vec<&str> = head.parts.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        ["server", "content-type", "x-served-by", "content-length"]
    );
}

/// The head's values share a copy of the head, never the read buffer: a header an HTTP/2
/// client's HPACK table keeps would keep the whole buffer alive with it.
#[test]
fn header_values_do_not_share_the_read_buffer() {
    let mut buf = BytesMut::with_capacity(32 * 1024);
    buf.extend_from_slice(b"HTTP/1.1 200 OK\r\nX-Served-By: 19080\r\nContent-Length: 2\r\n\r\nok");
    let read = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.capacity();
    let head = parse(&mut buf, 8192, false).unwrap().unwrap();
    let value = head.parts.headers["x-served-by"].as_bytes().as_ptr() as usize;
    assert_eq!(head.parts.headers["x-served-by"], "19080");
    assert!(
        !read.contains(&value),
        "the value points into the read buffer"
    );
    // The body's short chunk is copied out too: the buffer stays whole for the next response.
    let chunk = super::super::body::take_data(&mut buf, 2);
    assert_eq!(&chunk[..], b"ok");
    assert!(!read.contains(&(chunk.as_ptr() as usize)));
    assert!(buf.is_empty());
}

#[test]
fn a_partial_head_asks_for_more_and_an_oversized_one_is_refused() {
    assert!(parse_all("HTTP/1.1 200 OK\r\nContent-Le", false)
        .unwrap()
        .is_none());
    let mut long = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX: "[..]);
    long.extend_from_slice(&[b'a'; 9000]);
    assert_eq!(
        parse(&mut long, 8192, false).unwrap_err(),
        HeadError::TooLarge(8192)
    );
    let mut complete = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX: "[..]);
    complete.extend_from_slice(&[b'a'; 9000]);
    complete.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        parse(&mut complete, 8192, false).unwrap_err(),
        HeadError::TooLarge(8192)
    );
}

#[test]
fn framing_follows_rfc_9112() {
    assert_eq!(
        framed("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"),
        (Framing::Empty, true)
    );
    assert_eq!(
        framed("HTTP/1.1 304 Not Modified\r\n\r\n"),
        (Framing::Empty, true)
    );
    assert_eq!(
        framed("HTTP/1.1 100 Continue\r\n\r\n"),
        (Framing::Empty, true)
    );
    assert_eq!(
        framed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        (Framing::Empty, true)
    );
    assert_eq!(
        framed("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        (Framing::Chunked, true)
    );
    // Both: chunked wins, and the connection is not reused.
    assert_eq!(
        framed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
        (Framing::Chunked, false)
    );
    assert_eq!(
        framed("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
        (Framing::UntilClose, false)
    );
    assert_eq!(
        framed("HTTP/1.1 200 OK\r\n\r\n"),
        (Framing::UntilClose, false)
    );
    assert_eq!(
        framed("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n"),
        (Framing::Length(7), true)
    );
    let head = parse_all("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true)
        .unwrap()
        .unwrap();
    assert_eq!(head.framing, Framing::Empty, "a response to HEAD");
}

#[test]
fn keep_alive_by_version_and_connection_header() {
    assert!(!framed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n").1);
    assert!(!framed("HTTP/1.1 200 OK\r\nConnection: x, Close\r\nContent-Length: 1\r\n\r\n").1);
    assert!(!framed("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").1);
    assert!(framed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n").1);
}

#[test]
fn what_could_smuggle_a_response_is_refused() {
    let bad = |raw: &str| parse_all(raw, false).unwrap_err();
    assert_eq!(
        bad("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
        HeadError::ContentLength
    );
    assert_eq!(
        bad("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n"),
        HeadError::ContentLength
    );
    assert_eq!(
        bad("HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n"),
        HeadError::ContentLength
    );
    assert_eq!(
        bad("HTTP/1.1 200 OK\r\nContent-Length: 0x3\r\n\r\n"),
        HeadError::ContentLength
    );
    assert_eq!(
        bad("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"),
        HeadError::ContentLength
    );
    assert_eq!(
        bad("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n"),
        HeadError::ContentLength
    );
    assert_eq!(
        bad("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        HeadError::TransferEncoding10
    );
    assert_eq!(
        bad("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
        HeadError::UnexpectedSwitch
    );
    assert!(matches!(
        bad("HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n"),
        HeadError::Syntax(_)
    ));
    assert!(matches!(bad("HTTP/2 200 OK\r\n\r\n"), HeadError::Syntax(_)));
    assert!(matches!(
        bad("HTTP/1.1 2000 OK\r\n\r\n"),
        HeadError::Syntax(_)
    ));
    assert!(matches!(
        bad("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"),
        HeadError::Syntax(_)
    ));
}

/// The fields that only describe the connection are read for the framing and left out of the
/// map; a `Connection` that names other headers stays, for `proxy::rewrite` to strip them.
#[test]
fn connection_fields_are_read_and_left_out() {
    let raw = "HTTP/1.1 200 OK\r\nServer: nginx\r\nConnection: keep-alive\r\n\
               Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n";
    let head = parse_all(raw, false).unwrap().unwrap();
    let names: Vec<&str> = head.parts.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["server"]);
    assert_eq!((head.framing, head.reusable), (Framing::Chunked, true));

    let raw = "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\
               Content-Length: 2\r\n\r\n";
    let head = parse_all(raw, false).unwrap().unwrap();
    assert_eq!(head.parts.headers["connection"], "close, X-Secret");
    assert_eq!(head.parts.headers["content-length"], "2");
    assert_eq!((head.framing, head.reusable), (Framing::Length(2), false));

    // HTTP/1.0 keeps the connection only when asked, in any case.
    let raw = "HTTP/1.0 200 OK\r\nconnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
    let head = parse_all(raw, false).unwrap().unwrap();
    let names: Vec<&str> = head.parts.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["content-length"]);
    assert_eq!((head.framing, head.reusable), (Framing::Empty, true));
    let raw = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(framed(raw), (Framing::Empty, false));
}
