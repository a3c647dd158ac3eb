//! The chunked transfer coding of a backend's response body (RFC 9112 §7.1), decoded from the
//! connection's read buffer: each chunk's data handed on as a slice of that buffer, then the
//! trailer fields. Strict: a size line must end in CRLF, hold at most 16 hex digits and be
//! at most `MAX_LINE` bytes with its extensions; data must be followed by CRLF; the trailer
//! section is bounded like a head. A backend that breaks one of these rules has its
//! connection closed (the response is broken off, never re-framed).

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::head::MAX_HEADERS;

/// Longest chunk-size line accepted, extensions included.
pub const MAX_LINE: usize = 4096;

/// What decoding found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Body data.
    Data(Bytes),
    /// The trailer fields (only when there are some), then [`Chunk::End`].
    Trailers(HeaderMap),
    /// The body is complete.
    End,
}

/// Why a chunked body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    /// A malformed chunk-size line, or data not followed by CRLF.
    #[error("invalid chunked encoding")]
    Syntax,
    /// A chunk-size line or trailer section over its limit.
    #[error("chunked encoding line too long")]
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// The decoder of one chunked body.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// Largest trailer section accepted (the head limit).
    max_trailers: usize,
}

impl Decoder {
    /// A decoder at the start of a body; `max_trailers` bounds its trailer section.
    pub fn new(max_trailers: usize) -> Self {
        Decoder {
            state: State::Size,
            max_trailers,
        }
    }

    /// True once the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes what `buf` holds, taking it out of the buffer. `None`: read more.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, ChunkError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(size) = size_line(buf)? else {
                        return Ok(None);
                    };
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Some(Chunk::Data(super::body::take_data(buf, take))));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError::Syntax);
                    }
                    let _ = buf.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let Some(trailers) = trailers(buf, self.max_trailers)? else {
                        return Ok(None);
                    };
                    self.state = State::Done;
                    if !trailers.is_empty() {
                        return Ok(Some(Chunk::Trailers(trailers)));
                    }
                }
                State::Done => return Ok(Some(Chunk::End)),
            }
        }
    }
}

/// A complete chunk-size line at the start of `buf`: its size, the line taken out.
fn size_line(buf: &mut BytesMut) -> Result<Option<u64>, ChunkError> {
    let Some(lf) = buf.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_LINE {
            Err(ChunkError::TooLong)
        } else {
            Ok(None)
        };
    };
    let line = match buf[..lf].strip_suffix(b"\r") {
        Some(line) => line,
        None => return Err(ChunkError::Syntax),
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(ChunkError::Syntax);
    }
    // After the size: nothing, or extensions after optional whitespace (ignored).
    let rest = line[digits..].trim_ascii_start();
    if !(rest.is_empty() || rest[0] == b';') || line[digits..].contains(&b'\r') {
        return Err(ChunkError::Syntax);
    }
    let size = line[..digits].iter().fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16).unwrap_or(0);
        (n << 4) | u64::from(v)
    });
    let _ = buf.split_to(lf + 1);
    Ok(Some(size))
}

/// The trailer section at the start of `buf` (ending in an empty line), taken out.
fn trailers(buf: &mut BytesMut, max: usize) -> Result<Option<HeaderMap>, ChunkError> {
    let mut ranges = [(0usize, 0usize, 0usize, 0usize); MAX_HEADERS];
    let (len, count) = {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete((len, found))) => {
                let base = buf.as_ptr() as usize;
                for (slot, f) in ranges.iter_mut().zip(found.iter()) {
                    let n = f.name.as_ptr() as usize - base;
                    let v = f.value.as_ptr() as usize - base;
                    *slot = (n, n + f.name.len(), v, v + f.value.len());
                }
                (len, found.len())
            }
            Ok(httparse::Status::Partial) if buf.len() > max => return Err(ChunkError::TooLong),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ChunkError::Syntax),
        }
    };
    if len > max {
        return Err(ChunkError::TooLong);
    }
    let section = buf.split_to(len).freeze();
    let mut map = HeaderMap::with_capacity(count);
    for &(ns, ne, vs, ve) in &ranges[..count] {
        let name = HeaderName::from_bytes(&section[ns..ne]).map_err(|_| ChunkError::Syntax)?;
        let value = HeaderValue::from_maybe_shared(section.slice(vs..ve))
            .map_err(|_| ChunkError::Syntax)?;
        map.append(name, value);
    }
    Ok(Some(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes, collecting what is decoded.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, HeaderMap), ChunkError> {
        let mut dec = Decoder::new(8192);
        let mut buf = BytesMut::new();
        let (mut data, mut trailers) = (Vec::new(), HeaderMap::new());
        let mut pieces = input.chunks(step);
        loop {
            match dec.decode(&mut buf)? {
                Some(Chunk::Data(d)) => data.extend_from_slice(&d),
                Some(Chunk::Trailers(t)) => trailers = t,
                Some(Chunk::End) => return Ok((data, trailers)),
                None => match pieces.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => panic!("incomplete"),
                },
            }
        }
    }

    #[test]
    fn chunks_and_trailers_in_any_split() {
        let input = b"5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nGrpc-Status: 0\r\nX: y\r\n\r\n";
        for step in [1, 2, 3, 7, input.len()] {
            let (data, trailers) = decode_in_steps(input, step).unwrap();
            assert_eq!(data, b"hello0123456789", "step {step}");
            assert_eq!(trailers["grpc-status"], "0");
            assert_eq!(trailers["x"], "y");
        }
        let (data, trailers) = decode_in_steps(b"3\r\nabc\r\n0\r\n\r\n", 1).unwrap();
        assert_eq!(data, b"abc");
        assert!(trailers.is_empty());
    }

    #[test]
    fn what_follows_the_body_stays_in_the_buffer() {
        let mut dec = Decoder::new(8192);
        let mut buf = BytesMut::from(&b"0\r\n\r\nHTTP/1.1 200 OK"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(Chunk::End));
        assert!(dec.is_done());
        assert_eq!(&buf[..], b"HTTP/1.1 200 OK");
    }

    #[test]
    fn malformed_chunking_is_refused() {
        let bad = |input: &[u8]| decode_in_steps(input, input.len()).unwrap_err();
        assert_eq!(bad(b"5\nhello\r\n0\r\n\r\n"), ChunkError::Syntax, "bare LF");
        assert_eq!(
            bad(b"5\r\nhelloXX0\r\n\r\n"),
            ChunkError::Syntax,
            "no CRLF after data"
        );
        assert_eq!(bad(b"-5\r\nhello\r\n"), ChunkError::Syntax);
        assert_eq!(bad(b"0x5\r\nhello\r\n"), ChunkError::Syntax);
        assert_eq!(bad(b"5 x\r\nhello\r\n"), ChunkError::Syntax);
        assert_eq!(bad(b"\r\n"), ChunkError::Syntax, "no size");
        assert_eq!(
            bad(b"10000000000000000\r\n"),
            ChunkError::Syntax,
            "17 hex digits"
        );
        assert_eq!(bad(b"0\r\nBad Name: x\r\n\r\n"), ChunkError::Syntax);
        let mut long = b"5;".to_vec();
        long.extend_from_slice(&[b'a'; MAX_LINE]);
        assert_eq!(bad(&long), ChunkError::TooLong);
        let mut trailer = b"0\r\nX: ".to_vec();
        trailer.extend_from_slice(&[b'a'; 9000]);
        assert_eq!(bad(&trailer), ChunkError::TooLong);
    }

    #[test]
    fn the_largest_size_is_taken_without_overflow() {
        let mut dec = Decoder::new(8192);
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Some(Chunk::Data(Bytes::from_static(b"ab")))
        );
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
    }
}
