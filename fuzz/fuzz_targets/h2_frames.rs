//! A client's HTTP/2 frames and header blocks (`server/h2/`): frames cut from the input
//! parse or fail without a panic, header blocks decode or fail without a panic (the table
//! never above its limit), and every field that decodes, encoded again and decoded by a
//! second decoder, comes back the same.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchyard::server::h2::frame::{self, Frame, Head, HEAD_LEN};
use switchyard::server::h2::hpack::{Decoder, Encoder, Field};

fuzz_target!(|input: &[u8]| {
    let mut rest = Bytes::copy_from_slice(input);
    let mut decoder = Decoder::new(256);
    let (mut encoder, mut mirror) = (Encoder::default(), Decoder::new(4096));
    while rest.len() >= HEAD_LEN {
        let raw: [u8; HEAD_LEN] = rest[..HEAD_LEN].try_into().expect("nine octets");
        let mut head = Head::parse(&raw);
        head.len = head.len.min((rest.len() - HEAD_LEN) as u32);
        let payload = rest.slice(HEAD_LEN..HEAD_LEN + head.len as usize);
        rest = rest.slice(HEAD_LEN + head.len as usize..);
        let block = match frame::parse(head, payload.clone()) {
            Ok(Frame::Headers { fragment, .. } | Frame::Continuation { fragment, .. }) => fragment,
            _ => payload,
        };
        let mut fields = vec![];
        if decoder.decode(&block, |field, _| fields.push(field)).is_err() {
            continue;
        }
        assert!(decoder.table_size() <= 256);
        let mut out = BytesMut::new();
        encoder.begin(&mut out);
        let mut want = vec![];
        for field in fields.into_iter().flatten() {
            if let Field::Header(name, value) = &field {
                encoder.header(name, value, &mut out);
                want.push(field);
            }
        }
        let mut back = vec![];
        mirror
            .decode(&out.freeze(), |field, _| back.push(field))
            .expect("our own block decodes");
        let back: Vec<Field> = back.into_iter().map(|f| f.expect("our own fields are well-formed")).collect();
        assert_eq!(back, want);
    }
});
