//! A request head written for an HTTP/1.1 backend, and its body's framing, as hyper's client
//! frames it: a body known to be empty gets no framing header, a known length a
//! `Content-Length`, an unknown length `Transfer-Encoding: chunked` (but for `GET`, `HEAD`
//! and `CONNECT`, which are sent without a body). `proxy::rewrite` has already removed the
//! client's own `Content-Length` and `Transfer-Encoding`.

use std::io::Write;

use bytes::Bytes;
use http::{request, Method};

/// How a request body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

impl BodyFraming {
    /// The framing of a body with `exact` size if known; `ended`: it is known to be empty.
    pub fn of(method: &Method, ended: bool, exact: Option<u64>) -> Self {
        match (ended, exact) {
            (true, _) | (false, Some(0)) => BodyFraming::Empty,
            (false, Some(n)) => BodyFraming::Length(n),
            (false, None) if matches!(*method, Method::GET | Method::HEAD | Method::CONNECT) => {
                BodyFraming::Empty
            }
            (false, None) => BodyFraming::Chunked,
        }
    }
}

/// Appends the request line and header section of `parts` to `buf`, with the framing header.
pub fn head(parts: &request::Parts, framing: BodyFraming, buf: &mut Vec<u8>) {
    buf.extend_from_slice(parts.method.as_str().as_bytes());
    buf.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    buf.extend_from_slice(target.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    match framing {
        BodyFraming::Empty => {}
        BodyFraming::Length(n) => {
            // Writing to a Vec cannot fail.
            let _ = write!(buf, "content-length: {n}\r\n");
        }
        BodyFraming::Chunked => buf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    buf.extend_from_slice(b"\r\n");
}

/// The size line in front of a chunk of `len` bytes (`len > 0`).
pub fn chunk_prefix(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

/// What follows each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";

/// The last chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    #[test]
    fn framing_like_hyper() {
        assert_eq!(
            BodyFraming::of(&Method::POST, true, Some(0)),
            BodyFraming::Empty
        );
        assert_eq!(
            BodyFraming::of(&Method::POST, false, Some(0)),
            BodyFraming::Empty
        );
        assert_eq!(
            BodyFraming::of(&Method::PUT, false, Some(12)),
            BodyFraming::Length(12)
        );
        assert_eq!(
            BodyFraming::of(&Method::POST, false, None),
            BodyFraming::Chunked
        );
        assert_eq!(
            BodyFraming::of(&Method::GET, false, None),
            BodyFraming::Empty
        );
    }

    #[test]
    fn the_head_is_the_request_line_headers_and_framing() {
        let req = Request::post("http://ignored.example/a/b?q=1")
            .header("host", "backend:8080")
            .header("x-two", "1")
            .header("x-two", "2")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let mut buf = Vec::new();
        head(&parts, BodyFraming::Length(5), &mut buf);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "POST /a/b?q=1 HTTP/1.1\r\nhost: backend:8080\r\nx-two: 1\r\nx-two: 2\r\n\
             content-length: 5\r\n\r\n"
        );
        let (star, ()) = Request::options("*").body(()).unwrap().into_parts();
        let mut buf = Vec::new();
        head(&star, BodyFraming::Chunked, &mut buf);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "OPTIONS * HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(&chunk_prefix(255)[..], b"ff\r\n");
    }
}
