//! HPACK, HTTP/2's header compression (RFC 7541): a [`Decoder`] for the blocks a client
//! sends and an [`Encoder`] for the answers' blocks, each with its dynamic table.
//!
//! Written here rather than taken from a crate: the `h2` crate's HPACK is private to it, and
//! the standalone crates decode into owned byte vectors per field, where this decoder hands
//! out `http` names and values that share the block's bytes (or, for a table hit, the
//! table's), so a request's fields cost no copy and an indexed field no allocation.

use bytes::{BufMut, BytesMut};

mod decode;
mod encode;
pub mod huffman;
pub mod table;

pub use decode::Decoder;
pub use encode::Encoder;
pub use table::{Field, Pseudo};

/// A header block that cannot be decoded: the connection's compression state is lost, which
/// is a connection error (`COMPRESSION_ERROR`, RFC 9113 section 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// The block ends inside a representation.
    #[error("header block truncated")]
    Truncated,
    /// An integer longer than any table or string could need.
    #[error("integer overflow in header block")]
    Integer,
    /// Huffman data with EOS in it or bad padding.
    #[error("invalid Huffman string")]
    Huffman,
    /// An index past both tables (or zero).
    #[error("header index {0} out of range")]
    Index(usize),
    /// A dynamic table size update that is too large or not at the start of the block.
    #[error("invalid dynamic table size update")]
    SizeUpdate,
}

/// Integers larger than this are refused: no string, table or index is this long.
const INTEGER_MAX: usize = 1 << 24;

/// Reads an integer with an `n`-bit prefix from `src` at `*at` (RFC 7541 section 5.1).
fn integer(src: &[u8], at: &mut usize, n: u32) -> Result<usize, HpackError> {
    let mask = (1usize << n) - 1;
    let first = *src.get(*at).ok_or(HpackError::Truncated)?;
    *at += 1;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let b = *src.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        value += usize::from(b & 0x7f) << shift;
        if value > INTEGER_MAX {
            return Err(HpackError::Integer);
        }
        if b & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 21 {
            return Err(HpackError::Integer);
        }
    }
}

/// Writes `value` with an `n`-bit prefix, the prefix's other bits being `flags`.
fn put_integer(dst: &mut BytesMut, value: usize, n: u32, flags: u8) {
    let mask = (1usize << n) - 1;
    if value < mask {
        dst.put_u8(flags | value as u8);
        return;
    }
    dst.put_u8(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        dst.put_u8(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.put_u8(rest as u8);
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod primitives {
    use super::*;

    #[test]
    fn integers_round_trip_at_every_prefix() {
        for n in 1..=8 {
            for value in [
                0,
                1,
                9,
                10,
                30,
                31,
                126,
                127,
                128,
                1337,
                65_535,
                INTEGER_MAX,
            ] {
                let mut out = BytesMut::new();
                put_integer(&mut out, value, n, 0);
                let mut at = 0;
                assert_eq!(integer(&out, &mut at, n), Ok(value), "{value} in {n} bits");
                assert_eq!(at, out.len());
            }
        }
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        let mut out = BytesMut::new();
        put_integer(&mut out, 1337, 5, 0);
        assert_eq!(&out[..], [31, 154, 10]);
    }

    #[test]
    fn endless_and_truncated_integers_are_refused() {
        let endless = [0xff; 16];
        assert_eq!(integer(&endless, &mut 0, 7), Err(HpackError::Integer));
        let zeros = [
            0x7f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0,
        ];
        assert_eq!(integer(&zeros, &mut 0, 7), Err(HpackError::Integer));
        assert_eq!(
            integer(&[0x7f, 0x80], &mut 0, 7),
            Err(HpackError::Truncated)
        );
        assert_eq!(integer(&[], &mut 0, 7), Err(HpackError::Truncated));
    }
}
