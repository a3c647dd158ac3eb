//! A client's HTTP/1.1 request head (`server/h1/head.rs`), fed in pieces as a socket would:
//! the parser neither panics nor takes more than it was given, and a head that parses has
//! one framing its headers agree with (no `Transfer-Encoding` beside a `Content-Length`).
#![no_main]

use bytes::BytesMut;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use switchyard::server::h1::head;
use switchyard::server::h1::wire::BodyKind;

fuzz_target!(|input: (u8, &[u8])| {
    let (step, bytes) = input;
    let step = usize::from(step.max(1));
    let mut buf = BytesMut::new();
    let mut fed = 0;
    while fed < bytes.len() {
        let end = (fed + step).min(bytes.len());
        buf.extend_from_slice(&bytes[fed..end]);
        fed = end;
        let before = buf.len();
        match head::parse(&mut buf, 4096, &mut HeaderMap::new()) {
            Ok(Some(h)) => {
                assert!(buf.len() < before, "a head was parsed from nothing");
                let headers = &h.parts.headers;
                assert!(
                    !(headers.contains_key(TRANSFER_ENCODING) && headers.contains_key(CONTENT_LENGTH)),
                    "two framings accepted"
                );
                if h.body == BodyKind::Chunked {
                    assert!(headers.contains_key(TRANSFER_ENCODING));
                }
                return;
            }
            Ok(None) => assert_eq!(buf.len(), before, "a partial head was consumed"),
            Err(_) => return,
        }
    }
});
