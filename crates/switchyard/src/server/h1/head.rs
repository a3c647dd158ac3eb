//! A client's HTTP/1.1 request head: parsed with `httparse` from the connection's read buffer
//! into an `http::request::Parts` whose header values share one copy of the head (not the read
//! buffer, which the next request reuses; an HTTP/2 backend's HPACK table may keep a value
//! for as long as its connection lives), and judged for how its body is framed (RFC 9112 §6)
//! and whether the connection stays open after it.
//!
//! Strict where a lenient reading would let a client smuggle a second request past the proxy
//! or make it disagree with the backend about where a body ends: `Transfer-Encoding` other
//! than exactly `chunked`, with `Content-Length`, or on an HTTP/1.0 request; differing or
//! non-decimal `Content-Length`s; folded header lines, a space before a colon and any
//! control byte in a field (`httparse` refuses them) are all `400`, and the connection is
//! closed after it.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, StatusCode, Uri, Version};

use super::wire::BodyKind;
use crate::upstream::h1::head::{token_eq_lower, MAX_HEADERS};

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    /// Method, target, version and headers.
    pub parts: request::Parts,
    /// How the body is delimited.
    pub body: BodyKind,
    /// The client keeps the connection open after the answer (HTTP/1.1 without
    /// `Connection: close`, HTTP/1.0 with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body.
    pub expect_continue: bool,
    /// It asks for an upgrade (`Upgrade` on HTTP/1.1).
    pub upgrade: bool,
    /// It accepts trailer fields in a chunked answer (`TE: trailers`).
    pub trailers: bool,
}

/// Why a head was refused: answered with its status, and the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a well-formed HTTP/1.x request head, or its framing is ambiguous.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// Larger than the head limit, or more than [`MAX_HEADERS`] fields.
    #[error("request head too large")]
    TooLarge,
}

impl Refusal {
    /// The answer's status.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }
}

/// Room left in a request's header map for the headers `proxy::rewrite` adds
/// (`X-Forwarded-*`, `Via`, the route's own): without it the map grows (a rehash and a
/// reallocation) on every request.
const SPARE_HEADERS: usize = 8;

/// Parses a complete request head at the start of `buf`, taking it out of the buffer, its
/// fields into `headers` (an empty map: the connection's last answer's, whose room is reused).
/// `None`: the head is not complete yet (read more).
pub fn parse(
    buf: &mut BytesMut,
    max_head: usize,
    headers: &mut HeaderMap,
) -> Result<Option<Head>, Refusal> {
    // Left uninitialised: `httparse` writes only the fields it finds.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > max_head => return Err(Refusal::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        // A version other than 1.0 and 1.1 is a `400`, as hyper's server answered it: what
        // `httparse` cannot read may be no HTTP at all (a PROXY protocol line from a peer
        // that is not trusted), and `505` would claim it was.
        Err(_) => return Err(Refusal::Malformed("invalid request head")),
    };
    if len > max_head {
        return Err(Refusal::TooLarge);
    }
    let head = Bytes::copy_from_slice(&buf[..len]);
    let base = buf.as_ptr() as usize;
    let slice = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        head.slice(start..start + s.len())
    };
    let method = req.method.unwrap_or_default();
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| Refusal::Malformed("invalid method"))?;
    let target = req.path.unwrap_or_default();
    let uri = Uri::from_maybe_shared(slice(target.as_bytes()))
        .map_err(|_| Refusal::Malformed("invalid request target"))?;
    let version = if req.version == Some(1) {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let mut headers = std::mem::take(headers);
    headers.reserve(req.headers.len() + SPARE_HEADERS);
    // The fields this module reads, seen while the map is built: a request without them
    // (most) costs no lookup in the map afterwards.
    let mut seen = 0u8;
    for field in req.headers.iter() {
        let name = match common_name(field.name.as_bytes()) {
            Some((name, flag)) => {
                seen |= flag;
                name
            }
            None => HeaderName::from_bytes(field.name.as_bytes())
                .map_err(|_| Refusal::Malformed("invalid header name"))?,
        };
        let value = HeaderValue::from_maybe_shared(slice(field.value))
            .map_err(|_| Refusal::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    buf.advance(len);
    let body = if seen & FRAMING != 0 {
        body_kind(&headers, version)?
    } else {
        BodyKind::Empty
    };
    let http11 = version == Version::HTTP_11;
    let close = seen & CONNECTION != 0 && has_token(&headers, header::CONNECTION, "close");
    let keep_alive = if http11 {
        !close
    } else {
        seen & CONNECTION != 0 && !close && has_token(&headers, header::CONNECTION, "keep-alive")
    };
    let expect_continue = http11
        && body != BodyKind::Empty
        && seen & EXPECT != 0
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let upgrade = http11 && seen & UPGRADE != 0;
    let trailers = seen & TE != 0 && has_token(&headers, header::TE, "trailers");
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(Head {
        parts,
        body,
        keep_alive,
        expect_continue,
        upgrade,
        trailers,
    }))
}

/// How the body of a request with `headers` is delimited (RFC 9112 §6.3), refusing every
/// framing two parsers could read differently.
fn body_kind(headers: &HeaderMap, version: Version) -> Result<BodyKind, Refusal> {
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_some() {
        if version != Version::HTTP_11 {
            return Err(Refusal::Malformed(
                "Transfer-Encoding on an HTTP/1.0 request",
            ));
        }
        if headers.contains_key(header::CONTENT_LENGTH) {
            return Err(Refusal::Malformed(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let mut chunked = 0;
        for value in codings {
            for coding in value.as_bytes().split(|&b| b == b',') {
                if !coding.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(Refusal::Malformed("a transfer coding other than chunked"));
                }
                chunked += 1;
            }
        }
        if chunked != 1 {
            return Err(Refusal::Malformed("chunked applied more than once"));
        }
        return Ok(BodyKind::Chunked);
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let n = decimal(value.as_bytes()).ok_or(Refusal::Malformed("invalid Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(Refusal::Malformed("differing Content-Length values"));
        }
        length = Some(n);
    }
    Ok(match length {
        None | Some(0) => BodyKind::Empty,
        Some(n) => BodyKind::Length(n),
    })
}

/// `digits` as a number: 1 to 19 ASCII digits, nothing else.
pub fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// True when a `name` field lists `token` (comma-separated, any case).
pub fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|value| lists(value.as_bytes(), token))
}

/// True when the comma-separated `value` lists `token`, in any case.
pub fn lists(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Which of the fields [`parse`] reads a head carries (bits of `seen`).
const FRAMING: u8 = 1;
const CONNECTION: u8 = 2;
const EXPECT: u8 = 4;
const UPGRADE: u8 = 8;
const TE: u8 = 16;

/// `name` if it is one of the names most requests carry, in any case (as
/// `upstream::h1::head` does for responses: `HeaderName::from_bytes` maps every byte through a
/// table first), with its bit when [`parse`] reads the field.
fn common_name(name: &[u8]) -> Option<(HeaderName, u8)> {
    use http::header::*;
    let is = |lower: &[u8]| token_eq_lower(name, lower);
    Some(match name.len() {
        2 if name.eq_ignore_ascii_case(b"te") => (TE, self::TE),
        4 if is(b"host") => (HOST, 0),
        6 if is(b"accept") => (ACCEPT, 0),
        6 if is(b"cookie") => (COOKIE, 0),
        6 if is(b"expect") => (EXPECT, self::EXPECT),
        6 if is(b"origin") => (ORIGIN, 0),
        7 if is(b"referer") => (REFERER, 0),
        7 if is(b"upgrade") => (UPGRADE, self::UPGRADE),
        10 if is(b"connection") => (CONNECTION, self::CONNECTION),
        10 if is(b"user-agent") => (USER_AGENT, 0),
        12 if is(b"content-type") => (CONTENT_TYPE, 0),
        13 if is(b"authorization") => (AUTHORIZATION, 0),
        13 if is(b"cache-control") => (CACHE_CONTROL, 0),
        14 if is(b"content-length") => (CONTENT_LENGTH, FRAMING),
        15 if is(b"accept-encoding") => (ACCEPT_ENCODING, 0),
        15 if is(b"accept-language") => (ACCEPT_LANGUAGE, 0),
        15 if is(b"x-forwarded-for") => (HeaderName::from_static("x-forwarded-for"), 0),
        17 if is(b"transfer-encoding") => (TRANSFER_ENCODING, FRAMING),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
