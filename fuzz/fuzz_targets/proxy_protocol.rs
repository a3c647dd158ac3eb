//! PROXY protocol headers (`server/proxy_protocol.rs`): the framing that decides how many
//! bytes of a connection are header, and the parse of a whole header (the `ppp` crate's,
//! under our limits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::server::proxy_protocol::{framing, parse, Framing, V2_MAX};

fuzz_target!(|data: &[u8]| {
    match framing(data) {
        Framing::Complete(len) => {
            // A complete header is never longer than the limits allow, and every prefix
            // of it is still a partial header (what `read` relies on to consume safely).
            assert!(len <= V2_MAX, "{len}");
            assert!(len >= 8, "{len}");
            for cut in [1, len / 2, len - 1] {
                assert!(
                    matches!(framing(&data[..cut.min(data.len())]), Framing::Partial | Framing::Complete(_)),
                    "a prefix of a header is refused"
                );
            }
            if len <= data.len() {
                let _ = parse(&data[..len]);
            }
        }
        Framing::Partial | Framing::Invalid(_) => {}
    }
    let _ = parse(data);
});
