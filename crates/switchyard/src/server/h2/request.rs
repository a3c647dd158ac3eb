//! A request from a decoded header block (RFC 9113 section 8.3), checked as the RFC asks:
//! any rule broken makes the request malformed, and its stream is reset.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{request, Method, Request, Uri, Version};

use super::hpack::{Field, Pseudo};

/// What a header block gave, field by field.
#[derive(Debug, Default)]
pub struct Fields {
    method: Option<Bytes>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    protocol: Option<Bytes>,
    /// The regular fields.
    pub headers: HeaderMap,
    /// A rule broken (or a field that did not decode well-formed).
    pub malformed: bool,
    /// The decoded list's size (RFC 7541's count), against the header list limit.
    pub size: usize,
    /// `cookie` fields, put back together (RFC 9113 section 8.2.3).
    cookies: Option<BytesMut>,
    /// Pseudo-headers seen.
    pseudo: usize,
}

impl Fields {
    /// Takes the next field of the block (`None`: one that was malformed), of `size`.
    pub fn push(&mut self, field: Option<Field>, size: usize, limit: usize) {
        self.size += size;
        if self.malformed || self.size > limit {
            return;
        }
        match field {
            None => self.malformed = true,
            Some(Field::Pseudo(p, value)) => {
                self.pseudo += 1;
                let slot = match p {
                    Pseudo::Method => &mut self.method,
                    Pseudo::Scheme => &mut self.scheme,
                    Pseudo::Authority => &mut self.authority,
                    Pseudo::Path => &mut self.path,
                    Pseudo::Protocol => &mut self.protocol,
                    Pseudo::Status => {
                        self.malformed = true;
                        return;
                    }
                };
                // Pseudo-headers come first, once each.
                if slot.is_some() || !self.headers.is_empty() || self.cookies.is_some() {
                    self.malformed = true;
                }
                *slot = Some(value);
            }
            Some(Field::Header(name, value)) => {
                if is_connection_specific(&name, &value) {
                    self.malformed = true;
                } else if name == header::COOKIE {
                    let cookies = self.cookies.get_or_insert_with(BytesMut::new);
                    if !cookies.is_empty() {
                        cookies.put_slice(b"; ");
                    }
                    cookies.put_slice(value.as_bytes());
                } else {
                    self.headers.append(name, value);
                }
            }
        }
    }

    /// True when only regular fields came (trailers have no pseudo-header).
    pub fn is_trailers(&self) -> bool {
        self.pseudo == 0
    }

    /// The request (and its `content-length`), or `None` for a malformed one.
    pub fn request(mut self) -> Option<(request::Parts, Option<u64>)> {
        if self.malformed {
            return None;
        }
        if let Some(cookies) = self.cookies.take() {
            let value = HeaderValue::from_maybe_shared(cookies.freeze()).ok()?;
            self.headers.insert(header::COOKIE, value);
        }
        let method = Method::from_bytes(self.method.as_deref()?).ok()?;
        let mut uri = http::uri::Parts::default();
        uri.authority = match self.authority {
            Some(a) => Some(Authority::from_maybe_shared(a).ok()?),
            None => None,
        };
        let extended = self.protocol.is_some();
        if method == Method::CONNECT && !extended {
            // A tunnel to `:authority`: no scheme, no path (RFC 9113 section 8.5).
            if self.scheme.is_some() || self.path.is_some() || uri.authority.is_none() {
                return None;
            }
        } else {
            // `:protocol` only on CONNECT (RFC 8441 section 4).
            if extended && method != Method::CONNECT {
                return None;
            }
            let scheme = self.scheme?;
            let path = self.path.filter(|p| !p.is_empty())?;
            if uri.authority.is_some() {
                uri.scheme = Some(Scheme::try_from(&scheme[..]).ok()?);
            }
            uri.path_and_query = Some(PathAndQuery::from_maybe_shared(path).ok()?);
        }
        let uri = Uri::from_parts(uri).ok()?;
        let expected = content_length(&self.headers)?;
        let mut req = Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_2;
        *req.headers_mut() = self.headers;
        if let Some(protocol) = self.protocol {
            let protocol = std::str::from_utf8(&protocol).ok()?;
            req.extensions_mut()
                .insert(hyper::ext::Protocol::from(protocol));
        }
        Some((req.into_parts().0, expected))
    }
}

/// Fields that mean something only on an HTTP/1.1 connection (RFC 9113 section 8.2.2).
fn is_connection_specific(name: &header::HeaderName, value: &HeaderValue) -> bool {
    match *name {
        header::CONNECTION | header::TRANSFER_ENCODING | header::UPGRADE => true,
        header::TE => value != "trailers",
        _ => name == "keep-alive" || name == "proxy-connection",
    }
}

/// The request's `content-length`: `Some(None)` without one, `None` when it is not one
/// decimal number (several equal ones are one).
fn content_length(headers: &HeaderMap) -> Option<Option<u64>> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let digits = value.as_bytes();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    Some(length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderName;

    fn fields(list: &[(&str, &str)]) -> Fields {
        let mut f = Fields::default();
        for (n, v) in list {
            let field = match Pseudo::of(n.as_bytes()) {
                Some(p) => Field::Pseudo(p, Bytes::copy_from_slice(v.as_bytes())),
                None => Field::Header(
                    HeaderName::from_bytes(n.as_bytes()).expect("name"),
                    HeaderValue::from_str(v).expect("value"),
                ),
            };
            f.push(Some(field), 0, usize::MAX);
        }
        f
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "example.com"),
        (":path", "/a?b"),
    ];

    #[test]
    fn a_request_is_built_from_its_pseudo_headers() {
        let mut list = GET.to_vec();
        list.extend([
            ("cookie", "a=1"),
            ("accept", "*/*"),
            ("cookie", "b=2"),
            ("content-length", "5"),
        ]);
        let (parts, len) = fields(&list).request().expect("well-formed");
        assert_eq!(parts.method, Method::GET);
        assert_eq!(parts.uri, "https://example.com/a?b");
        assert_eq!(parts.version, Version::HTTP_2);
        assert_eq!(parts.headers[header::COOKIE], "a=1; b=2");
        assert_eq!(len, Some(5));
        let (parts, _) = fields(&[(":method", "CONNECT"), (":authority", "example.com:443")])
            .request()
            .expect("a tunnel");
        assert_eq!(
            parts.uri.authority().map(|a| a.as_str()),
            Some("example.com:443")
        );
        let mut ws = GET.to_vec();
        ws[0] = (":method", "CONNECT");
        ws.push((":protocol", "websocket"));
        let (parts, _) = fields(&ws).request().expect("extended CONNECT");
        assert_eq!(
            parts
                .extensions
                .get::<hyper::ext::Protocol>()
                .map(|p| p.as_str()),
            Some("websocket")
        );
    }

    #[test]
    fn malformed_requests_are_refused() {
        let with = |extra: &[(&str, &str)]| {
            let mut list = GET.to_vec();
            list.extend_from_slice(extra);
            fields(&list).request()
        };
        assert!(with(&[("connection", "keep-alive")]).is_none());
        assert!(with(&[("te", "gzip")]).is_none());
        assert!(with(&[("te", "trailers")]).is_some());
        assert!(with(&[("content-length", "1"), ("content-length", "2")]).is_none());
        assert!(with(&[("content-length", "+1")]).is_none());
        assert!(with(&[(":path", "/again")]).is_none());
        assert!(with(&[(":protocol", "websocket")]).is_none());
        assert!(fields(&[("accept", "*/*"), (":method", "GET")])
            .request()
            .is_none());
        assert!(fields(&GET[..3]).request().is_none());
        assert!(fields(&[
            (":method", "CONNECT"),
            (":authority", "a:1"),
            (":path", "/")
        ])
        .request()
        .is_none());
        let mut status = Fields::default();
        status.push(
            Some(Field::Pseudo(Pseudo::Status, Bytes::from_static(b"200"))),
            0,
            usize::MAX,
        );
        assert!(status.malformed);
    }
}
