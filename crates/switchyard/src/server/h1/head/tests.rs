use super::*;

fn parse_all(text: &str) -> Result<Option<Head>, Refusal> {
    let mut buf = BytesMut::from(text.as_bytes());
    parse(&mut buf, 8192, &mut HeaderMap::new())
}

fn head(text: &str) -> Head {
    parse_all(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .unwrap_or_else(|| panic!("{text:?}: incomplete"))
}

#[test]
fn a_request_head_is_parsed_and_taken_out_of_the_buffer() {
    let mut buf = BytesMut::from(&b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Y: z\r\n\r\nNEXT"[..]);
    let head = parse(&mut buf, 8192, &mut HeaderMap::new())
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..], b"NEXT");
    assert_eq!(head.parts.method, Method::GET);
    assert_eq!(head.parts.uri, "/a?b=1");
    assert_eq!(head.parts.version, Version::HTTP_11);
    assert_eq!(head.parts.headers["host"], "x");
    assert_eq!(head.parts.headers["x-y"], "z");
    assert_eq!(head.body, BodyKind::Empty);
    assert!(head.keep_alive && !head.upgrade && !head.expect_continue);
}

#[test]
fn an_incomplete_head_asks_for_more_and_a_large_one_is_refused() {
    assert!(parse_all("GET / HTTP/1.1\r\nHost: x\r\n")
        .unwrap()
        .is_none());
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
    assert_eq!(parse_all(&long).unwrap_err(), Refusal::TooLarge);
    let many: String = (0..120).map(|i| format!("X-{i}: 1\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(parse_all(&many).unwrap_err(), Refusal::TooLarge);
    assert!(matches!(
        parse_all("GET / HTTP/2.0\r\n\r\n"),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn framing_is_strict() {
    let cl = head("POST / HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\n");
    assert_eq!(cl.body, BodyKind::Length(12));
    let te = head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(te.body, BodyKind::Chunked);
    for bad in [
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
    ] {
        assert!(
            matches!(parse_all(bad), Err(Refusal::Malformed(_))),
            "{bad:?}: {:?}",
            parse_all(bad)
        );
    }
}

#[test]
fn connection_expect_and_upgrade_are_read() {
    assert!(!head("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
    assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    let expect = head("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
    assert!(expect.expect_continue);
    // Nothing to wait for without a body.
    assert!(!head("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    let ws = head("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    assert!(ws.upgrade && ws.keep_alive);
    assert!(head("GET / HTTP/1.1\r\nTE: trailers\r\n\r\n").trailers);
}

#[test]
fn common_names_match_in_any_case() {
    let h = head("GET / HTTP/1.1\r\nHOST: a\r\nuser-AGENT: b\r\nX-Forwarded-For: c\r\n\r\n");
    assert_eq!(h.parts.headers[header::HOST], "a");
    assert_eq!(h.parts.headers[header::USER_AGENT], "b");
    assert_eq!(h.parts.headers["x-forwarded-for"], "c");
}
