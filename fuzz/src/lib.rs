//! What the fuzz targets share: request and response heads built from fuzz bytes the way
//! hyper hands them to switchyard (parsed with `httparse`, hyper's own parser, then only
//! what hyper would accept: a known-good method, a target `http::Uri` takes, valid header
//! names and values), and small structured values drawn with `arbitrary`.

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderName, HeaderValue, Method, Version};

/// Most headers one fuzzed head carries (hyper's default is 100).
const MAX_HEADERS: usize = 64;

/// `:protocol` values an HTTP/2 extended CONNECT may carry in a fuzzed head.
const PROTOCOLS: [&str; 4] = ["websocket", "WebSocket", "webtransport", "connect-udp"];

/// A request head from `u`: a version switch (HTTP/2, with or without `:protocol`) and the
/// rest as HTTP/1 text (a missing blank line at the end is added). `None` when hyper
/// would have refused the bytes.
pub fn request_head(u: &mut Unstructured<'_>) -> Option<http::request::Parts> {
    let h2 = bool::arbitrary(u).ok()?;
    let protocol = u8::arbitrary(u).ok()?;
    let text = head_text(u);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    parsed.parse(&text).ok()?;
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    let uri: http::Uri = parsed.path?.parse().ok()?;
    let version = match (h2, parsed.version?) {
        (true, _) => Version::HTTP_2,
        (false, 0) => Version::HTTP_10,
        (false, _) => Version::HTTP_11,
    };
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .version(version);
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(h.value).ok()?;
        req = req.header(name, value);
    }
    if h2 {
        if let Some(p) = PROTOCOLS.get(usize::from(protocol)) {
            req = req.extension(hyper::ext::Protocol::from_static(p));
        }
    }
    Some(req.body(()).ok()?.into_parts().0)
}

/// A response head from `u`, as HTTP/1 text; `None` when hyper would have refused it.
pub fn response_head(u: &mut Unstructured<'_>) -> Option<http::response::Parts> {
    let text = head_text(u);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed.parse(&text).ok()?;
    let mut resp = http::Response::builder().status(parsed.code?);
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(h.value).ok()?;
        resp = resp.header(name, value);
    }
    Some(resp.body(()).ok()?.into_parts().0)
}

/// A length-prefixed piece of `u`, with the head's blank line added when it is missing.
fn head_text(u: &mut Unstructured<'_>) -> Vec<u8> {
    let raw: &[u8] = Arbitrary::arbitrary(u).unwrap_or_default();
    let mut text = raw.to_vec();
    if !text.ends_with(b"\r\n\r\n") {
        text.extend_from_slice(b"\r\n\r\n");
    }
    text
}

/// A string from `u` (empty when `u` is exhausted).
pub fn string(u: &mut Unstructured<'_>) -> String {
    String::arbitrary(u).unwrap_or_default()
}

/// A header name from a small set that switchyard treats specially, or a fuzzed one.
pub fn header_name(u: &mut Unstructured<'_>) -> Option<HeaderName> {
    const KNOWN: [&str; 10] = [
        "host",
        "connection",
        "upgrade",
        "te",
        "transfer-encoding",
        "content-length",
        "x-forwarded-for",
        "authorization",
        "x-api-key",
        "content-type",
    ];
    let pick = u8::arbitrary(u).ok()?;
    match KNOWN.get(usize::from(pick)) {
        Some(name) => Some(HeaderName::from_static(name)),
        None => HeaderName::from_bytes(string(u).as_bytes()).ok(),
    }
}

/// A header value from `u`, if the bytes make one.
pub fn header_value(u: &mut Unstructured<'_>) -> Option<HeaderValue> {
    let raw: &[u8] = Arbitrary::arbitrary(u).ok()?;
    HeaderValue::from_bytes(raw).ok()
}
