//! The request limits, checked before anything is sent upstream: the URI length (phase 1,
//! `414`), and once the route is known its methods (`405` with `Allow`), content types
//! (`415`) and body size (`413` at once when a declared `Content-Length` is larger, so that
//! `Expect: 100-continue` gets the `413` instead of the `100`: hyper sends the `100` only
//! when the body is first read). A body without a declared length is counted as it streams
//! (`crate::body::RequestBody::limit`) and fails the request with `413` the moment it
//! grows past the limit; the backend is not blamed for it (a client fault: the attempt is
//! given back unsettled).
//!
//! Connection limits are counted in [`conn`] and taken when a connection is accepted; a
//! request over the cap of requests in progress per client IP is refused with `503`
//! ([`Refused::ClientBusy`]), as is every request of a connection over a connection limit
//! when `over_connection_limit = "503"` ([`Refused::Connections`]).

pub mod conn;

use http::header::CONTENT_TYPE;
use http::{request, HeaderValue};

use super::error::ProxyError;
use crate::config::{Limits, RouteLimits};
use crate::metrics::{self, Metrics};
use crate::upstream;

/// A request refused by a limit.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The body is (or declares to be) larger than the route's `max_body_size`.
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The request target is longer than `max_uri_length`.
    #[error("request target longer than {limit} bytes")]
    UriTooLong {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The method is not in the route's `allowed_methods`.
    #[error("method not allowed on this route")]
    Method {
        /// The `Allow` header: the methods the route takes.
        allow: HeaderValue,
    },
    /// The body's media type is not in the route's `allowed_content_types`.
    #[error("content type not allowed on this route")]
    ContentType,
    /// The client IP has `max_requests_per_ip` requests in progress already.
    #[error("too many requests in progress from this client")]
    ClientBusy,
    /// The connection came in over a connection limit (`over_connection_limit = "503"`).
    #[error("too many connections")]
    Connections,
}

/// Phase 1: the request target's length (path and query) against `max_uri_length`.
pub fn check_uri(parts: &request::Parts, limits: &Limits) -> Result<(), ProxyError> {
    let len = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if len > limits.max_uri_length {
        return Err(Refused::UriTooLong {
            limit: limits.max_uri_length,
        }
        .into());
    }
    Ok(())
}

/// Phase 4, once the route is known: its methods and content types, and a declared body
/// length against its body limit. Returns the body limit in bytes (`0`: none) that the body
/// is then counted against while it streams.
pub fn check_route(
    parts: &request::Parts,
    declared: Option<u64>,
    has_body: bool,
    route: &RouteLimits,
    limits: &Limits,
) -> Result<u64, ProxyError> {
    if let Some((methods, allow)) = &route.allowed_methods {
        if !methods.contains(&parts.method) {
            return Err(Refused::Method {
                allow: allow.clone(),
            }
            .into());
        }
    }
    if has_body && !route.allowed_content_types.is_empty() {
        let allowed = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| media_type_allowed(ct, &route.allowed_content_types));
        if !allowed {
            return Err(Refused::ContentType.into());
        }
    }
    let max = route.max_body_size.unwrap_or(limits.max_body_size);
    if max != 0 && declared.is_some_and(|n| n > max) {
        return Err(Refused::BodyTooLarge { limit: max }.into());
    }
    Ok(max)
}

/// True when `content_type`'s media type (before any `;`) is one of `allowed` (lower case,
/// `type/subtype` or `type/*`).
fn media_type_allowed(content_type: &str, allowed: &[String]) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let Some((ty, _)) = media.split_once('/') else {
        return false;
    };
    allowed.iter().any(|a| match a.strip_suffix("/*") {
        Some(prefix) => prefix.eq_ignore_ascii_case(ty),
        None => a.eq_ignore_ascii_case(media),
    })
}

/// Counts a refusal by a limit in its metric; other errors are not counted here.
pub fn count(err: &ProxyError, metrics: &Metrics) {
    let c = metrics.local();
    let counter = match err {
        ProxyError::Limit(Refused::BodyTooLarge { .. })
        | ProxyError::Upstream(upstream::Error::ClientBodyTooLarge { .. }) => &c.refused_body_size,
        ProxyError::Limit(Refused::UriTooLong { .. }) => &c.refused_uri_length,
        ProxyError::Limit(Refused::Method { .. }) => &c.refused_method,
        ProxyError::Limit(Refused::ContentType) => &c.refused_content_type,
        ProxyError::Limit(Refused::ClientBusy) => &c.refused_requests_per_ip,
        // Counted when the connection was accepted over the limit.
        ProxyError::Limit(Refused::Connections) => return,
        _ => return,
    };
    metrics::inc(counter);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        let allowed = vec!["application/json".to_owned(), "text/*".to_owned()];
        assert!(media_type_allowed("application/json", &allowed));
        assert!(media_type_allowed(
            "Application/JSON; charset=utf-8",
            &allowed
        ));
        assert!(media_type_allowed("text/plain", &allowed));
        assert!(!media_type_allowed("application/xml", &allowed));
        assert!(!media_type_allowed("json", &allowed));
        assert!(!media_type_allowed("", &allowed));
    }

    #[test]
    fn declared_length_over_the_limit_is_refused_at_once() {
        let parts = http::Request::post("/").body(()).unwrap().into_parts().0;
        let limits = Limits {
            max_body_size: 10,
            ..Limits::default()
        };
        let route = RouteLimits::default();
        assert_eq!(
            check_route(&parts, Some(10), true, &route, &limits).unwrap(),
            10
        );
        assert!(check_route(&parts, Some(11), true, &route, &limits).is_err());
        let unlimited = RouteLimits {
            max_body_size: Some(0),
            ..RouteLimits::default()
        };
        assert_eq!(
            check_route(&parts, Some(11), true, &unlimited, &limits).unwrap(),
            0
        );
    }
}
