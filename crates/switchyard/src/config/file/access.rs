//! `[access]` (API keys, where requests carry them, trusted proxies), a route's `access`
//! table and the IP lists a listener or a route takes.

use serde::Deserialize;
use toml::Spanned;

use std::collections::BTreeMap;

use super::{JwtFile, OneOrMany, Str};

/// `[access]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    /// A key file: `NAME sha256:HEX [role,role]` per line (relative to the config file).
    pub api_keys_file: Option<Spanned<Str>>,
    /// An environment variable holding key lines (newline- or `;`-separated).
    pub api_keys_env: Option<Spanned<Str>>,
    /// Where keys are read from, in order: `bearer`, `header:NAME`, `query:NAME`.
    pub key_sources: Option<Vec<Spanned<Str>>>,
    /// The realm of `WWW-Authenticate: Bearer realm="..."`.
    pub realm: Option<Spanned<Str>>,
    /// CIDR blocks of the proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Option<Vec<Spanned<Str>>>,
    /// `[access.jwt]`: the JWT provider.
    pub jwt: Option<Spanned<JwtFile>>,
}

/// A route's `access = { ... }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteAccessFile {
    /// A known API key is required.
    pub api_key: Option<Spanned<bool>>,
    /// The key must have one of these roles (implies `api_key = true`).
    pub roles: Option<Vec<Spanned<Str>>>,
    /// CIDR blocks that may use the route.
    pub allow_ip: Option<Vec<Spanned<Str>>>,
    /// CIDR blocks that may not.
    pub deny_ip: Option<Vec<Spanned<Str>>>,
    /// An auth service to ask first.
    pub forward_auth: Option<Spanned<crate::config::forward_auth::ForwardAuthFile>>,
    /// A valid JWT is required.
    pub jwt: Option<Spanned<bool>>,
    /// Claims the token must have: a value, or a list of values (any one).
    pub jwt_claims: Option<Spanned<BTreeMap<String, Spanned<OneOrMany>>>>,
    /// Claims passed to the backend as headers: `{ claim = "Header-Name" }`.
    pub jwt_headers: Option<Spanned<BTreeMap<String, Spanned<Str>>>>,
    /// Whether the token goes on to the backend (default true).
    pub jwt_forward: Option<Spanned<bool>>,
}
