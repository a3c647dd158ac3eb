//! Routes: which requests a route takes ([`RouteMatch`]), what it does with them
//! ([`RouteAction`]) and how it changes them on the way.
//!
//! # Precedence
//!
//! A request is taken by the most specific route that matches it, whatever the order in the
//! file; only between equally specific routes does file order decide. Specificity compares,
//! in this order:
//!
//! 1. host: an exact host beats a wildcard (`*.example.com`), a longer wildcard beats a
//!    shorter one, and any wildcard beats no host condition;
//! 2. path: an exact path beats a prefix, a longer prefix beats a shorter one, and any
//!    prefix beats no path condition;
//! 3. client certificate: a route asking for a subject alternative name beats one asking
//!    for any verified certificate, which beats one asking nothing;
//! 4. conditions: a route with a method condition beats one without; then more header
//!    conditions beat fewer.
//!
//! A route that can never match because a route ranked before it takes every request it
//! would take is a configuration error.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::RateLimitConfig;

/// A route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    /// Name for logs, metrics and errors.
    pub name: String,
    /// Which requests it takes.
    pub matcher: RouteMatch,
    /// What it does with them.
    pub action: RouteAction,
    /// Path rewriting before forwarding.
    pub rewrite: PathRewrite,
    /// Upstream timeout override.
    pub timeout: Option<Duration>,
    /// A rate limit of its own, on top of the global one.
    pub rate_limit: Option<RateLimitConfig>,
    /// A per-client rate limit of its own, on top of the global one.
    pub client_rate_limit: Option<super::client_limit::ClientRateLimitConfig>,
    /// Changes to request headers (before forwarding).
    pub request_headers: HeaderEdits,
    /// Changes to response headers (before responding).
    pub response_headers: HeaderEdits,
    /// Who may use it (`None`: anyone).
    pub access: Option<std::sync::Arc<super::RouteAccess>>,
    /// Body size, methods and content types it takes; its security headers.
    pub limits: crate::config::RouteLimits,
}

/// Conditions a request must meet; all must hold.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RouteMatch {
    /// Host condition.
    pub host: HostMatch,
    /// Path condition.
    pub path: PathMatch,
    /// Methods; empty means any.
    pub methods: Vec<Method>,
    /// Headers that must be present with exactly these values.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// What the client's verified certificate (mutual TLS) must be.
    pub client: ClientMatch,
}

/// Client certificate condition.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ClientMatch {
    /// Any client, with or without a certificate.
    #[default]
    Any,
    /// A client that presented a verified certificate.
    Certificate,
    /// A client whose verified certificate has this subject alternative name (compared as
    /// written: `spiffe://example.org/web`, a DNS name, an e-mail or an IP address).
    San(String),
}

/// Host condition (compared without port, case-insensitively).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum HostMatch {
    /// Any host.
    #[default]
    Any,
    /// Exactly this host (lower case).
    Exact(String),
    /// Any host ending in this suffix, which starts with a dot (`.example.com` from
    /// `*.example.com`); the bare domain does not match.
    Wildcard(String),
}

/// Path condition.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum PathMatch {
    /// Any path.
    #[default]
    Any,
    /// Exactly this path.
    Exact(String),
    /// This prefix, on a segment boundary: `/api` takes `/api`, `/api/x`, not `/apix`.
    Prefix(String),
}

/// What a route does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteAction {
    /// Forward to the named pool.
    Forward {
        /// Pool name.
        pool: String,
    },
    /// Answer with a redirect to `to`, where `{host}` (without port), `{hostport}`, `{uri}`,
    /// `{path}` and `{query}` are replaced from the request.
    Redirect {
        /// Target template.
        to: String,
        /// 301, 302, 303, 307 or 308.
        status: StatusCode,
    },
    /// Answer with a fixed response.
    Respond {
        /// Status.
        status: StatusCode,
        /// Body.
        body: Bytes,
        /// Content type.
        content_type: HeaderValue,
    },
}

/// How the path is changed before forwarding.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum PathRewrite {
    /// Unchanged.
    #[default]
    None,
    /// This prefix is removed (`/api/users` → `/users` for `/api`).
    Strip(String),
    /// The route's matched prefix is replaced by `with`.
    Replace {
        /// The prefix matched.
        prefix: String,
        /// What replaces it.
        with: String,
    },
}

/// Header changes: remove, then set, then add.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HeaderEdits {
    /// Removed.
    pub remove: Vec<HeaderName>,
    /// Replaced (or inserted).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Appended.
    pub add: Vec<(HeaderName, HeaderValue)>,
}

// === impl RouteConfig ===

impl RouteConfig {
    /// A route taking every request to `pool`.
    pub fn catch_all(pool: &str) -> Self {
        RouteConfig {
            name: "default".to_owned(),
            matcher: RouteMatch::default(),
            action: RouteAction::Forward {
                pool: pool.to_owned(),
            },
            rewrite: PathRewrite::None,
            timeout: None,
            rate_limit: None,
            client_rate_limit: None,
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            access: None,
            limits: crate::config::RouteLimits::default(),
        }
    }
}

// === impl RouteMatch ===

impl RouteMatch {
    /// True when the request matches every condition. `host` is the request's host without
    /// port, lower case; `client_sans` the subject alternative names of the client's
    /// verified certificate (`None`: the client presented none).
    pub fn matches(
        &self,
        host: &str,
        path: &str,
        method: &Method,
        headers: &http::HeaderMap,
        client_sans: Option<&[String]>,
    ) -> bool {
        self.host.matches(host)
            && self.path.matches(path)
            && self.client.matches(client_sans)
            && (self.methods.is_empty() || self.methods.contains(method))
            && self
                .headers
                .iter()
                .all(|(name, value)| headers.get_all(name).iter().any(|v| v == value))
    }

    /// Specificity, larger first (see the module doc).
    pub fn rank(&self) -> (u8, usize, u8, usize, u8, bool, usize) {
        let (host_kind, host_len) = match &self.host {
            HostMatch::Exact(h) => (2, h.len()),
            HostMatch::Wildcard(s) => (1, s.len()),
            HostMatch::Any => (0, 0),
        };
        let (path_kind, path_len) = match &self.path {
            PathMatch::Exact(p) => (2, p.len()),
            PathMatch::Prefix(p) => (1, p.len()),
            PathMatch::Any => (0, 0),
        };
        let client = match &self.client {
            ClientMatch::San(_) => 2,
            ClientMatch::Certificate => 1,
            ClientMatch::Any => 0,
        };
        (
            host_kind,
            host_len,
            path_kind,
            path_len,
            client,
            !self.methods.is_empty(),
            self.headers.len(),
        )
    }

    /// True when every request `other` takes would also be taken by `self`.
    pub fn covers(&self, other: &RouteMatch) -> bool {
        let host = match (&self.host, &other.host) {
            (HostMatch::Any, _) => true,
            (HostMatch::Exact(a), HostMatch::Exact(b)) => a == b,
            (HostMatch::Wildcard(a), HostMatch::Exact(b)) => {
                HostMatch::Wildcard(a.clone()).matches(b)
            }
            (HostMatch::Wildcard(a), HostMatch::Wildcard(b)) => b.ends_with(a.as_str()),
            _ => false,
        };
        let path = match (&self.path, &other.path) {
            (PathMatch::Any, _) => true,
            (PathMatch::Exact(a), PathMatch::Exact(b)) => a == b,
            (PathMatch::Prefix(a), PathMatch::Exact(b)) => prefix_matches(a, b),
            (PathMatch::Prefix(a), PathMatch::Prefix(b)) => prefix_matches(a, b),
            _ => false,
        };
        let methods = self.methods.is_empty()
            || (!other.methods.is_empty()
                && other.methods.iter().all(|m| self.methods.contains(m)));
        let headers = self.headers.iter().all(|h| other.headers.contains(h));
        let client = match (&self.client, &other.client) {
            (ClientMatch::Any, _) => true,
            (ClientMatch::Certificate, other) => *other != ClientMatch::Any,
            (ClientMatch::San(a), ClientMatch::San(b)) => a == b,
            (ClientMatch::San(_), _) => false,
        };
        host && path && methods && headers && client
    }
}

impl ClientMatch {
    /// True when a client with these verified subject alternative names (`None`: no
    /// certificate) meets the condition.
    pub fn matches(&self, client_sans: Option<&[String]>) -> bool {
        match self {
            ClientMatch::Any => true,
            ClientMatch::Certificate => client_sans.is_some(),
            ClientMatch::San(san) => client_sans.is_some_and(|sans| sans.contains(san)),
        }
    }
}

impl HostMatch {
    /// True when `host` (lower case, no port) meets the condition.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h == host,
            HostMatch::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

impl PathMatch {
    /// True when `path` meets the condition.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => prefix_matches(p, path),
        }
    }
}

/// `/api` matches `/api`, `/api/` and `/api/x` but not `/apix`; `/api/` matches `/api/x`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

// === impl HeaderEdits ===

impl HeaderEdits {
    /// Applies the edits: remove, then set, then add.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

// === impl PathRewrite ===

impl PathRewrite {
    /// The rewritten path, or `None` when unchanged.
    pub fn apply(&self, path: &str) -> Option<String> {
        let (prefix, with) = match self {
            PathRewrite::None => return None,
            PathRewrite::Strip(prefix) => (prefix.as_str(), ""),
            PathRewrite::Replace { prefix, with } => (prefix.as_str(), with.as_str()),
        };
        // Only a whole leading segment (or segments) is rewritten: `/api` never touches `/apix`.
        if !prefix_matches(prefix, path) {
            return None;
        }
        let rest = &path[prefix.len()..];
        let mut out = String::with_capacity(with.len() + rest.len() + 1);
        out.push_str(with);
        match (out.ends_with('/'), rest.starts_with('/')) {
            (true, true) => out.push_str(&rest[1..]),
            (false, false) if !rest.is_empty() => {
                out.push('/');
                out.push_str(rest);
            }
            _ => out.push_str(rest),
        }
        if out.is_empty() {
            out.push('/');
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests;
