//! JWT bearer tokens: the `[access.jwt]` provider (the verification keys, read from a JWKS,
//! PEM public keys or an HS256 secret file; issuer, audience, leeway; where requests carry
//! the token) and what a route asks of a token (`jwt`, `jwt_claims`, `jwt_headers`,
//! `jwt_forward`). The request path's side is `proxy::auth::jwt`.
//!
//! Every key has exactly one algorithm (HS256, RS256, ES256 or EdDSA), fixed when the key
//! is read: a JWK's `alg`, else its type (`RSA` → RS256, `EC` P-256 → ES256, `OKP`
//! Ed25519 → EdDSA, `oct` → HS256); a PEM key's type; a secret file's HS256. A token is
//! only ever checked with keys of the algorithm its header names, so a token that says
//! `HS256` is never checked against an RSA public key taken as an HMAC secret (algorithm
//! confusion), and `alg: none` names no key at all.

pub mod cache;
mod keys;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

pub use keys::{
    alg_name, parse_jwks, parse_pem, read_jwks, read_public_keys, read_secret, KeyFileError,
};

/// Default `access.jwt.leeway`: clocks may disagree this much on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Largest `access.jwt.leeway` accepted.
pub const MAX_LEEWAY: Duration = Duration::from_secs(600);

/// The algorithms switchyard verifies.
pub const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// The `[access.jwt]` provider: the keys and what every token must satisfy.
#[derive(Clone)]
pub struct JwtConfig {
    /// The verification keys, in file order.
    pub keys: Vec<JwtKey>,
    /// Where a request carries its token.
    pub source: TokenSource,
    /// `iss` must be one of these (empty: any, and `iss` may be absent).
    pub issuers: Vec<String>,
    /// `aud` must name one of these (empty: a token with an `aud` is refused, as RFC 7519
    /// says a token for someone else must be).
    pub audiences: Vec<String>,
    /// Leeway on `exp` and `nbf`, whole seconds.
    pub leeway: Duration,
    /// `WWW-Authenticate` for a request without a token (RFC 6750: no error code).
    pub challenge: HeaderValue,
    /// `WWW-Authenticate` for a request with a token that is not valid
    /// (`error="invalid_token"`).
    pub invalid_challenge: HeaderValue,
    /// One [`Validation`] per algorithm that has keys.
    validations: Vec<(Algorithm, Validation)>,
    /// The key files' contents, to tell two configurations apart.
    fingerprint: Vec<u8>,
    /// Tokens that verified, per worker thread (`cache.rs`).
    pub cache: Arc<cache::TokenCache>,
}

/// One verification key.
#[derive(Clone)]
pub struct JwtKey {
    /// The JWK's `kid`; PEM keys and secrets have none (they are tried for any `kid`).
    pub kid: Option<String>,
    /// The one algorithm it verifies.
    pub alg: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

/// Where a request carries its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer TOKEN` (RFC 6750).
    Bearer,
    /// A header holding the token as is.
    Header(HeaderName),
    /// A cookie.
    Cookie(String),
}

/// What a route asks of a request's token (present: a valid token is required).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteJwt {
    /// Claims that must hold, all of them.
    pub claims: Vec<ClaimRule>,
    /// Claims passed to the backend as headers: `(claim, header)`. Client-sent copies of
    /// these headers are always removed first.
    pub headers: Vec<(String, HeaderName)>,
    /// The token goes on to the backend (default); `false`: removed from the request.
    pub forward: bool,
}

/// A claim requirement: the claim is a string equal to one of `any_of`, or an array
/// holding one of them (and a `scope` string is taken as its space-separated words,
/// RFC 8693).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRule {
    /// The claim's name.
    pub name: String,
    /// The values that satisfy it.
    pub any_of: Vec<String>,
}

// === impl JwtConfig ===

impl JwtConfig {
    /// The provider for `keys` (at least one) with these checks. `challenge` is the
    /// `[access]` realm's `Bearer realm="..."`.
    pub fn new(
        keys: Vec<JwtKey>,
        source: TokenSource,
        issuers: Vec<String>,
        audiences: Vec<String>,
        leeway: Duration,
        challenge: HeaderValue,
        fingerprint: Vec<u8>,
    ) -> Self {
        let mut invalid = challenge.as_bytes().to_vec();
        invalid.extend_from_slice(b", error=\"invalid_token\"");
        // The realm was checked to be a valid header value; the suffix is plain ASCII.
        let invalid_challenge =
            HeaderValue::from_bytes(&invalid).unwrap_or_else(|_| challenge.clone());
        let validations = ALGORITHMS
            .into_iter()
            .filter(|alg| keys.iter().any(|k| k.alg == *alg))
            .map(|alg| (alg, validation(alg, &issuers, &audiences, leeway)))
            .collect();
        JwtConfig {
            keys,
            source,
            issuers,
            audiences,
            leeway,
            challenge,
            invalid_challenge,
            validations,
            fingerprint,
            cache: Arc::default(),
        }
    }

    /// The checks for a token signed with `alg` (`None`: no key of that algorithm).
    pub fn validation(&self, alg: Algorithm) -> Option<&Validation> {
        self.validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v)
    }
}

/// `exp` required and checked, `nbf` checked when present, `iss` and `aud` required when
/// configured; only `alg` accepted.
fn validation(
    alg: Algorithm,
    issuers: &[String],
    audiences: &[String],
    leeway: Duration,
) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = leeway.as_secs();
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    if !issuers.is_empty() {
        v.set_issuer(issuers);
        required.push("iss");
    }
    if !audiences.is_empty() {
        v.set_audience(audiences);
        required.push("aud");
    }
    v.set_required_spec_claims(&required);
    v
}

impl PartialEq for JwtConfig {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
            && self.source == other.source
            && self.issuers == other.issuers
            && self.audiences == other.audiences
            && self.leeway == other.leeway
            && self.challenge == other.challenge
    }
}

impl Eq for JwtConfig {}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("keys", &self.keys)
            .field("source", &self.source)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

// === impl TokenSource ===

impl std::str::FromStr for TokenSource {
    type Err = String;

    /// `bearer`, `header:NAME` or `cookie:NAME`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "bearer" {
            return Ok(TokenSource::Bearer);
        }
        if let Some(name) = s.strip_prefix("header:") {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a header name"))?;
            return Ok(TokenSource::Header(name));
        }
        if let Some(name) = s.strip_prefix("cookie:") {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if !valid {
                return Err(format!("{name:?} is not a cookie name"));
            }
            return Ok(TokenSource::Cookie(name.to_owned()));
        }
        Err(format!(
            "{s:?} is not a token source: use \"bearer\", \"header:NAME\" or \"cookie:NAME\""
        ))
    }
}

// === impl ClaimRule ===

impl ClaimRule {
    /// Whether `claim` (the token's value of [`ClaimRule::name`]) satisfies the rule.
    pub fn holds(&self, claim: Option<&serde_json::Value>) -> bool {
        use serde_json::Value;
        let wanted = |s: &str| self.any_of.iter().any(|w| w == s);
        match claim {
            Some(Value::String(s)) if self.name == "scope" => s.split(' ').any(wanted),
            Some(Value::String(s)) => wanted(s),
            Some(Value::Array(items)) => items.iter().any(|v| v.as_str().is_some_and(wanted)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
