//! `[[routes]]`: the `match` table, the actions (`pool`, `redirect`, `respond`) and the header
//! edits.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{PositiveDur, RateLimitFile, RouteAccessFile, SecurityHeadersFile, Size, Str};

/// One `[[routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Name for logs, metrics and errors (default `routes[N]`).
    pub name: Option<Str>,
    /// What requests the route takes; without it, every request.
    #[serde(rename = "match")]
    pub matcher: Option<MatchFile>,
    /// The pool requests go to.
    pub pool: Option<Spanned<Str>>,
    /// Answer with a redirect instead.
    pub redirect: Option<Spanned<RedirectFile>>,
    /// Answer with a fixed response instead.
    pub respond: Option<Spanned<RespondFile>>,
    /// Removed from the front of the path before forwarding.
    pub strip_prefix: Option<Spanned<Str>>,
    /// Replaces the matched `path_prefix` before forwarding.
    pub rewrite_prefix: Option<Spanned<Str>>,
    /// Upstream timeout for this route.
    pub timeout: Option<PositiveDur>,
    /// Rate limit for this route, on top of the global one.
    pub rate_limit: Option<RateLimitFile>,
    /// Per-client rate limit for this route, on top of the global one.
    pub client_rate_limit: Option<crate::config::client_limit::ClientRateLimitFile>,
    /// Changes to the request headers.
    pub request_headers: Option<HeadersFile>,
    /// Changes to the response headers.
    pub response_headers: Option<HeadersFile>,
    /// Who may use the route: an API key, a role, IP rules.
    pub access: Option<Spanned<RouteAccessFile>>,
    /// Largest request body (`0`: no limit); default the pool's, else `[limits]`'.
    pub max_body_size: Option<Size>,
    /// Methods the route takes; others get `405`.
    pub allowed_methods: Option<Spanned<Vec<Spanned<Str>>>>,
    /// Media types a request body may have; others get `415`.
    pub allowed_content_types: Option<Spanned<Vec<Spanned<Str>>>>,
    /// Security headers of the responses: `"recommended"`, or a table.
    pub security_headers: Option<Spanned<SecurityHeadersFile>>,
}

/// `[routes.match]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    /// `api.example.com` or `*.example.com`.
    pub host: Option<Spanned<Str>>,
    /// Exact path.
    pub path: Option<Spanned<Str>>,
    /// Path prefix, matched on segment boundaries.
    pub path_prefix: Option<Spanned<Str>>,
    /// Methods; any when absent.
    pub methods: Option<Vec<Spanned<Str>>>,
    /// Headers that must be present with these values.
    pub headers: Option<BTreeMap<Spanned<String>, Spanned<Str>>>,
    /// A subject alternative name the client's verified certificate must have
    /// (`spiffe://example.org/web`, a DNS name, an e-mail address, an IP address).
    pub client_san: Option<Spanned<Str>>,
    /// `true`: the client must have presented a verified certificate.
    pub client_cert: Option<Spanned<bool>>,
}

/// `request_headers` / `response_headers`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersFile {
    /// Set (replace) these headers.
    #[serde(default)]
    pub set: BTreeMap<Spanned<String>, Spanned<Str>>,
    /// Add these headers (keeping existing values).
    #[serde(default)]
    pub add: BTreeMap<Spanned<String>, Spanned<Str>>,
    /// Remove these headers.
    #[serde(default)]
    pub remove: Vec<Spanned<String>>,
}

/// `redirect = { to = "...", status = 301 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectFile {
    /// Target; `{host}`, `{uri}`, `{path}` and `{query}` are replaced from the request.
    pub to: Str,
    /// 301, 302, 303, 307 or 308 (default 301).
    pub status: Option<u16>,
}

/// `respond = { status = 503, body = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondFile {
    /// Status code.
    pub status: u16,
    /// Body (default empty).
    pub body: Option<Str>,
    /// Content type (default `text/plain; charset=utf-8`).
    pub content_type: Option<Str>,
}
