//! The route table: which route a request takes (see [`crate::config::route`] for the
//! precedence rules) and what the route does with it.
//!
//! Routes are kept most specific first, so finding a request's route is a walk down the list
//! that stops at the first match; the seed's usage has a single catch-all route and the walk
//! is one comparison.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::HOST;
use http::request::Parts;

use crate::config::{HostMatch, RouteConfig};
use crate::ratelimit::keyed::ClientLimiter;
use crate::ratelimit::RateLimiter;
use crate::upstream::Pool;

/// A route ready for the request path.
#[derive(Debug)]
pub struct Route {
    /// Its configuration (name, match, action, rewrite, header edits, timeout).
    pub config: RouteConfig,
    /// The pool requests are forwarded to, for forwarding routes.
    pub pool: Option<Arc<Pool>>,
    /// The route's own rate limit, if it has one.
    pub limiter: Option<Arc<RateLimiter>>,
    /// The route's own per-client rate limit, if it has one.
    pub client_limiter: Option<Arc<ClientLimiter>>,
}

/// All routes, most specific first.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Whether any route looks at the host (if none does, the `Host` header is not parsed).
    needs_host: bool,
}

// === impl RouteTable ===

impl RouteTable {
    /// A table of `routes`, already in precedence order.
    pub fn new(routes: Vec<Route>) -> Self {
        let needs_host = routes
            .iter()
            .any(|r| r.config.matcher.host != HostMatch::Any);
        RouteTable { routes, needs_host }
    }

    /// The routes, in precedence order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route `req` takes, if any; `client_sans` are the subject alternative names of the
    /// client's verified certificate (`None`: it presented none).
    pub fn find(&self, req: &Parts, client_sans: Option<&[String]>) -> Option<&Route> {
        let host = if self.needs_host {
            request_host(req)
        } else {
            Cow::Borrowed("")
        };
        let path = req.uri.path();
        self.routes.iter().find(|r| {
            r.config
                .matcher
                .matches(&host, path, &req.method, &req.headers, client_sans)
        })
    }
}

/// The request's host, without port, lower case (`""` when it has none).
pub fn request_host(req: &Parts) -> Cow<'_, str> {
    let raw = req
        .uri
        .host()
        .or_else(|| req.headers.get(HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    let host = strip_port(raw);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_without_port_lowercase() {
        let req = http::Request::get("/")
            .header("host", "API.Example.com:8080")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(request_host(&req), "api.example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("example.com"), "example.com");
    }
}
