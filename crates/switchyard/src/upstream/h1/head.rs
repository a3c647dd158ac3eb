//! A backend's HTTP/1.1 response head: parsed with `httparse` from the connection's read
//! buffer into an `http::response::Parts` whose header values share one copy of the head
//! (not the read buffer: [`parse`] says why), and judged for how its body is framed (RFC 9112
//! §6.3) and whether the connection can take another request afterwards. The fields that
//! judgement reads are noted while the map is built; those that only describe this
//! connection (`Transfer-Encoding`, `Keep-Alive`, a `Connection` of `close` or `keep-alive`
//! alone) are not put in the map at all: the proxy would strip them (RFC 9110 §7.6.1).
//!
//! Strict where a lenient reading would let a backend smuggle a second response past the
//! proxy: differing `Content-Length` values, a `Transfer-Encoding` on an HTTP/1.0 response,
//! folded header lines (`httparse` refuses them) and a head larger than the limit are all
//! errors, answered `502` by the caller.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{response, StatusCode, Version};

/// Most header fields a backend's head may carry (hyper's own limit).
pub const MAX_HEADERS: usize = 100;

/// How a response's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (`HEAD`, 1xx, 204, 304, or `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the backend closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    /// Status, version and headers (the version as the backend sent it).
    pub parts: response::Parts,
    /// How the body is delimited.
    pub framing: Framing,
    /// The connection can carry another request once this response is read to its end.
    pub reusable: bool,
}

/// Why a response head was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    /// Not an HTTP/1.x response head.
    #[error("invalid response head: {0}")]
    Syntax(httparse::Error),
    /// Larger than the configured limit.
    #[error("response head larger than {0} bytes")]
    TooLarge(usize),
    /// `Content-Length` is not one number, or several that differ.
    #[error("invalid Content-Length")]
    ContentLength,
    /// `Transfer-Encoding` on an HTTP/1.0 response (RFC 9112 §6.1).
    #[error("Transfer-Encoding in an HTTP/1.0 response")]
    TransferEncoding10,
    /// `101 Switching Protocols` to a request that asked for no upgrade.
    #[error("unexpected 101 Switching Protocols")]
    UnexpectedSwitch,
}

/// Parses a complete response head at the start of `buf`, taking it out of the buffer.
/// `None`: the head is not complete yet (read more). `head_request`: the request was `HEAD`,
/// so the response has no body whatever its headers say. An informational response (1xx)
/// comes back as such: the caller skips it and parses again.
pub fn parse(
    buf: &mut BytesMut,
    max_head: usize,
    head_request: bool,
) -> Result<Option<Head>, HeadError> {
    if buf.is_empty() {
        // Nothing read yet (the request was just written, or a read found nothing).
        return Ok(None);
    }
    // Left uninitialised: `httparse` writes only the fields it finds (setting up all 100
    // slots cost a 3 KiB memset, about 100 instructions, on every call).
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(HeadError::TooLarge(max_head));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HeadError::Syntax(e)),
    };
    if len > max_head {
        return Err(HeadError::TooLarge(max_head));
    }
    // Copied out, not cut from the read buffer: the header values share it, and a header an
    // HTTP/2 client's HPACK table keeps (it indexes what it sends) would keep the whole read
    // buffer (32 KiB) alive for as long as that client connection lives (measured: 32 KiB per
    // idle HTTP/2 connection, BENCHMARKS.md, "Idle connections").
    let head = Bytes::copy_from_slice(&buf[..len]);
    let status = StatusCode::from_u16(resp.code.unwrap_or_default())
        .map_err(|_| HeadError::Syntax(httparse::Error::Status))?;
    let version = if resp.version == Some(1) {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    // The fields borrow `buf`; their offsets in it are their offsets in the copy.
    let (headers, noted) = header_map(&head, buf.as_ptr() as usize, resp.headers)?;
    buf.advance(len);
    let mut parts = response::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    let (framing, reusable) = framing(status, version, &noted, head_request)?;
    Ok(Some(Head {
        parts,
        framing,
        reusable,
    }))
}

/// Room left in a response's header map for headers added on the way. hyper's server reuses
/// the map of the answer it wrote for the next request it reads on that connection, which
/// `proxy::rewrite` then gives its `X-Forwarded-*` headers: without the room, the map grew
/// (a rehash and a reallocation) on every request (measured: 540 instructions per request).
const SPARE_HEADERS: usize = 8;

/// What the framing needs from a head's fields, noted while its map is built: no lookups
/// after (an nginx response's `Connection: keep-alive` was looked up for the framing, then
/// found and removed again by `proxy::rewrite`: 700 instructions per request).
#[derive(Debug, Default)]
struct Noted {
    /// `Connection` lists `close`.
    close: bool,
    /// `Connection` lists `keep-alive`.
    keep_alive: bool,
    /// A `Transfer-Encoding` field is present.
    transfer_encoding: bool,
    /// The last transfer coding listed is `chunked`.
    chunked_last: bool,
    /// The `Content-Length`, when present and valid.
    length: Option<u64>,
    /// A `Content-Length` field is present.
    has_length: bool,
    /// A `Content-Length` is not one number, or several differ.
    bad_length: bool,
}

/// The header map of `head` (a copy of the bytes at `base` that `fields` were parsed from),
/// each value a slice of it, without the fields that only describe this connection; and
/// what the framing needs from the fields.
fn header_map(
    head: &Bytes,
    base: usize,
    fields: &[httparse::Header<'_>],
) -> Result<(HeaderMap, Noted), HeadError> {
    let mut map = HeaderMap::with_capacity(fields.len() + SPARE_HEADERS);
    let mut noted = Noted::default();
    for field in fields {
        let name = match common_name(field.name.as_bytes()) {
            Some(name) => name,
            None => HeaderName::from_bytes(field.name.as_bytes())
                .map_err(|_| HeadError::Syntax(httparse::Error::HeaderName))?,
        };
        if name == header::CONNECTION {
            if !connection_options(field.value, &mut noted) {
                continue;
            }
        } else if name == header::TRANSFER_ENCODING {
            noted.transfer_encoding = true;
            noted.chunked_last = chunked_last(field.value);
            continue;
        } else if name == header::CONTENT_LENGTH {
            noted.has_length = true;
            match content_length(noted.length, field.value) {
                Ok(n) => noted.length = n,
                Err(_) => noted.bad_length = true,
            }
        } else if name == KEEP_ALIVE {
            continue;
        }
        let start = field.value.as_ptr() as usize - base;
        let value = HeaderValue::from_maybe_shared(head.slice(start..start + field.value.len()))
            .map_err(|_| HeadError::Syntax(httparse::Error::HeaderValue))?;
        map.append(name, value);
    }
    Ok((map, noted))
}

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Notes the `close` and `keep-alive` of a `Connection` field; true when it names other
/// options too (headers to strip, see `proxy::rewrite`), so that the field is kept.
fn connection_options(value: &[u8], noted: &mut Noted) -> bool {
    let mut options = false;
    for token in value.split(|&b| b == b',') {
        let token = token.trim_ascii();
        if token.eq_ignore_ascii_case(b"keep-alive") {
            noted.keep_alive = true;
        } else if token.eq_ignore_ascii_case(b"close") {
            noted.close = true;
        } else {
            options |= !token.is_empty();
        }
    }
    options
}

/// `name` if it is one of the names most responses carry, in any case: found by its length
/// and a word-wide comparison, not by `HeaderName::from_bytes`, which maps every byte
/// through a table before it matches (an nginx response's five names: 540 instructions per
/// response fewer, 27.2 K -> 26.6 K per request; `eq_ignore_ascii_case`, a byte at a time,
/// cost as much as `from_bytes`).
fn common_name(name: &[u8]) -> Option<HeaderName> {
    use http::header::*;
    let is = |lower: &[u8]| token_eq_lower(name, lower);
    Some(match name.len() {
        4 if is(b"date") => DATE,
        4 if is(b"etag") => ETAG,
        4 if is(b"vary") => VARY,
        6 if is(b"server") => SERVER,
        7 if is(b"expires") => EXPIRES,
        8 if is(b"location") => LOCATION,
        10 if is(b"connection") => CONNECTION,
        10 if is(b"set-cookie") => SET_COOKIE,
        12 if is(b"content-type") => CONTENT_TYPE,
        13 if is(b"cache-control") => CACHE_CONTROL,
        13 if is(b"last-modified") => LAST_MODIFIED,
        13 if is(b"accept-ranges") => ACCEPT_RANGES,
        14 if is(b"content-length") => CONTENT_LENGTH,
        16 if is(b"content-encoding") => CONTENT_ENCODING,
        17 if is(b"transfer-encoding") => TRANSFER_ENCODING,
        _ => return None,
    })
}

/// A header name (a token: httparse checked it) equals `lower`, a name of lowercase letters
/// and `-`, in any case. A token byte ORed with 0x20 is its lowercase letter for `A`-`Z` and
/// `a`-`z`, `-` stays `-`, and no other token byte becomes either, so eight bytes are
/// compared at once (four for shorter names); the last word overlaps the one before.
pub fn token_eq_lower(name: &[u8], lower: &[u8]) -> bool {
    fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
        let mut w = [0u8; N];
        w.copy_from_slice(&s[at..at + N]);
        w
    }
    let len = name.len();
    if len != lower.len() || len < 4 {
        return false;
    }
    if len < 8 {
        let eq = |at| {
            u32::from_ne_bytes(word(name, at)) | 0x2020_2020 == u32::from_ne_bytes(word(lower, at))
        };
        return eq(0) && eq(len - 4);
    }
    let eq = |at| {
        u64::from_ne_bytes(word(name, at)) | 0x2020_2020_2020_2020
            == u64::from_ne_bytes(word(lower, at))
    };
    (0..len - 8).step_by(8).all(eq) && eq(len - 8)
}

/// RFC 9112 §6.3: how the body of a response with `status` and `version` is delimited,
/// and whether the connection stays usable after it: HTTP/1.1 unless `Connection: close`,
/// HTTP/1.0 only with `Connection: keep-alive`.
fn framing(
    status: StatusCode,
    version: Version,
    noted: &Noted,
    head_request: bool,
) -> Result<(Framing, bool), HeadError> {
    let mut reusable = !noted.close && (version == Version::HTTP_11 || noted.keep_alive);
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(HeadError::UnexpectedSwitch);
    }
    if head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, reusable));
    }
    if noted.transfer_encoding {
        if version == Version::HTTP_10 {
            return Err(HeadError::TransferEncoding10);
        }
        // Beside a `Content-Length` it overrides it, and the connection is not trusted after.
        if noted.has_length {
            reusable = false;
        }
        return Ok(if noted.chunked_last {
            (Framing::Chunked, reusable)
        } else {
            (Framing::UntilClose, false)
        });
    }
    if noted.bad_length {
        return Err(HeadError::ContentLength);
    }
    match noted.length {
        Some(0) => Ok((Framing::Empty, reusable)),
        Some(n) => Ok((Framing::Length(n), reusable)),
        None => Ok((Framing::UntilClose, false)),
    }
}

/// The last transfer coding a `Transfer-Encoding` field lists is `chunked`.
fn chunked_last(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// The `Content-Length` so far (`found`) with one more field's `value`: every field and list
/// element must be the same number.
fn content_length(mut found: Option<u64>, value: &[u8]) -> Result<Option<u64>, HeadError> {
    for item in value.split(|&b| b == b',') {
        let digits = item.trim_ascii();
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::ContentLength);
        }
        let n = digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return Err(HeadError::ContentLength);
        }
        found = Some(n);
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
