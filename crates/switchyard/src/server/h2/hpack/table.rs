//! The fields an HPACK block carries, and the static table (RFC 7541 Appendix A).

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

/// A pseudo-header field (RFC 9113 section 8.3; `:protocol` from RFC 8441).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pseudo {
    /// `:authority`
    Authority,
    /// `:method`
    Method,
    /// `:path`
    Path,
    /// `:scheme`
    Scheme,
    /// `:status`
    Status,
    /// `:protocol`
    Protocol,
}

/// One decoded field: the name checked (lowercase, a token or a known pseudo-header) and
/// the value checked (no control octet, no whitespace at either end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// A pseudo-header and its value.
    Pseudo(Pseudo, Bytes),
    /// A regular header.
    Header(HeaderName, HeaderValue),
}

/// The size of a field for the dynamic table and the header list limit: its name's and its
/// value's octets and 32 (RFC 7541 section 4.1).
pub fn size(name: usize, value: usize) -> usize {
    name + value + 32
}

impl Pseudo {
    /// The pseudo-header called `name` (with its colon).
    pub fn of(name: &[u8]) -> Option<Pseudo> {
        Some(match name {
            b":authority" => Pseudo::Authority,
            b":method" => Pseudo::Method,
            b":path" => Pseudo::Path,
            b":scheme" => Pseudo::Scheme,
            b":status" => Pseudo::Status,
            b":protocol" => Pseudo::Protocol,
            _ => return None,
        })
    }

    /// Its name, with the colon.
    pub fn name(self) -> &'static str {
        match self {
            Pseudo::Authority => ":authority",
            Pseudo::Method => ":method",
            Pseudo::Path => ":path",
            Pseudo::Scheme => ":scheme",
            Pseudo::Status => ":status",
            Pseudo::Protocol => ":protocol",
        }
    }
}

impl Field {
    /// Its size (see [`size`]).
    pub fn size(&self) -> usize {
        match self {
            Field::Pseudo(p, v) => size(p.name().len(), v.len()),
            Field::Header(n, v) => size(n.as_str().len(), v.len()),
        }
    }
}

const fn hdr(name: &'static str, value: &'static str) -> Field {
    Field::Header(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    )
}

/// The static table; index 1 is `STATIC[0]`.
pub static STATIC: [Field; 61] = [
    Field::Pseudo(Pseudo::Authority, Bytes::from_static(b"")),
    Field::Pseudo(Pseudo::Method, Bytes::from_static(b"GET")),
    Field::Pseudo(Pseudo::Method, Bytes::from_static(b"POST")),
    Field::Pseudo(Pseudo::Path, Bytes::from_static(b"/")),
    Field::Pseudo(Pseudo::Path, Bytes::from_static(b"/index.html")),
    Field::Pseudo(Pseudo::Scheme, Bytes::from_static(b"http")),
    Field::Pseudo(Pseudo::Scheme, Bytes::from_static(b"https")),
    Field::Pseudo(Pseudo::Status, Bytes::from_static(b"200")),
    Field::Pseudo(Pseudo::Status, Bytes::from_static(b"204")),
    Field::Pseudo(Pseudo::Status, Bytes::from_static(b"206")),
    Field::Pseudo(Pseudo::Status, Bytes::from_static(b"304")),
    Field::Pseudo(Pseudo::Status, Bytes::from_static(b"400")),
    Field::Pseudo(Pseudo::Status, Bytes::from_static(b"404")),
    Field::Pseudo(Pseudo::Status, Bytes::from_static(b"500")),
    hdr("accept-charset", ""),
    hdr("accept-encoding", "gzip, deflate"),
    hdr("accept-language", ""),
    hdr("accept-ranges", ""),
    hdr("accept", ""),
    hdr("access-control-allow-origin", ""),
    hdr("age", ""),
    hdr("allow", ""),
    hdr("authorization", ""),
    hdr("cache-control", ""),
    hdr("content-disposition", ""),
    hdr("content-encoding", ""),
    hdr("content-language", ""),
    hdr("content-length", ""),
    hdr("content-location", ""),
    hdr("content-range", ""),
    hdr("content-type", ""),
    hdr("cookie", ""),
    hdr("date", ""),
    hdr("etag", ""),
    hdr("expect", ""),
    hdr("expires", ""),
    hdr("from", ""),
    hdr("host", ""),
    hdr("if-match", ""),
    hdr("if-modified-since", ""),
    hdr("if-none-match", ""),
    hdr("if-range", ""),
    hdr("if-unmodified-since", ""),
    hdr("last-modified", ""),
    hdr("link", ""),
    hdr("location", ""),
    hdr("max-forwards", ""),
    hdr("proxy-authenticate", ""),
    hdr("proxy-authorization", ""),
    hdr("range", ""),
    hdr("referer", ""),
    hdr("refresh", ""),
    hdr("retry-after", ""),
    hdr("server", ""),
    hdr("set-cookie", ""),
    hdr("strict-transport-security", ""),
    hdr("transfer-encoding", ""),
    hdr("user-agent", ""),
    hdr("vary", ""),
    hdr("via", ""),
    hdr("www-authenticate", ""),
];

/// The static table's index of the first entry called `name`, for a regular header.
pub fn static_name(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "accept-charset" => 15,
        "accept-encoding" => 16,
        "accept-language" => 17,
        "accept-ranges" => 18,
        "accept" => 19,
        "access-control-allow-origin" => 20,
        "age" => 21,
        "allow" => 22,
        "authorization" => 23,
        "cache-control" => 24,
        "content-disposition" => 25,
        "content-encoding" => 26,
        "content-language" => 27,
        "content-length" => 28,
        "content-location" => 29,
        "content-range" => 30,
        "content-type" => 31,
        "cookie" => 32,
        "date" => 33,
        "etag" => 34,
        "expect" => 35,
        "expires" => 36,
        "from" => 37,
        "host" => 38,
        "if-match" => 39,
        "if-modified-since" => 40,
        "if-none-match" => 41,
        "if-range" => 42,
        "if-unmodified-since" => 43,
        "last-modified" => 44,
        "link" => 45,
        "location" => 46,
        "max-forwards" => 47,
        "proxy-authenticate" => 48,
        "proxy-authorization" => 49,
        "range" => 50,
        "referer" => 51,
        "refresh" => 52,
        "retry-after" => 53,
        "server" => 54,
        "set-cookie" => 55,
        "strict-transport-security" => 56,
        "transfer-encoding" => 57,
        "user-agent" => 58,
        "vary" => 59,
        "via" => 60,
        "www-authenticate" => 61,
        _ => return None,
    })
}

/// The static table's index of `:status` with the value `code`, when it has one.
pub fn static_status(code: u16) -> Option<usize> {
    Some(match code {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_static_name_maps_back_to_its_first_entry() {
        for (i, field) in STATIC.iter().enumerate() {
            if let Field::Header(name, _) = field {
                let first = static_name(name).expect("listed");
                assert!(first <= i + 1);
                assert!(matches!(&STATIC[first - 1], Field::Header(n, _) if n == name));
            }
        }
        for code in [200, 204, 206, 304, 400, 404, 500] {
            let at = static_status(code).expect("listed");
            assert_eq!(
                STATIC[at - 1],
                Field::Pseudo(Pseudo::Status, Bytes::from(code.to_string()))
            );
        }
    }
}
