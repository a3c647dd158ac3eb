//! HPACK's Huffman code (RFC 7541 Appendix B).
//!
//! The code is canonical: ordered by length and then by symbol, each code is the previous
//! one plus one, shifted left by the difference in length. So the 257 lengths below are the
//! whole table; the codes, and the per-length ranges decoding walks, are derived from them
//! at compile time.

use bytes::{BufMut, BytesMut};

use super::HpackError;

/// Bits of the code for each symbol: the 256 octets, then EOS.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];

const MIN_LEN: usize = 5;
const MAX_LEN: usize = 30;
const EOS: u16 = 256;

/// The code tables: each symbol's code, and for each length the first code of that length,
/// how many codes have it, and where its symbols start in `sorted`.
struct Tables {
    codes: [u32; 257],
    first: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    start: [u16; MAX_LEN + 1],
    sorted: [u16; 257],
}

const TABLES: Tables = build();

const fn build() -> Tables {
    let mut t = Tables {
        codes: [0; 257],
        first: [0; MAX_LEN + 1],
        count: [0; MAX_LEN + 1],
        start: [0; MAX_LEN + 1],
        sorted: [0; 257],
    };
    let (mut code, mut n, mut len) = (0u32, 0usize, MIN_LEN);
    while len <= MAX_LEN {
        t.first[len] = code;
        t.start[len] = n as u16;
        let mut sym = 0;
        while sym < 257 {
            if LENGTHS[sym] as usize == len {
                t.codes[sym] = code;
                t.sorted[n] = sym as u16;
                t.count[len] += 1;
                code += 1;
                n += 1;
            }
            sym += 1;
        }
        code <<= 1;
        len += 1;
    }
    t
}

/// Appends the Huffman encoding of `src` to `dst`.
pub fn encode(src: &[u8], dst: &mut BytesMut) {
    let (mut bits, mut held) = (0u64, 0u32);
    for &b in src {
        let len = u32::from(LENGTHS[usize::from(b)]);
        bits = (bits << len) | u64::from(TABLES.codes[usize::from(b)]);
        held += len;
        while held >= 8 {
            held -= 8;
            dst.put_u8((bits >> held) as u8);
        }
    }
    if held > 0 {
        // Padded with the most significant bits of EOS (all ones).
        dst.put_u8(((bits << (8 - held)) | (0xff >> held)) as u8);
    }
}

/// The length of `src` Huffman-encoded, in octets.
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(LENGTHS[usize::from(b)]))
        .sum();
    bits.div_ceil(8)
}

/// Appends the decoding of `src` to `dst`. Fails on EOS in the data, padding longer than
/// seven bits or not all ones (RFC 7541 section 5.2).
pub fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HpackError> {
    // `bits` holds `held` unread bits, most significant first, in its low end.
    let (mut bits, mut held) = (0u64, 0usize);
    let mut input = src.iter();
    loop {
        while held <= 56 {
            match input.next() {
                Some(&b) => {
                    bits = (bits << 8) | u64::from(b);
                    held += 8;
                }
                None => break,
            }
        }
        if held == 0 {
            return Ok(());
        }
        match symbol(bits, held) {
            Some((sym, len)) if sym != EOS => {
                dst.push(sym as u8);
                held -= len;
                bits &= (1u64 << held) - 1;
            }
            Some(_) => return Err(HpackError::Huffman),
            // Not a whole code: what is left must be padding.
            None => {
                let ones = (1u64 << held) - 1;
                return if held < 8 && bits == ones {
                    Ok(())
                } else {
                    Err(HpackError::Huffman)
                };
            }
        }
    }
}

/// The symbol whose code starts the `held` bits in `bits`, and its length.
fn symbol(bits: u64, held: usize) -> Option<(u16, usize)> {
    let t = &TABLES;
    let mut len = MIN_LEN;
    while len <= MAX_LEN.min(held) {
        let code = (bits >> (held - len)) as u32;
        if code < t.first[len] + t.count[len] {
            let at = usize::from(t.start[len]) + (code - t.first[len]) as usize;
            return Some((t.sorted[at], len));
        }
        len += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    // RFC 7541 C.4.1 and C.6.1.
    const EXAMPLES: [(&str, &str); 4] = [
        ("www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"),
        ("no-cache", "a8eb10649cbf"),
        ("302", "6402"),
        (
            "Mon, 21 Oct 2013 20:13:21 GMT",
            "d07abe941054d444a8200595040b8166e082a62d1bff",
        ),
    ];

    #[test]
    fn the_rfc_examples_encode_and_decode() {
        for (text, code) in EXAMPLES {
            let mut out = BytesMut::new();
            encode(text.as_bytes(), &mut out);
            assert_eq!(out[..], hex(code), "{text}");
            assert_eq!(encoded_len(text.as_bytes()), out.len());
            let mut back = Vec::new();
            decode(&out, &mut back).expect("decodes");
            assert_eq!(back, text.as_bytes());
        }
    }

    #[test]
    fn every_octet_round_trips() {
        let all: Vec<u8> = (0..=255).chain((0..=255).rev()).collect();
        let mut out = BytesMut::new();
        encode(&all, &mut out);
        let mut back = Vec::new();
        decode(&out, &mut back).expect("decodes");
        assert_eq!(back, all);
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        let mut back = Vec::new();
        // 'a' is 00011 (5 bits): padded with zeros instead of ones.
        assert_eq!(decode(&[0b0001_1000], &mut back), Err(HpackError::Huffman));
        // A whole octet of padding.
        assert_eq!(
            decode(&[0b0001_1111, 0xff], &mut back),
            Err(HpackError::Huffman)
        );
        // EOS itself (30 ones), padded.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut back),
            Err(HpackError::Huffman)
        );
        back.clear();
        assert_eq!(decode(&[0b0001_1111], &mut back), Ok(()));
        assert_eq!(back, b"a");
    }
}
