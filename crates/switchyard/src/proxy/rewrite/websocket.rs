//! A WebSocket on an HTTP/2 stream (RFC 8441) bridged to an HTTP/1.1 backend: the request
//! becomes the HTTP/1.1 handshake the backend expects (RFC 6455 §4.1), and the backend's
//! `101` the `200` that opens the stream's tunnel (RFC 8441 §5).
//!
//! Only the headers that differ between the two handshakes change. HTTP/2 has no
//! `Upgrade`/`Connection` and no `Sec-WebSocket-Key`/`-Accept` pair (the stream itself proves
//! the server took the request), so the backend gets `Upgrade: websocket`,
//! `Connection: upgrade` and a key of our own, freshly drawn; `Sec-WebSocket-Protocol` and
//! `-Extensions` are the client's, passed on as they are, and so is its
//! `Sec-WebSocket-Version` (`13` when it sent none). The backend's `Sec-WebSocket-Accept`
//! answers our key, not the client's, and is not passed back; what the backend chose
//! (`Sec-WebSocket-Protocol`, `-Extensions`) is.

use http::header::{
    self, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
};
use http::{response, StatusCode};

/// Makes an HTTP/2 WebSocket's headers (hop-by-hop ones already gone) those of an HTTP/1.1
/// upgrade request.
pub fn to_http1_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(SEC_WEBSOCKET_KEY, new_key());
    if !headers.contains_key(SEC_WEBSOCKET_VERSION) {
        headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    }
}

/// Makes the backend's `101` head (hop-by-hop headers already gone) the `200` that opens an
/// HTTP/2 WebSocket.
pub fn to_h2_opened(parts: &mut response::Parts) {
    parts.status = StatusCode::OK;
    parts.headers.remove(SEC_WEBSOCKET_ACCEPT);
}

/// A `Sec-WebSocket-Key`: 16 random bytes, base64 (RFC 6455 §4.1, item 7).
fn new_key() -> HeaderValue {
    let mut nonce = [0u8; 16];
    let random = crate::config::tls::crypto_provider().secure_random;
    if random.fill(&mut nonce).is_err() {
        // The system's generator failed (it does not): a nonce from the process's hash keys
        // does, for a value that is only there to be echoed back.
        use std::hash::{BuildHasher, Hasher};
        for half in nonce.chunks_mut(8) {
            let mut h = std::hash::RandomState::new().build_hasher();
            h.write_u8(0);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    let encoded = base64(&nonce);
    // Base64 is ASCII letters, digits, `+`, `/` and `=`: always a valid header value.
    HeaderValue::from_bytes(&encoded).expect("base64 is a valid header value")
}

/// Standard base64 with padding of 16 bytes: 24 characters.
fn base64(bytes: &[u8; 16]) -> [u8; 24] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = [b'='; 24];
    for (i, chunk) in bytes.chunks(3).enumerate() {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // A chunk of k bytes gives k + 1 characters; the rest stays padding.
        for j in 0..=chunk.len() {
            out[i * 4 + j] = ALPHABET[((n >> (18 - 6 * j)) & 63) as usize];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_sixteen_bytes() {
        // RFC 6455 §1.3's sample nonce.
        assert_eq!(&base64(b"the sample nonce"), b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(&base64(&[0xff; 16]), b"/////////////////////w==");
        assert_eq!(&base64(&[0; 16]), b"AAAAAAAAAAAAAAAAAAAAAA==");
    }

    #[test]
    fn keys_are_fresh() {
        let (a, b) = (new_key(), new_key());
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
    }

    #[test]
    fn the_request_gets_the_http1_upgrade_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("sec-websocket-protocol", HeaderValue::from_static("chat"));
        headers.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("from-client"));
        to_http1_upgrade(&mut headers);
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["connection"], "upgrade");
        assert_eq!(headers["sec-websocket-version"], "13");
        assert_eq!(headers["sec-websocket-protocol"], "chat");
        assert_ne!(headers[SEC_WEBSOCKET_KEY], "from-client");
    }
}
