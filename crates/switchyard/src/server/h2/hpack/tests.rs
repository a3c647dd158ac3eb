//! HPACK against RFC 7541 Appendix C, and the encoder against the decoder.

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::StatusCode;

use super::*;

fn hex(s: &str) -> Bytes {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect::<Vec<u8>>()
        .into()
}

/// Decodes `block`, each field as `name: value` (`!` for a malformed one).
fn decode(decoder: &mut Decoder, block: &Bytes) -> Result<Vec<String>, HpackError> {
    let mut out = vec![];
    decoder.decode(block, |field, _| {
        out.push(match field {
            Some(Field::Pseudo(p, v)) => format!("{}: {}", p.name(), String::from_utf8_lossy(&v)),
            Some(Field::Header(n, v)) => format!("{n}: {}", v.to_str().unwrap_or("?")),
            None => "!".to_owned(),
        })
    })?;
    Ok(out)
}

const REQUESTS: [&[&str]; 3] = [
    &[
        ":method: GET",
        ":scheme: http",
        ":path: /",
        ":authority: www.example.com",
    ],
    &[
        ":method: GET",
        ":scheme: http",
        ":path: /",
        ":authority: www.example.com",
        "cache-control: no-cache",
    ],
    &[
        ":method: GET",
        ":scheme: https",
        ":path: /index.html",
        ":authority: www.example.com",
        "custom-key: custom-value",
    ],
];

#[test]
fn the_rfc_requests_decode_with_and_without_huffman() {
    let plain = [
        "828684410f7777772e6578616d706c652e636f6d",
        "828684be58086e6f2d6361636865",
        "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
    ];
    let huffman = [
        "828684418cf1e3c2e5f23a6ba0ab90f4ff",
        "828684be5886a8eb10649cbf",
        "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
    ];
    for blocks in [plain, huffman] {
        let mut decoder = Decoder::new(4096);
        for ((block, want), size) in blocks.iter().zip(REQUESTS).zip([57, 110, 164]) {
            assert_eq!(
                decode(&mut decoder, &hex(block)),
                Ok(want.iter().map(|s| s.to_string()).collect())
            );
            assert_eq!(decoder.table_size(), size);
        }
    }
}

#[test]
fn the_rfc_responses_decode_with_evictions() {
    let blocks = [
        "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
        "4803333037c1c0bf",
        "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
    ];
    let mut decoder = Decoder::new(256);
    let mut got = vec![];
    for block in blocks {
        got.push(decode(&mut decoder, &hex(block)).expect("decodes"));
        got.last_mut()
            .expect("pushed")
            .push(decoder.table_size().to_string());
    }
    assert_eq!(
        got[1],
        [
            ":status: 307",
            "cache-control: private",
            "date: Mon, 21 Oct 2013 20:13:21 GMT",
            "location: https://www.example.com",
            "222"
        ]
    );
    assert_eq!(
        got[2][4..],
        [
            "content-encoding: gzip",
            "set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            "215"
        ]
    );
}

#[test]
fn a_malformed_field_is_flagged_and_still_kept_in_step() {
    let mut decoder = Decoder::new(4096);
    // Literal with indexing, new name "X-A" (uppercase): malformed, but in the table.
    let block = hex("4003582d410161");
    assert_eq!(decode(&mut decoder, &block), Ok(vec!["!".to_owned()]));
    assert_eq!(decoder.table_size(), 3 + 1 + 32);
    // Index 62 is that entry: malformed again, and the block goes on.
    assert_eq!(
        decode(&mut decoder, &hex("be82")),
        Ok(vec!["!".to_owned(), ":method: GET".to_owned()])
    );
    // An unknown pseudo-header, a value with a line feed, a value with a trailing space.
    let bad = hex("00033a78790161");
    assert_eq!(decode(&mut decoder, &bad), Ok(vec!["!".to_owned()]));
    assert_eq!(
        decode(&mut decoder, &hex("0f2b02610a")),
        Ok(vec!["!".to_owned()])
    );
    assert_eq!(
        decode(&mut decoder, &hex("0f2b026120")),
        Ok(vec!["!".to_owned()])
    );
}

#[test]
fn broken_blocks_are_compression_errors() {
    let mut decoder = Decoder::new(4096);
    assert_eq!(decode(&mut decoder, &hex("80")), Err(HpackError::Index(0)));
    assert_eq!(decode(&mut decoder, &hex("be")), Err(HpackError::Index(62)));
    assert_eq!(
        decode(&mut decoder, &hex("0f2b0561")),
        Err(HpackError::Truncated)
    );
    // A size update after a field, and one above the limit.
    assert_eq!(
        decode(&mut decoder, &hex("8220")),
        Err(HpackError::SizeUpdate)
    );
    assert_eq!(
        decode(&mut decoder, &hex("3fe21f")),
        Err(HpackError::SizeUpdate)
    );
    // At the start, within the limit: fine, twice.
    assert_eq!(
        decode(&mut decoder, &hex("203fe11f82")),
        Ok(vec![":method: GET".to_owned()])
    );
}

#[test]
fn the_encoder_indexes_what_repeats_and_its_blocks_decode() {
    let fields = [
        ("content-type", "text/plain"),
        ("server", "switchyard"),
        ("date", "Thu, 03 Dec 2026 12:00:00 GMT"),
        ("content-length", "35"),
        ("x-custom", "one"),
        ("set-cookie", "a=b"),
    ];
    let mut encoder = Encoder::default();
    let mut decoder = Decoder::new(4096);
    let mut sizes = vec![];
    for status in [StatusCode::OK, StatusCode::OK, StatusCode::IM_A_TEAPOT] {
        let mut block = BytesMut::new();
        encoder.begin(&mut block);
        encoder.status(status, &mut block);
        for (n, v) in fields {
            encoder.header(
                &HeaderName::from_static(n),
                &HeaderValue::from_static(v),
                &mut block,
            );
        }
        sizes.push(block.len());
        let got = decode(&mut decoder, &block.freeze()).expect("decodes");
        let mut want = vec![format!(":status: {}", status.as_str())];
        want.extend(fields.iter().map(|(n, v)| format!("{n}: {v}")));
        assert_eq!(got, want);
    }
    // content-type, server and x-custom are one octet each the second time.
    assert!(sizes[1] + 25 < sizes[0], "{sizes:?}");
    // The client shrinks the table to nothing, then allows 100: both updates are sent.
    encoder.set_limit(0);
    encoder.set_limit(100);
    let mut block = BytesMut::new();
    encoder.begin(&mut block);
    assert_eq!(&block[..], [0x20, 0x3f, 0x45]);
    encoder.header(
        &HeaderName::from_static("x-custom"),
        &HeaderValue::from_static("one"),
        &mut block,
    );
    let got = decode(&mut decoder, &block.freeze()).expect("decodes");
    assert_eq!(got, ["x-custom: one"]);
    // Forgotten while idle: both tables emptied by the next block, then filled again.
    encoder.forget();
    let mut block = BytesMut::new();
    encoder.begin(&mut block);
    assert_eq!(&block[..], [0x20, 0x3f, 0x45]);
    encoder.header(
        &HeaderName::from_static("x-custom"),
        &HeaderValue::from_static("one"),
        &mut block,
    );
    let got = decode(&mut decoder, &block.freeze()).expect("decodes");
    assert_eq!(got, ["x-custom: one"]);
    assert_eq!(decoder.table_size(), 8 + 3 + 32);
}

#[test]
fn sensitive_values_are_never_indexed() {
    let mut encoder = Encoder::default();
    let mut block = BytesMut::new();
    let mut secret = HeaderValue::from_static("token");
    secret.set_sensitive(true);
    encoder.header(&HeaderName::from_static("x-secret"), &secret, &mut block);
    assert_eq!(block[0], 0x10);
    let at = block.len();
    encoder.header(
        &http::header::AUTHORIZATION,
        &HeaderValue::from_static("Basic x"),
        &mut block,
    );
    // Never indexed (0001), named by the static table's entry 23 (15 + 8).
    assert_eq!(block[at..at + 2], [0x1f, 0x08]);
    encoder.header(
        &http::header::AUTHORIZATION,
        &HeaderValue::from_static("Basic x"),
        &mut block,
    );
    assert_eq!(block[block.len() - 10..block.len() - 8], [0x1f, 0x08]);
}
