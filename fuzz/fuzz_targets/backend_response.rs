//! A backend's HTTP/1.1 response (`upstream/h1/`): the head parser and the chunked decoder
//! get any bytes, fed in pieces as a socket would, and neither panics nor lets the decoder
//! return more data than it was given. A head that parses sets a framing that agrees with
//! its headers.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard::upstream::h1::chunked::{Chunk, Decoder};
use switchyard::upstream::h1::head::{self, Framing};

fuzz_target!(|input: (u8, bool, &[u8])| {
    let (step, head_request, bytes) = input;
    let step = usize::from(step.max(1));
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut parsed = None;
    while fed < bytes.len() {
        let end = (fed + step).min(bytes.len());
        buf.extend_from_slice(&bytes[fed..end]);
        fed = end;
        match head::parse(&mut buf, 4096, head_request) {
            Ok(Some(h)) if h.parts.status.is_informational() => continue,
            Ok(Some(h)) => {
                parsed = Some(h);
                break;
            }
            Ok(None) => continue,
            Err(_) => return,
        }
    }
    let Some(h) = parsed else { return };
    if head_request {
        assert_eq!(h.framing, Framing::Empty);
    }
    if h.framing != Framing::Chunked {
        return;
    }
    // The rest of the input is the chunked body.
    let mut decoder = Decoder::new(4096);
    let mut data = 0usize;
    let before = buf.len() + (bytes.len() - fed);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(Chunk::Data(d))) => data += d.len(),
            Ok(Some(Chunk::Trailers(_))) => {}
            Ok(Some(Chunk::End)) | Err(_) => break,
            Ok(None) if fed < bytes.len() => {
                let end = (fed + step).min(bytes.len());
                buf.extend_from_slice(&bytes[fed..end]);
                fed = end;
            }
            Ok(None) => break,
        }
    }
    assert!(data <= before, "{data} bytes of data from {before} bytes");
});
